// Scenario tests of the KSM emulation against docs/SEMANTICS.md (the
// scenarios SC-1..SC-18 of the linux-2.6.33 profile and the rules DS, SCAN,
// MERGE, CNT, MADV, KNOB, COW and PRUNE they rest on). Every expected value
// below is worked out by hand from that reference; comments cite the rule by
// id ("SEMANTICS MERGE-4"). memnode's choices (CH-*) apply where the kernel
// leaves room (profile linux-2.6.33: no max_kernel_pages, SER-3).
//
// Conventions of these tests (the assumptions of SEMANTICS A.21): run=1 unless said,
// every mm registers while the cursor is at the list head (so list order =
// registration order), pages are written before MADV_MERGEABLE, no pins.
// Counters are written (shared, sharing, unshared, volatile, full_scans).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/machine.h"
#include "server/core/types.h"

namespace memnode {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kBigVisits = uint64_t{1} << 20;

std::string KsmInfoString(const KsmInfo& k) {
  return absl::StrCat(
      "run=", k.run, " pages_to_scan=", k.pages_to_scan, " sleep_millisecs=", k.sleep_millisecs,
      " shared=", k.pages_shared, " sharing=", k.pages_sharing, " unshared=", k.pages_unshared,
      " volatile=", k.pages_volatile, " full_scans=", k.full_scans, " rmap_items=", k.rmap_items,
      " stable_nodes=", k.stable_nodes, " mm_slots=", k.mm_slots,
      " cursor_pid=", k.cursor_pid.value(), " cursor_address=0x", absl::Hex(k.cursor_address),
      " visits_total=", k.visits_total, " locked_by_offline=", k.locked_by_offline);
}

class KsmScenarioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MachineConfig c;
    c.nodes = 2;
    c.blocks_per_node = 4;
    c.pages_per_block = 64;
    c.clock = ClockMode::kManual;
    auto m = Machine::Create(c);
    ASSERT_TRUE(m.ok()) << m.status();
    m_ = std::move(*m);
  }

  Pid NewProcess() {
    auto p = m_->CreateProcess(ProcessParams{});
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : Pid(0);
  }

  // Private (or shared) anonymous mapping of `pages` pages, read-write.
  Vaddr Map(Pid pid, uint64_t pages, bool shared = false) {
    auto r = m_->Mmap(pid, 0, pages * kPageSize, kProtRead | kProtWrite, shared, false);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return 0;
    EXPECT_EQ(r->err, Errno::kOk);
    return r->address;
  }

  void FillPage(Pid pid, Vaddr addr, uint8_t byte) {
    FillPattern p;
    p.kind = FillPattern::kByte;
    p.value = byte;
    auto r = m_->Fill(pid, addr, kPageSize, p);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->err, Errno::kOk);
    ASSERT_EQ(r->bytes_done, kPageSize);
  }

  void WriteBytes(Pid pid, Vaddr addr, const std::string& bytes) {
    auto r = m_->Write(pid, addr, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->err, Errno::kOk);
    ASSERT_EQ(r->bytes_done, bytes.size());
  }

  std::string ReadPage(Pid pid, Vaddr addr) {
    auto r = m_->Read(pid, addr, kPageSize);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    EXPECT_EQ(r->err, Errno::kOk);
    return r->data;
  }

  Errno Madvise(Pid pid, Vaddr addr, uint64_t len, Advice advice) {
    auto r = m_->Madvise(pid, addr, len, advice);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : Errno::kEINVAL;
  }

  void Mergeable(Pid pid, Vaddr addr, uint64_t pages) {
    ASSERT_EQ(Madvise(pid, addr, pages * kPageSize, Advice::kMergeable), Errno::kOk);
  }

  Translation Tr(Pid pid, Vaddr addr) {
    auto r = m_->Translate(pid, addr, 1);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || r->empty()) return Translation{};
    return (*r)[0];
  }
  Pfn PfnOf(Pid pid, Vaddr addr) { return Tr(pid, addr).pfn; }

  FrameInfo Frame(Pfn pfn) {
    auto r = m_->GetFrame(pfn);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : FrameInfo{};
  }

  ProcessInfo Proc(Pid pid) {
    auto r = m_->GetProcess(pid);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ProcessInfo{};
  }

  std::vector<RmapItemInfo> Items(Pid pid) {
    auto r = m_->KsmRmapItems(pid);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<RmapItemInfo>{};
  }

  void SetRun(uint64_t run) {
    ASSERT_EQ(*m_->KsmUpdate(run, std::nullopt, std::nullopt), Errno::kOk);
  }

  KsmStepResult StepPasses(uint64_t k) {
    auto r = m_->KsmStepPasses(k, kBigVisits);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : KsmStepResult{};
  }
  KsmStepResult StepVisits(uint64_t n) {
    auto r = m_->KsmStepVisits(n);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : KsmStepResult{};
  }

  ::testing::AssertionResult CountersAre(uint64_t shared, uint64_t sharing, uint64_t unshared,
                                         uint64_t vol, uint64_t full_scans) {
    KsmInfo k = m_->GetKsm();
    if (k.pages_shared == shared && k.pages_sharing == sharing && k.pages_unshared == unshared &&
        k.pages_volatile == vol && k.full_scans == full_scans)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "expected shared=" << shared << " sharing=" << sharing << " unshared=" << unshared
           << " volatile=" << vol << " full_scans=" << full_scans << "\n  actual "
           << KsmInfoString(k);
  }

  ::testing::AssertionResult MachineOk() {
    CheckResult r = m_->Check();
    if (r.ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "Check() violations:\n  " << absl::StrJoin(r.violations, "\n  ");
  }

  // Scenario 1 set-up: A registered first, then B, each with one page of
  // identical content 0x11; run=1; nothing scanned yet.
  struct Pair2 {
    Pid a = 0, b = 0;
    Vaddr va = 0, vb = 0;
    Pfn pa = kNoPfn, pb = kNoPfn;  // original pfns
  };
  Pair2 SetUpScenario1(uint8_t byte = 0x11) {
    Pair2 s;
    s.a = NewProcess();
    s.va = Map(s.a, 1);
    FillPage(s.a, s.va, byte);
    Mergeable(s.a, s.va, 1);
    s.b = NewProcess();
    s.vb = Map(s.b, 1);
    FillPage(s.b, s.vb, byte);
    Mergeable(s.b, s.vb, 1);
    s.pa = PfnOf(s.a, s.va);
    s.pb = PfnOf(s.b, s.vb);
    SetRun(1);
    return s;
  }
  // Scenario 1 after two passes: merged into B's page (SEMANTICS SC-1).
  Pair2 MergedPair(uint8_t byte = 0x11) {
    Pair2 s = SetUpScenario1(byte);
    StepPasses(2);
    EXPECT_TRUE(CountersAre(1, 1, 0, 0, 2));
    EXPECT_EQ(PfnOf(s.a, s.va), s.pb);
    EXPECT_EQ(PfnOf(s.b, s.vb), s.pb);
    EXPECT_TRUE(MachineOk());
    return s;
  }

  std::unique_ptr<Machine> m_;
};

