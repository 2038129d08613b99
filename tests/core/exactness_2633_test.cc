// Seven rules of Linux 2.6.33 that an earlier engine broke, and one it keeps,
// each with a minimal scenario whose expected outcome is derived from the
// kernel function that decides it (docs/SEMANTICS.md states the rules).
//
// The machine: 2 nodes x 4 blocks x 64 pages (blocks 0-3 node 0, 4-7 node 1;
// pfn 0 is the zero page). Processes on node 1 keep their pages in block 4,
// which holds no zero page and can be offlined.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/machine.h"
#include "server/core/status.h"
#include "tests/testing/machine_fixture.h"

namespace memnode {
namespace {

using testing::SmallMachineTest;
using testing::Unwrap;

class Exactness2633Test : public SmallMachineTest {
 protected:
  // One page of `byte`s, mergeable.
  Vaddr MergeablePage(Pid pid, uint8_t byte) {
    Vaddr a = Map(pid, 1);
    FillPage(pid, a, byte);
    EXPECT_EQ(Madvise(pid, a, kPageSize, Advice::kMergeable), Errno::kOk);
    return a;
  }
  OfflineReport Offline(BlockId b) {
    return Unwrap(m_->OfflineBlock(b, OfflineOptions{}, absl::FromUnixSeconds(1000)));
  }
  std::vector<VmaInfo> Vmas(Pid pid) { return Unwrap(m_->GetProcess(pid)).vmas; }
};

// Rule: a KSM page is never merged again. try_to_merge_one_page ->
// write_protect_page -> page_address_in_vma compares vma->anon_vma with
// page_anon_vma(page), which is NULL for a KSM page: -EFAULT for any KSM
// page other than kpage itself (mm/ksm.c, mm/rmap.c, 2.6.33). A KSM page left
// without a stable node (a failed merge of a forked page) therefore stays as
// it is: never promoted, never merged into a stable node, and it cannot be
// unmapped for migration (try_to_unmap_ksm needs its stable node).
TEST_F(Exactness2633Test, KsmPageWithoutStableNodeIsNeverMergedAgain) {
  Pid t = NewProcess(1);
  Vaddr vt = MergeablePage(t, 0xAA);
  ASSERT_EQ(Unwrap(m_->Pin(t, vt, kPageSize)).err, Errno::kOk);
  Pid p = NewProcess(1);
  Vaddr vp = MergeablePage(p, 0xAA);
  Pid c = Unwrap(m_->Fork(p));  // registered last; maps p's page
  const Pfn k = PfnOf(p, vp);
  ASSERT_EQ(PfnOf(c, vp), k);
  // Pass 1: three first visits record checksums. Pass 2: t enters the
  // unstable tree; p matches it: p's page k (mapped by p and c) is promoted,
  // t's pinned page refuses (writable pte with an extra reference), break_cow
  // gives p a copy. c matches t too: promoting k fails (k is a KSM page).
  StepPasses(2);
  EXPECT_NE(PfnOf(p, vp), k);
  EXPECT_EQ(PfnOf(c, vp), k);
  EXPECT_EQ(Frame(k).state, PageState::kKsm);
  EXPECT_EQ(Frame(k).stable_node_id, 0u);
  EXPECT_TRUE(m_->KsmStableNodes().empty());
  // With t unpinned, pass 3 merges p's copy and t's page (p's page, visited
  // later, becomes the KSM page); c's k equals that node's content but is a
  // KSM page: it never joins.
  ASSERT_EQ(Unwrap(m_->Unpin(t, vt, kPageSize)).err, Errno::kOk);
  StepPasses(2);
  auto nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].kpfn, PfnOf(p, vp));
  EXPECT_EQ(nodes[0].mappings.size(), 2u);  // p and t
  EXPECT_EQ(PfnOf(t, vt), nodes[0].kpfn);
  EXPECT_EQ(PfnOf(c, vp), k);
  EXPECT_EQ(Frame(k).state, PageState::kKsm);
  // rmap items: t, p (stable) and c (in no tree: volatile).
  EXPECT_TRUE(CountersAre(1, 1, 0, 1, 4));
  EXPECT_TRUE(MachineOk());
  // Offline of block 4: k cannot be unmapped (no stable node), so it never
  // migrates: -EAGAIN every round until the 120 s timeout.
  ASSERT_EQ(m_->GetFrame(k)->block, 4u);
  OfflineReport r = Offline(4);
  EXPECT_EQ(r.err, Errno::kEAGAIN);
  EXPECT_EQ(PfnOf(c, vp), k);
  EXPECT_EQ(ReadPage(c, vp), Page(0xAA));
  EXPECT_TRUE(MachineOk());
}

