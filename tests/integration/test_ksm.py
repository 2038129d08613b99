"""KSM against the real memnoded on MANUAL machines: an LTP ksm01-style
multi-phase run and the scenarios of docs/SEMANTICS.md (SC-1..SC-18).

Every expected counter below is derived by hand from the rules DS, SCAN,
MERGE, CNT and COW of docs/SEMANTICS.md (the derivation is in the comments),
never taken from
what the server printed.
"""

import pytest

from memnode import EACCES, EINVAL, PAGE_SIZE
from memnode import digest as D
from memnode.v1 import common_pb2, ksm_pb2, process_pb2

MAX_VISITS = 1 << 20  # safety bound for StepKsm(full_scans=...)


def counters(k):
    """(pages_shared, pages_sharing, pages_unshared, pages_volatile)."""
    return (k.pages_shared, k.pages_sharing, k.pages_unshared, k.pages_volatile)


def passes(ksm, n):
    """Steps ksmd until full_scans has grown by exactly n; returns the Ksm."""
    before = ksm.get().full_scans
    resp = ksm.step(full_scans=n, max_visits=MAX_VISITS)
    assert resp.passes == n, resp
    assert resp.ksm.full_scans == before + n
    return resp.ksm


def pfns(proc, address, pages):
    ts = proc.translate(address, pages)
    assert all(t.present for t in ts)
    return [t.pfn for t in ts]


# --------------------------------------------------------------------------
# LTP ksm01 style
# --------------------------------------------------------------------------

N = 128  # pages per process