#define STEP_OK(shared, sharing, unshared, vol, full_scans)               \
  do {                                                                    \
    EXPECT_TRUE(CountersAre(shared, sharing, unshared, vol, full_scans)); \
    EXPECT_TRUE(MachineOk());                                             \
  } while (0)

// ---------------------------------------------------------------------------
// SEMANTICS SC-1: two processes, one identical page each.
TEST_F(KsmScenarioTest, Scenario01TwoIdenticalPagesMergeIntoLaterVisitedPage) {
  Pair2 s = SetUpScenario1();
  ASSERT_NE(s.pa, s.pb);
  // SEMANTICS CNT-6: nothing has run yet, every counter is 0.
  STEP_OK(0, 0, 0, 0, 0);
  EXPECT_EQ(Frame(s.pa).state, PageState::kAnon);
  EXPECT_EQ(Frame(s.pb).state, PageState::kAnon);

  // Pass 1: SEMANTICS SC-1 "a first visit only records a checksum" (SEMANTICS MERGE-5: the
  // zero-initialised oldchecksum (SEMANTICS DS-1) always differs): 2 flagless items.
  EXPECT_EQ(StepPasses(1).passes, 1u);
  STEP_OK(0, 0, 0, 2, 1);
  EXPECT_EQ(m_->GetKsm().rmap_items, 2u);
  EXPECT_EQ(PfnOf(s.a, s.va), s.pa);
  EXPECT_EQ(PfnOf(s.b, s.vb), s.pb);

  // Pass 2, first visit (A): checksum unchanged, unstable tree empty -> insert
  // (SEMANTICS MERGE-6): unshared 1, B still volatile.
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(0, 0, 1, 1, 1);
  // Second visit (B): finds A's item in the unstable tree and merges
  // (SEMANTICS MERGE-7): tree item appended first (shared+1), then B (sharing+1).
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(1, 1, 0, 0, 1);
  // End of pass 2 (SEMANTICS SCAN-8): full_scans 2; SEMANTICS SC-1 final state.
  StepPasses(1);
  STEP_OK(1, 1, 0, 0, 2);

  // SEMANTICS MERGE-7, MERGE-9: kpfn = pfn of the current (later-visited) page = B's
  // original page; A's original page is freed.
  EXPECT_EQ(PfnOf(s.b, s.vb), s.pb);
  EXPECT_EQ(PfnOf(s.a, s.va), s.pb);
  EXPECT_EQ(Frame(s.pa).state, PageState::kFree);
  FrameInfo kf = Frame(s.pb);
  EXPECT_EQ(kf.state, PageState::kKsm);
  EXPECT_EQ(kf.mapcount, 2);
  std::vector<StableNodeInfo> nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].kpfn, s.pb);
  EXPECT_FALSE(nodes[0].stale);
  EXPECT_EQ(kf.stable_node_id, nodes[0].id);
  EXPECT_THAT(nodes[0].mappings, UnorderedElementsAre(Pair(s.a, s.va), Pair(s.b, s.vb)));
  // Contents are unchanged for both processes.
  EXPECT_EQ(ReadPage(s.a, s.va), std::string(kPageSize, '\x11'));
  EXPECT_EQ(ReadPage(s.b, s.vb), std::string(kPageSize, '\x11'));

  // Pass 3: both items are stable on a KSM page: visits do nothing (SEMANTICS MERGE-1).
  StepPasses(1);
  STEP_OK(1, 1, 0, 0, 3);
}

// SEMANTICS SC-2: N identical pages in several mms -> one node, sharing N-1.
TEST_F(KsmScenarioTest, Scenario02NIdenticalPagesOneNode) {
  const uint8_t kByte = 0x22;
  Pid a = NewProcess();
  Vaddr va = Map(a, 3);
  for (int i = 0; i < 3; ++i) FillPage(a, va + i * kPageSize, kByte);
  Mergeable(a, va, 3);
  Pid b = NewProcess();
  Vaddr vb = Map(b, 2);
  for (int i = 0; i < 2; ++i) FillPage(b, vb + i * kPageSize, kByte);
  Mergeable(b, vb, 2);
  Pfn a1 = PfnOf(a, va + kPageSize);
  SetRun(1);
  STEP_OK(0, 0, 0, 0, 0);

  // Pass 1: 5 first visits, all volatile (SEMANTICS MERGE-5).
  StepPasses(1);
  STEP_OK(0, 0, 0, 5, 1);
  // Pass 2: A0 inserted, A1 merges with it (node kpfn = A1's page, the later
  // visited one, SEMANTICS MERGE-7), A2, B0, B1 join through the stable-tree search
  // (SEMANTICS MERGE-3, MERGE-4; SC-2): shared 1, sharing 4.
  StepPasses(1);
  STEP_OK(1, 4, 0, 0, 2);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(PfnOf(a, va + i * kPageSize), a1) << "A page " << i;
  for (int i = 0; i < 2; ++i) EXPECT_EQ(PfnOf(b, vb + i * kPageSize), a1) << "B page " << i;
  EXPECT_EQ(Frame(a1).state, PageState::kKsm);
  EXPECT_EQ(Frame(a1).mapcount, 5);
  std::vector<StableNodeInfo> nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].kpfn, a1);
  EXPECT_EQ(nodes[0].mappings.size(), 5u);
  // Stays so.
  StepPasses(1);
  STEP_OK(1, 4, 0, 0, 3);
}

// SEMANTICS SC-3: two processes with N distinct pages each, pairwise identical.
TEST_F(KsmScenarioTest, Scenario03PairwiseIdenticalPages) {
  const int kN = 3;
  Pid a = NewProcess();
  Vaddr va = Map(a, kN);
  for (int i = 0; i < kN; ++i) FillPage(a, va + i * kPageSize, static_cast<uint8_t>(0x31 + i));
  Mergeable(a, va, kN);
  Pid b = NewProcess();
  Vaddr vb = Map(b, kN);
  for (int i = 0; i < kN; ++i) FillPage(b, vb + i * kPageSize, static_cast<uint8_t>(0x31 + i));
  Mergeable(b, vb, kN);
  std::vector<Pfn> bp;
  for (int i = 0; i < kN; ++i) bp.push_back(PfnOf(b, vb + i * kPageSize));
  SetRun(1);

  StepPasses(1);
  STEP_OK(0, 0, 0, 2 * kN, 1);  // SEMANTICS MERGE-5: first visits
  // Pass 2: A's three pages enter the unstable tree (unshared 3), each of B's
  // pages then merges with its twin (SEMANTICS MERGE-7): shared N, sharing N.
  StepVisits(kN);
  STEP_OK(0, 0, kN, kN, 1);
  StepPasses(1);
  STEP_OK(kN, kN, 0, 0, 2);
  EXPECT_EQ(m_->KsmStableNodes().size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    // SEMANTICS MERGE-9: B's (later visited) pages survive.
    EXPECT_EQ(PfnOf(a, va + i * kPageSize), bp[i]);
    EXPECT_EQ(PfnOf(b, vb + i * kPageSize), bp[i]);
    EXPECT_EQ(ReadPage(a, va + i * kPageSize), std::string(kPageSize, static_cast<char>(0x31 + i)));
  }
}

