#!/usr/bin/env bash
# Smoke test of memnodectl against a real memnoded on loopback.
#
# Starts memnoded on port 0, drives a realistic session through the CLI
# (processes, mmap, fill, digest, read, translate, madvise, KSM stepping and
# dumping, error paths; memory blocks, offline with a merged page, a paused
# offline and resume, notifier failure injection, mempolicy, mbind,
# migrate_pages, move_pages; the event stream with watch and top; shell
# completion), checks exit codes and a few
# outputs, and prints "N passed, M failed". Exits non-zero when any check
# fails.
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

# --- Fill in chunks: a fill longer than 64 MiB goes as several calls. -------
# The random stream of a chunk starting at byte 64 MiB is the stream seeded
# with SEED + (64 MiB / 8) * golden (splitmix64), so a separate 36 MiB range
# filled with that seed must hold the same bytes as the tail of the big one.
expect 0 mmap "$PID" 100M
BIG=$OUT
MEMNODECTL_PROGRESS=always expect 0 fill "$PID" "$BIG" 100M --random 7
has stdout '^filled 104857600 bytes at '
has stderr 'fill: 100 MiB / 100 MiB \(100%\)'
expect 0 mmap "$PID" 36M
TAIL=$OUT
SEED2=$(printf '%u' $((7 + (67108864 / 8) * 0x9e3779b97f4a7c15)))
expect 0 fill "$PID" "$TAIL" 36M --random "$SEED2"
expect 0 digest "$PID" "$TAIL" 36M
WANT=$(awk '/^digest:/ {print $2}' <<<"$OUT")
expect 0 digest "$PID" $((BIG + 67108864)) 36M
has stdout "^digest: +$WANT$"
# A range that is not all mapped goes as one call: EFAULT, nothing done.
expect 1 fill "$PID" "$TAIL" 100M --byte 1
has stderr '^EFAULT \(14\)'
expect 0 munmap "$PID" "$BIG" 100M
expect 0 munmap "$PID" "$TAIL" 36M

expect 0 process exit "$PID"
has stdout '^pages_freed: +[0-9]+$'

# --- Memory blocks, hot-remove, NUMA (a MANUAL machine). --------------------
# 2 nodes x 4 blocks x 64 pages: node 1 holds blocks 4-7.
new_pid() { awk '/^pid:/ {print $2}' <<<"$OUT"; }

# merged_pair MACHINE: two processes on node 1 with one identical page each,
# merged by two ksmd passes (SEMANTICS SC-1). Sets PA, PB, AA, AB.
merged_pair() {
  local m=$1
  expect 0 --machine="$m" process create --home-node 1
  PA=$(new_pid)
  expect 0 --machine="$m" process create --home-node 1
  PB=$(new_pid)
  expect 0 --machine="$m" mmap "$PA" 4K
  AA=$OUT
  expect 0 --machine="$m" mmap "$PB" 4K
  AB=$OUT
  expect 0 --machine="$m" fill "$PA" "$AA" 4K --byte 0x5a
  expect 0 --machine="$m" fill "$PB" "$AB" 4K --byte 0x5a
  expect 0 --machine="$m" madvise "$PA" "$AA" 4K mergeable
  expect 0 --machine="$m" madvise "$PB" "$AB" 4K mergeable
}

expect 0 machine create hp --nodes 2 --blocks-per-node 4 --pages-per-block 64 --clock manual
merged_pair hp
H=--machine=hp
expect 0 $H ksm step --full-scans 2
has stdout '^pages_shared: +1$'
has stdout '^pages_sharing: +1$'

expect 0 $H block list
has stdout '^BLOCK +NODE +STATE +START_PFN +PAGES'
has stdout '^ +7 +1 +ONLINE +448 +64 '
expect 0 $H translate "$PA" "$AA"
has stdout ' KSM$'
KPFN=$(awk 'NR == 2 {print $4}' <<<"$OUT")
expect 0 $H page get "$KPFN"
BLK=$(awk '/^block:/ {print $2}' <<<"$OUT")
expect 0 $H block get "$BLK"
has stdout '^ksm_pages: +1$'
has stdout '^node: +1$'

