"""Memory hot-remove and NUMA migration against the real memnoded on MANUAL
machines: docs/SEMANTICS.md scenarios SC-8..SC-13 and SC-17, with its rules
MIG, MOVE, MBIND, MPS (migration), HP (hot-remove) and LOCK (locking).

Every expected value is derived from those rules (the rule id is cited
next to each assertion), never copied from what the server answered. Pfns
and block ids are only observed (translate, GetPageFrame) to know where a
page is; what must happen to it comes from the rules.

Machine layout (2 nodes x 4 blocks x 64 pages, machine.proto Topology):
node 0 holds blocks 0-3, node 1 blocks 4-7. The shared zero page lives in
block 0, so the processes whose pages get offlined are given home node 1
and their pages land on node 1, away from the zero page.
"""

import threading
import time

import grpc
import pytest

from memnode import (EACCES, EAGAIN, EBUSY, EFAULT, EINTR, EINVAL, EIO, ENODEV, ENOENT,
                     EPERM, ESRCH, MemnodeError, PAGE_SIZE)
from memnode import digest as D
from memnode.v1 import hotplug_pb2, numa_pb2

MAX_VISITS = 1 << 20
# Deadline of the calls that may block (a run write during an offline).
BLOCKING_DEADLINE_S = 20.0

ONLINE = hotplug_pb2.MEMORY_BLOCK_STATE_ONLINE
GOING_OFFLINE = hotplug_pb2.MEMORY_BLOCK_STATE_GOING_OFFLINE
OFFLINE = hotplug_pb2.MEMORY_BLOCK_STATE_OFFLINE
REMOVED = hotplug_pb2.MEMORY_BLOCK_STATE_REMOVED

KSM_GOING = "MEM_GOING_OFFLINE ksm(100) ok"
KSM_OFFLINE = "MEM_OFFLINE ksm(100) ok"
KSM_CANCEL = "MEM_CANCEL_OFFLINE ksm(100) ok"


def counters(ksm):
    """(pages_shared, pages_sharing, pages_unshared, pages_volatile)."""
    k = ksm.get()
    return (k.pages_shared, k.pages_sharing, k.pages_unshared, k.pages_volatile)


def passes(ksm, n):
    before = ksm.get().full_scans
    resp = ksm.step(full_scans=n, max_visits=MAX_VISITS)
    assert resp.passes == n and resp.ksm.full_scans == before + n, resp
    return resp.ksm


def translate(proc, address):
    t = proc.translate(address, 1)[0]
    assert t.present, t
    return t


class Pair:
    """Scenario SC-1's state: A then B, one identical page each, merged."""

    def __init__(self, m, home_node=1, byte=0x5A):
        self.m = m
        self.a = m.create_process(home_node=home_node)
        self.b = m.create_process(home_node=home_node)
        self.data = D.byte_fill(byte, PAGE_SIZE)
        self.addr = {}
        for p in (self.a, self.b):
            r = p.mmap(PAGE_SIZE, "rw")
            assert r.ok, r
            self.addr[p.pid] = r.address
            assert p.fill(r.address, PAGE_SIZE, byte=byte).ok
        for p in (self.a, self.b):
            assert p.madvise(self.addr[p.pid], PAGE_SIZE, "mergeable").ok
        b_pfn = translate(self.b, self.addr[self.b.pid]).pfn
        passes(m.ksm, 2)
        # SC-1: after two passes shared 1, sharing 1; the KSM page is B's
        # original page (the later-visited one).
        assert counters(m.ksm) == (1, 1, 0, 0)
        nodes = m.ksm.stable_nodes()
        assert [n.kpfn for n in nodes] == [b_pfn]
        self.kpfn = b_pfn
        self.block = m.block(m.page(b_pfn).block)
        assert self.block.get().node == home_node

    @property
    def addr_a(self):
        return self.addr[self.a.pid]

    @property
    def addr_b(self):
        return self.addr[self.b.pid]

    def both_read_their_data(self):
        for p in (self.a, self.b):
            got = p.digest(self.addr[p.pid], PAGE_SIZE)
            assert got.ok, got
            assert got.digest == D.digest_bytes(self.addr[p.pid], self.data)

    def kpfns(self):
        return [n.kpfn for n in self.m.ksm.stable_nodes()]


def assert_ksm_usable(m):
    """After an offline ended (HP-16, HP-17: the lock is released), ksmd
    runs again and run writes do not wait (LOCK-1)."""
    k = m.ksm.get()
    assert not k.locked_by_offline
    passes(m.ksm, 1)
    r = m.ksm.set(run=k.run, timeout=5.0)
    assert r.ok, r


