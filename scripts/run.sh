#!/usr/bin/env bash
# Starts memnoded on the built-in default machine and shows how to use it.
# Usage: scripts/run.sh BUILD_DIR LISTEN_ADDRESS
set -euo pipefail
BUILD_DIR=${1:-build/release}
LISTEN=${2:-127.0.0.1:50051}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$BUILD_DIR/server/memnoded"
CTL="$BUILD_DIR/client/cpp/memnodectl"
cat <<MSG
memnode: starting memnoded on $LISTEN
  default machine: machines/default (REALTIME: ksmd runs in the background,
  2 NUMA nodes x 8 memory blocks x 32768 pages = 2 GiB emulated)

Try it from another terminal:
  $CTL --server=$LISTEN machine get
  $CTL --server=$LISTEN process create
  $CTL --server=$LISTEN mmap 1 64M
  $CTL --server=$LISTEN fill 1 0x7f0000000000 64M --byte 7
  $CTL --server=$LISTEN madvise 1 0x7f0000000000 64M mergeable
  $CTL --server=$LISTEN ksm set --run 1
  $CTL --server=$LISTEN ksm get        # watch pages_shared / pages_sharing grow
  $CTL --server=$LISTEN ksm dump

From Python (Debian's /usr/bin/python3):
  PYTHONPATH=$ROOT/$BUILD_DIR/python:$ROOT/client/python /usr/bin/python3
  >>> import memnode
  >>> c = memnode.Client("$LISTEN")
  >>> m = c.machine("default"); p = m.create_process()
  >>> a = p.mmap(1 << 20, "rw").address; p.fill(a, 1 << 20, byte=1)

Stop with Ctrl-C.
MSG
exec "$BIN" --listen="$LISTEN"