def test_ksm01_style_phases(make_machine):
    m = make_machine(nodes=2, blocks_per_node=4, pages_per_block=512)
    ksm = m.ksm
    k0 = ksm.get()
    assert (k0.full_scans,) + counters(k0) == (0, 0, 0, 0, 0)
    size = N * PAGE_SIZE

    procs, addrs = [], []
    for _ in range(3):
        p = m.create_process()
        r = p.mmap(size, "rw")
        assert r.ok, r
        assert p.madvise(r.address, size, "mergeable").ok
        procs.append(p)
        addrs.append(r.address)
    p1, p2, p3 = procs
    assert all(p.get().ksm_registered for p in procs)
    assert ksm.get().mm_slots == 3

    def verify(expected_bytes):
        """Each process reads back its own data (a digest of the range)."""
        for p, a, data in zip(procs, addrs, expected_bytes):
            got = p.digest(a, size)
            assert got.ok, got
            assert got.digest == D.digest_bytes(a, data), p

    # ---- phase a: all three processes write the same byte everywhere -----
    for p, a in zip(procs, addrs):
        assert p.fill(a, size, byte=ord("c")).ok
    data_a = [D.byte_fill(ord("c"), size)] * 3
    p1_pfns = pfns(p1, addrs[0], N)
    # 3N identical fresh pages (SEMANTICS SC-2):
    # pass 1 only stores checksums: every one of the 3N items is volatile;
    # pass 2: P1 page 0 enters the unstable tree, P1 page 1 merges with it
    # into a KSM page whose kpfn is P1 page 1 (the later-visited page,
    # MERGE-9), and the remaining 3N-2 pages join it through the stable
    # tree search: shared 1, sharing 3N-1.
    k = passes(ksm, 1)
    assert counters(k) == (0, 0, 0, 3 * N)
    k = passes(ksm, 1)
    assert counters(k) == (1, 3 * N - 1, 0, 0)
    assert k.rmap_items == 3 * N
    nodes = ksm.stable_nodes()
    assert len(nodes) == 1
    assert nodes[0].kpfn == p1_pfns[1]
    assert len(nodes[0].mappings) == 3 * N
    assert not nodes[0].stale
    verify(data_a)
    assert p1.get().ksm_pages == N

    # ---- phase b: P1 and P2 write 'a', P3 writes 'b' ---------------------
    for p, a, ch in zip(procs, addrs, "aab"):
        assert p.fill(a, size, byte=ord(ch)).ok
    data_b = [D.byte_fill(ord(ch), size) for ch in "aab"]
    # Writes to KSM pages always COW (COW-1) and never move counters
    # (CNT-6); the old KSM page lost all its mappings, so its node is stale.
    k = ksm.get()
    assert counters(k) == (1, 3 * N - 1, 0, 0)
    assert [n.stale for n in ksm.stable_nodes()] == [True]
    verify(data_b)
    # Pass 3: P1 page 0's stable item is removed through get_ksm_page, which
    # finds the node stale and prunes it (PRUNE-1..PRUNE-2): shared 0,
    # sharing 0, every item flagless. Every page's checksum changed: all 3N
    # are volatile.
    k = passes(ksm, 1)
    assert counters(k) == (0, 0, 0, 3 * N)
    p1_pfns = pfns(p1, addrs[0], N)
    p3_pfns = pfns(p3, addrs[2], N)
    # Pass 4: 'a' pages: P1 page 0 unstable, P1 page 1 merges with it (kpfn =
    # P1 page 1), the other 2N-2 'a' pages join via the stable tree;
    # 'b' pages: P3 page 0 unstable, P3 page 1 merges (kpfn = P3 page 1),
    # the other N-2 join. shared 2, sharing (2N-1) + (N-1) = 3N-2.
    k = passes(ksm, 1)
    assert counters(k) == (2, 3 * N - 2, 0, 0)
    nodes = ksm.stable_nodes()
    assert sorted((n.kpfn, len(n.mappings)) for n in nodes) == sorted(
        [(p1_pfns[1], 2 * N), (p3_pfns[1], N)])
    verify(data_b)

    # ---- phase c: pages distinct within a process, equal across them ------
    # The random fill stream restarts at each range start: page i has the
    # same bytes in every process, and the N pages of a process all differ.
    for p, a in zip(procs, addrs):
        assert p.fill(a, size, seed=2024).ok
    rnd = D.random_bytes(2024, size)
    data_c = [rnd] * 3
    verify(data_c)
    # Pass 5: the first visit prunes the stale 'a' node (removal of P1 page
    # 0's item), its stable search prunes the stale 'b' node [seed: a stale
    # node met in the descent is pruned]; all contents changed: 3N volatile.
    k = passes(ksm, 1)
    assert counters(k) == (0, 0, 0, 3 * N)
    assert ksm.stable_nodes() == []
    p2_pfns = pfns(p2, addrs[1], N)
    # Pass 6: P1's N pages are all unique so far: N unstable inserts. P2
    # page i matches P1 page i in the unstable tree: N new KSM pages with
    # kpfn = P2 page i (later visited). P3 page i joins node i through the
    # stable search. shared N, sharing 2N (SEMANTICS SC-3).
    k = passes(ksm, 1)
    assert counters(k) == (N, 2 * N, 0, 0)
    nodes = ksm.stable_nodes()
    assert sorted(n.kpfn for n in nodes) == sorted(p2_pfns)
    assert all(len(n.mappings) == 3 for n in nodes)
    verify(data_c)

    # ---- phase d: P3 changes one page --------------------------------------
    changed = 5
    waddr = addrs[2] + changed * PAGE_SIZE + 100
    assert p3.write(waddr, b"changed by p3").ok
    data_d3 = bytearray(rnd)
    data_d3[changed * PAGE_SIZE + 100:changed * PAGE_SIZE + 113] = b"changed by p3"
    data_d = [rnd, rnd, bytes(data_d3)]
    assert counters(ksm.get()) == (N, 2 * N, 0, 0)  # lazy (CNT-6)
    verify(data_d)
    # Pass 7: P3's item at that page leaves its node, which keeps P1 and P2
    # (sharing - 1); no KSM page has the new content and its checksum
    # differs from the one stored before the merge: volatile 1 (COW-3).
    k = passes(ksm, 1)
    assert counters(k) == (N, 2 * N - 1, 0, 1)
    # Pass 8: same checksum again, no twin: unstable insert (unshared 1).
    k = passes(ksm, 1)
    assert counters(k) == (N, 2 * N - 1, 1, 0)
    items = ksm.unstable_items()
    assert [(i.pid, i.address) for i in items] == [(p3.pid, addrs[2] + changed * PAGE_SIZE)]
    p3_items = ksm.rmap_items(p3.pid)
    assert len(p3_items) == N
    states = [i.state for i in p3_items]
    assert states.count(ksm_pb2.RMAP_STATE_UNSTABLE) == 1
    assert states.count(ksm_pb2.RMAP_STATE_STABLE) == N - 1
    verify(data_d)

    # ---- run=2: unmerge everything (SEMANTICS SC-14, KNOB-7) --
    r = ksm.set(run=2)
    assert r.ok, r
    k = ksm.get()
    assert k.run == 2
    assert (k.full_scans,) + counters(k) == (0, 0, 0, 0, 0)
    assert k.rmap_items == 0
    assert k.mm_slots == 3  # slots stay registered
    assert ksm.stable_nodes() == []
    for p in procs:
        proc = p.get()
        assert proc.ksm_pages == 0
        assert proc.anon_pages == N
    verify(data_d)
    r = ksm.set(run=0)
    assert r.ok, r
    assert ksm.get().run == 0
    check = m.check()
    assert check.ok, list(check.violations)


