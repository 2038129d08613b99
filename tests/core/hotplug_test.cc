// Memory hot-remove / online tests against shared/kernel-semantics.md
// (section 7 "Memory hot-remove and online", 8 "Locking", 10 scenarios 8-13
// and 17) and SPEC.md "Decisions" (3: no extra pins unless asked; 4: offline
// can pause; 5: MADV_UNMERGEABLE is not blocked by an offline).
//
// Every expected value is worked out by hand from the reference; comments
// cite it ("ks 7.2 r9" = kernel-semantics section 7.2 rule 9, "ks 10.8" =
// section 10 scenario 8).
//
// Machine: 2 nodes x 4 blocks x 64 pages. Blocks 0-3 are node 0 (pfns
// 0..255; pfn 0 is the shared zero page), blocks 4-7 node 1 (pfns 256..511).
// The allocator (brief / machine.h notes) hands out pages of a node from its
// lowest-numbered online block, never-used offsets in order, freed offsets
// LIFO; a process allocates on its home node. So processes with home node 1
// fill block 4 from pfn 256 upwards, and migration targets of an offline of
// block 4 come from block 5 (own node first, isolated block excluded), i.e.
// from pfn 320 upwards.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/machine.h"
#include "server/core/names.h"
#include "server/core/status.h"
#include "server/core/types.h"
#include "tests/testing/machine_fixture.h"

namespace memnode {
namespace {

using ::memnode::testing::Unwrap;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

using Phase = OfflinePhase;
using Event_ = MemEvent;

constexpr BlockId kBlock4 = 4;  // first block of node 1: pfns 256..319
constexpr Pfn kBlock4Start = 256;
constexpr Pfn kBlock5Start = 320;  // second block of node 1
constexpr uint64_t kNsPerSec = 1000000000ull;

const absl::Time kT0 = absl::FromUnixSeconds(1000000);

// Notifier log entries without an optional "MEM_" prefix (the header of
// machine.h documents "GOING_OFFLINE ksm(100) ok"; the kernel's names carry
// MEM_): the test does not depend on which spelling is used.
std::vector<std::string> Calls(const OfflineReport& r) {
  std::vector<std::string> out;
  for (std::string s : r.notifier_calls) {
    if (absl::StartsWith(s, "MEM_")) s = s.substr(4);
    out.push_back(s);
  }
  return out;
}

// The calls added by a resumed offline: the resumed report may repeat the
// calls made before the pause (one report per offline) or not.
std::vector<std::string> CallsAfter(const OfflineReport& before, const OfflineReport& after) {
  std::vector<std::string> a = Calls(before), b = Calls(after);
  if (b.size() >= a.size() && std::equal(a.begin(), a.end(), b.begin()))
    return std::vector<std::string>(b.begin() + a.size(), b.end());
  return b;
}

std::string ReportString(const OfflineReport& r) {
  return absl::StrCat("block=", r.block, " err=", ErrnoName(r.err), " paused=", r.paused,
                      " phase=", OfflinePhaseName(r.phase), " calls=[",
                      absl::StrJoin(r.notifier_calls, "; "), "] migrated=", r.pages_migrated,
                      " ksm_migrated=", r.ksm_pages_migrated, " pruned=", r.stable_nodes_pruned,
                      " rounds=", r.rounds, " emulated_ns=", r.emulated_ns, " failure=\"",
                      r.failure, "\"");
}

// The shared fixture (tests/testing/machine_fixture.h) plus offline and KSM
// lock shorthands.
class HotplugTest : public memnode::testing::SmallMachineTest {
 protected:
  void WriteByte(Pid pid, Vaddr addr, char c) {
    ASSERT_EQ(memnode::testing::WriteStr(*m_, pid, addr, std::string(1, c)), Errno::kOk);
  }

  // KSM's lock is held: ksmd steps and run writes are refused with
  // FAILED_PRECONDITION KSM_LOCKED (ks 8.1, 8.2).
  void ExpectKsmLocked() {
    EXPECT_TRUE(m_->KsmLocked());
    EXPECT_TRUE(m_->GetKsm().locked_by_offline);
    auto s1 = m_->KsmStepPasses(1, kBigVisits);
    EXPECT_EQ(s1.status().code(), absl::StatusCode::kFailedPrecondition) << s1.status();
    EXPECT_EQ(ErrorReason(s1.status()), "KSM_LOCKED");
    auto s2 = m_->KsmStepVisits(1);
    EXPECT_EQ(s2.status().code(), absl::StatusCode::kFailedPrecondition) << s2.status();
    EXPECT_EQ(ErrorReason(s2.status()), "KSM_LOCKED");
    auto s3 = m_->KsmUpdate(0, std::nullopt, std::nullopt);
    EXPECT_EQ(s3.status().code(), absl::StatusCode::kFailedPrecondition) << s3.status();
    EXPECT_EQ(ErrorReason(s3.status()), "KSM_LOCKED");
    auto s4 = m_->KsmWriteSysfs("run", "0\n");
    EXPECT_EQ(s4.status().code(), absl::StatusCode::kFailedPrecondition) << s4.status();
    EXPECT_EQ(ErrorReason(s4.status()), "KSM_LOCKED");
  }

  // KSM's lock is free: ksmd steps and run writes work (the run value is
  // re-written unchanged).
  void ExpectKsmFree() {
    EXPECT_FALSE(m_->KsmLocked());
    EXPECT_FALSE(m_->GetKsm().locked_by_offline);
    auto s = m_->KsmStepVisits(1);
    EXPECT_TRUE(s.ok()) << s.status();
    uint32_t run = m_->GetKsm().run;
    auto w = m_->KsmUpdate(run, std::nullopt, std::nullopt);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(*w, Errno::kOk);
    auto w2 = m_->KsmWriteSysfs("run", absl::StrCat(run, "\n"));
    ASSERT_TRUE(w2.ok()) << w2.status();
    EXPECT_EQ(*w2, Errno::kOk);
  }

