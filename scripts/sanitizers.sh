#!/usr/bin/env bash
# Sanitizer and static thread-safety checks beyond test-asan (make test runs
# both; each in its own build dir, building only what it checks).
#
#   scripts/sanitizers.sh tsan   TSan build (build/tsan) of the core's
#                                concurrency test only, then runs it
#   scripts/sanitizers.sh tsa    clang -Wthread-safety -Werror=thread-safety
#                                over server/core, server/host and server/service
#                                (build/tsa; -fsyntax-only, generated proto
#                                headers only)
# Env: TSAN_DIR, TSA_DIR, JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

# The build dependencies, clang and its sanitizer runtimes (Debian packages,
# through the one set-up script).
ensure_deps() {
  scripts/deps.sh build clang
}

tsan() {
  ensure_deps
  local dir=${TSAN_DIR:-build/tsan}
  # The core's concurrency (MachineHandle's ksmd loop included) without
  # gRPC: Debian's gRPC is not TSan-instrumented (a known trap of the Debian stack).
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMNODE_TSAN=ON \
    -DMEMNODE_BUILD_SERVICE=OFF >/dev/null
  cmake --build "$dir" -j "$JOBS" --target concurrency_test
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
    "$dir/tests/core/concurrency_test"
}

tsa() {
  ensure_deps
  local dir=${TSA_DIR:-build/tsa}
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
    -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  # Only the generated proto headers that server/service includes.
  local hdrs
  hdrs=$(ninja -C "$dir" -t targets all | sed -n 's/^\(protos\/[^:]*\.pb\.h\):.*/\1/p' | sort -u)
  # shellcheck disable=SC2086
  [ -z "$hdrs" ] || ninja -C "$dir" $hdrs >/dev/null
  /usr/bin/python3 - "$dir" "$JOBS" <<'PY'
import json, os, shlex, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
d, jobs = sys.argv[1], int(sys.argv[2])
cmds = [c for c in json.load(open(os.path.join(d, "compile_commands.json")))
        if any(p in c["file"] for p in ("/server/core/", "/server/host/", "/server/service/"))]
def check(c):
    args = shlex.split(c["command"])
    # drop -o <obj>, compile nothing: analysis only
    out = []
    skip = False
    for a in args:
        if skip: skip = False; continue
        if a == "-o": skip = True; continue
        out.append(a)
    out += ["-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety", "-Wno-switch", "-ferror-limit=0"]
    p = subprocess.run(out, cwd=c["directory"], capture_output=True, text=True)
    return c["file"], p.returncode, p.stderr
bad = 0
with ThreadPoolExecutor(jobs) as ex:
    for f, rc, err in ex.map(check, sorted(cmds, key=lambda c: c["file"])):
        if rc != 0:
            bad += 1
            print(err, end="")
print(f"thread-safety analysis: {len(cmds)} files, {bad} with errors")
sys.exit(1 if bad else 0)
PY
}

case "${1:-}" in
  tsan) tsan ;;
  tsa) tsa ;;
  *) echo "usage: $0 tsan|tsa" >&2; exit 2 ;;
esac
