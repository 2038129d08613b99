"""The 2.6.33 rules an earlier engine broke, through the real memnoded.

Each test is one minimal scenario; its expected values come from the kernel
function named in its docstring (the rules are stated in docs/SEMANTICS.md),
never from what the server answered. Machine: 2 nodes x 4 blocks x 64 pages,
MANUAL clock; node 1's processes keep their pages in block 4, which holds no
zero page and can be offlined.
"""

from memnode import EAGAIN, EINVAL, ENOMEM, PAGE_SIZE
from memnode import digest as D
from memnode.v1 import common_pb2, numa_pb2

MAX_VISITS = 1 << 20


def page(proc, byte):
    """One mergeable page of ``byte``s; its address."""
    r = proc.mmap(PAGE_SIZE, "rw")
    assert r.ok, r
    assert proc.fill(r.address, PAGE_SIZE, byte=byte).ok
    assert proc.madvise(r.address, PAGE_SIZE, "mergeable").ok
    return r.address


def pfn(proc, address):
    t = proc.translate(address, 1)[0]
    assert t.present, t
    return t.pfn


def passes(m, n):
    resp = m.ksm.step(full_scans=n, max_visits=MAX_VISITS)
    assert resp.passes == n, resp


def test_ksm_page_without_stable_node_is_never_merged_again(machine):
    """write_protect_page -> page_address_in_vma fails for a KSM page
    (page_anon_vma is NULL): a KSM page other than kpage never merges, even
    without a stable node; try_to_unmap_ksm cannot unmap it (mm/ksm.c)."""
    m = machine
    t = m.create_process(home_node=1)
    vt = page(t, 0xAA)
    assert t.pin(vt, PAGE_SIZE).ok
    p = m.create_process(home_node=1)
    vp = page(p, 0xAA)
    c = p.fork()
    k = pfn(p, vp)
    passes(m, 2)  # p's page promoted, t's pinned page refuses, p copied
    assert pfn(c, vp) == k and pfn(p, vp) != k
    assert m.page(k).state == common_pb2.PAGE_STATE_KSM
    assert m.ksm.stable_nodes() == []
    assert t.unpin(vt, PAGE_SIZE).ok
    passes(m, 2)  # p's copy and t's page merge; c's KSM page never joins
    nodes = m.ksm.stable_nodes()
    assert len(nodes) == 1 and len(nodes[0].mappings) == 2
    assert nodes[0].kpfn == pfn(p, vp) != k
    assert pfn(c, vp) == k
    ksm = m.ksm.get()
    assert (ksm.pages_shared, ksm.pages_sharing, ksm.pages_unshared, ksm.pages_volatile) == \
        (1, 1, 0, 1)
    assert m.block(4).offline().errnum == EAGAIN  # k cannot be unmapped
    assert pfn(c, vp) == k
    assert m.check().ok


def test_forked_mapping_reachable_only_through_a_left_item_blocks_migration(machine):
    """try_to_unmap_ksm walks the stable node's rmap items and the forks
    sharing their anon_vmas (mm/ksm.c): a fork child whose parent's item left
    the node, not yet visited itself, is unreachable and the page stays."""
    m = machine
    p = m.create_process(home_node=1)
    v = page(p, 0xBB)
    q = m.create_process(home_node=1)
    page(q, 0xBB)
    passes(m, 2)
    k = pfn(q, v)
    c = p.fork()
    assert p.write(v, b"x").ok
    assert m.ksm.step(visits=1).visits == 1  # p's item leaves the node
    nodes = m.ksm.stable_nodes()
    assert [(x.pid) for x in nodes[0].mappings] == [q.pid]
    assert m.block(4).offline().errnum == EAGAIN
    assert pfn(c, v) == k
    passes(m, 1)  # c's own item joins the node: now everything is reachable
    r = m.block(4).offline()
    assert r.errnum == 0 and r.ksm_pages_migrated == 1
    assert pfn(c, v) == pfn(q, v) != k
    assert c.read(v, PAGE_SIZE).data == D.byte_fill(0xBB, PAGE_SIZE)