# --------------------------------------------------------------------------
# SEMANTICS SC-1, SC-6, SC-7
# --------------------------------------------------------------------------

PAGE_A = bytes(range(256)) * 16  # one page of content shared by A and B


def scenario1(m):
    """Two processes (A registered first, then B) with one identical page.
    Returns (A, B, addrA, addrB, pfnA, pfnB) before any scanning."""
    a = m.create_process()
    b = m.create_process()
    out = []
    for p in (a, b):
        r = p.mmap(PAGE_SIZE, "rw")
        assert r.ok, r
        assert p.write(r.address, PAGE_A).ok
        out.append(r.address)
    for p, addr in zip((a, b), out):  # registration order: A, then B
        assert p.madvise(addr, PAGE_SIZE, "mergeable").ok
    pfn_a, pfn_b = a.pfn(out[0]), b.pfn(out[1])
    assert pfn_a is not None and pfn_b is not None and pfn_a != pfn_b
    return a, b, out[0], out[1], pfn_a, pfn_b


def merge_scenario1(m):
    a, b, addr_a, addr_b, pfn_a, pfn_b = scenario1(m)
    k = passes(m.ksm, 2)
    assert counters(k) == (1, 1, 0, 0)
    return a, b, addr_a, addr_b, pfn_a, pfn_b


def test_scenario_10_1_two_identical_pages(machine):
    m = machine
    ksm = m.ksm
    a, b, addr_a, addr_b, pfn_a, pfn_b = scenario1(m)

    # SEMANTICS SC-1: after pass 1 both items are volatile.
    k = passes(ksm, 1)
    assert counters(k) == (0, 0, 0, 2)
    assert k.full_scans == 1
    # During pass 2, A's page enters the unstable tree (MERGE-6) ...
    resp = ksm.step(visits=1)
    assert resp.visits == 1
    assert counters(resp.ksm) == (0, 0, 1, 1)
    assert [(i.pid, i.address) for i in ksm.unstable_items()] == [(a.pid, addr_a)]
    # ... and B's page matches it and merges (MERGE-7).
    resp = ksm.step(visits=1)
    assert counters(resp.ksm) == (1, 1, 0, 0)
    k = passes(ksm, 1)
    assert k.full_scans == 2
    assert counters(k) == (1, 1, 0, 0)

    # The surviving KSM page is B's original frame (MERGE-9); A's frame
    # was freed.
    nodes = ksm.stable_nodes()
    assert len(nodes) == 1
    node = nodes[0]
    assert node.kpfn == pfn_b
    assert not node.stale
    assert node.mapcount == 2
    assert sorted((s.pid, s.address) for s in node.mappings) == sorted(
        [(a.pid, addr_a), (b.pid, addr_b)])
    assert node.content_digest == D.page_sha256(PAGE_A)
    for p, addr in ((a, addr_a), (b, addr_b)):
        t = p.translate(addr)[0]
        assert (t.pfn, t.state) == (pfn_b, common_pb2.PAGE_STATE_KSM)
        assert p.read(addr, PAGE_SIZE).data == PAGE_A
    frame = m.page(pfn_b)
    assert frame.state == common_pb2.PAGE_STATE_KSM
    assert frame.mapcount == 2
    assert frame.stable_node_id == node.id
    assert m.page(pfn_a).state == common_pb2.PAGE_STATE_FREE
    items = ksm.rmap_items(a.pid)
    assert [(i.address, i.state, i.stable_node_id) for i in items] == [
        (addr_a, ksm_pb2.RMAP_STATE_STABLE, node.id)]
    assert m.check().ok