# --------------------------------------------------------------------------
# SC-8: offline the block holding a live KSM page
# --------------------------------------------------------------------------

def test_scenario_10_8_offline_migrates_a_live_ksm_page(machine):
    m = machine
    pair = Pair(m)
    full_scans = m.ksm.get().full_scans
    assert pair.block.get().ksm_pages == 1

    rep = pair.block.offline()
    # SC-8 / HP-7..HP-10 / HP-14..HP-19: isolation succeeds (the page is movable),
    # MEM_GOING_OFFLINE takes KSM's lock, the KSM page is migrated with
    # offlining=1 (MIG-4), MEM_OFFLINE finds no node in range; the write
    # returns success.
    assert rep.ok, rep
    assert not rep.paused
    assert rep.phase == hotplug_pb2.OFFLINE_PHASE_DONE
    assert list(rep.notifier_calls) == [KSM_GOING, KSM_OFFLINE]
    # The block's only page in use was the KSM page (A's original page was
    # freed by the merge, SC-1): one page migrated, and it was a KSM page.
    assert rep.pages_migrated == 1
    assert rep.ksm_pages_migrated == 1
    assert rep.stable_nodes_pruned == 0
    assert rep.failure == ""
    assert pair.block.get().state == OFFLINE

    # kpfn follows the page (MIG-4, ksm_migrate_page), out of the block;
    # A and B still share it.
    [kpfn] = pair.kpfns()
    assert kpfn != pair.kpfn
    blk = pair.block.get()
    assert not blk.start_pfn <= kpfn < blk.start_pfn + blk.pages
    assert translate(pair.a, pair.addr_a).pfn == kpfn
    assert translate(pair.b, pair.addr_b).pfn == kpfn
    node = m.ksm.stable_nodes()[0]
    assert not node.stale and node.mapcount == 2
    # Counters unchanged, full_scans unchanged during the offline (SC-8, CNT-6).
    assert counters(m.ksm) == (1, 1, 0, 0)
    assert m.ksm.get().full_scans == full_scans
    assert not m.ksm.get().locked_by_offline
    pair.both_read_their_data()
    assert m.check().ok

    # Online again (HP-20): the block comes back empty; offlining an offline
    # block is EINVAL (HP-2), onlining an online one too.
    assert pair.block.offline().errnum == EINVAL
    assert pair.block.online().ok
    assert pair.block.get().state == ONLINE
    assert pair.block.online().errnum == EINVAL
    assert_ksm_usable(m)


# --------------------------------------------------------------------------
# SC-9: the race the seed closes (stale node pruned at MEM_OFFLINE)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("when", ["before-offline", "while-paused", "ksmd-first"])
def test_scenario_10_9_offline_prunes_stale_node(machine, when):
    m = machine
    pair = Pair(m)
    k0 = m.ksm.get()
    assert k0.rmap_items == 2

    def drop_both():
        for p in (pair.a, pair.b):
            assert p.munmap(pair.addr[p.pid], PAGE_SIZE).ok
        # COW-5 / CNT-6: unmapping never moves counters; the KSM page lost
        # its last mapping and was freed, so its node is stale (COW-2).
        assert counters(m.ksm) == (1, 1, 0, 0)
        [node] = m.ksm.stable_nodes()
        assert node.stale and node.kpfn == pair.kpfn

    if when == "before-offline":
        drop_both()
        rep = pair.block.offline()
    elif when == "while-paused":
        rep = pair.block.offline(pause_after="going-offline")
        assert rep.ok and rep.paused
        assert rep.phase == hotplug_pb2.OFFLINE_PHASE_GOING_OFFLINE
        assert list(rep.notifier_calls) == [KSM_GOING]
        assert pair.block.get().state == GOING_OFFLINE  # HP-2
        assert m.ksm.get().locked_by_offline  # HP-15
        drop_both()  # munmap takes no KSM lock (LOCK-3, LOCK-4 in spirit: only run/ksmd wait)
        rep = pair.block.resume()
    else:
        drop_both()
        # ksmd passes both mms: the items of the unmapped addresses are freed
        # and the stale node is pruned on the way (COW-5, PRUNE-1).
        passes(m.ksm, 1)
        assert counters(m.ksm) == (0, 0, 0, 0)
        assert m.ksm.stable_nodes() == []
        rep = pair.block.offline()

    # Nothing to migrate (the KSM page is free; HP-12); offline
    # succeeds (SC-9).
    assert rep.ok, rep
    assert not rep.paused
    assert rep.phase == hotplug_pb2.OFFLINE_PHASE_DONE
    assert rep.pages_migrated == 0
    assert rep.notifier_calls[-1] == KSM_OFFLINE
    assert pair.block.get().state == OFFLINE
    k = m.ksm.get()
    assert not k.locked_by_offline
    if when == "ksmd-first":
        # SC-9 last sentence: already pruned, MEM_OFFLINE does nothing.
        assert rep.stable_nodes_pruned == 0
        assert counters(m.ksm) == (0, 0, 0, 0)
        return
    # HP-16 / PRUNE-2: MEM_OFFLINE prunes the node whose kpfn is in
    # the block: shared and sharing fall at once, the two items survive
    # flagless: volatile = 2 - 0 - 0 - 0 (CNT-4).
    assert rep.stable_nodes_pruned == 1
    assert counters(m.ksm) == (0, 0, 0, 2)
    assert k.rmap_items == 2
    assert k.full_scans == k0.full_scans
    assert m.ksm.stable_nodes() == []
    assert m.check().ok