  OfflineReport Offline(BlockId b, Phase pause = Phase::kNone,
                        uint64_t timeout_ns = 120 * kNsPerSec,
                        absl::Duration ttl = absl::Minutes(5), absl::Time now = kT0) {
    OfflineOptions o;
    o.pause_after = pause;
    o.timeout_ns = timeout_ns;
    o.pause_ttl = ttl;
    auto r = m_->OfflineBlock(b, o, now);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : OfflineReport{};
  }
  OfflineReport Resume(BlockId b, std::optional<Phase> pause = std::nullopt) {
    auto r = m_->ResumeOffline(b, pause, kT0);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : OfflineReport{};
  }

  // ks 10.1 on node 1: A (registered first) and B each have one page of
  // `byte`; after two passes they share B's page (the later-visited one).
  // A's page was pfn 256, B's 257; the KSM page is 257, pfn 256 is free.
  struct Pair2 {
    Pid a = 0, b = 0;
    Vaddr va = 0, vb = 0;
    Pfn kpfn = kNoPfn;
  };
  Pair2 MergedPairOnNode1(uint8_t byte = 0x11) {
    Pair2 s;
    s.a = NewProcess(1);
    s.va = Map(s.a, 1);
    FillPage(s.a, s.va, byte);
    EXPECT_EQ(Madvise(s.a, s.va, kPageSize, Advice::kMergeable), Errno::kOk);
    s.b = NewProcess(1);
    s.vb = Map(s.b, 1);
    FillPage(s.b, s.vb, byte);
    EXPECT_EQ(Madvise(s.b, s.vb, kPageSize, Advice::kMergeable), Errno::kOk);
    EXPECT_EQ(PfnOf(s.a, s.va), kBlock4Start);
    EXPECT_EQ(PfnOf(s.b, s.vb), kBlock4Start + 1);
    SetRun(1);
    StepPasses(2);
    EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));  // ks 10.1
    s.kpfn = PfnOf(s.b, s.vb);
    EXPECT_EQ(s.kpfn, kBlock4Start + 1);  // ks 10.1: B's original page
    EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
    EXPECT_TRUE(MachineOk());
    return s;
  }
};

// ---------------------------------------------------------------------------
// Scenario 8: offline the block holding a live KSM page shared by A and B.

TEST_F(HotplugTest, Scenario08LiveKsmPageMigratesWithItsNode) {
  Pair2 s = MergedPairOnNode1();
  std::vector<StableNodeInfo> before = m_->KsmStableNodes();
  ASSERT_EQ(before.size(), 1u);
  const uint64_t node_id = before[0].id;
  EXPECT_EQ(before[0].kpfn, s.kpfn);

  OfflineReport r = Offline(kBlock4);
  SCOPED_TRACE(ReportString(r));
  // ks 10.8 / 7.2 r10: the write to `state` succeeds, block offline.
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_FALSE(r.paused);
  EXPECT_EQ(r.phase, Phase::kDone);
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOffline);
  // ks 7.2 r13: the KSM page is isolated and migrated (offlining = 1): the
  // block's only in-use page.
  EXPECT_EQ(r.pages_migrated, 1u);
  EXPECT_EQ(r.ksm_pages_migrated, 1u);
  // ks 7.2 r9: one round moves it; the next finds no LRU page.
  EXPECT_EQ(r.rounds, 1u);
  // ks 7.3 r16: MEM_OFFLINE finds no node in range (kpfn followed the page).
  EXPECT_EQ(r.stable_nodes_pruned, 0u);
  // ks 7.3 r15-16, r18: GOING takes the lock, OFFLINE prunes and unlocks.
  EXPECT_THAT(Calls(r), ElementsAre("GOING_OFFLINE ksm(100) ok", "OFFLINE ksm(100) ok"));

  // ks 6.1 r4 (ksm_migrate_page sets kpfn to the new pfn): the node moved to
  // the new page; the target is the first page of block 5 (own node first).
  std::vector<StableNodeInfo> after = m_->KsmStableNodes();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].id, node_id);
  EXPECT_FALSE(after[0].stale);
  EXPECT_NE(after[0].kpfn, s.kpfn);
  EXPECT_EQ(after[0].kpfn, kBlock5Start);
  EXPECT_EQ(after[0].node, 1u);
  EXPECT_THAT(after[0].mappings,
              UnorderedElementsAre(std::make_pair(s.a, s.va), std::make_pair(s.b, s.vb)));
  // The old pfn lies in offline memory.
  EXPECT_EQ(Frame(s.kpfn).state, PageState::kOffline);
  FrameInfo nf = Frame(after[0].kpfn);
  EXPECT_EQ(nf.state, PageState::kKsm);
  EXPECT_EQ(nf.mapcount, 2);
  EXPECT_EQ(nf.stable_node_id, node_id);

  // ks 10.8: A and B still share it and read their data.
  EXPECT_EQ(PfnOf(s.a, s.va), after[0].kpfn);
  EXPECT_EQ(PfnOf(s.b, s.vb), after[0].kpfn);
  EXPECT_EQ(Tr(s.a, s.va).state, PageState::kKsm);
  EXPECT_EQ(ReadPage(s.a, s.va), Page(0x11));
  EXPECT_EQ(ReadPage(s.b, s.vb), Page(0x11));
  // ks 10.8: counters unchanged, full_scans unchanged during the offline.
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  // ks 7.3 r16: the lock is released after MEM_OFFLINE.
  ExpectKsmFree();
  EXPECT_TRUE(MachineOk());

  // The node still works: ks 10.5 a fresh page equal to an existing KSM page
  // merges on its first visit (stable search first), into the new kpfn.
  // (ExpectKsmFree made one visit: A's stable item, a no-op, ks 2.3 r9.)
  Pid c = NewProcess(0);
  Vaddr vc = Map(c, 1);
  FillPage(c, vc, 0x11);
  ASSERT_EQ(Madvise(c, vc, kPageSize, Advice::kMergeable), Errno::kOk);
  StepPasses(2);
  EXPECT_EQ(PfnOf(c, vc), after[0].kpfn);
  EXPECT_EQ(m_->GetKsm().pages_sharing, 2u);
  EXPECT_EQ(m_->GetKsm().pages_shared, 1u);
  EXPECT_TRUE(MachineOk());
}