// SEMANTICS SC-4: a unique, unchanging page is volatile after pass 1 and unshared
// forever after (SEMANTICS SCAN-9, SCAN-10).
TEST_F(KsmScenarioTest, Scenario04UniquePageStaysUnshared) {
  Pid a = NewProcess();
  Vaddr va = Map(a, 1);
  FillPage(a, va, 0x44);
  Mergeable(a, va, 1);
  SetRun(1);
  StepPasses(1);
  STEP_OK(0, 0, 0, 1, 1);
  EXPECT_TRUE(m_->KsmUnstableItems().empty());
  for (uint64_t pass = 2; pass <= 5; ++pass) {
    StepPasses(1);
    STEP_OK(0, 0, 1, 0, pass);
    // Re-inserted into this pass's unstable tree every time.
    std::vector<RmapItemInfo> u = m_->KsmUnstableItems();
    ASSERT_EQ(u.size(), 1u);
    EXPECT_EQ(u[0].pid, a);
    EXPECT_EQ(u[0].address, va);
    EXPECT_EQ(u[0].state, RmapState::kUnstable);
  }
  EXPECT_EQ(Frame(PfnOf(a, va)).state, PageState::kAnon);
}

// SEMANTICS SC-5 / MERGE-3..MERGE-4: a fresh page equal to an existing KSM page merges
// on its first visit (stable tree search comes before the checksum test).
TEST_F(KsmScenarioTest, Scenario05StableTreeSearchFirstMergesOnFirstVisit) {
  Pair2 s = MergedPair();
  // C registers between passes (cursor at the head): appended at the tail
  // (SEMANTICS DS-11), so it is visited after A and B.
  Pid c = NewProcess();
  Vaddr vc = Map(c, 1);
  FillPage(c, vc, 0x11);
  Mergeable(c, vc, 1);
  Pfn pc = PfnOf(c, vc);
  STEP_OK(1, 1, 0, 0, 2);  // SEMANTICS CNT-6: registration moves no counter

  // Pass 3: A and B are stable KSM pages (nothing happens), C's very first
  // visit finds the equal KSM page in the stable tree: sharing+1.
  EXPECT_EQ(StepVisits(2).visits, 2u);
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(1, 2, 0, 0, 2);
  EXPECT_EQ(PfnOf(c, vc), s.pb);
  EXPECT_EQ(Frame(pc).state, PageState::kFree);
  std::vector<RmapItemInfo> items = Items(c);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].state, RmapState::kStable);
  StepPasses(1);
  STEP_OK(1, 2, 0, 0, 3);
}

// SEMANTICS SC-5 last sentence: a page written between visits resets the count.
TEST_F(KsmScenarioTest, Scenario05WriteBetweenVisitsResetsTheCount) {
  Pair2 s = SetUpScenario1(0x21);
  StepPasses(1);
  STEP_OK(0, 0, 0, 2, 1);
  // Both pages change (to equal contents) before their second visit.
  FillPage(s.a, s.va, 0x33);
  FillPage(s.b, s.vb, 0x33);
  STEP_OK(0, 0, 0, 2, 1);
  // Pass 2: both checksums differ from the stored ones (SEMANTICS MERGE-5): still
  // volatile, no merge.
  StepPasses(1);
  STEP_OK(0, 0, 0, 2, 2);
  EXPECT_NE(PfnOf(s.a, s.va), PfnOf(s.b, s.vb));
  // Pass 3: now unchanged since pass 2: A inserted, B merges (SEMANTICS SC-1 again).
  StepPasses(1);
  STEP_OK(1, 1, 0, 0, 3);
  EXPECT_EQ(PfnOf(s.a, s.va), PfnOf(s.b, s.vb));
}

// SEMANTICS DS-11 / SC-5: an mm registering while ksmd is mid-pass goes just
// behind the cursor and is first visited in the next pass.
TEST_F(KsmScenarioTest, RegistrationMidPassGoesBehindCursor) {
  Pid a = NewProcess();
  Vaddr va = Map(a, 2);
  FillPage(a, va, 0x41);
  FillPage(a, va + kPageSize, 0x42);
  Mergeable(a, va, 2);
  Pid b = NewProcess();
  Vaddr vb = Map(b, 2);
  FillPage(b, vb, 0x43);
  FillPage(b, vb + kPageSize, 0x44);
  Mergeable(b, vb, 2);
  SetRun(1);
  StepPasses(1);
  STEP_OK(0, 0, 0, 4, 1);  // first visits (SEMANTICS MERGE-5)

  // Pass 2, one visit: A's first page, inserted unstable.
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(0, 0, 1, 3, 1);
  KsmInfo k = m_->GetKsm();
  EXPECT_EQ(k.cursor_pid, a);
  EXPECT_EQ(k.cursor_address, va + kPageSize);  // SEMANTICS SCAN-6: advances one page

  // C registers now, with a page equal to B's second page.
  Pid c = NewProcess();
  Vaddr vc = Map(c, 1);
  FillPage(c, vc, 0x44);
  Mergeable(c, vc, 1);
  k = m_->GetKsm();
  EXPECT_EQ(k.mm_slots, 3u);
  EXPECT_EQ(k.cursor_pid.value(), a);
  STEP_OK(0, 0, 1, 3, 1);

  // The rest of pass 2 visits A1, B0, B1 only (C sits before A in the list).
  KsmStepResult r = StepPasses(1);
  EXPECT_EQ(r.visits, 3u);
  STEP_OK(0, 0, 4, 0, 2);
  EXPECT_TRUE(Items(c).empty());

  // Pass 3: C comes first (list order C, A, B).
  EXPECT_EQ(StepVisits(1).visits, 1u);
  EXPECT_EQ(m_->GetKsm().cursor_pid, c);
  std::vector<RmapItemInfo> ci = Items(c);
  ASSERT_EQ(ci.size(), 1u);
  EXPECT_EQ(ci[0].address, vc);
  EXPECT_EQ(ci[0].state, RmapState::kNone);  // first visit: checksum only
  // A0..B1 are still UNSTABLE from pass 2 (SEMANTICS SCAN-9): unshared 4, C volatile.
  STEP_OK(0, 0, 4, 1, 2);
  StepPasses(1);
  // B1 (0x44) is re-inserted: C is not in the tree (it was volatile).
  STEP_OK(0, 0, 4, 1, 3);
  // Pass 4: C inserted first, B1 merges with it (node kpfn = B1's page):
  // 3 full_scans increments after registration (SEMANTICS SC-5 "allow up to 3").
  Pfn b1 = PfnOf(b, vb + kPageSize);
  StepPasses(1);
  STEP_OK(1, 1, 3, 0, 4);
  EXPECT_EQ(PfnOf(c, vc), b1);
  EXPECT_EQ(PfnOf(b, vb + kPageSize), b1);
}