# --------------------------------------------------------------------------
# SC-10: offlines that cannot complete
# --------------------------------------------------------------------------

def test_scenario_10_10a_unmovable_kernel_pages_fail_isolation(machine):
    m = machine
    pair = Pair(m)
    resp = pair.block.kernel_pages(1, unmovable=True)
    assert resp.pages == 1
    # RMV-1: an unmovable pageblock makes the block not removable.
    assert not resp.memory_block.removable
    rep = pair.block.offline()
    # HP-7 / SC-10(a): EBUSY at once, without any notifier call, KSM
    # not involved: nothing migrated, the block stays online.
    assert rep.errnum == EBUSY, rep
    assert list(rep.notifier_calls) == []
    assert rep.pages_migrated == 0
    assert rep.phase == hotplug_pb2.OFFLINE_PHASE_NONE
    assert rep.failure != ""
    assert pair.block.get().state == ONLINE
    assert pair.kpfns() == [pair.kpfn]
    assert counters(m.ksm) == (1, 1, 0, 0)
    assert_ksm_usable(m)
    # Freeing the kernel page makes the block offlinable (SC-8 again).
    assert pair.block.free_kernel_pages(1).pages == 1
    assert pair.block.get().removable
    rep = pair.block.offline()
    assert rep.ok, rep
    assert rep.ksm_pages_migrated == 1


def test_scenario_10_10b_non_lru_pages_fail_with_cancel(machine):
    m = machine
    pair = Pair(m)
    assert pair.block.kernel_pages(1, unmovable=False).pages == 1
    rep = pair.block.offline()
    # HP-9 / SC-10(b): isolation succeeds (movable pageblock), the
    # migration loop meets an in-use non-LRU page: EBUSY; failure after
    # MEM_GOING_OFFLINE sends MEM_CANCEL_OFFLINE (HP-11), which
    # releases KSM's lock (HP-17); no MEM_OFFLINE.
    assert rep.errnum == EBUSY, rep
    assert list(rep.notifier_calls) == [KSM_GOING, KSM_CANCEL]
    assert not rep.paused
    assert pair.block.get().state == ONLINE  # on failure it goes back (HP-2)
    assert counters(m.ksm) == (1, 1, 0, 0)
    pair.both_read_their_data()
    assert_ksm_usable(m)


def test_scenario_10_10c_pinned_page_times_out_with_eagain(machine):
    m = machine
    pair = Pair(m)
    full_scans = m.ksm.get().full_scans
    # An extra reference on the KSM page (get_user_pages).
    assert pair.a.pin(pair.addr_a, PAGE_SIZE).ok
    rep = pair.block.offline(timeout_ms=50)
    # HP-9, HP-13, SC-10(c): the pinned page keeps failing with -EAGAIN,
    # the loop runs until the deadline -> EAGAIN, MEM_CANCEL_OFFLINE.
    assert rep.errnum == EAGAIN, rep
    assert list(rep.notifier_calls) == [KSM_GOING, KSM_CANCEL]
    assert rep.emulated_ns >= 50 * 1000000
    assert rep.pages_migrated == 0
    assert pair.block.get().state == ONLINE
    # The page did not move; counters and full_scans untouched (LOCK-2).
    assert pair.kpfns() == [pair.kpfn]
    assert translate(pair.a, pair.addr_a).pfn == pair.kpfn
    assert counters(m.ksm) == (1, 1, 0, 0)
    assert m.ksm.get().full_scans == full_scans
    # KSM works again once MEM_CANCEL_OFFLINE released the lock.
    assert_ksm_usable(m)
    # Without the pin the same offline succeeds (SC-8).
    assert pair.a.unpin(pair.addr_a, PAGE_SIZE).ok
    rep = pair.block.offline(timeout_ms=50)
    assert rep.ok, rep
    assert rep.ksm_pages_migrated == 1
    assert pair.kpfns() != [pair.kpfn]
    pair.both_read_their_data()


