#!/usr/bin/env bash
# libFuzzer targets of tests/fuzz, built with clang (-fsanitize=fuzzer,address,
# undefined) in their own build dir, each run for a while on its committed
# seed corpus (tests/fuzz/corpus/<target>/, read only) plus a scratch corpus
# in the build dir.
#
#   scripts/fuzz.sh [SECONDS]        build, then run each target SECONDS (default 15)
#   scripts/fuzz.sh --write-corpus   regenerate tests/fuzz/corpus/* deterministically
# Env: FUZZ_DIR (default build/fuzz), FUZZ_TARGETS (default: all three),
#      FUZZ_SEED (libFuzzer -seed; 0 = random, make test uses 1 so CI explores
#      the same inputs on every run),
#      FUZZ_JOBS (parallel builds, default nproc).
# A crash leaves its input in $FUZZ_DIR/artifacts/<target>/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
TARGETS=${FUZZ_TARGETS:-fuzz_ops fuzz_snapshot fuzz_service}
JOBS=${FUZZ_JOBS:-$(nproc)}

# The build dependencies, clang and its fuzzer/sanitizer runtimes (Debian
# packages, through the one set-up script).
scripts/deps.sh build clang

if [ ! -f "$FUZZ_DIR/build.ninja" ]; then
  # -O1 and line tables only: the usual fuzzing flags, and half the build time.
  cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only" \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DMEMNODE_FUZZ=ON >/dev/null
fi
# shellcheck disable=SC2086
cmake --build "$FUZZ_DIR" -j "$JOBS" --target $TARGETS

if [ "${1:-}" = "--write-corpus" ]; then
  for t in $TARGETS; do
    rm -rf "tests/fuzz/corpus/$t" && mkdir -p "tests/fuzz/corpus/$t"
    "$FUZZ_DIR/tests/fuzz/$t" "--write-corpus=$PWD/tests/fuzz/corpus/$t"
  done
  exit 0
fi

SECS=${1:-15}
status=0
for t in $TARGETS; do
  work="$FUZZ_DIR/corpus/$t" art="$FUZZ_DIR/artifacts/$t"
  mkdir -p "$work" "$art"
  case $t in
    fuzz_ops) max_len=1024 ;;
    fuzz_snapshot) max_len=65536 ;;
    *) max_len=8192 ;;
  esac
  log="$FUZZ_DIR/$t.log"
  echo "== $t: ${SECS}s"
  if "$FUZZ_DIR/tests/fuzz/$t" -max_total_time="$SECS" -seed="${FUZZ_SEED:-0}" -timeout=25 -rss_limit_mb=2048 \
      -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$art/" \
      "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "   ok: ${execs:-?} executions (${rate:-?}/s), ${cov}"
  else
    status=1
    echo "   FAILED (log: $log):"
    grep -E "ERROR:|SUMMARY|Test unit written|failed|Check\(\)" "$log" | head -20 | sed 's/^/   /'
  fi
done
exit $status