// Rule: the reverse map of a KSM page is its stable node's rmap items.
// try_to_unmap_ksm walks each item's anon_vma at the item's address: the
// item's own mapping, then the forked vmas sharing that anon_vma (mm/ksm.c,
// 2.6.33). A fork child of a process whose item has left the node, not yet
// visited by ksmd itself, maps the KSM page where no item leads: the page is
// not unmapped and its migration fails.
TEST_F(Exactness2633Test, ForkedMappingReachableOnlyThroughALeftItemBlocksMigration) {
  Pid p = NewProcess(1);
  Vaddr v = MergeablePage(p, 0xBB);
  Pid q = NewProcess(1);
  ASSERT_EQ(MergeablePage(q, 0xBB), v);
  StepPasses(2);  // q's page (visited later) becomes the KSM page
  const Pfn k = PfnOf(q, v);
  ASSERT_EQ(PfnOf(p, v), k);
  Pid c = Unwrap(m_->Fork(p));  // c's vma shares p's anon_vma; c maps k
  ASSERT_EQ(PfnOf(c, v), k);
  ASSERT_EQ(testing::WriteStr(*m_, p, v, "x"), Errno::kOk);  // p gets a copy
  // One visit: p's item (first in the mm list) sees an anonymous page and
  // leaves the node. The node's list is now q's item alone.
  ASSERT_EQ(Unwrap(m_->KsmStepVisits(1)).visits, 1u);
  auto nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  ASSERT_EQ(nodes[0].mappings.size(), 1u);
  EXPECT_EQ(nodes[0].mappings[0].first, q);
  OfflineReport r = Offline(4);
  EXPECT_EQ(r.err, Errno::kEAGAIN);  // c's mapping of k is never unmapped
  EXPECT_EQ(PfnOf(c, v), k);
  EXPECT_EQ(PfnOf(q, v), k);
  EXPECT_TRUE(MachineOk());
}

// The same, once ksmd has visited c: c's own item joins the node through the
// forked KSM page (stable_tree_search returns the page itself), so every
// mapping is reachable and the offline migrates k (kpfn follows it).
TEST_F(Exactness2633Test, ForkedMappingWithItsOwnItemMigrates) {
  Pid p = NewProcess(1);
  Vaddr v = MergeablePage(p, 0xBB);
  Pid q = NewProcess(1);
  MergeablePage(q, 0xBB);
  StepPasses(2);
  const Pfn k = PfnOf(q, v);
  Pid c = Unwrap(m_->Fork(p));
  ASSERT_EQ(testing::WriteStr(*m_, p, v, "x"), Errno::kOk);
  StepPasses(1);  // p leaves the node, q is skipped (stable), c joins
  auto nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  ASSERT_EQ(nodes[0].mappings.size(), 2u);
  OfflineReport r = Offline(4);
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_EQ(r.ksm_pages_migrated, 1u);
  EXPECT_NE(PfnOf(c, v), k);
  EXPECT_EQ(PfnOf(c, v), PfnOf(q, v));
  nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].kpfn, PfnOf(q, v));
  EXPECT_EQ(ReadPage(c, v), Page(0xBB));
  EXPECT_TRUE(MachineOk());
}

// Rule: migrate_pages(2) allocates with new_node_page ->
// alloc_pages_exact_node(node, GFP_HIGHUSER_MOVABLE, 0), without
// __GFP_THISNODE: a full destination falls back through its zonelist
// (mm/mempolicy.c, 2.6.33). With node 1 full the pages get new frames on
// node 0 and nothing fails.
TEST_F(Exactness2633Test, MigratePagesFallsBackWhenTheDestinationIsFull) {
  Pid p = NewProcess(0);
  Vaddr a = Map(p, 2);
  FillPage(p, a, 0x11, 2);
  const Pfn before0 = PfnOf(p, a), before1 = PfnOf(p, a + kPageSize);
  for (BlockId b = 4; b < 8; ++b) ASSERT_EQ(Unwrap(m_->AllocKernelPages(b, 64, false)), 64u);
  MigratePagesResult r = Unwrap(m_->MigratePages(p, p, /*old=*/1, /*new=*/2));
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_EQ(r.not_migrated, 0u);
  EXPECT_EQ(NodeOf(p, a), 0u);
  EXPECT_EQ(NodeOf(p, a + kPageSize), 0u);
  EXPECT_NE(PfnOf(p, a), before0);  // moved: new frames, on the fallback node
  EXPECT_NE(PfnOf(p, a + kPageSize), before1);
  EXPECT_EQ(ReadPage(p, a), Page(0x11));
  // move_pages keeps __GFP_THISNODE: to the full node it is -ENOMEM.
  MovePagesResult mv = Unwrap(m_->MovePages(p, p, {a}, {1}, kMpolMfMove));
  EXPECT_EQ(mv.err, Errno::kENOMEM);
  EXPECT_TRUE(MachineOk());
}