@pytest.mark.parametrize("priority", [200, 50])
def test_injected_notifier_failure_cancels_the_offline(machine, priority):
    m = machine
    pair = Pair(m)
    m.inject_notifier_failure("going-offline", priority, "EBUSY", count=1)
    rep = pair.block.offline()
    # HP-8: a notifier error at MEM_GOING_OFFLINE fails the offline with
    # its errno and sends MEM_CANCEL_OFFLINE (HP-11). Higher priorities
    # are called first and NOTIFY_BAD stops the chain (HP-14): at 200
    # KSM never sees GOING_OFFLINE; at 50 it does, after KSM.
    assert rep.errnum == EBUSY, rep
    calls = list(rep.notifier_calls)
    going = [c for c in calls if c.startswith("MEM_GOING_OFFLINE")]
    if priority > 100:
        assert KSM_GOING not in going
        assert "(%d)" % priority in going[0] and "EBUSY" in going[0]
    else:
        assert going[0] == KSM_GOING
        assert "(%d)" % priority in going[1] and "EBUSY" in going[1]
    assert KSM_CANCEL in calls
    assert not any(c.startswith("MEM_OFFLINE") for c in calls)
    assert pair.block.get().state == ONLINE
    # KSM's lock is not held afterwards (HP-17, HP-19: unlock only if held).
    assert_ksm_usable(m)
    # count=1: the injector is gone, the next offline succeeds.
    rep = pair.block.offline()
    assert rep.ok, rep
    assert list(rep.notifier_calls) == [KSM_GOING, KSM_OFFLINE]


def test_injected_failure_until_cleared_and_cancel_of_paused_offlines(machine):
    m = machine
    pair = Pair(m)
    m.inject_notifier_failure(hotplug_pb2.MEM_GOING_OFFLINE, 150, EINVAL)
    for _ in range(2):
        assert pair.block.offline().errnum == EINVAL
    m.clear_notifier_failures()
    # Cancel after isolation: MEM_GOING_OFFLINE was never sent, so no cancel
    # notification either (HP-7..HP-8, HP-11); EINTR (hotplug.proto).
    rep = pair.block.offline(pause_after="isolated")
    assert rep.ok and rep.paused and rep.phase == hotplug_pb2.OFFLINE_PHASE_ISOLATED
    assert list(rep.notifier_calls) == []
    assert not m.ksm.get().locked_by_offline  # KSM locks only at GOING_OFFLINE
    rep = pair.block.cancel()
    assert rep.errnum == EINTR
    assert list(rep.notifier_calls) == []
    assert pair.block.get().state == ONLINE
    # Cancel after GOING_OFFLINE: MEM_CANCEL_OFFLINE releases KSM's lock.
    rep = pair.block.offline(pause_after="going-offline")
    assert rep.ok and rep.paused
    assert m.ksm.get().locked_by_offline
    rep = pair.block.cancel()
    assert rep.errnum == EINTR
    assert list(rep.notifier_calls) == [KSM_GOING, KSM_CANCEL]
    assert pair.block.get().state == ONLINE
    assert pair.kpfns() == [pair.kpfn]
    assert_ksm_usable(m)
    # Nothing is paused any more.
    with pytest.raises(MemnodeError) as err:
        pair.block.resume()
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION


# --------------------------------------------------------------------------
# SC-17: during an offline
# --------------------------------------------------------------------------