def test_scenario_10_6_write_after_merge(machine):
    m = machine
    ksm = m.ksm
    a, b, addr_a, addr_b, pfn_a, pfn_b = merge_scenario1(m)

    # A writes: a private copy at once, B still maps the KSM page; the
    # counters do not move until ksmd revisits A's address (COW-3).
    assert a.write(addr_a, b"A!").ok
    t = a.translate(addr_a)[0]
    assert t.pfn != pfn_b and t.state == common_pb2.PAGE_STATE_ANON
    assert b.pfn(addr_b) == pfn_b
    assert m.page(pfn_b).mapcount == 1
    assert counters(ksm.get()) == (1, 1, 0, 0)
    # Next pass: A's item leaves the node (B remains: sharing-1), A's page
    # has new content, its checksum changed: volatile 1.
    k = passes(ksm, 1)
    assert counters(k) == (1, 0, 0, 1)

    # B writes too: the KSM page loses its last mapping and is freed; the
    # node goes stale but still counts until looked up (PRUNE-3).
    assert b.write(addr_b + 10, b"B!").ok
    assert b.pfn(addr_b) != pfn_b
    assert counters(ksm.get()) == (1, 0, 0, 1)
    nodes = ksm.stable_nodes()
    assert [(n.kpfn, n.stale) for n in nodes] == [(pfn_b, True)]
    # Next pass: A's stable search prunes the stale node (shared 0); A's
    # checksum is unchanged since the previous pass and it has no twin:
    # unstable (unshared 1); B's item (flagless after the prune) sees changed
    # content: volatile 1.
    k = passes(ksm, 1)
    assert counters(k) == (0, 0, 1, 1)
    assert ksm.stable_nodes() == []

    expected_a = b"A!" + PAGE_A[2:]
    expected_b = PAGE_A[:10] + b"B!" + PAGE_A[12:]
    assert a.read(addr_a, PAGE_SIZE).data == expected_a
    assert b.read(addr_b, PAGE_SIZE).data == expected_b
    assert m.check().ok


def test_scenario_10_6_rewrite_same_bytes_remerges_at_once(machine):
    m = machine
    ksm = m.ksm
    a, b, addr_a, addr_b, pfn_a, pfn_b = merge_scenario1(m)
    # A write to a KSM page always breaks COW, even with equal bytes (5.1.1).
    assert a.write(addr_a, PAGE_A[:64]).ok
    t = a.translate(addr_a)[0]
    assert t.pfn != pfn_b and t.state == common_pb2.PAGE_STATE_ANON
    assert counters(ksm.get()) == (1, 1, 0, 0)
    # Next visit of A: its item leaves the node, then the stable search finds
    # the live KSM page with equal content and A merges at once [seed].
    k = passes(ksm, 1)
    assert counters(k) == (1, 1, 0, 0)
    assert a.pfn(addr_a) == pfn_b
    assert m.page(pfn_b).mapcount == 2


def test_scenario_10_7_exit_of_a_sharer(machine):
    m = machine
    ksm = m.ksm
    a, b, addr_a, addr_b, pfn_a, pfn_b = merge_scenario1(m)
    assert ksm.get().mm_slots == 2

    # exit(2) of B: the KSM page stays (A maps it), no counter moves, and
    # KSM still holds B's mm (COW-6).
    r = b.exit()
    assert r.pages_freed == 0
    assert m.page(pfn_b).mapcount == 1
    k = ksm.get()
    assert counters(k) == (1, 1, 0, 0)
    assert k.mm_slots == 2
    listed = {p.pid: p.proto.state for p in m.processes(show_exited=True)}
    assert listed == {a.pid: process_pb2.PROCESS_STATE_RUNNING,
                      b.pid: process_pb2.PROCESS_STATE_EXITED}
    assert [p.pid for p in m.processes()] == [a.pid]

    # ksmd's next batch reaps B: its item leaves the node (A remains).
    k = passes(ksm, 1)
    assert counters(k) == (1, 0, 0, 0)
    assert k.mm_slots == 1
    assert [p.pid for p in m.processes(show_exited=True)] == [a.pid]
    nodes = ksm.stable_nodes()
    assert [(n.kpfn, [(s.pid, s.address) for s in n.mappings]) for n in nodes] == [
        (pfn_b, [(a.pid, addr_a)])]
    assert a.read(addr_a, PAGE_SIZE).data == PAGE_A
    assert m.check().ok


# --------------------------------------------------------------------------
# SEMANTICS SC-15, SC-16
# --------------------------------------------------------------------------