# Offline the block holding the merged page (SC-8): the KSM page migrates.
expect 0 $H block offline "$BLK"
has stdout '^result: +ok$'
has stdout '^pages_migrated: +1$'
has stdout '^ksm_pages_migrated: +1$'
has stdout '^stable_nodes_pruned: +0$'
has stdout '^  MEM_GOING_OFFLINE ksm\(100\) ok$'
has stdout '^  MEM_OFFLINE ksm\(100\) ok$'
expect 0 $H --json block get "$BLK"
has stdout '"state":"MEMORY_BLOCK_STATE_OFFLINE"'
expect 0 $H translate "$PB" "$AB"
has stdout ' KSM$'
NEWPFN=$(awk 'NR == 2 {print $4}' <<<"$OUT")
if [[ "$NEWPFN" != "$KPFN" ]]; then pass; else fail "kpfn did not change"; fi
expect 0 $H ksm get
has stdout '^pages_shared: +1$'
has stdout '^pages_sharing: +1$'
expect 1 $H block offline "$BLK"
has stderr '^EINVAL \(22\)'
expect 0 $H block online "$BLK"
has stdout '^ok$'

# A paused offline, then resume (SEMANTICS CH-4, SEMANTICS SC-17).
expect 0 $H page get "$NEWPFN"
BLK2=$(awk '/^block:/ {print $2}' <<<"$OUT")
expect 0 $H block offline "$BLK2" --pause-after going-offline --pause-ttl 60
has stdout '^paused: +yes, after GOING_OFFLINE'
expect 0 $H block get "$BLK2"
has stdout '^state: +GOING_OFFLINE$'
expect 0 $H ksm get
has stdout '^locked_by_offline: +yes$'
expect 3 $H ksm step --visits 1
has stderr 'reason=KSM_LOCKED'
expect 4 $H --timeout=0.5 ksm set --run 1
expect 0 $H madvise "$PA" "$AA" 4K unmergeable
expect 0 $H block resume "$BLK2"
has stdout '^paused: +no$'
has stdout '^phase: +DONE$'
has stdout '^ksm_pages_migrated: +1$'
expect 0 $H ksm set --run 1 --timeout 5
has stdout '^locked_by_offline: +no$'
expect 0 $H block online "$BLK2"

# Cancel a paused offline: EINTR, exit 1.
expect 0 $H block offline 5 --pause-after isolated
expect 1 $H block cancel 5
has stderr '^EINTR \(4\)'
expect 3 $H block resume 5
has stderr 'reason=NO_PAUSED_OFFLINE'

# An injected notifier failure (one time), then the offline succeeds.
expect 0 $H notifier inject going-offline 200 EBUSY --count 1
has stdout '^injected: MEM_GOING_OFFLINE fails with EBUSY at priority 200'
expect 1 $H block offline 6
has stderr '^EBUSY \(16\)'
has stdout '^  MEM_CANCEL_OFFLINE ksm\(100\) ok$'
expect 0 $H notifier inject going-online 10 22
expect 0 $H notifier clear
has stdout '^cleared$'
expect 0 $H block offline 6
expect 0 $H block online 6

# Unmovable kernel pages: EBUSY before any notifier (SC-10(a)).
expect 0 $H block kernel-pages 7 2 --unmovable
has stdout '^allocated 2 kernel pages$'
has stdout '^unmovable_pages: +2$'
expect 1 $H block offline 7
has stdout '^notifier_calls: +0$'
has stderr '^EBUSY \(16\)'
expect 0 $H block free-kernel-pages 7 2
has stdout '^freed 2 kernel pages$'

# Hot-add and remove.
expect 0 $H block add 1
has stdout '^state: +OFFLINE$'
has stdout '^block: +8$'
expect 1 $H block remove 5
has stderr '^EBUSY \(16\)'
expect 0 $H block remove 8
expect 1 $H --json block remove 8
has stdout '"errnum":"ERRNO_EBUSY"'

# NUMA: policy, move_pages statuses (SC-11), mbind and migrate_pages.
expect 0 $H mempolicy set "$PA" bind 0-1
expect 0 $H mempolicy get "$PA"
has stdout '^mode: +BIND$'
has stdout '^nodes: +0,1 \(mask 0x3\)$'
expect 1 $H mempolicy set "$PA" default 1
has stderr '^EINVAL \(22\)'
expect 0 $H mempolicy get "$PB" --address "$AB" --node
has stdout '^node: +1$'
expect 0 $H move-pages "$PB" 0 "$AB,0x1000,0x7fff00000000"
has stdout "^$AB +ENOENT$"
has stdout '^0x1000 +ENOENT$'
has stdout '^0x7fff00000000 +EFAULT$'
expect 0 $H move-pages "$PA" 0 "$AA" --nodes 0
has stdout "^$AA +0$"
expect 0 $H translate "$PA" "$AA"
has stdout ' 0 +ANON$'
expect 1 $H move-pages "$PA" 0 "$AA" --nodes 5
has stderr '^ENODEV \(19\)'
expect 0 $H --json move-pages "$PA" 0 "$AA"
has stdout '"status":\[0\]'
expect 0 $H mbind "$PA" "$AA" 4K bind 1 --move --strict
has stdout '^ok$'
expect 0 $H translate "$PA" "$AA"
has stdout ' 1 +ANON$'
expect 0 $H migrate-pages "$PA" 0 1 0
has stdout '^not_migrated: +0$'
expect 1 $H migrate-pages "$PA" 999 1 0
has stderr '^ESRCH \(3\)'