def test_scenario_10_17_during_a_paused_offline(machine):
    m = machine
    pair = Pair(m)
    assert m.ksm.set(run=1).ok
    c = m.create_process(home_node=1)
    r = c.mmap(PAGE_SIZE, "rw")
    assert r.ok
    c_addr = r.address
    assert c.fill(c_addr, PAGE_SIZE, byte=0x77).ok
    k0 = m.ksm.get()

    rep = pair.block.offline(pause_after="going-offline")
    assert rep.ok and rep.paused, rep
    assert list(rep.notifier_calls) == [KSM_GOING]

    # Reading counters works (LOCK-2: reads never wait) and shows the lock.
    k = m.ksm.get()
    assert k.locked_by_offline
    # MADV_MERGEABLE never takes ksm_thread_mutex (LOCK-3).
    assert c.madvise(c_addr, PAGE_SIZE, "mergeable").ok
    assert c.get().ksm_registered
    # MADV_UNMERGEABLE is not blocked (LOCK-4, CH-3) and breaks COW
    # at once (MADV-11): A now maps a private copy with the same bytes.
    assert pair.a.madvise(pair.addr_a, PAGE_SIZE, "unmergeable").ok
    t = translate(pair.a, pair.addr_a)
    assert t.pfn != pair.kpfn
    pair.both_read_their_data()
    # Counters do not move during the offline (SC-17, CNT-6).
    assert counters(m.ksm) == (1, 1, 0, 0)
    assert m.ksm.get().full_scans == k0.full_scans
    # ksmd is locked out (LOCK-2): StepKsm fails FAILED_PRECONDITION KSM_LOCKED.
    for kwargs in ({"full_scans": 1, "max_visits": MAX_VISITS}, {"visits": 1}):
        with pytest.raises(MemnodeError) as err:
            m.ksm.step(**kwargs)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.reason == "KSM_LOCKED"
    # pages_to_scan writes do not block (LOCK-2).
    assert m.ksm.set(pages_to_scan=123, timeout=5.0).ok
    # A run write waits for the offline: with a short deadline it expires.
    with pytest.raises(MemnodeError) as err:
        m.ksm.set(run=0, timeout=0.3)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert m.ksm.get().run == 1

    # `echo 0 > run` from another thread blocks until the offline ends (LOCK-2).
    outcome = []

    def write_run():
        try:
            outcome.append(m.ksm.set(run=0, timeout=BLOCKING_DEADLINE_S))
        except MemnodeError as e:  # reported to the main thread
            outcome.append(e)

    writer = threading.Thread(target=write_run, daemon=True)
    writer.start()
    time.sleep(0.5)
    assert writer.is_alive() and outcome == []
    assert m.ksm.get().run == 1

    rep = pair.block.resume()
    # The offline completes (SC-8): B still maps the KSM page, which moves.
    assert rep.ok and not rep.paused, rep
    assert list(rep.notifier_calls) == [KSM_GOING, KSM_OFFLINE]
    assert rep.ksm_pages_migrated == 1
    assert rep.stable_nodes_pruned == 0
    writer.join(BLOCKING_DEADLINE_S)
    assert not writer.is_alive()
    [res] = outcome
    assert not isinstance(res, Exception), res
    assert res.ok and res.ksm.run == 0
    k = m.ksm.get()
    assert not k.locked_by_offline and k.run == 0 and k.pages_to_scan == 123
    # Still lazy until ksmd runs (CNT-6).
    assert counters(m.ksm) == (1, 1, 0, 0)
    passes(m.ksm, 1)
    pair.both_read_their_data()
    assert m.check().ok


# --------------------------------------------------------------------------
# SC-11: move_pages
# --------------------------------------------------------------------------

V1 = 0x10000000  # 4-page vma
GAP = 0x18000000  # between the vmas
V2 = 0x20000000  # 1-page vma
ABOVE = 0x30000000  # above every vma