def test_migrate_pages_falls_back_when_the_destination_is_full(machine):
    """new_node_page allocates without __GFP_THISNODE (mm/mempolicy.c):
    the zonelist falls back; move_pages' new_page_node keeps THISNODE."""
    m = machine
    p = m.create_process(home_node=0)
    a = p.mmap(2 * PAGE_SIZE, "rw").address
    assert p.fill(a, 2 * PAGE_SIZE, byte=0x11).ok
    before = [pfn(p, a), pfn(p, a + PAGE_SIZE)]
    for b in range(4, 8):
        assert m.block(b).kernel_pages(64).pages == 64
    r = p.migrate_pages(0, [0], [1])
    assert r.errnum == 0 and r.not_migrated == 0
    after = p.translate(a, 2)
    assert [t.node for t in after] == [0, 0]
    assert [t.pfn for t in after] != before
    assert p.move_pages([a], [1]).errnum == ENOMEM


def test_mbind_starting_in_a_hole_applies_to_the_vmas_in_the_range(machine):
    """2.6.33's check_range/mbind_range have no start-in-vma check
    (mm/mempolicy.c): mbind from a hole returns 0 and binds the vma after it."""
    p = machine.create_process(home_node=0)
    a = p.mmap(4 * PAGE_SIZE, "rw").address
    b = p.mmap(4 * PAGE_SIZE, "rw", address=a + 8 * PAGE_SIZE, fixed=True).address
    assert b == a + 8 * PAGE_SIZE
    assert p.mbind(a + 4 * PAGE_SIZE, 8 * PAGE_SIZE, "bind", [1]).errnum == 0
    g = p.get_mempolicy(b)
    assert g.mode == numa_pb2.MPOL_BIND and g.nodes == 2
    assert p.get_mempolicy(a).mode == numa_pb2.MPOL_DEFAULT


def test_mbind_does_not_merge_vmas_again(machine):
    """2.6.33's mbind_range splits and never re-merges (mm/mempolicy.c)."""
    p = machine.create_process(home_node=0)
    a = p.mmap(4 * PAGE_SIZE, "rw").address
    assert p.mbind(a + PAGE_SIZE, PAGE_SIZE, "bind", [1]).errnum == 0
    assert p.mbind(a + PAGE_SIZE, PAGE_SIZE, "default").errnum == 0
    assert len(p.get().vmas) == 3


def test_move_pages_with_a_repeated_address_follows_the_first_entry(machine):
    """do_move_page_to_node_array records pp->page before the node test;
    new_page_node picks the first entry with the page (mm/migrate.c)."""
    p = machine.create_process(home_node=0)
    x = p.mmap(PAGE_SIZE, "rw").address
    assert p.fill(x, PAGE_SIZE, byte=0x22).ok
    before = pfn(p, x)
    r = p.move_pages([x, x], [0, 1])
    assert list(r.status) == [0, 0]
    t = p.translate(x, 1)[0]
    assert t.node == 0 and t.pfn != before


def test_preferred_with_only_memoryless_nodes_is_einval(machine):
    """mpol_set_nodemask + mpol_new_preferred (mm/mempolicy.c): a non-empty
    mask without memory nodes is EINVAL; an empty one means local."""
    m = machine
    for b in range(4, 8):
        assert m.block(b).offline().errnum == 0
    p = m.create_process(home_node=0)
    assert p.set_mempolicy("preferred", [1]).errnum == EINVAL
    assert p.set_mempolicy("preferred", 0).errnum == 0
    assert p.set_mempolicy("preferred", [0, 1]).errnum == 0
    assert p.get_mempolicy().nodes == 1


def test_removable_follows_is_mem_section_removable(machine):
    """is_mem_section_removable (mm/memory_hotplug.c): a pageblock starting
    with a reserved page, or not movable and not free, is not removable."""
    b = machine.block(5)
    assert b.get().removable
    b.kernel_pages(1)
    assert not b.get().removable
    b.free_kernel_pages(1)
    assert b.get().removable


def test_pinned_page_behind_read_only_pte_is_merged(machine):
    """2.6.33's write_protect_page checks extra references only for a
    writable pte (mm/ksm.c; pte_dirty came with 2.6.36)."""
    m = machine
    p = m.create_process(home_node=0)
    vp = page(p, 0x44)
    assert p.pin(vp, PAGE_SIZE).ok
    assert p.mprotect(vp, PAGE_SIZE, "r").ok
    q = m.create_process(home_node=0)
    page(q, 0x44)
    passes(m, 2)
    k = m.ksm.get()
    assert (k.pages_shared, k.pages_sharing) == (1, 1)