// Rule: 2.6.33's mbind_range has no check that `start` lies inside a vma
// (check_range returns the first vma ending after start): mbind on a range
// that begins in a hole returns 0 and applies to the vmas in the range.
TEST_F(Exactness2633Test, MbindStartingInAHoleAppliesToTheVmasInTheRange) {
  Pid p = NewProcess(0);
  Vaddr a = Map(p, 4);
  Vaddr b = Map(p, 4, a + 8 * kPageSize);
  ASSERT_EQ(b, a + 8 * kPageSize);
  EXPECT_EQ(Unwrap(m_->Mbind(p, a + 4 * kPageSize, 8 * kPageSize, MpolMode::kBind, 2, 0)),
            Errno::kOk);
  MempolicyResult pb = Unwrap(m_->GetMempolicy(p, b, false));
  EXPECT_EQ(pb.policy.mode, MpolMode::kBind);
  EXPECT_EQ(pb.policy.nodes, 2u);
  EXPECT_EQ(Unwrap(m_->GetMempolicy(p, a, false)).policy.mode, MpolMode::kDefault);
  EXPECT_EQ(Vmas(p).size(), 2u);  // nothing split: the range covers b whole
}

// Rule: 2.6.33's mbind_range splits vmas and never merges them again
// (vma_merge in mbind_range came with 2.6.34): a range bound and then reset to
// the default policy stays three vmas. A later mprotect over them merges
// them (mprotect_fixup's vma_merge).
TEST_F(Exactness2633Test, MbindDoesNotMergeVmasAgain) {
  Pid p = NewProcess(0);
  Vaddr a = Map(p, 4);
  ASSERT_EQ(Unwrap(m_->Mbind(p, a + kPageSize, kPageSize, MpolMode::kBind, 2, 0)), Errno::kOk);
  ASSERT_EQ(Vmas(p).size(), 3u);
  ASSERT_EQ(Unwrap(m_->Mbind(p, a + kPageSize, kPageSize, MpolMode::kDefault, 0, 0)), Errno::kOk);
  EXPECT_EQ(Vmas(p).size(), 3u);
  ASSERT_EQ(Unwrap(m_->Mprotect(p, a, 4 * kPageSize, kProtRead)), Errno::kOk);
  EXPECT_EQ(Vmas(p).size(), 1u);
}