def test_scenario_10_15_knob_errors_change_nothing(machine):
    m = machine
    ksm = m.ksm
    # Some KSM state worth protecting: scenario 1 merged.
    merge_scenario1(m)
    assert ksm.set(pages_to_scan=321, sleep_millisecs=7).ok

    def knobs():
        k = ksm.get()
        return (k.run, k.pages_to_scan, k.sleep_millisecs) + counters(k) + (k.full_scans,)

    before = knobs()
    assert before[:3] == (0, 321, 7)
    digest = m.check().state_digest

    # UpdateKsm: run > 2 and values above UINT_MAX (KNOB-3).
    assert ksm.set(run=3).errnum == EINVAL
    assert ksm.set(pages_to_scan=4294967296).errnum == EINVAL
    assert ksm.set(sleep_millisecs=1 << 40).errnum == EINVAL
    # All fields are validated before any is applied.
    r = ksm.set(run=1, pages_to_scan=4294967296)
    assert r.errnum == EINVAL
    assert r.ksm.run == 0

    # WriteKsmSysfs: strict_strtoul parsing (KNOB-3).
    for file, value in [("run", "3"), ("run", "abc"), ("run", ""),
                        ("pages_to_scan", "-1"), ("pages_to_scan", "+5"),
                        ("pages_to_scan", " 5"), ("pages_to_scan", "5 "),
                        ("pages_to_scan", "5\n\n"), ("pages_to_scan", "4294967296"),
                        ("sleep_millisecs", "abc"), ("sleep_millisecs", "12abc"),
                        ("sleep_millisecs", "4294967296")]:
        r = ksm.write_sysfs(file, value)
        assert r.errnum == EINVAL, (file, value, r)
    # Read-only counters: EACCES (9 "opening a ro file for writing").
    for file in ["pages_shared", "pages_sharing", "pages_unshared",
                 "pages_volatile", "full_scans"]:
        r = ksm.write_sysfs(file, "0")
        assert r.errnum == EACCES, (file, r)

    assert knobs() == before
    assert m.check().state_digest == digest

    # The accepted forms, as a control: a single trailing newline, UINT_MAX.
    r = ksm.write_sysfs("pages_to_scan", "4294967295\n")
    assert r.ok, r
    assert ksm.get().pages_to_scan == 4294967295
    r = ksm.write_sysfs("sleep_millisecs", "0")
    assert r.ok, r
    assert ksm.get().sleep_millisecs == 0
    # Writing the current run value is a no-op.
    assert ksm.write_sysfs("run", "0\n").ok
    assert ksm.get().run == 0


def test_scenario_10_16_mergeable_on_shared_anonymous_memory(machine):
    m = machine
    ksm = m.ksm
    s = m.create_process()
    r = s.mmap(2 * PAGE_SIZE, "rw", shared=True)
    assert r.ok, r
    shm = r.address
    assert s.fill(shm, 2 * PAGE_SIZE, byte=0x77).ok  # two identical pages

    # SEMANTICS MADV-6: silently ignored on VM_SHARED, success.
    r = s.madvise(shm, 2 * PAGE_SIZE, "mergeable")
    assert r.ok, r
    proc = s.get()
    assert proc.ksm_registered is False
    assert [(v.shared, v.mergeable) for v in proc.vmas] == [(True, False)]
    assert proc.shmem_pages == 2
    assert ksm.get().mm_slots == 0

    # Another process with one private mergeable unique page keeps ksmd's
    # passes going, so we can show the shared pages are never looked at.
    q = m.create_process()
    r = q.mmap(PAGE_SIZE, "rw")
    assert r.ok, r
    assert q.fill(r.address, PAGE_SIZE, seed=5).ok
    assert q.madvise(r.address, PAGE_SIZE, "mergeable").ok

    # SC-4 for q's unique page: volatile after pass 1, unshared from pass 2.
    k = passes(ksm, 1)
    assert counters(k) == (0, 0, 0, 1)
    k = passes(ksm, 2)
    assert counters(k) == (0, 0, 1, 0)
    assert k.rmap_items == 1
    assert k.mm_slots == 1
    assert ksm.rmap_items(s.pid) == []
    assert ksm.stable_nodes() == []
    for t in s.translate(shm, 2):
        assert t.state == common_pb2.PAGE_STATE_SHMEM
    assert s.read(shm, 2 * PAGE_SIZE).data == b"\x77" * (2 * PAGE_SIZE)


# --------------------------------------------------------------------------
# SEMANTICS SC-14 (second half), SC-18, MADV-10..MADV-13
# --------------------------------------------------------------------------