// ---------------------------------------------------------------------------
// Scenario 9: the seed's race - the KSM page was freed before the offline and
// ksmd did not revisit: MEM_OFFLINE prunes the node by kpfn.

TEST_F(HotplugTest, Scenario09BothSharersWriteThenOfflinePrunes) {
  Pair2 s = MergedPairOnNode1();
  // ks 5.1 r1-2: both writes copy; the KSM page loses its last mapping and
  // is freed; its node is stale but stays in the tree.
  WriteByte(s.a, s.va, 'a');
  WriteByte(s.b, s.vb, 'b');
  EXPECT_NE(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_NE(PfnOf(s.b, s.vb), s.kpfn);
  EXPECT_EQ(Frame(s.kpfn).state, PageState::kFree);
  // ks 3.7 / 10.9: counters lazy, still 1/1.
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  std::vector<StableNodeInfo> nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_TRUE(nodes[0].stale);
  EXPECT_EQ(nodes[0].kpfn, s.kpfn);

  OfflineReport r = Offline(kBlock4);
  SCOPED_TRACE(ReportString(r));
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOffline);
  // Nothing KSM to migrate (the page is free); the two private copies were
  // allocated on node 1 = block 4 (pfns 256 and 258) and move.
  EXPECT_EQ(r.ksm_pages_migrated, 0u);
  EXPECT_EQ(r.pages_migrated, 2u);
  // ks 10.9 / 7.3 r16: MEM_OFFLINE prunes the node: immediately shared 0,
  // sharing 0, volatile +2 (items survive flagless, ks 5.3 r10).
  EXPECT_EQ(r.stable_nodes_pruned, 1u);
  EXPECT_THAT(Calls(r), ElementsAre("GOING_OFFLINE ksm(100) ok", "OFFLINE ksm(100) ok"));
  EXPECT_TRUE(CountersAre(0, 0, 0, 2, 2));
  EXPECT_EQ(m_->GetKsm().rmap_items, 2u);
  EXPECT_THAT(m_->KsmStableNodes(), IsEmpty());
  std::string pa = Page(0x11), pb = Page(0x11);
  pa[0] = 'a';
  pb[0] = 'b';
  EXPECT_EQ(ReadPage(s.a, s.va), pa);
  EXPECT_EQ(ReadPage(s.b, s.vb), pb);
  ExpectKsmFree();  // one visit: A's item
  EXPECT_TRUE(MachineOk());

  // ks 10.9 "until ksmd revisits them": each item is re-evaluated, its
  // content changed since the stored checksum (ks 5.1 r3) -> volatile.
  StepPasses(1);
  EXPECT_TRUE(CountersAre(0, 0, 0, 2, 3));
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, Scenario09BothSharersUnmapThenOfflinePrunes) {
  Pair2 s = MergedPairOnNode1();
  // ks 5.2 r5: munmap drops the mappings, the KSM page is freed; items stay.
  ASSERT_EQ(Unwrap(m_->Munmap(s.a, s.va, kPageSize)), Errno::kOk);
  ASSERT_EQ(Unwrap(m_->Munmap(s.b, s.vb, kPageSize)), Errno::kOk);
  EXPECT_EQ(Frame(s.kpfn).state, PageState::kFree);
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));  // ks 3.7

  OfflineReport r = Offline(kBlock4);
  SCOPED_TRACE(ReportString(r));
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_EQ(r.pages_migrated, 0u);  // block 4 holds no page in use any more
  EXPECT_EQ(r.ksm_pages_migrated, 0u);
  EXPECT_EQ(r.rounds, 0u);               // ks 7.2 r9: no LRU page at all
  EXPECT_EQ(r.stable_nodes_pruned, 1u);  // ks 10.9
  EXPECT_TRUE(CountersAre(0, 0, 0, 2, 2));
  EXPECT_THAT(m_->KsmStableNodes(), IsEmpty());
  EXPECT_FALSE(m_->KsmLocked());
  EXPECT_TRUE(MachineOk());

  // ks 10.9 "or freed if the addresses are gone": the next pass walks each
  // mm, finds no VM_MERGEABLE vma, frees the items and the slots (ks 2.2 r7).
  StepPasses(1);
  EXPECT_TRUE(CountersAre(0, 0, 0, 0, 3));
  EXPECT_EQ(m_->GetKsm().rmap_items, 0u);
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, Scenario09MappingsDroppedWhilePausedAfterGoingOffline) {
  Pair2 s = MergedPairOnNode1();
  // SPEC Decision 4: pause after MEM_GOING_OFFLINE.
  OfflineReport p = Offline(kBlock4, Phase::kGoingOffline);
  SCOPED_TRACE(ReportString(p));
  EXPECT_EQ(p.err, Errno::kOk);
  EXPECT_TRUE(p.paused);
  EXPECT_EQ(p.phase, Phase::kGoingOffline);
  EXPECT_THAT(Calls(p), ElementsAre("GOING_OFFLINE ksm(100) ok"));
  // ks 7.1 r2: reads "going-offline"; ks 7.3 r15 / 8.2: KSM locked out.
  EXPECT_EQ(Block(kBlock4).state, BlockState::kGoingOffline);
  ExpectKsmLocked();
  // The page has not moved yet (migration comes after the pause point).
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);

  // The race: both sharers drop their mapping while the offline is paused.
  ASSERT_EQ(Unwrap(m_->Munmap(s.a, s.va, kPageSize)), Errno::kOk);
  WriteByte(s.b, s.vb, 'b');  // B's copy: block 4 is isolated -> block 5
  EXPECT_EQ(Tr(s.b, s.vb).node, 1u);
  EXPECT_GE(PfnOf(s.b, s.vb), kBlock5Start);
  EXPECT_EQ(Frame(s.kpfn).state, PageState::kFree);
  // ks 8.2: no counter moves while locked.
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  ExpectKsmLocked();

  OfflineReport r = Resume(kBlock4);
  SCOPED_TRACE(ReportString(r));
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_FALSE(r.paused);
  EXPECT_EQ(r.phase, Phase::kDone);
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOffline);
  EXPECT_EQ(r.ksm_pages_migrated, 0u);
  EXPECT_EQ(r.stable_nodes_pruned, 1u);  // ks 8.7 / 7.3 r16
  EXPECT_THAT(CallsAfter(p, r), ElementsAre("OFFLINE ksm(100) ok"));
  EXPECT_TRUE(CountersAre(0, 0, 0, 2, 2));  // ks 10.9
  EXPECT_THAT(m_->KsmStableNodes(), IsEmpty());
  std::string pb = Page(0x11);
  pb[0] = 'b';
  EXPECT_EQ(ReadPage(s.b, s.vb), pb);
  ExpectKsmFree();
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, Scenario09KsmdRevisitedBeforeOfflineNothingToPrune) {
  Pair2 s = MergedPairOnNode1();
  WriteByte(s.a, s.va, 'a');
  WriteByte(s.b, s.vb, 'b');
  // ks 5.1 r3-4 / 10.6: the revisit of A's address finds the node stale and
  // prunes it (both items stripped); both items end volatile.
  StepPasses(1);
  EXPECT_TRUE(CountersAre(0, 0, 0, 2, 3));
  EXPECT_THAT(m_->KsmStableNodes(), IsEmpty());

  OfflineReport r = Offline(kBlock4);
  SCOPED_TRACE(ReportString(r));
  EXPECT_EQ(r.err, Errno::kOk);
  // ks 10.9 last sentence: MEM_OFFLINE does nothing.
  EXPECT_EQ(r.stable_nodes_pruned, 0u);
  EXPECT_EQ(r.ksm_pages_migrated, 0u);
  EXPECT_EQ(r.pages_migrated, 2u);
  EXPECT_TRUE(CountersAre(0, 0, 0, 2, 3));
  ExpectKsmFree();
  EXPECT_TRUE(MachineOk());
}

