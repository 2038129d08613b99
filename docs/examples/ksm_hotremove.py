#!/usr/bin/python3
"""The docs/API.md worked experiment, with the Python wrapper (memnode.Client).

docs/SEMANTICS.md SC-1 (two identical pages merge in pass 2), a write that
breaks COW, an offline that migrates a KSM page (kpfn follows it), and the
race the seed closes (a KSM page freed while an offline is paused after
MEM_GOING_OFFLINE: MEM_OFFLINE prunes its stable node).

    export PYTHONPATH=$REPO/client/python:$BUILD/python
    /usr/bin/python3 docs/examples/ksm_hotremove.py 127.0.0.1:50051

The hot-remove steps use the wrapper's MemoryBlock handle (m.block(n)).
"""
import sys

import grpc
from memnode import Client, MemnodeError, PAGE_SIZE
from memnode.v1 import common_pb2, hotplug_pb2

target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"


def counters(ksm):
    k = ksm.get()
    return ("shared=%d sharing=%d unshared=%d volatile=%d full_scans=%d"
            % (k.pages_shared, k.pages_sharing, k.pages_unshared,
               k.pages_volatile, k.full_scans))


def show_nodes(ksm):
    for n in ksm.stable_nodes():
        maps = ", ".join("pid %d @0x%x" % (m.pid, m.address) for m in n.mappings)
        print("  node #%d kpfn=%d node=%d stale=%s mapcount=%d digest=%s.. [%s]"
              % (n.id, n.kpfn, n.node, n.stale, n.mapcount, n.content_digest[:12], maps))


with Client(target) as c:
    # 1. A deterministic machine: 2 nodes x 4 blocks x 64 pages, MANUAL clock.
    m = c.create_machine("lab", nodes=2, blocks_per_node=4, pages_per_block=64,
                         clock="manual")
    print("machine:", m.name, "total_pages:", m.proto.total_pages)

    # 2. Two processes on node 1 (block 0 of node 0 holds the zero page, which
    #    makes block 0 unremovable), one identical page each.
    a = m.create_process(home_node=1)
    b = m.create_process(home_node=1)
    for p in (a, b):
        r = p.mmap(PAGE_SIZE, "rw")
        assert r.ok, r
        addr = r.address
        p.fill(addr, PAGE_SIZE, byte=0x42)
        print("pid %d: page at 0x%x -> pfn %d" % (p.pid, addr, p.pfn(addr)))
        print("  madvise MERGEABLE:", p.madvise(addr, PAGE_SIZE, "mergeable").errno_name)

    # 3. Step ksmd pass by pass (SEMANTICS SC-1).
    for i in (1, 2):
        s = m.ksm.step(full_scans=1)
        print("after pass %d (visits %d): %s" % (i, s.visits, counters(m.ksm)))
    print("stable tree:")
    show_nodes(m.ksm)
    print("pfn of pid %d: %d, pfn of pid %d: %d" % (a.pid, a.pfn(addr), b.pid, b.pfn(addr)))
    kpfn = m.ksm.stable_nodes()[0].kpfn

    # 4. A write to a KSM page always breaks COW, even with the same bytes.
    w = a.write(addr, b"\x42")
    print("pid %d writes 0x42: %s, now pfn %d (%s)"
          % (a.pid, w.errno_name, a.pfn(addr),
             common_pb2.PageState.Name(a.translate(addr)[0].state)))
    print("right after the write:", counters(m.ksm))
    show_nodes(m.ksm)
    m.ksm.step(full_scans=1)
    print("after one more pass:", counters(m.ksm), "pid %d pfn %d" % (a.pid, a.pfn(addr)))

    # 5. Offline the block holding the KSM page: the page migrates
    #    (offlining=1), kpfn follows it, the counters do not move.
    block = m.page(kpfn).block
    blk = m.block(block)
    bname = blk.name
    rep = blk.offline()                              # Result wrapping the OfflineReport
    print("offline %s: %s phase=%s migrated=%d ksm_migrated=%d pruned=%d"
          % (bname, common_pb2.Errno.Name(rep.errnum),
             hotplug_pb2.OfflinePhase.Name(rep.phase), rep.pages_migrated,
             rep.ksm_pages_migrated, rep.stable_nodes_pruned))
    for line in rep.notifier_calls:
        print("  notifier:", line)
    print("after the offline:", counters(m.ksm))
    show_nodes(m.ksm)

    # 6. The seed's race: offline the block now holding the KSM page, pause
    #    after MEM_GOING_OFFLINE, let both sharers drop the page, resume.
    kpfn = m.ksm.stable_nodes()[0].kpfn
    block = m.page(kpfn).block
    blk = m.block(block)
    bname = blk.name
    rep = blk.offline("going-offline")               # pause after MEM_GOING_OFFLINE
    print("offline %s paused=%s phase=%s" % (bname, rep.paused,
                                             hotplug_pb2.OfflinePhase.Name(rep.phase)))
    st = blk.get().state
    print("  block state:", hotplug_pb2.MemoryBlockState.Name(st),
          "locked_by_offline:", m.ksm.get().locked_by_offline)
    try:
        m.ksm.step(full_scans=1)
    except MemnodeError as e:
        print("  StepKsm while paused:", e.code.name, e.reason)
    for p in (a, b):
        print("  pid %d MADV_DONTNEED: %s" % (p.pid, p.madvise(addr, PAGE_SIZE, "dontneed").errno_name))
    print("  page %d: %s" % (kpfn, common_pb2.PageState.Name(m.page(kpfn).state)))
    print("  before resume:", counters(m.ksm))
    show_nodes(m.ksm)
    rep = blk.resume()
    print("resume: %s phase=%s migrated=%d pruned=%d"
          % (common_pb2.Errno.Name(rep.errnum), hotplug_pb2.OfflinePhase.Name(rep.phase), rep.pages_migrated,
             rep.stable_nodes_pruned))
    for line in rep.notifier_calls:
        print("  notifier:", line)
    print("after MEM_OFFLINE:", counters(m.ksm), "stable nodes:", len(m.ksm.stable_nodes()))
    m.ksm.step(full_scans=1)
    print("after one more pass:", counters(m.ksm))
    print("check:", m.check().ok)
    m.delete()
