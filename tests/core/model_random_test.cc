// Randomized model test of KSM + NUMA migration + memory hot-remove: random
// writes (a handful of page patterns so that merges are frequent), forks,
// exits, madvise, ksmd steps and run 0/1/2, migrate_pages(2), mbind with
// MPOL_MF_MOVE, move_pages(2), pins, offlines (with and without pauses,
// resumed, cancelled or expired), online, add and remove of blocks and
// injected notifier failures, plus munmap/mprotect (read-only and PROT_NONE),
// MAP_SHARED and MAP_FIXED mappings, pattern and seeded fills, mempolicy,
// snapshot+restore and API misuse, on a small MANUAL machine, checked against
// a shadow copy of every process's memory.
//
// After every step:
//  - every live process reads back exactly its shadow (SPEC "Reliability":
//    whatever merges, COW breaks, migrations and offlines happen, a read
//    returns the last write);
//  - Machine::Check() is ok;
//  - every stable node is stale or names a KSM frame carrying its id
//    (kernel-semantics 1.2 r7-8; 6.1 r4: kpfn follows a migrated page);
//  - no stable node names a pfn of an offline or removed block (7.3 r16:
//    MEM_OFFLINE prunes every node with kpfn in the block);
//  - no pte maps a page of an offline block, or a free frame;
//  - pages_shared / pages_sharing equal the stable nodes' lists (3 r1-2);
//  - KSM is locked exactly while an offline is paused after GOING_OFFLINE
//    (7.3 r15-17, 8.1), and then ksmd steps and run writes are refused
//    (KSM_LOCKED) while other calls go on (8.2-8.4, SPEC Decision 5).
// Around migration calls: KSM pages never move (6.2 r9, 6.3 r11, 6.4 r15),
// move_pages reports them -ENOENT, and a status equal to the target node
// means the page is now on that node.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/machine.h"
#include "server/core/status.h"
#include "server/core/types.h"
#include "tests/testing/model_driver.h"