// ---------------------------------------------------------------------------
// Scenario 10: offlines that cannot complete.

TEST_F(HotplugTest, Scenario10aUnmovablePagesFailIsolationWithoutNotifiers) {
  Pair2 s = MergedPairOnNode1();
  ASSERT_EQ(Unwrap(m_->AllocKernelPages(kBlock4, 1, /*unmovable=*/true)), 1u);
  OfflineReport r = Offline(kBlock4);
  SCOPED_TRACE(ReportString(r));
  // ks 7.2 r7 / 10.10a: EBUSY at once, no notifier event, ksmd unaffected.
  EXPECT_EQ(r.err, Errno::kEBUSY);
  EXPECT_FALSE(r.paused);
  EXPECT_THAT(r.notifier_calls, IsEmpty());
  EXPECT_EQ(r.pages_migrated, 0u);
  EXPECT_EQ(r.rounds, 0u);
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOnline);
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  ExpectKsmFree();
  EXPECT_TRUE(MachineOk());
  // The block still allocates: after the kernel pages are freed it offlines.
  ASSERT_EQ(Unwrap(m_->FreeKernelPages(kBlock4, 1)), 1u);
  OfflineReport r2 = Offline(kBlock4);
  EXPECT_EQ(r2.err, Errno::kOk) << ReportString(r2);
}

TEST_F(HotplugTest, Block0HoldsTheZeroPageAndNeverOfflines) {
  // The zero page is reserved (brief: pfn 0); ks 7.2 r7: isolation EBUSY.
  OfflineReport r = Offline(0);
  EXPECT_EQ(r.err, Errno::kEBUSY) << ReportString(r);
  EXPECT_THAT(r.notifier_calls, IsEmpty());
  EXPECT_EQ(Block(0).state, BlockState::kOnline);
  EXPECT_FALSE(Block(0).removable);  // ks 7.1 r4: a reserved page
  EXPECT_TRUE(Block(1).removable);
  ExpectKsmFree();
}

