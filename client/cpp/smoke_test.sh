#!/usr/bin/env bash
# Smoke test of memnodectl against a real memnoded on loopback.
#
# Starts memnoded on port 0, drives a realistic session through the CLI
# (processes, mmap, fill, digest, read, translate, madvise, KSM stepping and
# dumping, error paths), checks exit codes and a few outputs, and prints
# "N passed, M failed". Exits non-zero when any check fails.
#
# Environment:
#   MEMNODECTL  the client (default build/cli/client/cpp/memnodectl)
#   MEMNODED    the server (default build/release/server/memnoded)

set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MEMNODECTL=${MEMNODECTL:-$ROOT/build/cli/client/cpp/memnodectl}
MEMNODED=${MEMNODED:-$ROOT/build/release/server/memnoded}

for bin in "$MEMNODECTL" "$MEMNODED"; do
  if [[ ! -x "$bin" ]]; then
    echo "smoke_test: $bin is not an executable" >&2
    exit 2
  fi
done

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# --- Start the server on an ephemeral port. --------------------------------
"$MEMNODED" --listen=127.0.0.1:0 >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
ADDRESS=""
for _ in $(seq 1 100); do
  ADDRESS=$(sed -n 's/^LISTENING \(.*\)$/\1/p' "$TMP/server.out" | head -n1)
  [[ -n "$ADDRESS" ]] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
  sleep 0.1
done
if [[ -z "$ADDRESS" ]]; then
  echo "smoke_test: memnoded did not print LISTENING" >&2
  cat "$TMP/server.err" >&2
  exit 1
fi
echo "memnoded listening on $ADDRESS"

# --- Helpers. ---------------------------------------------------------------
PASSED=0
FAILED=0
OUT=""
ERR=""
RC=0

pass() { PASSED=$((PASSED + 1)); }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL: $1" >&2
  echo "  stdout: ${OUT:0:2000}" >&2
  echo "  stderr: ${ERR:0:2000}" >&2
}

# ctl ARGS...: runs memnodectl against the server; sets OUT, ERR and RC.
ctl() {
  OUT=$("$MEMNODECTL" --server="$ADDRESS" "$@" 2>"$TMP/stderr")
  RC=$?
  ERR=$(cat "$TMP/stderr")
}

# expect WANT_RC ARGS...: runs memnodectl and checks its exit code.
expect() {
  local want=$1
  shift
  ctl "$@"
  if [[ "$RC" -eq "$want" ]]; then
    pass
  else
    fail "memnodectl $* exited $RC, want $want"
  fi
}

# has TEXT_NAME PATTERN: checks that $OUT (or $ERR) matches an ERE.
has() {
  local where=$1 pattern=$2 text
  if [[ "$where" == stderr ]]; then text=$ERR; else text=$OUT; fi
  if grep -qE -- "$pattern" <<<"$text"; then
    pass
  else
    fail "$where does not match /$pattern/"
  fi
}

# --- Session. ---------------------------------------------------------------
expect 0 machine get
has stdout '^name: +machines/default$'
has stdout '^NODE +BLOCKS +PRESENT +FREE'

expect 0 --json machine list
has stdout '"name":"machines/default"'

expect 0 process create --uid 1000
has stdout '^pid: +[0-9]+$'
PID=$(awk '/^pid:/ {print $2}' <<<"$OUT")

expect 0 mmap "$PID" 1M
has stdout '^0x[0-9a-f]+$'
BASE=$OUT

expect 0 fill "$PID" "$BASE" 1M --byte 0x41
has stdout '^filled 1048576 bytes at '

expect 0 digest "$PID" "$BASE" 1M
has stdout '^digest: +[0-9a-f]{64}$'
has stdout '^populated_pages: +256$'

expect 0 read "$PID" "$BASE" 64 --hexdump
has stdout '^0x[0-9a-f]+  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  \|AAAAAAAAAAAAAAAA\|$'

expect 0 translate "$PID" "$BASE" 4
has stdout '^ADDRESS +MAPPED +PRESENT +PFN +NODE +STATE'
has stdout "^$BASE +yes +yes +[0-9]+ +[0-9]+ +ANON$"

expect 0 madvise "$PID" "$BASE" 1M mergeable
has stdout '^ok$'

expect 0 ksm set --run 0
has stdout '^run: +0$'

expect 0 ksm step --full-scans 2
has stdout '^passes: +[0-9]+$'

# Flags before or after the subcommand.
expect 0 --json ksm get
has stdout '"pages_shared":"1"'
has stdout '"pages_sharing":"255"'
expect 0 ksm get --json
has stdout '"full_scans":"[0-9]+"'

expect 0 ksm dump
has stdout '^== stable tree: 1 nodes'
has stdout "\\(pid $PID, $BASE\\)"

expect 0 ksm stable
has stdout '^ID +KPFN +NODE +DIGEST'

expect 0 ksm rmap "$PID"
has stdout ' STABLE '

expect 0 translate "$PID" "$BASE"
has stdout ' KSM$'
PFN=$(awk 'NR == 2 {print $4}' <<<"$OUT")

expect 0 page get "$PFN"
has stdout '^state: +KSM$'

expect 0 process fork "$PID"
has stdout "^parent_pid: +$PID$"

expect 0 process list
has stdout '^PID +UID +PRIV +HOME +STATE +VMAS +ANON +KSM +ZERO'

expect 0 machine check
has stdout '^ok: +yes$'

# Emulated errno: exit 1 with the errno line on stderr.
expect 1 write "$PID" 0x1000 --text hello
has stderr '^EFAULT \(14\): fault at 0x1000'

expect 1 mmap "$PID" 0
has stderr '^EINVAL \(22\)'

expect 1 ksm set --run 3
has stderr '^EINVAL \(22\)'

# A request the server refuses: exit 3 with the status and ErrorInfo reason.
expect 3 process get 99999
has stderr '^error: NOT_FOUND: .*\[reason=[A-Z_]+\]$'

expect 3 --machine=no-such-machine machine get
has stderr '^error: NOT_FOUND: '

# Usage errors: exit 2, no RPC.
expect 2 mmap "$PID"
expect 2 fill "$PID" "$BASE" 1M
expect 2 frobnicate

# Unreachable server: exit 4.
OUT=$("$MEMNODECTL" --server=127.0.0.1:1 --timeout=5 ksm get 2>&1)
RC=$?
if [[ "$RC" -eq 4 ]]; then pass; else fail "unreachable server exited $RC, want 4"; fi

# A second machine, created and deleted.
expect 0 machine create smoke --nodes 2 --blocks-per-node 2 --pages-per-block 64 --clock manual
has stdout '^clock_mode: +MANUAL$'
expect 0 --machine=smoke process create
expect 0 machine delete smoke

expect 0 process exit "$PID"
has stdout '^pages_freed: +[0-9]+$'

echo "$PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