def test_scenario_10_11_move_pages_statuses(machine):
    m = machine
    a = m.create_process(home_node=0)
    b = m.create_process(home_node=0)
    assert a.mmap(4 * PAGE_SIZE, "rw", address=V1, fixed=True).ok
    assert a.mmap(PAGE_SIZE, "rw", address=V2, fixed=True).ok
    rb = b.mmap(PAGE_SIZE, "rw")
    assert rb.ok
    # V1 page 0: merged with B's page; page 1: private; page 2: zero page;
    # page 3: never touched.
    assert a.fill(V1, PAGE_SIZE, byte=0x42).ok
    assert b.fill(rb.address, PAGE_SIZE, byte=0x42).ok
    assert a.fill(V1 + PAGE_SIZE, PAGE_SIZE, byte=0x01).ok
    assert a.touch(V1 + 2 * PAGE_SIZE, PAGE_SIZE).ok
    assert a.fill(V2, PAGE_SIZE, byte=0x02).ok
    assert a.madvise(V1, PAGE_SIZE, "mergeable").ok
    assert b.madvise(rb.address, PAGE_SIZE, "mergeable").ok
    passes(m.ksm, 2)
    assert counters(m.ksm) == (1, 1, 0, 0)  # SC-1
    kpfn = translate(a, V1).pfn
    assert translate(a, V1).state == 3  # PAGE_STATE_KSM

    addrs = [V1, V1 + PAGE_SIZE + 123, V1 + 2 * PAGE_SIZE, V1 + 3 * PAGE_SIZE, GAP, ABOVE]
    # Query mode (MOVE-2): KSM page, zero page, not populated -> -ENOENT;
    # a gap below a vma -> -ENOENT (seed quirk); above every vma -> -EFAULT;
    # else the page's node (home node 0).
    q = a.move_pages(addrs)
    assert q.ok, q
    assert list(q.status) == [-ENOENT, 0, -ENOENT, -ENOENT, -ENOENT, -EFAULT]

    # Move mode to node 1 (MOVE-4): same -ENOENT/-EFAULT cases, the
    # private page moves (status = destination node); move_pages returns 0.
    r = a.move_pages(addrs, nodes=[1] * len(addrs))
    assert r.ok, r
    assert list(r.status) == [-ENOENT, 1, -ENOENT, -ENOENT, -ENOENT, -EFAULT]
    assert translate(a, V1 + PAGE_SIZE).node == 1
    # The KSM page never moves (MOVE-7), and counters are untouched.
    assert translate(a, V1).pfn == kpfn
    assert [n.kpfn for n in m.ksm.stable_nodes()] == [kpfn]
    assert counters(m.ksm) == (1, 1, 0, 0)
    got = a.read(V1 + PAGE_SIZE, PAGE_SIZE)
    assert got.ok and got.data == D.byte_fill(0x01, PAGE_SIZE)

    # Already on the target node: status = that node, nothing moved.
    pfn = translate(a, V1 + PAGE_SIZE).pfn
    r = a.move_pages([V1 + PAGE_SIZE], nodes=[1])
    assert r.ok and list(r.status) == [1]
    assert translate(a, V1 + PAGE_SIZE).pfn == pfn
    # Query agrees.
    assert list(a.move_pages([V1 + PAGE_SIZE, V2]).status) == [1, 0]

    # Node out of range: whole call ENODEV, no status of that chunk written
    # (MOVE-4).
    r = a.move_pages([V2], nodes=[7])
    assert r.errnum == ENODEV and list(r.status) == []
    # Flags other than MOVE|MOVE_ALL: EINVAL; MOVE_ALL unprivileged: EPERM
    # (MOVE-1).
    assert a.move_pages([V2], nodes=[1], flags=1).errnum == EINVAL
    assert a.move_pages([V2], nodes=[1], flags=4).errnum == EPERM

    # A pinned page keeps failing with -EAGAIN (MIG-1..MIG-4) and stays.
    assert a.pin(V2, PAGE_SIZE).ok
    r = a.move_pages([V2], nodes=[1])
    assert r.ok and list(r.status) == [-EAGAIN]
    assert translate(a, V2).node == 0
    assert a.unpin(V2, PAGE_SIZE).ok

    # A page mapped twice (fork) without MOVE_ALL: -EACCES; with MOVE_ALL by
    # a privileged caller it moves (MOVE-1, MOVE-4).
    child = a.fork()
    r = a.move_pages([V2], nodes=[1])
    assert r.ok and list(r.status) == [-EACCES]
    root = m.create_process(privileged=True)
    r = root.move_pages([V2], nodes=[1], target=a, flags=4)
    assert r.ok and list(r.status) == [1]
    assert translate(a, V2).node == 1 and translate(child, V2).node == 1
    # Another uid without CAP_SYS_NICE: EPERM; unknown pid: ESRCH (MOVE-1).
    other = m.create_process(uid=1000)
    assert other.move_pages([V2], target=a).errnum == EPERM
    assert a.move_pages([V2], target=9999).errnum == ESRCH
    assert m.check().ok


def test_move_pages_to_a_node_without_memory_is_enodev(make_machine):
    m = make_machine(nodes=2, blocks_per_node=1, pages_per_block=64)
    a = m.create_process(home_node=0)
    r = a.mmap(PAGE_SIZE, "rw")
    assert r.ok and a.fill(r.address, PAGE_SIZE, byte=9).ok
    node1 = [b for b in m.blocks() if b.proto.node == 1]
    assert len(node1) == 1
    assert node1[0].offline().ok
    # MOVE-4: a node without memory (N_HIGH_MEMORY) fails the whole call.
    res = a.move_pages([r.address], nodes=[1])
    assert res.errnum == ENODEV and list(res.status) == []
    # BIND to a node without memory is EINVAL (numa.proto, MBIND-1).
    assert a.set_mempolicy("bind", [1]).errnum == EINVAL
    assert node1[0].online().ok
    res = a.move_pages([r.address], nodes=[1])
    assert res.ok and list(res.status) == [1]