TEST_F(HotplugTest, Scenario10bNonLruKernelPageAloneFailsAtFinalCheck) {
  ASSERT_EQ(Unwrap(m_->AllocKernelPages(5, 1, /*unmovable=*/false)), 1u);
  OfflineReport r = Offline(5);
  SCOPED_TRACE(ReportString(r));
  // ks 7.2 r9: no LRU page -> verify all free -> EBUSY; after GOING_OFFLINE,
  // so ks 7.2 r11: MEM_CANCEL_OFFLINE, KSM unlocked (7.3 r17).
  EXPECT_EQ(r.err, Errno::kEBUSY);
  EXPECT_EQ(r.rounds, 0u);
  EXPECT_THAT(Calls(r), ElementsAre("GOING_OFFLINE ksm(100) ok", "CANCEL_OFFLINE ksm(100) ok"));
  EXPECT_EQ(Block(5).state, BlockState::kOnline);
  ExpectKsmFree();
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, Scenario10bNonLruKernelPageAfterLruPageUsesFiveRetries) {
  Pid p = NewProcess(1);
  Vaddr v = Map(p, 1);
  FillPage(p, v, 0x42);
  ASSERT_EQ(PfnOf(p, v), kBlock4Start);
  // A non-LRU page at pfn 257, after the LRU page.
  ASSERT_EQ(Unwrap(m_->AllocKernelPages(kBlock4, 1, /*unmovable=*/false)), 1u);
  OfflineReport r = Offline(kBlock4);
  SCOPED_TRACE(ReportString(r));
  // ks 7.2 r9: do_migrate_range from pfn 256 meets the non-LRU page ->
  // -EBUSY, retry_max 5 -> 0 after five rounds -> EBUSY; nothing migrated.
  EXPECT_EQ(r.err, Errno::kEBUSY);
  EXPECT_EQ(r.rounds, 5u);
  EXPECT_EQ(r.pages_migrated, 0u);
  EXPECT_THAT(Calls(r), ElementsAre("GOING_OFFLINE ksm(100) ok", "CANCEL_OFFLINE ksm(100) ok"));
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOnline);
  EXPECT_EQ(PfnOf(p, v), kBlock4Start);
  EXPECT_EQ(ReadPage(p, v), Page(0x42));
  ExpectKsmFree();
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, Scenario10cPinnedAnonPageTimesOutPagesMovedStayMoved) {
  Pid p = NewProcess(1);
  Vaddr v = Map(p, 3);
  FillPage(p, v, 0x01);
  FillPage(p, v + kPageSize, 0x02);
  FillPage(p, v + 2 * kPageSize, 0x03);
  ASSERT_EQ(PfnOf(p, v + kPageSize), kBlock4Start + 1);
  ASSERT_EQ(Unwrap(m_->Pin(p, v + kPageSize, kPageSize)).err, Errno::kOk);
  const uint64_t t0 = m_->Info().emulated_time_ns;
  const uint64_t timeout = 10 * 1000000ull;  // 10 ms
  OfflineReport r = Offline(kBlock4, Phase::kNone, timeout);
  SCOPED_TRACE(ReportString(r));
  // ks 7.2 r9 / 10.10c: the pinned page keeps returning "not migrated"
  // without consuming retries until the deadline -> EAGAIN.
  EXPECT_EQ(r.err, Errno::kEAGAIN);
  EXPECT_GE(r.emulated_ns, timeout);
  EXPECT_GE(m_->Info().emulated_time_ns - t0, timeout);
  // The two unpinned pages moved in the first round.
  EXPECT_EQ(r.pages_migrated, 2u);
  EXPECT_EQ(r.ksm_pages_migrated, 0u);
  // ks 7.2 r11: MEM_CANCEL_OFFLINE releases KSM.
  EXPECT_THAT(Calls(r), ElementsAre("GOING_OFFLINE ksm(100) ok", "CANCEL_OFFLINE ksm(100) ok"));
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOnline);
  ExpectKsmFree();
  // ks 7.2 r11: pages already migrated out stay where they went (block 5).
  for (Vaddr a : {v, v + 2 * kPageSize}) {
    Pfn pfn = PfnOf(p, a);
    EXPECT_GE(pfn, kBlock5Start);
    EXPECT_LT(pfn, kBlock5Start + 64);
  }
  EXPECT_EQ(PfnOf(p, v + kPageSize), kBlock4Start + 1);
  EXPECT_EQ(ReadPage(p, v), Page(0x01));
  EXPECT_EQ(ReadPage(p, v + kPageSize), Page(0x02));
  EXPECT_EQ(ReadPage(p, v + 2 * kPageSize), Page(0x03));
  EXPECT_TRUE(MachineOk());

  // Unpinned, the offline succeeds and moves the last page.
  ASSERT_EQ(Unwrap(m_->Unpin(p, v + kPageSize, kPageSize)).err, Errno::kOk);
  OfflineReport r2 = Offline(kBlock4, Phase::kNone, timeout);
  EXPECT_EQ(r2.err, Errno::kOk) << ReportString(r2);
  EXPECT_EQ(r2.pages_migrated, 1u);
  EXPECT_EQ(ReadPage(p, v + kPageSize), Page(0x02));
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, Scenario10cPinnedKsmPageTimesOutAfter120Seconds) {
  Pair2 s = MergedPairOnNode1();
  ASSERT_EQ(Unwrap(m_->Pin(s.a, s.va, kPageSize)).err, Errno::kOk);
  OfflineReport r = Offline(kBlock4);  // the seed's 120 s
  SCOPED_TRACE(ReportString(r));
  // ks 7.2 r13 / 10.10c: a KSM page with extra pins fails -EAGAIN each time
  // -> 120 s -> EAGAIN; MEM_CANCEL_OFFLINE releases ksmd and run writes.
  EXPECT_EQ(r.err, Errno::kEAGAIN);
  EXPECT_GE(r.emulated_ns, 120 * kNsPerSec);
  EXPECT_EQ(r.pages_migrated, 0u);
  EXPECT_EQ(r.ksm_pages_migrated, 0u);
  EXPECT_EQ(r.stable_nodes_pruned, 0u);
  EXPECT_THAT(Calls(r), ElementsAre("GOING_OFFLINE ksm(100) ok", "CANCEL_OFFLINE ksm(100) ok"));
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOnline);
  std::vector<StableNodeInfo> nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].kpfn, s.kpfn);  // not moved
  EXPECT_FALSE(nodes[0].stale);
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_EQ(PfnOf(s.b, s.vb), s.kpfn);
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  ExpectKsmFree();
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, Scenario10dCancelOfPausedOfflineIsLikeASignal) {
  Pair2 s = MergedPairOnNode1();
  OfflineReport p = Offline(kBlock4, Phase::kGoingOffline);
  ASSERT_TRUE(p.paused) << ReportString(p);
  ExpectKsmLocked();
  auto c = m_->CancelOffline(kBlock4);
  ASSERT_TRUE(c.ok()) << c.status();
  SCOPED_TRACE(ReportString(*c));
  // ks 7.2 r9 (signal pending -> EINTR) / 10.10d; ks 7.2 r11: CANCEL sent
  // because GOING_OFFLINE was; ks 7.3 r17: KSM unlocked.
  EXPECT_EQ(c->err, Errno::kEINTR);
  EXPECT_FALSE(c->paused);
  EXPECT_THAT(CallsAfter(p, *c), ElementsAre("CANCEL_OFFLINE ksm(100) ok"));
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOnline);
  ExpectKsmFree();
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  // Nothing left to resume or cancel.
  auto again = m_->CancelOffline(kBlock4);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  auto res = m_->ResumeOffline(kBlock4, std::nullopt, kT0);
  EXPECT_EQ(res.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, CancelBeforeGoingOfflineSendsNoNotifier) {
  Pair2 s = MergedPairOnNode1();
  OfflineReport p = Offline(kBlock4, Phase::kIsolated);
  ASSERT_TRUE(p.paused) << ReportString(p);
  EXPECT_EQ(p.phase, Phase::kIsolated);
  EXPECT_THAT(p.notifier_calls, IsEmpty());
  EXPECT_EQ(Block(kBlock4).state, BlockState::kGoingOffline);
  // KSM's callback has not run yet (ks 7.3 r15 is at MEM_GOING_OFFLINE).
  EXPECT_FALSE(m_->KsmLocked());
  auto c = m_->CancelOffline(kBlock4);
  ASSERT_TRUE(c.ok()) << c.status();
  // ks 7.2 r11 applies only after GOING_OFFLINE was sent.
  EXPECT_THAT(c->notifier_calls, IsEmpty());
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOnline);
  ExpectKsmFree();
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, PauseAtEveryPhaseThenFinish) {
  Pair2 s = MergedPairOnNode1();
  OfflineReport p1 = Offline(kBlock4, Phase::kIsolated);
  ASSERT_TRUE(p1.paused);
  EXPECT_FALSE(m_->KsmLocked());
  OfflineReport p2 = Resume(kBlock4, Phase::kGoingOffline);
  ASSERT_TRUE(p2.paused) << ReportString(p2);
  EXPECT_EQ(p2.phase, Phase::kGoingOffline);
  ExpectKsmLocked();
  OfflineReport p3 = Resume(kBlock4, Phase::kMigrated);
  ASSERT_TRUE(p3.paused) << ReportString(p3);
  EXPECT_EQ(p3.phase, Phase::kMigrated);
  // Migrated: the KSM page left block 4 (ks 7.2 r13); still locked (ks 8.1:
  // until MEM_OFFLINE).
  EXPECT_EQ(p3.ksm_pages_migrated, 1u);
  EXPECT_NE(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_EQ(PfnOf(s.a, s.va), PfnOf(s.b, s.vb));
  EXPECT_EQ(Block(kBlock4).state, BlockState::kGoingOffline);
  ExpectKsmLocked();
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  OfflineReport done = Resume(kBlock4);
  EXPECT_EQ(done.err, Errno::kOk) << ReportString(done);
  EXPECT_EQ(done.phase, Phase::kDone);
  EXPECT_EQ(done.stable_nodes_pruned, 0u);
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOffline);
  ExpectKsmFree();
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, ExpiredPauseIsCancelledAndReleasesKsm) {
  Pair2 s = MergedPairOnNode1();
  OfflineReport p = Offline(kBlock4, Phase::kGoingOffline, 120 * kNsPerSec, absl::Minutes(1), kT0);
  ASSERT_TRUE(p.paused) << ReportString(p);
  ExpectKsmLocked();
  // Not yet expired.
  EXPECT_FALSE(m_->ExpirePausedOffline(kT0 + absl::Seconds(30)));
  ExpectKsmLocked();
  EXPECT_EQ(Block(kBlock4).state, BlockState::kGoingOffline);
  // After pause_ttl: cancelled (MEM_CANCEL_OFFLINE, ks 7.2 r11, 7.3 r17).
  EXPECT_TRUE(m_->ExpirePausedOffline(kT0 + absl::Seconds(61)));
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOnline);
  ExpectKsmFree();
  // ksmd resumes and run writes complete.
  SetRun(0);
  SetRun(1);
  StepPasses(1);
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 3));
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_FALSE(m_->ExpirePausedOffline(kT0 + absl::Hours(1)));  // nothing left
  auto res = m_->ResumeOffline(kBlock4, std::nullopt, kT0);
  EXPECT_EQ(res.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(MachineOk());
}

