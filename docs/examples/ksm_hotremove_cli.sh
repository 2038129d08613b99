#!/bin/bash
# The docs/API.md worked experiment with memnodectl.
#   MEMNODECTL=$BUILD/client/cpp/memnodectl MEMNODE_SERVER=127.0.0.1:50051 \
#   PYTHONPATH=$REPO/client/python:$BUILD/python bash docs/examples/ksm_hotremove_cli.sh
# Recorded with a memnodectl that predated its `block` commands: the offline
# steps call the raw MemoryBlockService stub from a few lines of Python
# (function `block` below); `memnodectl block offline|resume` now does the same.
set -u
CTL=${MEMNODECTL:-memnodectl}
M=clilab
ctl() { echo "\$ memnodectl --machine=$M $*"; "$CTL" --machine=$M "$@"; }
block() {  # block offline|resume N [pause_after]
  /usr/bin/python3 - "$M" "$@" <<'EOF'
import sys, grpc
from memnode.v1 import hotplug_pb2 as hp, hotplug_pb2_grpc, common_pb2 as cm
import os
m, verb, n = sys.argv[1], sys.argv[2], sys.argv[3]
stub = hotplug_pb2_grpc.MemoryBlockServiceStub(grpc.insecure_channel(os.environ["MEMNODE_SERVER"]))
name = "machines/%s/memoryBlocks/%s" % (m, n)
if verb == "offline":
    pause = hp.OfflinePhase.Value(sys.argv[4]) if len(sys.argv) > 4 else 0
    r = stub.OfflineMemoryBlock(hp.OfflineMemoryBlockRequest(name=name, pause_after=pause))
else:
    r = stub.ResumeOffline(hp.ResumeOfflineRequest(name=name))
print("%s %s: %s paused=%s phase=%s migrated=%d ksm_migrated=%d pruned=%d" % (
    verb, name, cm.Errno.Name(r.errnum), r.paused, hp.OfflinePhase.Name(r.phase),
    r.pages_migrated, r.ksm_pages_migrated, r.stable_nodes_pruned))
for c in r.notifier_calls: print("  " + c)
EOF
}

echo "\$ memnodectl machine create $M --nodes 2 --blocks-per-node 4 --pages-per-block 64 --clock manual"
"$CTL" machine create $M --nodes 2 --blocks-per-node 4 --pages-per-block 64 --clock manual
A=$("$CTL" --machine=$M --json process create --home-node 1 | sed 's/.*"pid":\([0-9]*\).*/\1/')
B=$("$CTL" --machine=$M --json process create --home-node 1 | sed 's/.*"pid":\([0-9]*\).*/\1/')
echo "A=$A B=$B"
for P in $A $B; do
  ADDR=$("$CTL" --machine=$M mmap "$P" 4K)
  ctl fill "$P" "$ADDR" 4K --byte 0x42
  ctl madvise "$P" "$ADDR" 4K mergeable
done
ctl ksm step --full-scans 1
ctl ksm step --full-scans 1
ctl ksm stable
ctl translate "$A" "$ADDR"
ctl translate "$B" "$ADDR"
ctl write "$A" "$ADDR" --hex 42
ctl translate "$A" "$ADDR"
ctl ksm get
ctl ksm step --full-scans 1
ctl ksm stable
echo "\$ block offline 4          # raw MemoryBlockService stub"
block offline 4
ctl ksm stable
echo "\$ block offline 5 OFFLINE_PHASE_GOING_OFFLINE"
block offline 5 OFFLINE_PHASE_GOING_OFFLINE
ctl ksm step --full-scans 1
echo "exit code $?"
ctl madvise "$A" "$ADDR" 4K dontneed
ctl madvise "$B" "$ADDR" 4K dontneed
ctl ksm stable
echo "\$ block resume 5"
block resume 5
ctl ksm get
"$CTL" machine delete $M