namespace memnode {
namespace {

constexpr int kSeeds = 40;
constexpr int kSteps = 300;

// The driver (tests/testing/model_driver.h) applies every core operation and
// checks the shadow and the invariants above after each one; the soak tool
// (tests/soak/memnode_soak.cc) and the fuzz_ops target run the same driver.
TEST(ModelRandom, ShadowMemoryAndInvariantsUnderMigrationAndHotplug) {
  testing::Coverage cov;
  testing::DriverOptions opts;
  opts.steps = kSteps;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    // Each seed stops at its first failure; the other seeds still run so
    // that one failure does not hide others.
    const uint64_t s = static_cast<uint64_t>(seed) * 104729;
    testing::PrngSource src(s);
    testing::ModelDriver d(&src, &cov, opts);
    if (!d.Run())
      ADD_FAILURE() << "seed " << seed << " (replay: memnode_soak --replay " << s << " --steps "
                    << kSteps << ") " << d.Report();
  }
  std::printf("coverage: %s\n", cov.ToString().c_str());
  // The mix must actually exercise the interesting paths.
  EXPECT_GT(cov.offlines_ok, 0u);
  EXPECT_GT(cov.offlines_failed, 0u);
  EXPECT_GT(cov.pauses, 0u);
  EXPECT_GT(cov.ksm_migrated, 0u);
  EXPECT_GT(cov.ksm_without_node, 0u);
  EXPECT_GT(cov.fork_writes, 0u);
  EXPECT_GT(cov.full_node_migrations, 0u);
  EXPECT_GT(cov.move_pages_dups, 0u);
  EXPECT_GT(cov.steps_with_sharing, 0u);
  EXPECT_GT(cov.locked_refusals, 0u);
  EXPECT_GT(cov.move_pages_ksm, 0u);
  EXPECT_GT(cov.pruned, 0u);
  EXPECT_GT(cov.munmaps, 0u);
  EXPECT_GT(cov.mprotects, 0u);
  EXPECT_GT(cov.readonly_refusals, 0u);
  EXPECT_GT(cov.shared_maps, 0u);
  EXPECT_GT(cov.snapshots, 0u);
}

// A case the random test found, pinned down by hand. ks 2.3 r11: promotion
// of a page to KSM needs no extra references but accepts several mappings
// (mapcount + 1 == refcount), so a page shared by fork can be promoted.
// ks 2.3 r9f: if merging the tree page into it then fails (here: the tree
// page is pinned, ks 2.3 r11), COW is broken on the current address only; the
// promoted page stays KSM (ks 1.6 r17: never demoted) with no stable node,
// still mapped by the fork child. That is a reachable kernel state, so the
// machine's self-check must accept it, reads must work, and the next visit of
// the child's address (same failed merge) gives the child a private copy and
// frees the page.
TEST(ModelRandom, ForkSharedPagePromotedThenMergeWithPinnedTreePageFails) {
  MachineConfig c;
  c.nodes = 2;
  c.blocks_per_node = 4;
  c.pages_per_block = 64;
  auto mm = Machine::Create(c);
  ASSERT_TRUE(mm.ok());
  Machine& m = **mm;
  FillPattern fp;
  fp.value = 0x11;
  auto map1 = [&](Pid p) {
    auto r = m.Mmap(p, 0, kPageSize, kProtRead | kProtWrite, false, false);
    EXPECT_TRUE(r.ok());
    Vaddr v = r->address;
    EXPECT_EQ(m.Fill(p, v, kPageSize, fp)->err, Errno::kOk);
    EXPECT_EQ(*m.Madvise(p, v, kPageSize, Advice::kMergeable), Errno::kOk);
    return v;
  };
  Pid t = *m.CreateProcess(ProcessParams{});
  Vaddr vt = map1(t);
  ASSERT_EQ(m.Pin(t, vt, kPageSize)->err, Errno::kOk);
  Pid p = *m.CreateProcess(ProcessParams{});
  Vaddr vp = map1(p);
  Pid child = *m.Fork(p);  // registered behind the cursor (at the head): last
  const Pfn shared = (*m.Translate(p, vp, 1))[0].pfn;
  ASSERT_EQ((*m.Translate(child, vp, 1))[0].pfn, shared);
  ASSERT_EQ(*m.KsmUpdate(1, std::nullopt, std::nullopt), Errno::kOk);
  // Pass 1: three first visits (volatile). Pass 2: T inserted in the
  // unstable tree; P matches it: P's page (mapped by P and the child) is
  // promoted, T's pinned page refuses to merge, COW broken at P's address.
  ASSERT_TRUE(m.KsmStepPasses(1, 1000).ok());
  ASSERT_EQ(m.KsmStepVisits(2)->visits, 2u);
  Translation tp = (*m.Translate(p, vp, 1))[0];
  Translation tc = (*m.Translate(child, vp, 1))[0];
  EXPECT_NE(tp.pfn, shared);
  EXPECT_EQ(tp.state, PageState::kAnon);
  EXPECT_EQ(tc.pfn, shared);
  EXPECT_EQ(tc.state, PageState::kKsm);
  EXPECT_TRUE(m.KsmStableNodes().empty());
  KsmInfo k = m.GetKsm();
  EXPECT_EQ(k.pages_shared, 0u);
  EXPECT_EQ(k.pages_sharing, 0u);
  EXPECT_EQ(k.pages_unshared, 1u);  // T's item
  EXPECT_EQ(k.pages_volatile, 2u);  // P's (failed merge) and the child's
  CheckResult cr = m.Check();
  EXPECT_TRUE(cr.ok()) << absl::StrJoin(cr.violations, "\n");
  EXPECT_EQ((*m.Read(child, vp, kPageSize)).data, std::string(kPageSize, 0x11));
  EXPECT_EQ((*m.Read(p, vp, kPageSize)).data, std::string(kPageSize, 0x11));
  // The child's visit: its page is a KSM page without a stable node, and a
  // KSM page never merges again (write_protect_page's page_address_in_vma
  // fails for it: docs/SEMANTICS.md, KSM merge rules): the promotion fails,
  // nothing is copied, the child keeps mapping the KSM page.
  ASSERT_EQ(m.KsmStepVisits(1)->visits, 1u);
  EXPECT_EQ((*m.Translate(child, vp, 1))[0].pfn, shared);
  EXPECT_EQ(m.GetFrame(shared)->state, PageState::kKsm);
  EXPECT_TRUE(m.KsmStableNodes().empty());
  // Two more passes change nothing for it: it is never promoted again.
  ASSERT_TRUE(m.KsmStepPasses(2, 1000).ok());
  EXPECT_EQ((*m.Translate(child, vp, 1))[0].pfn, shared);
  EXPECT_EQ(m.GetFrame(shared)->state, PageState::kKsm);
  EXPECT_TRUE(m.KsmStableNodes().empty());
  cr = m.Check();
  EXPECT_TRUE(cr.ok()) << absl::StrJoin(cr.violations, "\n");
  // It stays a KSM page until written: the write copies, the page is freed.
  std::string b(1, 'b');
  ASSERT_EQ(m.Write(child, vp, reinterpret_cast<const uint8_t*>(b.data()), 1)->err, Errno::kOk);
  EXPECT_NE((*m.Translate(child, vp, 1))[0].pfn, shared);
  EXPECT_EQ(m.GetFrame(shared)->state, PageState::kFree);
  cr = m.Check();
  EXPECT_TRUE(cr.ok()) << absl::StrJoin(cr.violations, "\n");
}

}  // namespace
}  // namespace memnode