# --------------------------------------------------------------------------
# SC-12: mbind(MOVE|STRICT) leaves KSM pages
# --------------------------------------------------------------------------

def test_scenario_10_12_mbind_move_strict_skips_ksm_pages(machine):
    m = machine
    a = m.create_process(home_node=0)
    b = m.create_process(home_node=0)
    ra, rb = a.mmap(4 * PAGE_SIZE, "rw"), b.mmap(2 * PAGE_SIZE, "rw")
    assert ra.ok and rb.ok
    base = ra.address
    for i, byte in enumerate((0x11, 0x22, 0x33, 0x44)):
        assert a.fill(base + i * PAGE_SIZE, PAGE_SIZE, byte=byte).ok
    for i, byte in enumerate((0x11, 0x22)):
        assert b.fill(rb.address + i * PAGE_SIZE, PAGE_SIZE, byte=byte).ok
    assert a.madvise(base, 4 * PAGE_SIZE, "mergeable").ok
    assert b.madvise(rb.address, 2 * PAGE_SIZE, "mergeable").ok
    passes(m.ksm, 2)
    # SC-3: two pairs merge (shared 2, sharing 2); A's pages 2-3 are unique
    # and after two passes sit in the unstable tree (SC-4: unshared 2).
    assert counters(m.ksm) == (2, 2, 2, 0)
    before = [translate(a, base + i * PAGE_SIZE) for i in range(4)]
    assert [t.node for t in before] == [0, 0, 0, 0]
    kpfns = sorted(n.kpfn for n in m.ksm.stable_nodes())
    assert sorted(t.pfn for t in before[:2]) == kpfns

    # STRICT alone: the first misplaced non-KSM page -> EIO (MBIND-2).
    assert a.mbind(base, 4 * PAGE_SIZE, "bind", [1], strict=True).errnum == EIO
    # MOVE|STRICT (SC-12, MBIND-2..MBIND-4): ordinary pages move to node 1,
    # KSM pages are skipped and stay; return 0.
    r = a.mbind(base, 4 * PAGE_SIZE, "bind", [1],
                flags=numa_pb2.MPOL_MF_MOVE | numa_pb2.MPOL_MF_STRICT)
    assert r.ok, r
    after = [translate(a, base + i * PAGE_SIZE) for i in range(4)]
    assert [t.pfn for t in after[:2]] == [t.pfn for t in before[:2]]
    assert [t.node for t in after] == [0, 0, 1, 1]
    assert sorted(n.kpfn for n in m.ksm.stable_nodes()) == kpfns
    # KSM pages never cause EIO (MBIND-4): STRICT alone now returns 0.
    assert a.mbind(base, 4 * PAGE_SIZE, "bind", [1], strict=True).ok
    # The range has the new policy (get_mempolicy MPOL_F_ADDR), and
    # MPOL_F_NODE reports where each page is.
    pol = a.get_mempolicy(address=base)
    assert pol.ok and pol.mode == numa_pb2.MPOL_BIND and pol.nodes == 0b10
    assert a.get_mempolicy(address=base + 3 * PAGE_SIZE, node=True).node == 1
    assert a.get_mempolicy(address=base, node=True).node == 0
    # Migration does not touch the counters (CNT-6).
    assert counters(m.ksm) == (2, 2, 2, 0)
    for i, byte in enumerate((0x11, 0x22, 0x33, 0x44)):
        got = a.read(base + i * PAGE_SIZE, PAGE_SIZE)
        assert got.ok and got.data == D.byte_fill(byte, PAGE_SIZE)
    # Bad flags / MOVE_ALL unprivileged / unaligned (MBIND-1).
    assert a.mbind(base, PAGE_SIZE, "bind", [1], flags=8).errnum == EINVAL
    assert a.mbind(base, PAGE_SIZE, "bind", [1], move_all=True).errnum == EPERM
    assert a.mbind(base + 1, PAGE_SIZE, "bind", [1]).errnum == EINVAL
    assert m.check().ok


# --------------------------------------------------------------------------
# SC-13: migrate_pages(2) never moves KSM pages
# --------------------------------------------------------------------------