// SEMANTICS SC-6: writes to merged pages; counters lag until the revisit; the last
// writer frees the KSM page and its revisit prunes the stale node.
TEST_F(KsmScenarioTest, Scenario06WriteToMergedPages) {
  Pair2 s = MergedPair();
  // A writes: SEMANTICS COW-1 private copy at once, B keeps the KSM page.
  FillPage(s.a, s.va, 0x99);
  Pfn pa2 = PfnOf(s.a, s.va);
  EXPECT_NE(pa2, s.pb);
  EXPECT_EQ(Tr(s.a, s.va).state, PageState::kAnon);
  EXPECT_EQ(PfnOf(s.b, s.vb), s.pb);
  EXPECT_EQ(Frame(s.pb).state, PageState::kKsm);
  EXPECT_EQ(Frame(s.pb).mapcount, 1);
  EXPECT_EQ(ReadPage(s.a, s.va), std::string(kPageSize, '\x99'));
  EXPECT_EQ(ReadPage(s.b, s.vb), std::string(kPageSize, '\x11'));
  // SEMANTICS COW-3 / CNT-6: counters unchanged at write time.
  STEP_OK(1, 1, 0, 0, 2);

  // Pass 3 visit 1 = A's address: item leaves the node (sharing-1, B stays),
  // content changed -> volatile (SEMANTICS COW-3; SC-6).
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(1, 0, 0, 1, 2);
  ASSERT_EQ(m_->KsmStableNodes().size(), 1u);
  EXPECT_THAT(m_->KsmStableNodes()[0].mappings, ElementsAre(Pair(s.b, s.vb)));

  // B writes too: the KSM page loses its last mapping and is freed
  // (SEMANTICS COW-2): the node goes stale but counters stay (SEMANTICS PRUNE-3).
  FillPage(s.b, s.vb, 0x77);
  EXPECT_EQ(Frame(s.pb).state, PageState::kFree);
  std::vector<StableNodeInfo> nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_TRUE(nodes[0].stale);
  STEP_OK(1, 0, 0, 1, 2);

  // Visit 2 = B's address: removal goes through get_ksm_page, which prunes
  // the stale node (SEMANTICS COW-4, PRUNE-2): shared 0; B's item is volatile.
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(0, 0, 0, 2, 2);
  EXPECT_TRUE(m_->KsmStableNodes().empty());
  StepPasses(1);
  STEP_OK(0, 0, 0, 2, 3);
  EXPECT_EQ(ReadPage(s.a, s.va), std::string(kPageSize, '\x99'));
  EXPECT_EQ(ReadPage(s.b, s.vb), std::string(kPageSize, '\x77'));
}

// SEMANTICS COW-1 + COW-3: writing identical bytes to a KSM page still copies; the
// revisit re-merges at once through the stable tree.
TEST_F(KsmScenarioTest, WriteIdenticalBytesStillCopiesThenRemergesOnRevisit) {
  Pair2 s = MergedPair();
  WriteBytes(s.a, s.va + 100, std::string(8, '\x11'));
  Pfn copy = PfnOf(s.a, s.va);
  EXPECT_NE(copy, s.pb);  // SEMANTICS COW-1: always a new page
  EXPECT_EQ(Tr(s.a, s.va).state, PageState::kAnon);
  EXPECT_EQ(Frame(s.pb).mapcount, 1);
  EXPECT_EQ(ReadPage(s.a, s.va), std::string(kPageSize, '\x11'));
  STEP_OK(1, 1, 0, 0, 2);  // SEMANTICS COW-3: counters unchanged

  // Revisit of A: item leaves the node (sharing 0) then the stable search
  // finds the equal KSM page and appends again (sharing 1).
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(PfnOf(s.a, s.va), s.pb);
  EXPECT_EQ(Frame(copy).state, PageState::kFree);
  EXPECT_EQ(Frame(s.pb).mapcount, 2);

  // Same with a whole-page write of identical bytes, on B this time.
  WriteBytes(s.b, s.vb, std::string(kPageSize, '\x11'));
  Pfn copy_b = PfnOf(s.b, s.vb);
  EXPECT_NE(copy_b, s.pb);
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(StepVisits(1).visits, 1u);  // B's address (rest of pass 3)
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(PfnOf(s.b, s.vb), s.pb);
  EXPECT_EQ(Frame(copy_b).state, PageState::kFree);
  StepPasses(1);
  STEP_OK(1, 1, 0, 0, 3);
}

// SEMANTICS SC-6 second half / PRUNE-1..PRUNE-3: both sharers write before any revisit; the
// first revisit prunes the stale node and strips both items.
TEST_F(KsmScenarioTest, StaleNodePrunedOnRevisit) {
  Pair2 s = MergedPair();
  FillPage(s.a, s.va, 0x99);
  FillPage(s.b, s.vb, 0x77);
  EXPECT_EQ(Frame(s.pb).state, PageState::kFree);  // SEMANTICS COW-2
  std::vector<StableNodeInfo> nodes = m_->KsmStableNodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_TRUE(nodes[0].stale);
  // SEMANTICS PRUNE-3: a stale node still counts until pruned.
  STEP_OK(1, 1, 0, 0, 2);
  // Revisit of A: get_ksm_page on the node finds it stale: prune (shared-1,
  // sharing-1; both items flagless, SEMANTICS PRUNE-2); A's checksum changed.
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(0, 0, 0, 2, 2);
  EXPECT_TRUE(m_->KsmStableNodes().empty());
  for (const RmapItemInfo& i : Items(s.b)) EXPECT_EQ(i.state, RmapState::kNone);
  StepPasses(1);
  STEP_OK(0, 0, 0, 2, 3);
}

// SEMANTICS PRUNE-1(a) + MERGE-3: a stable-tree search that touches a stale node
// prunes it and gives up [seed].
TEST_F(KsmScenarioTest, StaleNodePrunedByStableTreeSearch) {
  // C first in the list, with a unique page; then A, B as in scenario 1.
  Pid c = NewProcess();
  Vaddr vc = Map(c, 1);
  FillPage(c, vc, 0x55);
  Mergeable(c, vc, 1);
  Pair2 s = SetUpScenario1();
  StepPasses(2);
  // C unshared (SEMANTICS SC-4), A+B merged (SEMANTICS SC-1).
  STEP_OK(1, 1, 1, 0, 2);
  FillPage(s.a, s.va, 0x99);
  FillPage(s.b, s.vb, 0x77);
  STEP_OK(1, 1, 1, 0, 2);
  // Pass 3 visit 1 = C: its unstable item (age 1) is removed (unshared-1);
  // the stable search touches the stale node -> pruned (shared 0, sharing 0,
  // A and B items flagless); not found; checksum unchanged -> unstable insert.
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(0, 0, 1, 2, 2);
  EXPECT_TRUE(m_->KsmStableNodes().empty());
}