def test_scenario_10_14_run2_then_run1_remerges(machine):
    m = machine
    ksm = m.ksm
    a, b, addr_a, addr_b, pfn_a, pfn_b = merge_scenario1(m)
    assert ksm.set(run=1).ok

    # run=2: private copies for both, KSM page freed, items freed, node
    # pruned, full_scans reset; slots stay registered (KNOB-7).
    r = ksm.set(run=2)
    assert r.ok, r
    k = r.ksm
    assert k.run == 2
    assert (k.full_scans,) + counters(k) == (0, 0, 0, 0, 0)
    assert k.rmap_items == 0
    assert k.mm_slots == 2
    assert ksm.stable_nodes() == []
    assert m.page(pfn_b).state == common_pb2.PAGE_STATE_FREE
    new_a, new_b = a.pfn(addr_a), b.pfn(addr_b)
    assert pfn_b not in (new_a, new_b) and new_a != new_b
    for p, addr in ((a, addr_a), (b, addr_b)):
        assert p.translate(addr)[0].state == common_pb2.PAGE_STATE_ANON
        assert p.read(addr, PAGE_SIZE).data == PAGE_A
    # Writing 2 again is a no-op (KNOB-4).
    assert ksm.set(run=2).ok
    assert ksm.get().full_scans == 0

    # run=1, two more passes: merged again exactly as in scenario 1; the KSM
    # page is B's new private copy (the later-visited page).
    assert ksm.set(run=1).ok
    k = passes(ksm, 1)
    assert counters(k) == (0, 0, 0, 2)
    k = passes(ksm, 1)
    assert k.full_scans == 2
    assert counters(k) == (1, 1, 0, 0)
    assert [n.kpfn for n in ksm.stable_nodes()] == [new_b]
    assert a.pfn(addr_a) == new_b
    assert m.page(new_a).state == common_pb2.PAGE_STATE_FREE
    assert ksm.set(run=0).ok
    assert m.check().ok


def test_scenario_10_18_fork_of_a_merged_process(machine):
    m = machine
    ksm = m.ksm
    a, b, addr_a, addr_b, pfn_a, pfn_b = merge_scenario1(m)

    # Fork registers the child and copies the KSM pte; counters unchanged
    # until ksmd visits the child (COW-7).
    c = a.fork()
    child = c.get()
    assert child.ksm_registered is True
    assert child.ksm_pages == 1
    assert c.pfn(addr_a) == pfn_b
    assert m.page(pfn_b).mapcount == 3
    k = ksm.get()
    assert counters(k) == (1, 1, 0, 0)
    assert k.mm_slots == 3
    # The child's visit takes the "page is itself KSM" path: sharing + 1.
    k = passes(ksm, 1)
    assert counters(k) == (1, 2, 0, 0)
    nodes = ksm.stable_nodes()
    assert len(nodes) == 1
    assert sorted((s.pid, s.address) for s in nodes[0].mappings) == sorted(
        [(a.pid, addr_a), (b.pid, addr_b), (c.pid, addr_a)])
    assert c.read(addr_a, PAGE_SIZE).data == PAGE_A
    assert m.check().ok


def test_madv_unmergeable_breaks_cow_now_and_counts_later(machine):
    m = machine
    ksm = m.ksm
    a, b, addr_a, addr_b, pfn_a, pfn_b = merge_scenario1(m)

    # MADV-11..MADV-13: A gets a private copy at once, VM_MERGEABLE is
    # cleared, but rmap items and counters wait for ksmd.
    r = a.madvise(addr_a, PAGE_SIZE, "unmergeable")
    assert r.ok, r
    t = a.translate(addr_a)[0]
    assert t.pfn != pfn_b and t.state == common_pb2.PAGE_STATE_ANON
    assert a.read(addr_a, PAGE_SIZE).data == PAGE_A
    assert [v.mergeable for v in a.get().vmas] == [False]
    assert counters(ksm.get()) == (1, 1, 0, 0)
    assert len(ksm.rmap_items(a.pid)) == 1
    # Next pass: A's vma is skipped, its item is freed (B remains on the
    # node: sharing - 1) and, no mergeable vma seen, A is unregistered.
    k = passes(ksm, 1)
    assert counters(k) == (1, 0, 0, 0)
    assert k.mm_slots == 1
    assert ksm.rmap_items(a.pid) == []
    assert a.get().ksm_registered is False
    assert b.pfn(addr_b) == pfn_b
    assert m.check().ok