// Injected notifier vetoes at MEM_GOING_OFFLINE (ks 7.2 r8, r11; 7.3 r14, r19).
TEST_F(HotplugTest, VetoAbovePriority100KsmNeverLocked) {
  Pair2 s = MergedPairOnNode1();
  ASSERT_TRUE(m_->InjectNotifierFailure(Event_::kGoingOffline, 200, Errno::kENOMEM, 0).ok());
  OfflineReport r = Offline(kBlock4);
  SCOPED_TRACE(ReportString(r));
  // The chain runs by descending priority and stops at the failure: KSM (100)
  // never sees GOING_OFFLINE; the error is returned (7.2 r11); CANCEL goes to
  // the whole chain, KSM unlocks only if held (7.3 r19).
  EXPECT_EQ(r.err, Errno::kENOMEM);
  EXPECT_THAT(Calls(r), ElementsAre("GOING_OFFLINE inject(200) ENOMEM",
                                    "CANCEL_OFFLINE inject(200) ok", "CANCEL_OFFLINE ksm(100) ok"));
  EXPECT_EQ(r.pages_migrated, 0u);
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOnline);
  ExpectKsmFree();
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  m_->ClearNotifierFailures();
  OfflineReport r2 = Offline(kBlock4);
  EXPECT_EQ(r2.err, Errno::kOk) << ReportString(r2);
  EXPECT_THAT(Calls(r2), ElementsAre("GOING_OFFLINE ksm(100) ok", "OFFLINE ksm(100) ok"));
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, VetoBelowPriority100KsmLockedThenReleasedByCancel) {
  Pair2 s = MergedPairOnNode1();
  ASSERT_TRUE(m_->InjectNotifierFailure(Event_::kGoingOffline, 50, Errno::kEBUSY, 0).ok());
  OfflineReport r = Offline(kBlock4);
  SCOPED_TRACE(ReportString(r));
  EXPECT_EQ(r.err, Errno::kEBUSY);
  // KSM (100) takes its lock at GOING, the injector (50) refuses, CANCEL goes
  // down the chain in the same order and KSM unlocks (7.3 r15, r17).
  EXPECT_THAT(Calls(r), ElementsAre("GOING_OFFLINE ksm(100) ok", "GOING_OFFLINE inject(50) EBUSY",
                                    "CANCEL_OFFLINE ksm(100) ok", "CANCEL_OFFLINE inject(50) ok"));
  EXPECT_EQ(Block(kBlock4).state, BlockState::kOnline);
  ExpectKsmFree();
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  EXPECT_EQ(PfnOf(s.b, s.vb), s.kpfn);
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, VetoWithCountOneIsUsedUp) {
  MergedPairOnNode1();
  ASSERT_TRUE(m_->InjectNotifierFailure(Event_::kGoingOffline, 50, Errno::kEBUSY, 1).ok());
  OfflineReport r = Offline(kBlock4);
  EXPECT_EQ(r.err, Errno::kEBUSY) << ReportString(r);
  ExpectKsmFree();
  OfflineReport r2 = Offline(kBlock4);
  EXPECT_EQ(r2.err, Errno::kOk) << ReportString(r2);
  EXPECT_EQ(r2.ksm_pages_migrated, 1u);
  ExpectKsmFree();
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, InjectWithoutErrnoIsMisuse) {
  auto st = m_->InjectNotifierFailure(Event_::kGoingOffline, 50, Errno::kOk, 1);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Scenarios 11-13 (the migration syscalls; details in migrate_test.cc).

TEST_F(HotplugTest, Scenario11MovePagesOnKsmPage) {
  Pair2 s = MergedPairOnNode1();
  // ks 10.11 / 6.2 r7-9: -ENOENT in both modes, not moved, call returns 0.
  auto q = Unwrap(m_->MovePages(s.a, s.a, {s.va}, {}, 0));
  EXPECT_EQ(q.err, Errno::kOk);
  EXPECT_THAT(q.status, ElementsAre(-2));
  auto mv = Unwrap(m_->MovePages(s.a, s.a, {s.va}, {0}, 2));
  EXPECT_EQ(mv.err, Errno::kOk);
  EXPECT_THAT(mv.status, ElementsAre(-2));
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, Scenario12MbindMoveStrictSkipsKsmPages) {
  Pair2 s = MergedPairOnNode1();
  Vaddr v2 = Map(s.a, 1);
  FillPage(s.a, v2, 0x77);
  ASSERT_EQ(Tr(s.a, v2).node, 1u);
  // ks 10.12 / 6.3 r11-13: BIND to node 0 with MOVE|STRICT over A's KSM page
  // and an ordinary page: the ordinary one moves, the KSM one stays; 0.
  EXPECT_EQ(Unwrap(m_->Mbind(s.a, s.va, kPageSize, MemPolicy::kBind, 1, 1 | 2)), Errno::kOk);
  EXPECT_EQ(Unwrap(m_->Mbind(s.a, v2, kPageSize, MemPolicy::kBind, 1, 1 | 2)), Errno::kOk);
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_EQ(Tr(s.a, v2).node, 0u);
  EXPECT_EQ(ReadPage(s.a, v2), Page(0x77));
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, Scenario13MigratePagesLeavesKsmPagesAndDoesNotCountThem) {
  Pair2 s = MergedPairOnNode1();
  Vaddr v2 = Map(s.a, 1);
  FillPage(s.a, v2, 0x77);
  auto r = Unwrap(m_->MigratePages(s.a, s.a, 1 << 1, 1 << 0));
  // ks 10.13 / 6.4 r15: KSM pages not moved and not counted.
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_EQ(r.not_migrated, 0u);
  EXPECT_EQ(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_EQ(Tr(s.a, v2).node, 0u);
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  EXPECT_TRUE(MachineOk());
}

// ---------------------------------------------------------------------------
// Scenario 17: during an offline.

TEST_F(HotplugTest, Scenario17DuringAnOffline) {
  Pair2 s = MergedPairOnNode1();
  OfflineReport p = Offline(kBlock4, Phase::kGoingOffline);
  ASSERT_TRUE(p.paused) << ReportString(p);
  // Reading counters works (ks 8.2 "reads of every file do not block").
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  // ks 8.3: MADV_MERGEABLE is not blocked.
  Pid c = NewProcess(0);
  Vaddr vc = Map(c, 1);
  FillPage(c, vc, 0x11);
  EXPECT_EQ(Madvise(c, vc, kPageSize, Advice::kMergeable), Errno::kOk);
  EXPECT_TRUE(Unwrap(m_->GetProcess(c)).ksm_registered);
  // ks 8.4 / SPEC Decision 5: MADV_UNMERGEABLE succeeds and breaks COW at once.
  EXPECT_EQ(Madvise(s.a, s.va, kPageSize, Advice::kUnmergeable), Errno::kOk);
  EXPECT_NE(PfnOf(s.a, s.va), s.kpfn);
  EXPECT_EQ(Tr(s.a, s.va).state, PageState::kAnon);
  EXPECT_EQ(Tr(s.a, s.va).node, 1u);
  EXPECT_NE(BlockId(PfnOf(s.a, s.va) / 64), kBlock4);  // isolated block unused
  EXPECT_EQ(ReadPage(s.a, s.va), Page(0x11));
  EXPECT_EQ(PfnOf(s.b, s.vb), s.kpfn);
  // ks 10.17: counters do not move until the offline ends.
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  // ks 8.2: `run` writes block (KSM_LOCKED); other knob writes do not.
  ExpectKsmLocked();
  auto k = m_->KsmUpdate(std::nullopt, 50, 30);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(*k, Errno::kOk);
  EXPECT_EQ(Unwrap(m_->KsmWriteSysfs("pages_to_scan", "60\n")), Errno::kOk);
  EXPECT_EQ(m_->GetKsm().pages_to_scan, 60u);
  EXPECT_EQ(m_->GetKsm().sleep_millisecs, 30u);
  EXPECT_EQ(m_->GetKsm().run, 1u);

  OfflineReport r = Resume(kBlock4);
  SCOPED_TRACE(ReportString(r));
  EXPECT_EQ(r.err, Errno::kOk);
  // B alone still maps the live KSM page: it migrates (7.2 r13).
  EXPECT_EQ(r.ksm_pages_migrated, 1u);
  EXPECT_EQ(r.stable_nodes_pruned, 0u);
  EXPECT_NE(PfnOf(s.b, s.vb), s.kpfn);
  EXPECT_EQ(Tr(s.b, s.vb).state, PageState::kKsm);
  EXPECT_EQ(ReadPage(s.b, s.vb), Page(0x11));
  // ks 10.17: "`echo 0 > run` blocks until the offline ends" - now it works.
  EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
  EXPECT_FALSE(m_->KsmLocked());
  EXPECT_FALSE(m_->GetKsm().locked_by_offline);
  SetRun(0);
  EXPECT_EQ(m_->GetKsm().run, 0u);
  EXPECT_TRUE(m_->KsmStepVisits(1).ok());
  EXPECT_TRUE(MachineOk());
}

// ---------------------------------------------------------------------------
// Online, add, remove; wrong-state transitions; one offline at a time.

TEST_F(HotplugTest, OnlineAfterOffline) {
  // ks 7.1 r2: onlining a block that is not offline -> EINVAL.
  EXPECT_EQ(Unwrap(m_->OnlineBlock(5)), Errno::kEINVAL);
  OfflineReport r = Offline(5);
  ASSERT_EQ(r.err, Errno::kOk) << ReportString(r);
  EXPECT_EQ(Block(5).state, BlockState::kOffline);
  EXPECT_EQ(Block(5).free_pages, 0u);
  // ks 7.1 r2: offlining an offline block -> EINVAL.
  EXPECT_EQ(Offline(5).err, Errno::kEINVAL);
  // ks 7.4 r20: online returns 0, pages freed into the allocator.
  EXPECT_EQ(Unwrap(m_->OnlineBlock(5)), Errno::kOk);
  EXPECT_EQ(Block(5).state, BlockState::kOnline);
  EXPECT_EQ(Block(5).free_pages, 64u);
  EXPECT_EQ(Unwrap(m_->OnlineBlock(5)), Errno::kEINVAL);
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, OnlinedBlockIsAllocatedFrom) {
  // Offline every block of node 1 but the last, then the last too.
  for (BlockId b = 4; b < 8; ++b) ASSERT_EQ(Offline(b).err, Errno::kOk);
  EXPECT_EQ(m_->Info().nodes[1].present_pages, 0u);
  // A node-1 process falls back to node 0 (node-id order).
  Pid p = NewProcess(1);
  Vaddr v = Map(p, 2);
  FillPage(p, v, 0x31);
  EXPECT_EQ(Tr(p, v).node, 0u);
  ASSERT_EQ(Unwrap(m_->OnlineBlock(6)), Errno::kOk);
  FillPage(p, v + kPageSize, 0x32);
  EXPECT_EQ(PfnOf(p, v + kPageSize), Block(6).start_pfn);
  EXPECT_EQ(ReadPage(p, v), Page(0x31));
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, AddBlockStartsOfflineAndCanBeOnlined) {
  BlockId nb = Unwrap(m_->AddBlock(1));
  EXPECT_EQ(nb, 8u);
  BlockInfo bi = Block(nb);
  EXPECT_EQ(bi.node, 1u);
  EXPECT_EQ(bi.start_pfn, 8u * 64);
  EXPECT_EQ(bi.pages, 64u);
  EXPECT_EQ(bi.state, BlockState::kOffline);  // ks 7.1: add_memory leaves it offline
  EXPECT_EQ(m_->ListBlocks().size(), 9u);
  EXPECT_EQ(Frame(bi.start_pfn).state, PageState::kOffline);
  // Make the new block the only memory of node 1, then online it.
  for (BlockId b = 4; b < 8; ++b) ASSERT_EQ(Offline(b).err, Errno::kOk);
  EXPECT_EQ(Unwrap(m_->OnlineBlock(nb)), Errno::kOk);
  EXPECT_EQ(Block(nb).state, BlockState::kOnline);
  Pid p = NewProcess(1);
  Vaddr v = Map(p, 1);
  FillPage(p, v, 0x5a);
  EXPECT_EQ(PfnOf(p, v), bi.start_pfn);
  EXPECT_EQ(Tr(p, v).node, 1u);
  EXPECT_EQ(ReadPage(p, v), Page(0x5a));
  // The new block can be offlined again; its page moves to node 0.
  OfflineReport r = Offline(nb);
  EXPECT_EQ(r.err, Errno::kOk) << ReportString(r);
  EXPECT_EQ(r.pages_migrated, 1u);
  EXPECT_EQ(Tr(p, v).node, 0u);
  EXPECT_EQ(ReadPage(p, v), Page(0x5a));
  // Bad node.
  EXPECT_FALSE(m_->AddBlock(2).ok());
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, RemoveBlockOnlyWhenOffline) {
  EXPECT_EQ(Unwrap(m_->RemoveBlock(5)), Errno::kEBUSY);
  OfflineReport p = Offline(5, Phase::kIsolated);
  ASSERT_TRUE(p.paused);
  EXPECT_EQ(Unwrap(m_->RemoveBlock(5)), Errno::kEBUSY);  // going-offline
  ASSERT_TRUE(m_->CancelOffline(5).ok());
  ASSERT_EQ(Offline(5).err, Errno::kOk);
  EXPECT_EQ(Unwrap(m_->RemoveBlock(5)), Errno::kOk);
  EXPECT_EQ(Block(5).state, BlockState::kRemoved);
  EXPECT_FALSE(m_->RemoveBlock(99).ok());
  EXPECT_TRUE(MachineOk());
}

TEST_F(HotplugTest, SecondOfflineWhileOneIsPaused) {
  OfflineReport p = Offline(5, Phase::kGoingOffline);
  ASSERT_TRUE(p.paused);
  OfflineOptions o;
  auto r = m_->OfflineBlock(6, o, kT0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_EQ(ErrorReason(r.status()), "OFFLINE_IN_PROGRESS");
  EXPECT_EQ(Block(6).state, BlockState::kOnline);
  // Resume of another block is refused too; the paused one finishes.
  EXPECT_EQ(m_->ResumeOffline(6, std::nullopt, kT0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Resume(5).err, Errno::kOk);
  EXPECT_EQ(Offline(6).err, Errno::kOk);
  EXPECT_FALSE(m_->OfflineBlock(99, o, kT0).ok());
  ExpectKsmFree();
  EXPECT_TRUE(MachineOk());
}

}  // namespace
}  // namespace memnode