// SEMANTICS SC-7 / COW-6: exit of a sharer with run=1; counters unchanged at
// exit, the exiting mm is moved right after the cursor and reaped next.
TEST_F(KsmScenarioTest, Scenario07ExitThenScanning) {
  Pair2 s = SetUpScenario1();
  // C: a unique page, registered last (list A, B, C).
  Pid c = NewProcess();
  Vaddr vc = Map(c, 1);
  FillPage(c, vc, 0x66);
  Mergeable(c, vc, 1);
  StepPasses(2);
  STEP_OK(1, 1, 1, 0, 2);

  // D registers but is never visited; its exit frees the slot at once
  // (SEMANTICS COW-6: no rmap_items, not the cursor slot).
  Pid d = NewProcess();
  Vaddr vd = Map(d, 1);
  FillPage(d, vd, 0x67);
  Mergeable(d, vd, 1);
  EXPECT_EQ(m_->GetKsm().mm_slots, 4u);
  ASSERT_TRUE(m_->Exit(d).ok());
  EXPECT_EQ(m_->GetKsm().mm_slots, 3u);
  STEP_OK(1, 1, 1, 0, 2);

  // Pass 3, visit 1 = A (stable, nothing); cursor now on A.
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(1, 1, 1, 0, 2);
  // C exits: counters unchanged (SEMANTICS CNT-6); its slot moves right after the
  // cursor (A), ahead of B.
  ASSERT_TRUE(m_->Exit(c).ok());
  STEP_OK(1, 1, 1, 0, 2);
  // Next visit: A has no more pages, then C (exiting) is reaped (its unstable
  // item freed: unshared 0), then B is visited (stable, nothing).
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(m_->GetKsm().mm_slots, 2u);
  EXPECT_EQ(m_->GetKsm().rmap_items, 2u);
  StepPasses(1);
  STEP_OK(1, 1, 0, 0, 3);

  // Now A (a sharer) exits: unchanged until ksmd reaps it next batch.
  ASSERT_TRUE(m_->Exit(s.a).ok());
  EXPECT_EQ(Frame(s.pb).state, PageState::kKsm);  // B still maps it
  EXPECT_EQ(Frame(s.pb).mapcount, 1);
  STEP_OK(1, 1, 0, 0, 3);
  StepPasses(1);
  // A's stable item left a node that still has B: sharing-1 (SEMANTICS CNT-2).
  STEP_OK(1, 0, 0, 0, 4);
  EXPECT_EQ(m_->GetKsm().mm_slots, 1u);
  EXPECT_EQ(m_->GetKsm().rmap_items, 1u);
  EXPECT_EQ(ReadPage(s.b, s.vb), std::string(kPageSize, '\x11'));
}

// SEMANTICS SC-7 / COW-6: with run=0 nothing changes until ksmd runs again.
TEST_F(KsmScenarioTest, Scenario07ExitWithRunZero) {
  Pair2 s = MergedPair();
  SetRun(0);
  STEP_OK(1, 1, 0, 0, 2);
  ASSERT_TRUE(m_->Exit(s.a).ok());
  STEP_OK(1, 1, 0, 0, 2);
  ASSERT_TRUE(m_->Exit(s.b).ok());
  // Both mappings gone: the KSM page is freed, its node stale but counted.
  EXPECT_EQ(Frame(s.pb).state, PageState::kFree);
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(m_->GetKsm().rmap_items, 2u);
  EXPECT_EQ(m_->GetKsm().mm_slots, 2u);
  ASSERT_EQ(m_->KsmStableNodes().size(), 1u);
  EXPECT_TRUE(m_->KsmStableNodes()[0].stale);

  // ksmd runs again: A reaped (its removal finds the node stale: prune,
  // shared 0 sharing 0), B reaped, both slots freed; the cursor reaches the
  // head: full_scans+1 (SEMANTICS SCAN-7..SCAN-8).
  SetRun(1);
  StepPasses(1);
  STEP_OK(0, 0, 0, 0, 3);
  KsmInfo k = m_->GetKsm();
  EXPECT_EQ(k.rmap_items, 0u);
  EXPECT_EQ(k.mm_slots, 0u);
  EXPECT_EQ(k.stable_nodes, 0u);
}

// SEMANTICS SC-7 munmap variant / SEMANTICS COW-5.
TEST_F(KsmScenarioTest, Scenario07MunmapOfSharer) {
  Pair2 s = MergedPair();
  ASSERT_EQ(*m_->Munmap(s.b, s.vb, kPageSize), Errno::kOk);
  EXPECT_EQ(Frame(s.pb).mapcount, 1);  // A still maps it
  STEP_OK(1, 1, 0, 0, 2);
  // Pass 3: A stable (nothing); B has no vma: trailing item freed (sharing-1),
  // and no VM_MERGEABLE vma seen -> unregistered (SEMANTICS SCAN-7).
  StepPasses(1);
  STEP_OK(1, 0, 0, 0, 3);
  EXPECT_EQ(m_->GetKsm().mm_slots, 1u);
  EXPECT_FALSE(Proc(s.b).ksm_registered);
}

// SEMANTICS SC-14 / KNOB-7: run=2 unmerges everything.
TEST_F(KsmScenarioTest, Scenario14RunTwoUnmergesAll) {
  Pair2 s = MergedPair();
  ASSERT_EQ(*m_->KsmUpdate(2, std::nullopt, std::nullopt), Errno::kOk);
  KsmInfo k = m_->GetKsm();
  EXPECT_EQ(k.run, 2u);
  STEP_OK(0, 0, 0, 0, 0);
  EXPECT_EQ(k.rmap_items, 0u);
  EXPECT_EQ(k.stable_nodes, 0u);
  EXPECT_EQ(k.mm_slots, 2u);  // slots stay registered
  EXPECT_TRUE(Proc(s.a).ksm_registered);
  EXPECT_TRUE(Proc(s.b).ksm_registered);
  Pfn a2 = PfnOf(s.a, s.va), b2 = PfnOf(s.b, s.vb);
  EXPECT_NE(a2, s.pb);
  EXPECT_NE(b2, s.pb);
  EXPECT_NE(a2, b2);
  EXPECT_EQ(Frame(a2).state, PageState::kAnon);
  EXPECT_EQ(Frame(b2).state, PageState::kAnon);
  EXPECT_EQ(Frame(s.pb).state, PageState::kFree);
  EXPECT_TRUE(m_->KsmStableNodes().empty());
  EXPECT_EQ(ReadPage(s.a, s.va), std::string(kPageSize, '\x11'));
  EXPECT_EQ(ReadPage(s.b, s.vb), std::string(kPageSize, '\x11'));

  // Writing 1 re-merges after two more passes exactly as in scenario 1: the
  // KSM page is B's new private copy.
  SetRun(1);
  StepPasses(1);
  STEP_OK(0, 0, 0, 2, 1);
  StepPasses(1);
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(PfnOf(s.a, s.va), b2);
  EXPECT_EQ(PfnOf(s.b, s.vb), b2);
  EXPECT_EQ(Frame(a2).state, PageState::kFree);
}