def test_scenario_10_13_migrate_pages_skips_ksm_pages(machine):
    m = machine
    a = m.create_process(home_node=0)
    b = m.create_process(home_node=0)
    ra, rb = a.mmap(3 * PAGE_SIZE, "rw"), b.mmap(PAGE_SIZE, "rw")
    assert ra.ok and rb.ok
    base = ra.address
    for i, byte in enumerate((0x61, 0x62, 0x63)):
        assert a.fill(base + i * PAGE_SIZE, PAGE_SIZE, byte=byte).ok
    assert b.fill(rb.address, PAGE_SIZE, byte=0x61).ok
    assert a.madvise(base, PAGE_SIZE, "mergeable").ok
    assert b.madvise(rb.address, PAGE_SIZE, "mergeable").ok
    passes(m.ksm, 2)
    assert counters(m.ksm) == (1, 1, 0, 0)  # SC-1
    kpfn = translate(a, base).pfn
    # Page 2 pinned: it fails with -EAGAIN for all 10 passes (MIG-1..MIG-3).
    assert a.pin(base + 2 * PAGE_SIZE, PAGE_SIZE).ok

    r = a.migrate_pages(0, [0], [1])
    # MPS-2 / SC-13: KSM pages are skipped silently and not counted;
    # the only page not migrated is the pinned one.
    assert r.ok, r
    assert r.not_migrated == 1
    nodes = [translate(a, base + i * PAGE_SIZE).node for i in range(3)]
    assert nodes == [0, 1, 0]
    assert translate(a, base).pfn == kpfn
    assert translate(b, rb.address).pfn == kpfn
    assert [n.kpfn for n in m.ksm.stable_nodes()] == [kpfn]
    assert counters(m.ksm) == (1, 1, 0, 0)
    # Validation (MPS-1).
    assert a.migrate_pages(9999, [0], [1]).errnum == ESRCH
    other = m.create_process(uid=1000)
    assert other.migrate_pages(a, [0], [1]).errnum == EPERM
    assert a.migrate_pages(0, [0], [5]).errnum == EINVAL
    assert m.check().ok


# --------------------------------------------------------------------------
# mempolicy and block management
# --------------------------------------------------------------------------

def test_set_and_get_mempolicy(machine):
    m = machine
    a = m.create_process(home_node=0)
    pol = a.get_mempolicy()
    assert pol.ok and pol.mode == numa_pb2.MPOL_DEFAULT and pol.nodes == 0
    assert a.set_mempolicy("bind", "1").ok
    pol = a.get_mempolicy()
    assert pol.mode == numa_pb2.MPOL_BIND and pol.nodes == 0b10
    r = a.mmap(PAGE_SIZE, "rw")
    assert a.fill(r.address, PAGE_SIZE, byte=1).ok
    # Allocation follows the task policy (BIND: only node 1).
    assert translate(a, r.address).node == 1
    # MPOL_DEFAULT with nodes, BIND with an empty mask: EINVAL (numa.proto).
    assert a.set_mempolicy("default", [0]).errnum == EINVAL
    assert a.set_mempolicy("bind", "none").errnum == EINVAL
    # MPOL_F_ADDR outside any vma: EFAULT; MPOL_F_NODE reads the page in.
    assert a.get_mempolicy(address=0x1000).errnum == EFAULT
    r2 = a.mmap(PAGE_SIZE, "rw")
    g = a.get_mempolicy(address=r2.address, node=True)
    assert g.ok and g.node >= 0
    assert translate(a, r2.address).present
    assert a.set_mempolicy("interleave", "0-1").ok
    assert a.set_mempolicy("default").ok


def test_add_online_offline_remove_block(machine):
    m = machine
    blocks = m.blocks()
    assert [b.id for b in blocks] == list(range(8))
    assert all(b.proto.state == ONLINE for b in blocks)
    assert [b.proto.node for b in blocks] == [0] * 4 + [1] * 4
    new = m.add_block(1)
    assert new.id == 8 and new.proto.state == OFFLINE and new.proto.node == 1
    # An online block cannot be removed (hotplug.proto: EBUSY).
    assert m.block(5).remove().errnum == EBUSY
    assert new.online().ok
    assert new.get().state == ONLINE and new.get().free_pages == 64
    assert new.offline().ok
    assert new.remove().ok
    assert new.get().state == REMOVED
    with pytest.raises(MemnodeError) as err:
        m.block(99).get()
    assert err.value.code == grpc.StatusCode.NOT_FOUND
