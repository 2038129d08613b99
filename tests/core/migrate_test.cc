// NUMA policy and page migration tests against shared/kernel-semantics.md
// section 6 (6.1 migrate_pages core, 6.2 move_pages, 6.3 mbind, 6.4
// migrate_pages(2)) and section 10 scenarios 11-13. Expected values are worked
// out by hand from the reference; comments cite it ("ks 6.2 r7" = section 6.2
// rule 7). SPEC Decision 3: no hidden pins, pins only when a test asks.
//
// Machine: 2 nodes x 4 blocks x 64 pages; node 0 = pfns 0..255 (pfn 0 is the
// zero page), node 1 = pfns 256..511. Processes allocate on their home node
// (default 0) with fallback in node-id order; policies override that.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/machine.h"
#include "server/core/status.h"
#include "server/core/types.h"
#include "tests/testing/machine_fixture.h"

namespace memnode {
namespace {

using ::memnode::testing::Unwrap;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint32_t kStrict = 1, kMove = 2, kMoveAll = 4;
// -errno values of move_pages statuses (Linux x86_64).
constexpr int32_t kENOENT = -2, kEFAULT = -14, kEACCES = -13, kEBUSY = -16, kEAGAIN = -11;
constexpr uint64_t kNode0 = 1, kNode1 = 2;  // node masks

// The shared fixture (tests/testing/machine_fixture.h) plus the NUMA calls
// and a standard layout.
class MigrateTest : public memnode::testing::SmallMachineTest {
 protected:
  Errno Mbind(Pid pid, Vaddr addr, uint64_t len, MemPolicy::Mode mode, uint64_t nodes,
              uint32_t flags) {
    auto r = m_->Mbind(pid, addr, len, mode, nodes, flags);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : Errno::kOk;
  }
  MovePagesResult MovePages(Pid caller, Pid target, const std::vector<Vaddr>& a,
                            const std::vector<int32_t>& n, uint32_t flags) {
    return Unwrap(m_->MovePages(caller, target, a, n, flags));
  }
  MigratePagesResult MigratePages(Pid caller, Pid target, uint64_t from, uint64_t to) {
    return Unwrap(m_->MigratePages(caller, target, from, to));
  }
  void OfflineNode1() {
    for (BlockId b = 4; b < 8; ++b) {
      auto r = m_->OfflineBlock(b, OfflineOptions{}, absl::FromUnixSeconds(1));
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->err, Errno::kOk) << r->failure;
    }
  }