// SEMANTICS KNOB-4: writing the current run value is a no-op (writing 2 twice does not
// unmerge twice).
TEST_F(KsmScenarioTest, WritingCurrentRunValueIsNoOp) {
  Pair2 s = MergedPair();
  ASSERT_EQ(*m_->KsmUpdate(2, std::nullopt, std::nullopt), Errno::kOk);
  STEP_OK(0, 0, 0, 0, 0);
  // Stepping works whatever run is: merge again.
  StepPasses(2);
  STEP_OK(1, 1, 0, 0, 2);
  Pfn k = PfnOf(s.b, s.vb);
  KsmInfo before = m_->GetKsm();
  EXPECT_EQ(*m_->KsmUpdate(2, std::nullopt, std::nullopt), Errno::kOk);
  auto e = m_->KsmWriteSysfs("run", "2\n");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(*e, Errno::kOk);
  KsmInfo after = m_->GetKsm();
  EXPECT_EQ(KsmInfoString(after), KsmInfoString(before));
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(PfnOf(s.a, s.va), k);
  EXPECT_EQ(Frame(k).state, PageState::kKsm);
  // Same for run=1 written twice.
  SetRun(1);
  before = m_->GetKsm();
  SetRun(1);
  EXPECT_EQ(KsmInfoString(m_->GetKsm()), KsmInfoString(before));
}

// SEMANTICS SC-15 / KNOB-3: knob errors change nothing.
TEST_F(KsmScenarioTest, Scenario15KnobErrorsChangeNothing) {
  Pair2 s = MergedPair();
  const KsmInfo before = m_->GetKsm();
  // Defaults (SEMANTICS KNOB-2); run was set to 1 by the scenario.
  EXPECT_EQ(before.pages_to_scan, 100u);
  EXPECT_EQ(before.sleep_millisecs, 20u);
  EXPECT_EQ(before.run, 1u);
  const std::string want = KsmInfoString(before);

  // Typed updates.
  EXPECT_EQ(*m_->KsmUpdate(3, std::nullopt, std::nullopt), Errno::kEINVAL);  // > 2
  EXPECT_EQ(*m_->KsmUpdate(std::nullopt, uint64_t{4294967296}, std::nullopt), Errno::kEINVAL);
  EXPECT_EQ(*m_->KsmUpdate(std::nullopt, std::nullopt, uint64_t{4294967296}), Errno::kEINVAL);
  // All validated before any applies (machine.h contract): nothing changes.
  EXPECT_EQ(*m_->KsmUpdate(0, uint64_t{5}, uint64_t{4294967296}), Errno::kEINVAL);
  EXPECT_EQ(*m_->KsmUpdate(2, uint64_t{4294967296}, std::nullopt), Errno::kEINVAL);
  EXPECT_EQ(KsmInfoString(m_->GetKsm()), want);

  struct Bad {
    const char* file;
    const char* text;
  };
  // SEMANTICS KNOB-3: strict_strtoul base 10: empty, sign, spaces, non-digits
  // EINVAL; > UINT_MAX EINVAL; run > 2 EINVAL.
  const Bad bad[] = {
      {"run", "3"},
      {"run", "abc"},
      {"run", "-1"},
      {"run", ""},
      {"run", "1 "},
      {"run", " 1"},
      {"run", "+1"},
      {"run", "1\n\n"},
      {"run", "\n"},
      {"run", "4294967298"},
      {"pages_to_scan", "abc"},
      {"pages_to_scan", "-1"},
      {"pages_to_scan", ""},
      {"pages_to_scan", "1 "},
      {"pages_to_scan", "4294967296"},
      {"pages_to_scan", "0x10"},
      {"sleep_millisecs", "abc"},
      {"sleep_millisecs", "-1"},
      {"sleep_millisecs", ""},
      {"sleep_millisecs", "1 "},
      {"sleep_millisecs", "4294967296"},
  };
  for (const Bad& b : bad) {
    auto e = m_->KsmWriteSysfs(b.file, b.text);
    ASSERT_TRUE(e.ok()) << b.file << " <- \"" << b.text << "\": " << e.status();
    EXPECT_EQ(*e, Errno::kEINVAL) << b.file << " <- \"" << b.text << "\"";
    EXPECT_EQ(KsmInfoString(m_->GetKsm()), want) << b.file << " <- \"" << b.text << "\"";
  }
  // SEMANTICS KNOB-1: read-only files fail EACCES.
  for (const char* ro :
       {"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile", "full_scans"}) {
    auto e = m_->KsmWriteSysfs(ro, "0");
    ASSERT_TRUE(e.ok()) << ro << ": " << e.status();
    EXPECT_EQ(*e, Errno::kEACCES) << ro;
  }
  EXPECT_EQ(KsmInfoString(m_->GetKsm()), want);
  // SEMANTICS SER-3, CH-1: the linux-2.6.33 profile has no max_kernel_pages;
  // an unknown file is API misuse (KNOB-1, CH-21), not an errno.
  EXPECT_FALSE(m_->KsmWriteSysfs("max_kernel_pages", "0").ok());
  EXPECT_EQ(KsmInfoString(m_->GetKsm()), want);
  STEP_OK(1, 1, 0, 0, 2);

  // Accepted forms: one trailing newline; UINT_MAX itself; 0.
  auto ok = m_->KsmWriteSysfs("pages_to_scan", "7\n");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, Errno::kOk);
  EXPECT_EQ(m_->GetKsm().pages_to_scan, 7u);
  ok = m_->KsmWriteSysfs("sleep_millisecs", "4294967295");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, Errno::kOk);
  EXPECT_EQ(m_->GetKsm().sleep_millisecs, 4294967295u);
  ok = m_->KsmWriteSysfs("pages_to_scan", "0");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, Errno::kOk);
  EXPECT_EQ(m_->GetKsm().pages_to_scan, 0u);
  ok = m_->KsmWriteSysfs("run", "0\n");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, Errno::kOk);
  EXPECT_EQ(m_->GetKsm().run, 0u);
  ok = m_->KsmWriteSysfs("run", "1\n");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, Errno::kOk);
  EXPECT_EQ(m_->GetKsm().run, 1u);
  // Knob changes moved no counter and no page (SEMANTICS KNOB-5: run 0 keeps merges).
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(PfnOf(s.a, s.va), s.pb);
}