# ksm step --full-scans with progress gives what one call gives: two
# machines, same calls, one stepped pass by pass.
for m in hpa hpb; do
  expect 0 machine create "$m" --nodes 2 --blocks-per-node 4 --pages-per-block 64 --clock manual
  merged_pair "$m"
done
MEMNODECTL_PROGRESS=always expect 0 --machine=hpa ksm step --full-scans 3
has stderr 'ksm step: 3/3 passes'
STEP_A=$OUT
MEMNODECTL_PROGRESS=never expect 0 --machine=hpb ksm step --full-scans 3
if [[ "$OUT" == "$STEP_A" ]]; then pass; else fail "stepped and single ksm step differ"; fi
expect 0 --json --machine=hpa ksm get
KSM_A=${OUT/machines\/hpa/}
expect 0 --json --machine=hpb ksm get
if [[ "${OUT/machines\/hpb/}" == "$KSM_A" ]]; then pass; else fail "ksm state differs"; fi
for m in hp hpa hpb; do expect 0 machine delete "$m"; done

# --- Event stream (watch) and live view (top) on a MANUAL machine. ---------
# wait_for FILE ERE: waits up to 20 s for FILE to match.
wait_for() {
  local _
  for _ in $(seq 1 200); do
    grep -qE -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# bg_ctl NAME ARGS...: memnodectl in the background, output in $TMP/NAME.*,
# pid in BG_PIDS[NAME].
declare -A BG_PIDS
bg_ctl() {
  local name=$1
  shift
  "$MEMNODECTL" --server="$ADDRESS" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  BG_PIDS[$name]=$!
}
# bg_done NAME WANT_RC: waits for NAME; checks its exit code; sets OUT/ERR.
bg_done() {
  wait "${BG_PIDS[$1]}"
  RC=$?
  OUT=$(cat "$TMP/$1.out")
  ERR=$(cat "$TMP/$1.err")
  if [[ "$RC" -eq "$2" ]]; then pass; else fail "background $1 exited $RC, want $2"; fi
}
subscribed() {
  if wait_for "$TMP/$1.err" '^watching machines/'; then pass; else fail "$1 did not subscribe"; fi
}

expect 0 machine create ev --nodes 2 --blocks-per-node 4 --pages-per-block 64 --clock manual
merged_pair ev
E=--machine=ev
# watch --count 2 while another call makes the merges of docs/SEMANTICS.md
# SC-1: the node is created with A's item (new_node), then B's joins.
bg_ctl watch $E --timeout 60 watch --kinds merge --count 2
subscribed watch
expect 0 $E ksm step --full-scans 2
has stdout '^pages_sharing: +1$'
bg_done watch 0
has stdout "^[0-9]+ +[0-9]+\.[0-9]{9} +merge +pid=$PA address=$AA pfn=[0-9]+ stable_node=[0-9]+ new_node$"
has stdout "^[0-9]+ +[0-9]+\.[0-9]{9} +merge +pid=$PB address=$AB pfn=[0-9]+ stable_node=[0-9]+$"
if [[ $(wc -l <<<"$OUT") -eq 2 ]]; then pass; else fail "watch --count 2 printed $(wc -l <<<"$OUT") lines"; fi
# --json: one object per line.
bg_ctl watchj $E --timeout 60 --json watch --kinds pass-end --count 1
subscribed watchj
expect 0 $E ksm step --full-scans 1
bg_done watchj 0
has stdout '^\{"sequence":"[0-9]+","kind":"EVENT_KIND_PASS_END",.*"value":"3"'

# top, not a TTY: plain text blocks; an offline between the two refreshes
# shows as a migration outcome (SEMANTICS SC-8: the KSM page moves).
bg_ctl top $E top --iterations 2 --interval 3
if wait_for "$TMP/top.out" '^memnodectl top: machines/ev +iteration 1/2'; then pass; else fail "top did not draw"; fi
# The hot-remove events, all of them, while top runs.
bg_ctl watchh $E --timeout 60 watch --kinds migrate,memory-notify,offline-phase,offline-result --count 8
subscribed watchh
expect 0 $E translate "$PA" "$AA"
KPFN=$(awk 'NR == 2 {print $4}' <<<"$OUT")
expect 0 $E page get "$KPFN"
BLK=$(awk '/^block:/ {print $2}' <<<"$OUT")
expect 0 $E block offline "$BLK"
has stdout '^ksm_pages_migrated: +1$'
bg_done top 0
has stdout '^memnodectl top: machines/ev +iteration 2/2'
has stdout '^pages_shared +1 +-$'
has stdout '^pages_shared +1 +0$'
has stdout '^NODE +ONLINE +GOING_OFFLINE +OFFLINE +REMOVED +TOTAL$'
has stdout '^ +1 +3 +0 +1 +0 +4$'
has stdout '^  memory_offline +ok +1$'
has stdout '^  ksm_pages_migrated=1  offlines: ok=1 '
bg_done watchh 0
has stdout " offline-phase +block=$BLK phase=ISOLATED$"
has stdout " memory-notify +block=$BLK MEM_GOING_OFFLINE ksm\(100\) ok$"
has stdout " migrate +reason=memory_offline pfn=$KPFN ksm=yes result=ok$"
has stdout " memory-notify +block=$BLK MEM_OFFLINE ksm\(100\) ok$"
has stdout " offline-result +block=$BLK result=ok duration="
if [[ $(awk '{print $3}' <<<"$OUT" | tr '\n' ' ') == "offline-phase memory-notify offline-phase migrate offline-phase memory-notify offline-phase offline-result " ]]; then
  pass; else fail "hot-remove events out of order"; fi
expect 0 --json $E top --iterations 1
has stdout '"ksm_pages_migrated":0'
# Ctrl-C ends a watch cleanly; so does the deletion of its machine.
bg_ctl watchc $E watch
subscribed watchc
kill -INT "${BG_PIDS[watchc]}"
bg_done watchc 0
bg_ctl watchd $E watch
subscribed watchd
expect 0 machine delete ev
bg_done watchd 0
has stderr 'stream ended: machines/ev was deleted'
expect 3 --machine=ev watch
has stderr '^error: NOT_FOUND: '

# Usage errors of the new commands.
expect 2 block offline 4 --pause-after sideways
expect 2 block offline
expect 2 mempolicy set 1 sideways 0
expect 2 mempolicy set 1 bind 0-99
expect 2 mempolicy get 1 --node
expect 2 notifier inject going-offline 100 EOK
expect 2 notifier inject sideways 100 EBUSY
expect 2 move-pages 1 0 0x1000,0x2000 --nodes 0,1,0
expect 2 completion zsh
expect 2 watch --kinds merge,sideways
expect 2 watch --count 0
expect 2 top --interval 0
expect 2 top --iterations 0
expect 2 top extra

# Shell completion.
expect 0 completion bash
has stdout '^complete -F _memnodectl memnodectl$'
printf '%s\n' "$OUT" >"$TMP/completion.bash"
complete_words() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
           _memnodectl; echo "${COMPREPLY[*]}"' _ "$TMP/completion.bash" "$@"
}
want_completion() {
  local want=$1 got
  shift
  got=$(complete_words "$@")
  if [[ "$got" == "$want" ]]; then pass; else fail "completion of '$*': got '$got', want '$want'"; fi
}
want_completion "block" memnodectl bl
want_completion "offline online" memnodectl block o
want_completion "free-kernel-pages" memnodectl --machine hp block f
want_completion "isolated going-offline migrated" memnodectl block offline 4 --pause-after ""
want_completion "going-offline" memnodectl block offline 4 --pause-after = go
want_completion "bind" memnodectl mempolicy set 1 b
want_completion "--move --move-all" memnodectl mbind 1 0x1000 4K bind 0 --mov
want_completion "EBUSY" memnodectl notifier inject going-offline 100 EB
want_completion "migrate-pages" memnodectl mi
want_completion "bash" memnodectl completion ""
want_completion "watch" memnodectl wa
want_completion "merge,memory-notify" memnodectl watch --kinds merge,mem
want_completion "offline-phase offline-result" memnodectl watch --kinds off
want_completion "--interval --iterations" memnodectl top --i
echo "$PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