// Rule: in do_move_page_to_node_array each entry records its page before the
// "already on the target node" test, and new_page_node gives a page being
// migrated to the FIRST entry whose page matches (mm/migrate.c, 2.6.33).
// move_pages([x, x], [0, 1]) of a page on node 0: entry 0 is "already there"
// (status 0), entry 1 isolates the page (status 0); the page is allocated for
// entry 0, on node 0 (GFP_THISNODE): it moves to a new frame of node 0, and
// entry 0's status is the new node, 0.
TEST_F(Exactness2633Test, MovePagesWithARepeatedAddressFollowsTheFirstEntry) {
  Pid p = NewProcess(0);
  Vaddr x = Map(p, 1);
  FillPage(p, x, 0x22);
  const Pfn before = PfnOf(p, x);
  MovePagesResult r = Unwrap(m_->MovePages(p, p, {x, x}, {0, 1}, kMpolMfMove));
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_EQ(r.status, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(NodeOf(p, x), 0u);
  EXPECT_NE(PfnOf(p, x), before);
  // [x, x] to [1, 0]: entry 0 isolates it for node 1; entry 1 finds it on
  // node 0 = its target (status 0); the page goes to node 1 for entry 0.
  r = Unwrap(m_->MovePages(p, p, {x, x}, {1, 0}, kMpolMfMove));
  EXPECT_EQ(r.status, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(NodeOf(p, x), 1u);
  EXPECT_EQ(ReadPage(p, x), Page(0x22));
  EXPECT_TRUE(MachineOk());
}

// Rule: mpol_set_nodemask intersects a non-empty user mask with the nodes
// that have memory, and mpol_new_preferred refuses the empty result with
// -EINVAL; only an empty user mask means "local" (mm/mempolicy.c, 2.6.33).
TEST_F(Exactness2633Test, PreferredWithOnlyMemorylessNodesIsEinval) {
  for (BlockId b = 4; b < 8; ++b) ASSERT_EQ(Offline(b).err, Errno::kOk);  // node 1: no memory
  Pid p = NewProcess(0);
  EXPECT_EQ(Unwrap(m_->SetMempolicy(p, MpolMode::kPreferred, 2)), Errno::kEINVAL);
  EXPECT_EQ(Unwrap(m_->SetMempolicy(p, MpolMode::kPreferred, 0)), Errno::kOk);  // local
  EXPECT_EQ(Unwrap(m_->SetMempolicy(p, MpolMode::kPreferred, 3)), Errno::kOk);
  MempolicyResult g = Unwrap(m_->GetMempolicy(p, std::nullopt, false));
  EXPECT_EQ(g.policy.mode, MpolMode::kPreferred);
  EXPECT_EQ(g.policy.nodes, 1u);  // node 0, the first with memory
}

// Rule: `removable` is is_mem_section_removable (mm/memory_hotplug.c,
// 2.6.33): every pageblock must be MOVABLE or entirely free, and no
// pageblock may start with a PageReserved page.
TEST_F(Exactness2633Test, RemovableFollowsIsMemSectionRemovable) {
  EXPECT_TRUE(Block(5).removable);  // untouched
  ASSERT_EQ(Unwrap(m_->AllocKernelPages(5, 1, /*unmovable=*/false)), 1u);
  EXPECT_FALSE(Block(5).removable);  // its first page is reserved
  ASSERT_EQ(Unwrap(m_->FreeKernelPages(5, 1)), 1u);
  EXPECT_TRUE(Block(5).removable);
  // A reserved page that does not start its pageblock: still removable.
  Pid p = NewProcess(1);
  Vaddr a = Map(p, 1);
  FillPage(p, a, 0x33);
  ASSERT_EQ(m_->GetFrame(PfnOf(p, a))->block, 4u);
  ASSERT_EQ(Unwrap(m_->AllocKernelPages(4, 1, false)), 1u);
  EXPECT_TRUE(Block(4).removable);
  ASSERT_EQ(Unwrap(m_->AllocKernelPages(4, 1, /*unmovable=*/true)), 1u);
  EXPECT_FALSE(Block(4).removable);  // an UNMOVABLE pageblock, not free
  EXPECT_FALSE(Block(0).removable);  // the zero page starts block 0
  // An isolated (going offline) block: its pageblocks are ISOLATE; removable
  // only while entirely free.
  OfflineOptions opt;
  opt.pause_after = OfflinePhase::kIsolated;
  ASSERT_TRUE(Unwrap(m_->OfflineBlock(7, opt, absl::FromUnixSeconds(1000))).paused);
  EXPECT_TRUE(Block(7).removable);
  ASSERT_EQ(Unwrap(m_->CancelOffline(7)).err, Errno::kEINTR);
  ASSERT_EQ(Offline(6).err, Errno::kOk);
  EXPECT_FALSE(Block(6).removable);  // offline pages are reserved
}

// Kept rule: 2.6.33's write_protect_page checks for extra references only
// when the pte is writable (the "|| pte_dirty" test came with 2.6.36): a
// pinned page behind a read-only pte is merged.
TEST_F(Exactness2633Test, PinnedPageBehindReadOnlyPteIsMerged) {
  Pid p = NewProcess(0);
  Vaddr vp = MergeablePage(p, 0x44);
  const Pfn pinned = PfnOf(p, vp);
  ASSERT_EQ(Unwrap(m_->Pin(p, vp, kPageSize)).err, Errno::kOk);
  ASSERT_EQ(Unwrap(m_->Mprotect(p, vp, kPageSize, kProtRead)), Errno::kOk);
  Pid q = NewProcess(0);
  Vaddr vq = MergeablePage(q, 0x44);
  StepPasses(2);
  EXPECT_TRUE(SharedSharing(1, 1));
  EXPECT_EQ(PfnOf(p, vp), PfnOf(q, vq));
  EXPECT_NE(PfnOf(p, vp), pinned);  // p's pte was replaced; the pin holds the old frame
  EXPECT_EQ(Frame(pinned).state, PageState::kAnon);
  EXPECT_EQ(Frame(pinned).mapcount, 0);
  EXPECT_EQ(Frame(pinned).pins, 1);
  EXPECT_TRUE(MachineOk());
}

// The contrast: behind a writable pte the extra reference refuses the merge.
TEST_F(Exactness2633Test, PinnedPageBehindWritablePteIsNotMerged) {
  Pid p = NewProcess(0);
  Vaddr vp = MergeablePage(p, 0x44);
  ASSERT_EQ(Unwrap(m_->Pin(p, vp, kPageSize)).err, Errno::kOk);
  Pid q = NewProcess(0);
  MergeablePage(q, 0x44);
  StepPasses(2);
  EXPECT_TRUE(SharedSharing(0, 0));
  EXPECT_TRUE(MachineOk());
}

}  // namespace
}  // namespace memnode