// SEMANTICS SC-16 / MADV-6: MADV_MERGEABLE on shared anonymous memory succeeds,
// nothing merges, the mm is not registered if that was its only vma.
TEST_F(KsmScenarioTest, Scenario16SharedAnonymousNeverMerges) {
  Pid a = NewProcess();
  Vaddr va = Map(a, 1, /*shared=*/true);
  FillPage(a, va, 0x5a);
  Pid b = NewProcess();
  Vaddr vb = Map(b, 1, /*shared=*/true);
  FillPage(b, vb, 0x5a);
  EXPECT_EQ(Madvise(a, va, kPageSize, Advice::kMergeable), Errno::kOk);
  EXPECT_EQ(Madvise(b, vb, kPageSize, Advice::kMergeable), Errno::kOk);
  SetRun(1);
  EXPECT_FALSE(Proc(a).ksm_registered);
  EXPECT_FALSE(Proc(b).ksm_registered);
  ASSERT_EQ(Proc(a).vmas.size(), 1u);
  EXPECT_FALSE(Proc(a).vmas[0].mergeable);
  EXPECT_EQ(m_->GetKsm().mm_slots, 0u);
  // SEMANTICS SCAN-1 / SCAN-4: empty mm list, ksmd has nothing to do.
  StepPasses(3);
  StepVisits(10);
  STEP_OK(0, 0, 0, 0, 0);
  EXPECT_EQ(m_->GetKsm().rmap_items, 0u);

  // Mixed: C and D each have a private and a shared page of equal content.
  // Only the private pages merge; the shared ones get no rmap_item.
  Pid c = NewProcess();
  Vaddr cp = Map(c, 1), cs = Map(c, 1, true);
  FillPage(c, cp, 0x5b);
  FillPage(c, cs, 0x5b);
  Pid d = NewProcess();
  Vaddr dp = Map(d, 1), ds = Map(d, 1, true);
  FillPage(d, dp, 0x5b);
  FillPage(d, ds, 0x5b);
  EXPECT_EQ(Madvise(c, cp, kPageSize, Advice::kMergeable), Errno::kOk);
  EXPECT_EQ(Madvise(c, cs, kPageSize, Advice::kMergeable), Errno::kOk);
  EXPECT_EQ(Madvise(d, dp, kPageSize, Advice::kMergeable), Errno::kOk);
  EXPECT_EQ(Madvise(d, ds, kPageSize, Advice::kMergeable), Errno::kOk);
  Pfn c_shm = PfnOf(c, cs), d_shm = PfnOf(d, ds);
  StepPasses(2);
  STEP_OK(1, 1, 0, 0, 2);
  EXPECT_EQ(m_->GetKsm().rmap_items, 2u);
  EXPECT_EQ(PfnOf(c, cs), c_shm);
  EXPECT_EQ(PfnOf(d, ds), d_shm);
  EXPECT_EQ(Frame(c_shm).state, PageState::kShmem);
  EXPECT_EQ(PfnOf(c, cp), PfnOf(d, dp));
}

// SEMANTICS SC-18 + COW-7: fork of a process with merged pages; then a write to
// a merged page in the child.
TEST_F(KsmScenarioTest, Scenario18ForkOfMergedProcess) {
  Pid a = NewProcess();
  Vaddr va = Map(a, 3);
  FillPage(a, va, 0x11);
  FillPage(a, va + kPageSize, 0x12);
  FillPage(a, va + 2 * kPageSize, 0x13);  // unique
  Mergeable(a, va, 3);
  Pid b = NewProcess();
  Vaddr vb = Map(b, 2);
  FillPage(b, vb, 0x11);
  FillPage(b, vb + kPageSize, 0x12);
  Mergeable(b, vb, 2);
  SetRun(1);
  StepPasses(1);
  STEP_OK(0, 0, 0, 5, 1);
  // Pass 2: A0, A1, A2 inserted; B0, B1 merge with A0, A1 (SEMANTICS SC-3);
  // A2 unique stays unshared (SEMANTICS SC-4).
  StepPasses(1);
  STEP_OK(2, 2, 1, 0, 2);
  Pfn k0 = PfnOf(b, vb), k1 = PfnOf(b, vb + kPageSize);
  Pfn a2 = PfnOf(a, va + 2 * kPageSize);
  EXPECT_EQ(PfnOf(a, va), k0);
  EXPECT_EQ(Frame(k0).mapcount, 2);

  // Fork: the child maps the same KSM pages (no copy), counters unchanged.
  auto cr = m_->Fork(a);
  ASSERT_TRUE(cr.ok()) << cr.status();
  Pid c = *cr;
  EXPECT_EQ(PfnOf(c, va), k0);
  EXPECT_EQ(PfnOf(c, va + kPageSize), k1);
  EXPECT_EQ(PfnOf(c, va + 2 * kPageSize), a2);
  EXPECT_EQ(Frame(k0).mapcount, 3);
  EXPECT_EQ(Frame(k1).mapcount, 3);
  EXPECT_TRUE(Proc(c).ksm_registered);  // SEMANTICS COW-7: registered like its parent
  EXPECT_EQ(m_->GetKsm().mm_slots, 3u);
  STEP_OK(2, 2, 1, 0, 2);  // SEMANTICS SC-18

  // Pass 3 (list A, B, C: C was appended at the tail, cursor at the head):
  // A2 is re-inserted (unshared stays 1); C0 and C1 hit "page is itself KSM"
  // and append (sharing +2, SEMANTICS COW-7); C2 (same physical page as A2) is a
  // first visit: volatile 1.
  StepPasses(1);
  STEP_OK(2, 4, 1, 1, 3);
  EXPECT_EQ(PfnOf(c, va), k0);

  // Write to a merged page in the child: private copy at once, counters
  // unchanged (SEMANTICS COW-1, COW-3).
  FillPage(c, va, 0xee);
  Pfn c0 = PfnOf(c, va);
  EXPECT_NE(c0, k0);
  EXPECT_EQ(Frame(k0).mapcount, 2);
  EXPECT_EQ(PfnOf(a, va), k0);
  EXPECT_EQ(PfnOf(b, vb), k0);
  EXPECT_EQ(ReadPage(c, va), std::string(kPageSize, '\xee'));
  EXPECT_EQ(ReadPage(a, va), std::string(kPageSize, '\x11'));
  STEP_OK(2, 4, 1, 1, 3);

  // Pass 4: C0 leaves its node (sharing-1) and is volatile (content changed);
  // C2's unstable search meets A2's item on the very same physical page
  // (fork): abandoned, C2 stays volatile (SEMANTICS MERGE-6).
  StepPasses(1);
  STEP_OK(2, 3, 1, 2, 4);
  EXPECT_EQ(PfnOf(c, va + 2 * kPageSize), a2);
  EXPECT_EQ(PfnOf(a, va + 2 * kPageSize), a2);
}