  // The standard layout (all on node 0):
  //   A: vma1 at 0x10000000, 4 pages: p0 = 0x11 (mergeable, merged with B's
  //      page -> KSM), p1 = 0x22 private, p2 = zero page (read), p3 untouched;
  //      vma2 at 0x20000000, 1 page 0x33 shared with child C after fork.
  //   B: one page 0x11 mergeable.
  // Pfns: A.p0 = 1, A.p1 = 2, A.vma2 = 3, B = 4; after two passes the KSM
  // page is B's pfn 4 (ks 10.1: later-visited page survives).
  static constexpr Vaddr kV1 = 0x10000000, kV2 = 0x20000000;
  struct Layout {
    Pid a = 0, b = 0, c = 0;
    Pfn kpfn = kNoPfn;
  };
  Layout Standard() {
    Layout l;
    l.a = NewProcess(0);
    EXPECT_EQ(Map(l.a, 4, kV1), kV1);
    EXPECT_EQ(Map(l.a, 1, kV2), kV2);
    FillPage(l.a, kV1, 0x11);
    FillPage(l.a, kV1 + kPageSize, 0x22);
    FillPage(l.a, kV2, 0x33);
    EXPECT_TRUE(m_->Touch(l.a, kV1 + 2 * kPageSize, 1).ok());
    EXPECT_EQ(Madvise(l.a, kV1, kPageSize, Advice::kMergeable), Errno::kOk);
    l.b = NewProcess(0);
    Vaddr vb = Map(l.b, 1, kV1);
    FillPage(l.b, vb, 0x11);
    EXPECT_EQ(Madvise(l.b, vb, kPageSize, Advice::kMergeable), Errno::kOk);
    SetRun(1);
    StepPasses(2);
    EXPECT_TRUE(SharedSharing(1, 1));
    l.kpfn = PfnOf(l.b, kV1);
    EXPECT_EQ(PfnOf(l.a, kV1), l.kpfn);
    EXPECT_EQ(Tr(l.a, kV1).state, PageState::kKsm);
    // Fork: C shares every page of A; C then writes its own p1 so that A's p1
    // is mapped once again while vma2's page stays mapped twice.
    l.c = Unwrap(m_->Fork(l.a));
    FillPage(l.c, kV1 + kPageSize, 0x44);
    EXPECT_EQ(Unwrap(m_->GetFrame(PfnOf(l.a, kV1 + kPageSize))).mapcount, 1);
    EXPECT_EQ(Unwrap(m_->GetFrame(PfnOf(l.a, kV2))).mapcount, 2);
    EXPECT_TRUE(MachineOk());
    return l;
  }
};

// ---------------------------------------------------------------------------
// move_pages(2)

TEST_F(MigrateTest, MovePagesQueryStatuses) {
  Layout l = Standard();
  std::vector<Vaddr> addrs = {
      kV1,                      // KSM page
      kV1 + kPageSize,          // private page on node 0
      kV1 + 2 * kPageSize,      // zero page
      kV1 + 3 * kPageSize,      // populated? no: never touched
      kV2,                      // page mapped twice, node 0
      0x18000000,               // gap below vma2
      0x30000000,               // above every vma
      0x1000,                   // below the lowest vma
      kV1 + kPageSize + 0xabc,  // unaligned address inside p1
  };
  auto r = MovePages(l.a, l.a, addrs, {}, 0);
  EXPECT_EQ(r.err, Errno::kOk);
  // ks 6.2 r7 / 10.11: KSM -ENOENT, private page its node (0), zero page
  // -ENOENT, unpopulated -ENOENT, shared page its node, gap below a vma
  // -ENOENT (the seed's quirk), above every vma -EFAULT.
  EXPECT_THAT(r.status, ElementsAre(kENOENT, 0, kENOENT, kENOENT, 0, kENOENT, kEFAULT, kENOENT, 0));
  // Query never moves anything.
  EXPECT_EQ(PfnOf(l.a, kV1), l.kpfn);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MovePagesMoveModeStatuses) {
  Layout l = Standard();
  const Pfn p1_before = PfnOf(l.a, kV1 + kPageSize);
  const Pfn shared_before = PfnOf(l.a, kV2);
  std::vector<Vaddr> addrs = {kV1, kV1 + kPageSize, kV1 + 2 * kPageSize, kV1 + 3 * kPageSize,
                              kV2, 0x18000000,      0x30000000,          0x1000};
  std::vector<int32_t> nodes(addrs.size(), 1);
  auto r = MovePages(l.a, l.a, addrs, nodes, kMove);
  // ks 6.2 r8 / 10.11: KSM -ENOENT (never moves), private page moved (status
  // = destination node 1), zero page -ENOENT, unpopulated -ENOENT, mapped
  // twice without MOVE_ALL -EACCES, gap below a vma: find_vma finds vma2,
  // no page there -> -ENOENT, above every vma -EFAULT; the call returns 0.
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_THAT(r.status,
              ElementsAre(kENOENT, 1, kENOENT, kENOENT, kEACCES, kENOENT, kEFAULT, kENOENT));
  EXPECT_EQ(PfnOf(l.a, kV1), l.kpfn);
  EXPECT_EQ(Tr(l.a, kV1).node, 0u);
  EXPECT_EQ(NodeOf(l.a, kV1 + kPageSize), 1u);
  EXPECT_NE(PfnOf(l.a, kV1 + kPageSize), p1_before);
  EXPECT_EQ(ReadPage(l.a, kV1 + kPageSize), Page(0x22));
  EXPECT_EQ(PfnOf(l.a, kV2), shared_before);
  EXPECT_TRUE(SharedSharing(1, 1));
  // Already on the target node: status = node id, nothing moves.
  const Pfn moved = PfnOf(l.a, kV1 + kPageSize);
  auto again = MovePages(l.a, l.a, {kV1 + kPageSize}, {1}, kMove);
  EXPECT_EQ(again.err, Errno::kOk);
  EXPECT_THAT(again.status, ElementsAre(1));
  EXPECT_EQ(PfnOf(l.a, kV1 + kPageSize), moved);
  // Move it back to node 0.
  auto back = MovePages(l.a, l.a, {kV1 + kPageSize}, {0}, kMove);
  EXPECT_THAT(back.status, ElementsAre(0));
  EXPECT_EQ(NodeOf(l.a, kV1 + kPageSize), 0u);
  EXPECT_EQ(ReadPage(l.a, kV1 + kPageSize), Page(0x22));
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MovePagesMoveAllByPrivilegedCallerMovesSharedPage) {
  Layout l = Standard();
  Pid root = NewProcess(0, 0, /*privileged=*/true);
  auto r = MovePages(root, l.a, {kV2, kV1}, {1, 1}, kMoveAll);
  // ks 6.2 r8: MOVE_ALL lifts the mapcount > 1 restriction; KSM still -ENOENT.
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_THAT(r.status, ElementsAre(1, kENOENT));
  EXPECT_EQ(NodeOf(l.a, kV2), 1u);
  // Every mapping follows the page (the child's too).
  EXPECT_EQ(PfnOf(l.c, kV2), PfnOf(l.a, kV2));
  EXPECT_EQ(ReadPage(l.c, kV2), Page(0x33));
  EXPECT_EQ(PfnOf(l.a, kV1), l.kpfn);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MovePagesPinnedPageAndDuplicateEntries) {
  Pid a = NewProcess(0);
  Vaddr v = Map(a, 2);
  FillPage(a, v, 0x01, 2);
  ASSERT_EQ(Unwrap(m_->Pin(a, v, kPageSize)).err, Errno::kOk);
  // ks 6.1 r2-4: a pinned page keeps failing -EAGAIN for 10 passes; the
  // status is the failure code; the call still returns 0 (ks 6.2 r8).
  // The second page listed twice: the first entry isolates it, the second
  // meets an isolated page -> -EBUSY (LRU isolation failure).
  auto r = MovePages(a, a, {v, v + kPageSize, v + kPageSize}, {1, 1, 1}, kMove);
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_THAT(r.status, ElementsAre(kEAGAIN, 1, kEBUSY));
  EXPECT_EQ(NodeOf(a, v), 0u);
  EXPECT_EQ(NodeOf(a, v + kPageSize), 1u);
  EXPECT_EQ(ReadPage(a, v), Page(0x01));
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MovePagesWholeCallErrors) {
  Pid a = NewProcess(0, /*uid=*/100);
  Vaddr v = Map(a, 1);
  FillPage(a, v, 0x01);
  Pid other = NewProcess(0, /*uid=*/200);
  Pid root = NewProcess(0, /*uid=*/300, /*privileged=*/true);
  // ks 6.2 r6: flags other than MOVE|MOVE_ALL -> EINVAL.
  EXPECT_EQ(MovePages(a, a, {v}, {1}, kStrict).err, Errno::kEINVAL);
  EXPECT_EQ(MovePages(a, a, {v}, {1}, 8).err, Errno::kEINVAL);
  // MOVE_ALL without CAP_SYS_NICE -> EPERM.
  EXPECT_EQ(MovePages(a, a, {v}, {1}, kMoveAll).err, Errno::kEPERM);
  // Unknown pid -> ESRCH.
  EXPECT_EQ(MovePages(a, 9999, {v}, {1}, kMove).err, Errno::kESRCH);
  EXPECT_EQ(MovePages(a, 9999, {v}, {}, 0).err, Errno::kESRCH);
  // uid mismatch without CAP_SYS_NICE -> EPERM, in both modes.
  EXPECT_EQ(MovePages(other, a, {v}, {1}, kMove).err, Errno::kEPERM);
  EXPECT_EQ(MovePages(other, a, {v}, {}, 0).err, Errno::kEPERM);
  EXPECT_EQ(NodeOf(a, v), 0u);
  // ks 6.2 r8: a node out of range -> ENODEV (the range check).
  auto bad = MovePages(a, a, {v}, {5}, kMove);
  EXPECT_EQ(bad.err, Errno::kENODEV);
  auto neg = MovePages(a, a, {v}, {-1}, kMove);
  EXPECT_EQ(neg.err, Errno::kENODEV);
  EXPECT_EQ(NodeOf(a, v), 0u);
  // A privileged caller may move another uid's pages.
  auto ok = MovePages(root, a, {v}, {1}, kMove);
  EXPECT_EQ(ok.err, Errno::kOk);
  EXPECT_THAT(ok.status, ElementsAre(1));
  EXPECT_EQ(NodeOf(a, v), 1u);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MovePagesToNodeWithoutMemoryIsEnodev) {
  Pid a = NewProcess(0);
  Vaddr v = Map(a, 1);
  FillPage(a, v, 0x01);
  OfflineNode1();
  // ks 6.2 r8 / 10.11: node without memory -> whole call ENODEV, the chunk's
  // statuses not written, nothing moved.
  auto r = MovePages(a, a, {v}, {1}, kMove);
  EXPECT_EQ(r.err, Errno::kENODEV);
  EXPECT_THAT(r.status, IsEmpty());
  EXPECT_EQ(NodeOf(a, v), 0u);
  // Query mode reads no node list: unaffected.
  auto q = MovePages(a, a, {v}, {}, 0);
  EXPECT_EQ(q.err, Errno::kOk);
  EXPECT_THAT(q.status, ElementsAre(0));
  EXPECT_TRUE(MachineOk());
}

// ---------------------------------------------------------------------------
// mbind(2)

TEST_F(MigrateTest, MbindMoveStrictMovesOrdinaryPagesKsmPagesStay) {
  Layout l = Standard();
  // Range: vma1 (KSM p0, private p1, zero page p2, untouched p3).
  const Pfn p1_before = PfnOf(l.a, kV1 + kPageSize);
  EXPECT_EQ(Mbind(l.a, kV1, 4 * kPageSize, MemPolicy::kBind, kNode1, kMove | kStrict), Errno::kOk);
  // ks 10.12 / 6.3 r11-13: p1 (mapcount 1) migrates to node 1; the KSM page
  // is skipped entirely and stays on node 0; return 0.
  EXPECT_EQ(NodeOf(l.a, kV1 + kPageSize), 1u);
  EXPECT_NE(PfnOf(l.a, kV1 + kPageSize), p1_before);
  EXPECT_EQ(ReadPage(l.a, kV1 + kPageSize), Page(0x22));
  EXPECT_EQ(PfnOf(l.a, kV1), l.kpfn);
  EXPECT_EQ(NodeOf(l.a, kV1), 0u);
  EXPECT_EQ(Tr(l.a, kV1).state, PageState::kKsm);
  EXPECT_EQ(PfnOf(l.b, kV1), l.kpfn);
  EXPECT_TRUE(SharedSharing(1, 1));
  // The policy is applied to the range (ks 6.3 r12).
  auto pol = Unwrap(m_->GetMempolicy(l.a, kV1, false));
  EXPECT_EQ(pol.err, Errno::kOk);
  EXPECT_EQ(pol.policy.mode, MemPolicy::kBind);
  EXPECT_EQ(pol.policy.nodes, kNode1);
  // STRICT alone over the same range: only the KSM page is misplaced -> 0
  // (ks 6.3 r11: KSM pages never cause EIO).
  EXPECT_EQ(Mbind(l.a, kV1, 4 * kPageSize, MemPolicy::kBind, kNode1, kStrict), Errno::kOk);
  // STRICT alone over vma2, whose (non-KSM) page is on node 0 -> EIO.
  EXPECT_EQ(Mbind(l.a, kV2, kPageSize, MemPolicy::kBind, kNode1, kStrict), Errno::kEIO);
  EXPECT_EQ(NodeOf(l.a, kV2), 0u);
  // The walk failed before the policy was applied (ks 6.3 r11 before r12).
  auto pol2 = Unwrap(m_->GetMempolicy(l.a, kV2, false));
  EXPECT_EQ(pol2.policy.mode, MemPolicy::kDefault);
  // STRICT alone with the page's own node allowed: nothing misplaced -> 0.
  EXPECT_EQ(Mbind(l.a, kV2, kPageSize, MemPolicy::kBind, kNode0 | kNode1, kStrict), Errno::kOk);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MbindMoveLeavesSharedPagesMoveAllMovesThem) {
  Layout l = Standard();
  // vma2's page is mapped by A and C: MOVE skips it silently; with STRICT
  // that is not a failure (ks 6.3 r11: "shared pages are silently left").
  EXPECT_EQ(Mbind(l.a, kV2, kPageSize, MemPolicy::kBind, kNode1, kMove | kStrict), Errno::kOk);
  EXPECT_EQ(NodeOf(l.a, kV2), 0u);
  // MOVE_ALL without CAP_SYS_NICE -> EPERM (ks 6.3 r10).
  EXPECT_EQ(Mbind(l.a, kV2, kPageSize, MemPolicy::kBind, kNode1, kMoveAll), Errno::kEPERM);
  // A privileged process (forked from a privileged parent) may MOVE_ALL.
  Pid root = NewProcess(0, 0, true);
  Vaddr v = Map(root, 1);
  FillPage(root, v, 0x66);
  Pid child = Unwrap(m_->Fork(root));
  EXPECT_EQ(Mbind(root, v, kPageSize, MemPolicy::kBind, kNode1, kMove | kStrict), Errno::kOk);
  EXPECT_EQ(NodeOf(root, v), 0u);
  EXPECT_EQ(Mbind(root, v, kPageSize, MemPolicy::kBind, kNode1, kMoveAll | kStrict), Errno::kOk);
  EXPECT_EQ(NodeOf(root, v), 1u);
  EXPECT_EQ(PfnOf(child, v), PfnOf(root, v));
  EXPECT_EQ(ReadPage(child, v), Page(0x66));
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MbindValidation) {
  Pid a = NewProcess(0);
  Vaddr v = Map(a, 3, 0x10000000);
  Map(a, 1, 0x10010000);  // a hole between 0x10003000 and 0x10010000
  FillPage(a, v, 0x01);
  // ks 6.3 r10.
  EXPECT_EQ(Mbind(a, v, kPageSize, MemPolicy::kBind, kNode1, 8), Errno::kEINVAL);
  EXPECT_EQ(Mbind(a, v, kPageSize, MemPolicy::kBind, kNode1, kMoveAll), Errno::kEPERM);
  EXPECT_EQ(Mbind(a, v + 1, kPageSize, MemPolicy::kBind, kNode1, 0), Errno::kEINVAL);
  EXPECT_EQ(Mbind(a, v, 0, MemPolicy::kBind, kNode1, kMove), Errno::kOk);  // zero length
  EXPECT_EQ(Mbind(a, v, kPageSize, MemPolicy::kBind, 0, 0), Errno::kEINVAL);
  EXPECT_EQ(Mbind(a, v, kPageSize, MemPolicy::kInterleave, 0, 0), Errno::kEINVAL);
  EXPECT_EQ(Mbind(a, v, kPageSize, MemPolicy::kDefault, kNode1, 0), Errno::kEINVAL);
  EXPECT_EQ(Mbind(a, v, kPageSize, static_cast<MemPolicy::Mode>(9), kNode1, 0), Errno::kEINVAL);
  EXPECT_EQ(Mbind(a, v, kPageSize, MemPolicy::kBind, uint64_t{1} << 5, 0), Errno::kEINVAL);
  // ks 6.3 r11: the range must be covered by vmas unless MPOL_DEFAULT.
  EXPECT_EQ(Mbind(a, v, 0x11000, MemPolicy::kBind, kNode1, 0), Errno::kEFAULT);
  EXPECT_EQ(Mbind(a, v, 0x11000, MemPolicy::kDefault, 0, kStrict), Errno::kOk);
  // Nothing moved by any of these.
  EXPECT_EQ(NodeOf(a, v), 0u);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MbindPolicyAppliesOnlyToTheRange) {
  Pid a = NewProcess(0);
  Vaddr v = Map(a, 4, 0x10000000);
  // ks 6.3 r12: the policy is applied to the range, splitting the vma; the
  // rest of the vma keeps no policy (the kernel merges vmas only when their
  // policies are equal, mpol_equal in vma_merge).
  EXPECT_EQ(Mbind(a, v, 2 * kPageSize, MemPolicy::kBind, kNode1, 0), Errno::kOk);
  EXPECT_EQ(Unwrap(m_->GetMempolicy(a, v, false)).policy.mode, MemPolicy::kBind);
  EXPECT_EQ(Unwrap(m_->GetMempolicy(a, v + 2 * kPageSize, false)).policy.mode, MemPolicy::kDefault);
  FillPage(a, v, 0x01, 4);
  EXPECT_EQ(NodeOf(a, v), 1u);
  EXPECT_EQ(NodeOf(a, v + 2 * kPageSize), 0u);  // default: home node 0
  EXPECT_EQ(NodeOf(a, v + 3 * kPageSize), 0u);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MbindPolicyGovernsLaterFaults) {
  Pid a = NewProcess(0);
  Vaddr v = Map(a, 4, 0x10000000);  // vpn 0x10000 is even
  // No MOVE: only the policy (ks 6.3 r12).
  EXPECT_EQ(Mbind(a, v, 2 * kPageSize, MemPolicy::kBind, kNode1, 0), Errno::kOk);
  EXPECT_EQ(Mbind(a, v + 2 * kPageSize, 2 * kPageSize, MemPolicy::kInterleave, kNode0 | kNode1, 0),
            Errno::kOk);
  FillPage(a, v, 0x01, 4);
  EXPECT_EQ(NodeOf(a, v), 1u);
  EXPECT_EQ(NodeOf(a, v + kPageSize), 1u);
  // Interleave: (address >> 12) mod 2 -> nth node of the mask.
  EXPECT_EQ(NodeOf(a, v + 2 * kPageSize), 0u);  // vpn 0x10002
  EXPECT_EQ(NodeOf(a, v + 3 * kPageSize), 1u);  // vpn 0x10003
  auto pol = Unwrap(m_->GetMempolicy(a, v + 3 * kPageSize, true));
  EXPECT_EQ(pol.policy.mode, MemPolicy::kInterleave);
  EXPECT_EQ(pol.policy.nodes, kNode0 | kNode1);
  EXPECT_EQ(pol.node, 1);
  // The task policy is untouched.
  EXPECT_EQ(Unwrap(m_->GetMempolicy(a, std::nullopt, false)).policy.mode, MemPolicy::kDefault);
  EXPECT_TRUE(MachineOk());
}

// ---------------------------------------------------------------------------
// migrate_pages(2)

TEST_F(MigrateTest, MigratePagesRoundTripsNeverMoveMergedPages) {
  Layout l = Standard();
  // A: KSM p0, private p1, zero page p2, vma2 shared with C. Unprivileged
  // caller: MOVE, so the page mapped twice stays (ks 6.4 r15).
  for (int round = 0; round < 3; ++round) {
    auto to1 = MigratePages(l.a, l.a, kNode0, kNode1);
    EXPECT_EQ(to1.err, Errno::kOk);
    EXPECT_EQ(to1.not_migrated, 0u);  // ks 10.13: KSM not counted
    EXPECT_EQ(NodeOf(l.a, kV1 + kPageSize), 1u);
    EXPECT_EQ(NodeOf(l.a, kV2), 0u);
    EXPECT_EQ(PfnOf(l.a, kV1), l.kpfn);
    auto to0 = MigratePages(l.a, l.a, kNode1, kNode0);
    EXPECT_EQ(to0.err, Errno::kOk);
    EXPECT_EQ(to0.not_migrated, 0u);
    EXPECT_EQ(NodeOf(l.a, kV1 + kPageSize), 0u);
    EXPECT_EQ(PfnOf(l.a, kV1), l.kpfn);
  }
  EXPECT_EQ(Tr(l.a, kV1 + 2 * kPageSize).pfn, 0u);  // zero page untouched
  EXPECT_EQ(ReadPage(l.a, kV1), Page(0x11));
  EXPECT_EQ(ReadPage(l.a, kV1 + kPageSize), Page(0x22));
  EXPECT_EQ(ReadPage(l.c, kV1 + kPageSize), Page(0x44));
  EXPECT_TRUE(SharedSharing(1, 1));
  // KSM still works on the node: counters unchanged after a pass.
  StepPasses(1);
  EXPECT_TRUE(SharedSharing(1, 2));  // ks 5.2 r7: C's fork-inherited mapping counted
  EXPECT_EQ(PfnOf(l.a, kV1), l.kpfn);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MigratePagesPrivilegedMovesSharedPages) {
  Layout l = Standard();
  Pid root = NewProcess(0, 0, true);
  auto r = MigratePages(root, l.a, kNode0, kNode1);
  // ks 6.4 r15: MOVE_ALL for a privileged caller: the shared page moves too;
  // the KSM page is skipped silently.
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_EQ(r.not_migrated, 0u);
  EXPECT_EQ(NodeOf(l.a, kV2), 1u);
  EXPECT_EQ(PfnOf(l.c, kV2), PfnOf(l.a, kV2));
  EXPECT_EQ(NodeOf(l.a, kV1 + kPageSize), 1u);
  EXPECT_EQ(PfnOf(l.a, kV1), l.kpfn);
  EXPECT_EQ(NodeOf(l.c, kV1 + kPageSize), 0u);  // C's own page: other process
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MigratePagesCountsPinnedPagesNotMigrated) {
  Pid a = NewProcess(0);
  Vaddr v = Map(a, 3);
  FillPage(a, v, 0x01, 3);
  ASSERT_EQ(Unwrap(m_->Pin(a, v + kPageSize, kPageSize)).err, Errno::kOk);
  auto r = MigratePages(a, a, kNode0, kNode1);
  // ks 6.1 r3: the pinned page still wants a retry after 10 passes -> 1.
  EXPECT_EQ(r.err, Errno::kOk);
  EXPECT_EQ(r.not_migrated, 1u);
  EXPECT_EQ(NodeOf(a, v), 1u);
  EXPECT_EQ(NodeOf(a, v + kPageSize), 0u);
  EXPECT_EQ(NodeOf(a, v + 2 * kPageSize), 1u);
  // Nothing on node 1 to move back from? All but the pinned page.
  auto back = MigratePages(a, a, kNode1, kNode0);
  EXPECT_EQ(back.not_migrated, 0u);
  EXPECT_EQ(NodeOf(a, v), 0u);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MigratePagesPermissions) {
  Pid a = NewProcess(0, 100);
  Vaddr v = Map(a, 1);
  FillPage(a, v, 0x01);
  Pid other = NewProcess(0, 200);
  Pid root = NewProcess(0, 300, true);
  // ks 6.4 r14.
  EXPECT_EQ(MigratePages(a, 9999, kNode0, kNode1).err, Errno::kESRCH);
  EXPECT_EQ(MigratePages(other, a, kNode0, kNode1).err, Errno::kEPERM);
  EXPECT_EQ(NodeOf(a, v), 0u);
  auto ok = MigratePages(root, a, kNode0, kNode1);
  EXPECT_EQ(ok.err, Errno::kOk);
  EXPECT_EQ(ok.not_migrated, 0u);
  EXPECT_EQ(NodeOf(a, v), 1u);
  // target 0 = the caller itself.
  auto self = MigratePages(a, 0, kNode1, kNode0);
  EXPECT_EQ(self.err, Errno::kOk);
  EXPECT_EQ(NodeOf(a, v), 0u);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, MigratePagesToNodeWithoutMemoryIsEinval) {
  Pid a = NewProcess(0);
  Vaddr v = Map(a, 1);
  FillPage(a, v, 0x01);
  OfflineNode1();
  // ks 6.4 r14: new nodes without memory -> EINVAL.
  EXPECT_EQ(MigratePages(a, a, kNode0, kNode1).err, Errno::kEINVAL);
  EXPECT_EQ(NodeOf(a, v), 0u);
  EXPECT_TRUE(MachineOk());
}

// ---------------------------------------------------------------------------
// set_mempolicy / get_mempolicy and allocation by policy

TEST_F(MigrateTest, SetMempolicyValidation) {
  Pid a = NewProcess(0);
  auto set = [&](MemPolicy::Mode m, uint64_t n) { return Unwrap(m_->SetMempolicy(a, m, n)); };
  EXPECT_EQ(set(MemPolicy::kDefault, 0), Errno::kOk);
  EXPECT_EQ(set(MemPolicy::kDefault, kNode1), Errno::kEINVAL);
  EXPECT_EQ(set(MemPolicy::kBind, 0), Errno::kEINVAL);
  EXPECT_EQ(set(MemPolicy::kInterleave, 0), Errno::kEINVAL);
  EXPECT_EQ(set(MemPolicy::kPreferred, 0), Errno::kOk);  // preferred local
  EXPECT_EQ(set(static_cast<MemPolicy::Mode>(7), kNode0), Errno::kEINVAL);
  EXPECT_EQ(set(MemPolicy::kBind, uint64_t{1} << 2), Errno::kEINVAL);  // no node 2
  EXPECT_EQ(set(MemPolicy::kBind, kNode1), Errno::kOk);
  auto g = Unwrap(m_->GetMempolicy(a, std::nullopt, false));
  EXPECT_EQ(g.err, Errno::kOk);
  EXPECT_EQ(g.policy.mode, MemPolicy::kBind);
  EXPECT_EQ(g.policy.nodes, kNode1);
  // A failed call leaves the policy as it was.
  EXPECT_EQ(set(MemPolicy::kInterleave, 0), Errno::kEINVAL);
  EXPECT_EQ(Unwrap(m_->GetMempolicy(a, std::nullopt, false)).policy.mode, MemPolicy::kBind);
  // get_mempolicy with an address outside every vma -> EFAULT; node of
  // address without an address -> EINVAL.
  EXPECT_EQ(Unwrap(m_->GetMempolicy(a, 0x5000, false)).err, Errno::kEFAULT);
  EXPECT_EQ(Unwrap(m_->GetMempolicy(a, std::nullopt, true)).err, Errno::kEINVAL);
  EXPECT_FALSE(m_->SetMempolicy(9999, MemPolicy::kDefault, 0).ok());
}

TEST_F(MigrateTest, BindAllocatesOnlyInsideTheMask) {
  Pid a = NewProcess(0);
  ASSERT_EQ(Unwrap(m_->SetMempolicy(a, MemPolicy::kBind, kNode1)), Errno::kOk);
  Vaddr v = Map(a, 257);
  FillPage(a, v, 0x01, 256);  // node 1 has exactly 256 pages
  EXPECT_EQ(NodeOf(a, v), 1u);
  EXPECT_EQ(NodeOf(a, v + 255 * kPageSize), 1u);
  EXPECT_EQ(m_->Info().nodes[1].free_pages, 0u);
  // BIND never falls back: the next fault fails ENOMEM.
  auto w = Unwrap(m_->Write(a, v + 256 * kPageSize, reinterpret_cast<const uint8_t*>("x"), 1));
  EXPECT_EQ(w.err, Errno::kENOMEM);
  // PREFERRED node 1 falls back to node 0 when node 1 is full.
  Pid b = NewProcess(0);
  ASSERT_EQ(Unwrap(m_->SetMempolicy(b, MemPolicy::kPreferred, kNode1)), Errno::kOk);
  Vaddr vb = Map(b, 1);
  FillPage(b, vb, 0x02);
  EXPECT_EQ(NodeOf(b, vb), 0u);
  // DEFAULT: home node, fallback in node-id order.
  Pid c = NewProcess(1);
  Vaddr vc = Map(c, 1);
  FillPage(c, vc, 0x03);
  EXPECT_EQ(NodeOf(c, vc), 0u);
  EXPECT_TRUE(MachineOk());
}

TEST_F(MigrateTest, PreferredAndDefaultFollowTheirNode) {
  Pid a = NewProcess(0);
  ASSERT_EQ(Unwrap(m_->SetMempolicy(a, MemPolicy::kPreferred, kNode1)), Errno::kOk);
  Vaddr v = Map(a, 1);
  FillPage(a, v, 0x01);
  EXPECT_EQ(NodeOf(a, v), 1u);
  Pid b = NewProcess(1);
  Vaddr vb = Map(b, 1);
  FillPage(b, vb, 0x02);
  EXPECT_EQ(NodeOf(b, vb), 1u);
  // Preferred with an empty mask = local (the home node).
  ASSERT_EQ(Unwrap(m_->SetMempolicy(b, MemPolicy::kPreferred, 0)), Errno::kOk);
  Vaddr vb2 = Map(b, 1);
  FillPage(b, vb2, 0x03);
  EXPECT_EQ(NodeOf(b, vb2), 1u);
  auto g = Unwrap(m_->GetMempolicy(a, v, true));
  EXPECT_EQ(g.node, 1);
}

TEST_F(MigrateTest, InterleaveByPageOffset) {
  Pid a = NewProcess(0);
  ASSERT_EQ(Unwrap(m_->SetMempolicy(a, MemPolicy::kInterleave, kNode0 | kNode1)), Errno::kOk);
  // vpn of 0x10001000 is 0x10001 (odd): nodes 1, 0, 1, 0.
  Vaddr v = Map(a, 4, 0x10001000);
  FillPage(a, v, 0x01, 4);
  EXPECT_EQ(NodeOf(a, v), 1u);
  EXPECT_EQ(NodeOf(a, v + kPageSize), 0u);
  EXPECT_EQ(NodeOf(a, v + 2 * kPageSize), 1u);
  EXPECT_EQ(NodeOf(a, v + 3 * kPageSize), 0u);
  // Mask of one node: every page there.
  ASSERT_EQ(Unwrap(m_->SetMempolicy(a, MemPolicy::kInterleave, kNode1)), Errno::kOk);
  Vaddr w = Map(a, 2, 0x20000000);
  FillPage(a, w, 0x02, 2);
  EXPECT_EQ(NodeOf(a, w), 1u);
  EXPECT_EQ(NodeOf(a, w + kPageSize), 1u);
  EXPECT_TRUE(MachineOk());
}

TEST(MigrateInterleaveTest, ThreeNodesMaskOfTwo) {
  auto m = memnode::testing::SmallMachine(3, 2, 64);
  Pid a = Unwrap(m->CreateProcess(ProcessParams{}));
  // Mask {0, 2}: (address >> 12) mod 2 picks the 0th (node 0) or 1st (node 2).
  ASSERT_EQ(Unwrap(m->SetMempolicy(a, MemPolicy::kInterleave, 0b101)), Errno::kOk);
  auto mm = Unwrap(m->Mmap(a, 0x10000000, 4 * kPageSize, kProtRead | kProtWrite, false, true));
  ASSERT_EQ(mm.err, Errno::kOk);
  FillPattern fp;
  fp.value = 0x7;
  ASSERT_EQ(Unwrap(m->Fill(a, 0x10000000, 4 * kPageSize, fp)).err, Errno::kOk);
  auto t = Unwrap(m->Translate(a, 0x10000000, 4));
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].node, 0u);
  EXPECT_EQ(t[1].node, 2u);
  EXPECT_EQ(t[2].node, 0u);
  EXPECT_EQ(t[3].node, 2u);
  EXPECT_INVARIANTS(*m);
}

}  // namespace
}  // namespace memnode