// SEMANTICS MADV-10..MADV-13 + SCAN-7: MADV_UNMERGEABLE breaks COW at once; counters
// and items change only at the next visit; the mm is unregistered when no
// mergeable vma is left.
TEST_F(KsmScenarioTest, UnmergeableBreaksCowAtOnceCountersLag) {
  Pid a = NewProcess();
  Vaddr va = Map(a, 2);
  FillPage(a, va, 0x11);
  FillPage(a, va + kPageSize, 0x21);
  Mergeable(a, va, 2);
  Pid b = NewProcess();
  Vaddr vb = Map(b, 2);
  FillPage(b, vb, 0x11);
  FillPage(b, vb + kPageSize, 0x21);
  Mergeable(b, vb, 2);
  SetRun(1);
  StepPasses(2);
  STEP_OK(2, 2, 0, 0, 2);
  Pfn k0 = PfnOf(b, vb), k1 = PfnOf(b, vb + kPageSize);
  EXPECT_EQ(PfnOf(a, va + kPageSize), k1);

  // Unmerge A's second page only.
  EXPECT_EQ(Madvise(a, va + kPageSize, kPageSize, Advice::kUnmergeable), Errno::kOk);
  Translation t1 = Tr(a, va + kPageSize);
  EXPECT_NE(t1.pfn, k1);  // SEMANTICS MADV-11: COW broken at once
  EXPECT_EQ(t1.state, PageState::kAnon);
  EXPECT_EQ(PfnOf(a, va), k0);  // the rest untouched
  EXPECT_EQ(PfnOf(b, vb + kPageSize), k1);
  EXPECT_EQ(Frame(k1).mapcount, 1);
  EXPECT_EQ(ReadPage(a, va + kPageSize), std::string(kPageSize, '\x21'));
  ProcessInfo pa = Proc(a);
  ASSERT_EQ(pa.vmas.size(), 2u);  // split at the range boundary (SEMANTICS MADV-4)
  EXPECT_TRUE(pa.vmas[0].mergeable);
  EXPECT_FALSE(pa.vmas[1].mergeable);
  // SEMANTICS MADV-13: items stay, counters unchanged.
  EXPECT_EQ(Items(a).size(), 2u);
  STEP_OK(2, 2, 0, 0, 2);

  // Pass 3: A1's item is a trailing item of A (its vma is no longer
  // mergeable): freed, leaving node k1 with B only: sharing-1.
  StepPasses(1);
  STEP_OK(2, 1, 0, 0, 3);
  std::vector<RmapItemInfo> ia = Items(a);
  ASSERT_EQ(ia.size(), 1u);
  EXPECT_EQ(ia[0].address, va);
  EXPECT_TRUE(Proc(a).ksm_registered);

  // Unmerge the rest: no mergeable vma left.
  EXPECT_EQ(Madvise(a, va, 2 * kPageSize, Advice::kUnmergeable), Errno::kOk);
  EXPECT_NE(PfnOf(a, va), k0);
  EXPECT_EQ(Frame(k0).mapcount, 1);
  EXPECT_TRUE(Proc(a).ksm_registered);  // until ksmd's next visit of A
  EXPECT_EQ(Items(a).size(), 1u);
  STEP_OK(2, 1, 0, 0, 3);
  // Next visit (pass 4 starts with A): A0 freed (sharing 0), no VM_MERGEABLE
  // vma seen -> unregistered (SEMANTICS SCAN-7, MADV-13); then B0 visited.
  EXPECT_EQ(StepVisits(1).visits, 1u);
  STEP_OK(2, 0, 0, 0, 3);
  EXPECT_FALSE(Proc(a).ksm_registered);
  EXPECT_TRUE(Items(a).empty());
  EXPECT_EQ(m_->GetKsm().mm_slots, 1u);
  StepPasses(1);
  STEP_OK(2, 0, 0, 0, 4);
  // B keeps its (now single-mapped) KSM pages.
  EXPECT_EQ(Frame(k0).state, PageState::kKsm);
  EXPECT_EQ(Frame(k1).state, PageState::kKsm);
}

// SEMANTICS MADV-1..MADV-5: the madvise envelope.
TEST_F(KsmScenarioTest, MadviseEnvelopeErrors) {
  Pid a = NewProcess();
  const Vaddr base = Machine::kMmapBase + 64 * kPageSize;
  // Two one-page mappings with a one-page gap between them.
  auto m1 = m_->Mmap(a, base, kPageSize, kProtRead | kProtWrite, false, true);
  auto m2 = m_->Mmap(a, base + 2 * kPageSize, kPageSize, kProtRead | kProtWrite, false, true);
  ASSERT_TRUE(m1.ok() && m2.ok());
  ASSERT_EQ(m1->err, Errno::kOk);
  ASSERT_EQ(m2->err, Errno::kOk);
  ASSERT_EQ(m1->address, base);
  ASSERT_EQ(m2->address, base + 2 * kPageSize);
  FillPage(a, base, 0x11);

  // SEMANTICS MADV-2: unaligned start EINVAL; nothing applied.
  EXPECT_EQ(Madvise(a, base + 1, kPageSize, Advice::kMergeable), Errno::kEINVAL);
  EXPECT_EQ(Madvise(a, base + 100, kPageSize, Advice::kUnmergeable), Errno::kEINVAL);
  // Zero length: 0.
  EXPECT_EQ(Madvise(a, base, 0, Advice::kMergeable), Errno::kOk);
  // Rounding wraps to 0 / end wraps: EINVAL.
  EXPECT_EQ(Madvise(a, base, ~uint64_t{0} - 10, Advice::kMergeable), Errno::kEINVAL);
  EXPECT_EQ(Madvise(a, base, ~uint64_t{0} - 2 * kPageSize, Advice::kMergeable), Errno::kEINVAL);
  ProcessInfo p = Proc(a);
  EXPECT_FALSE(p.ksm_registered);
  for (const VmaInfo& v : p.vmas) EXPECT_FALSE(v.mergeable);
  EXPECT_EQ(m_->GetKsm().mm_slots, 0u);
  EXPECT_TRUE(MachineOk());

  // SEMANTICS MADV-4: a gap -> the mapped parts are processed, then ENOMEM.
  EXPECT_EQ(Madvise(a, base, 3 * kPageSize, Advice::kMergeable), Errno::kENOMEM);
  p = Proc(a);
  ASSERT_EQ(p.vmas.size(), 2u);
  EXPECT_EQ(p.vmas[0].start, base);
  EXPECT_TRUE(p.vmas[0].mergeable);  // the part before the gap
  EXPECT_TRUE(p.vmas[1].mergeable);  // and the part after it
  EXPECT_TRUE(p.ksm_registered);     // SEMANTICS MADV-7
  EXPECT_EQ(m_->GetKsm().mm_slots, 1u);
  EXPECT_TRUE(MachineOk());
  // Range entirely inside the gap: ENOMEM, nothing to do.
  EXPECT_EQ(Madvise(a, base + kPageSize, kPageSize, Advice::kUnmergeable), Errno::kENOMEM);
  p = Proc(a);
  EXPECT_TRUE(p.vmas[0].mergeable);
  EXPECT_TRUE(p.vmas[1].mergeable);
  // A gap with UNMERGEABLE: both parts processed, then ENOMEM.
  EXPECT_EQ(Madvise(a, base, 3 * kPageSize, Advice::kUnmergeable), Errno::kENOMEM);
  p = Proc(a);
  ASSERT_EQ(p.vmas.size(), 2u);
  EXPECT_FALSE(p.vmas[0].mergeable);
  EXPECT_FALSE(p.vmas[1].mergeable);
  // MADV_MERGEABLE is allowed even when ksmd is stopped and merges nothing
  // by itself (SEMANTICS MADV-9).
  EXPECT_EQ(Madvise(a, base, kPageSize, Advice::kMergeable), Errno::kOk);
  EXPECT_EQ(m_->GetKsm().run, 0u);
  STEP_OK(0, 0, 0, 0, 0);
}

}  // namespace
}  // namespace memnode
