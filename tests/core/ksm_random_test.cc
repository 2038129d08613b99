// Randomized test of the KSM emulation: random writes (often one of a handful
// of page patterns, sometimes identical bytes), forks, exits, madvise
// MERGEABLE/UNMERGEABLE/DONTNEED, scanner steps and run=2 on a small machine,
// checked against a shadow copy of every process's memory.
//
// After every step:
//  - every live process reads back exactly its shadow (docs/RELIABILITY.md:
//    whatever merges, COW breaks and forks happen, a read returns the last
//    write; SEMANTICS COW-1: a KSM page is never written in place);
//  - Machine::Check() is ok;
//  - every stable node is stale or names a KSM frame that points back at it
//    (SEMANTICS DS-7..DS-8, DS-17);
//  - pages_shared / pages_sharing equal the node lists (SEMANTICS CNT-1,
//    3.2: shared = nodes with >= 1 item, sharing = sum of (length - 1)).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/machine.h"
#include "server/core/types.h"

namespace memnode {
namespace {

constexpr int kSeeds = 20;
constexpr int kSteps = 300;
constexpr size_t kMaxProcesses = 6;
constexpr uint64_t kMaxMappingPages = 6;
constexpr size_t kMaxMappings = 2;
// A handful of page patterns so that merges are frequent.
constexpr uint8_t kPatterns[] = {0x5a, 0x6b, 0x7c, 0x8d};

// What the random runs exercised, so that a quiet run cannot pass silently.
struct Coverage {
  uint64_t steps_with_sharing = 0;  // pages_sharing > 0 after the step
  uint64_t max_sharing = 0;
  uint64_t stale_nodes_seen = 0;
  uint64_t unstable_seen = 0;  // steps with pages_unshared > 0
  uint64_t ksm_pages_in_children = 0;
  uint64_t visits = 0;
};

class KsmRandom {
 public:
  KsmRandom(uint64_t seed, Coverage* cov) : rng_(seed), cov_(cov) {}

  void Run() {
    MachineConfig c;
    c.nodes = 2;
    c.blocks_per_node = 4;
    c.pages_per_block = 64;
    c.clock = ClockMode::kManual;
    auto m = Machine::Create(c);
    ASSERT_TRUE(m.ok()) << m.status();
    m_ = std::move(*m);
    ASSERT_EQ(*m_->KsmUpdate(1, std::nullopt, std::nullopt), Errno::kOk);
    NewProcess();
    NewProcess();
    for (int step = 0; step < kSteps; ++step) {
      op_.clear();
      SCOPED_TRACE(absl::StrCat("step ", step));
      Step();
      SCOPED_TRACE(op_);
      if (::testing::Test::HasFatalFailure()) return;
      Verify();
      if (::testing::Test::HasFailure()) return;  // one report per seed is enough
    }
  }

 private:
  uint64_t Rand(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Rand(100) < static_cast<uint64_t>(percent); }

  Pid AnyPid() {
    auto it = shadow_.begin();
    std::advance(it, Rand(shadow_.size()));
    return it->first;
  }

  void NewMapping(Pid pid) {
    uint64_t pages = 1 + Rand(kMaxMappingPages);
    auto r = m_->Mmap(pid, 0, pages * kPageSize, kProtRead | kProtWrite, false, false);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->err, Errno::kOk);
    shadow_[pid][r->address] = std::vector<uint8_t>(pages * kPageSize, 0);
    absl::StrAppend(&op_, " mmap pid ", pid.value(), " 0x", absl::Hex(r->address), " pages ",
                    pages);
  }

  void NewProcess() {
    auto p = m_->CreateProcess(ProcessParams{});
    ASSERT_TRUE(p.ok()) << p.status();
    shadow_[*p];
    absl::StrAppend(&op_, " create pid ", (*p).value());
    NewMapping(*p);
  }

  // Picks a mapping of pid and a page-aligned subrange [first, first+count).
  void PickRange(Pid pid, Vaddr* start, uint64_t* first, uint64_t* count) {
    auto& maps = shadow_[pid];
    auto it = maps.begin();
    std::advance(it, Rand(maps.size()));
    *start = it->first;
    uint64_t pages = it->second.size() / kPageSize;
    *first = Rand(pages);
    *count = 1 + Rand(pages - *first);
  }

  void DoWrite() {
    Pid pid = AnyPid();
    Vaddr start;
    uint64_t first, count;
    PickRange(pid, &start, &first, &count);
    std::vector<uint8_t>& mem = shadow_[pid][start];
    uint64_t kind = Rand(100);
    if (kind < 55) {
      // Whole pages of one pattern (Fill).
      uint8_t b = kPatterns[Rand(sizeof(kPatterns))];
      FillPattern fp;
      fp.kind = FillPattern::kByte;
      fp.value = b;
      Vaddr a = start + first * kPageSize;
      auto r = m_->Fill(pid, a, count * kPageSize, fp);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->err, Errno::kOk);
      std::fill(mem.begin() + first * kPageSize, mem.begin() + (first + count) * kPageSize, b);
      absl::StrAppend(&op_, " fill pid ", pid.value(), " 0x", absl::Hex(a), " pages ", count,
                      " byte ", b);
      return;
    }
    // A byte range inside one page.
    uint64_t off = Rand(kPageSize);
    uint64_t len = 1 + Rand(std::min<uint64_t>(kPageSize - off, kind < 70 ? 16 : kPageSize));
    uint64_t pos = first * kPageSize + off;
    std::vector<uint8_t> data(len);
    const char* what;
    if (kind < 85) {
      // Identical bytes: still a COW break on a KSM page (SEMANTICS COW-1).
      std::copy(mem.begin() + pos, mem.begin() + pos + len, data.begin());
      what = "same";
    } else if (kind < 93) {
      // One of the patterns (may turn a page into a pattern page again).
      std::fill(data.begin(), data.end(), kPatterns[Rand(sizeof(kPatterns))]);
      what = "pattern";
    } else {
      for (auto& d : data) d = static_cast<uint8_t>(Rand(256));
      what = "random";
    }
    auto r = m_->Write(pid, start + pos, data.data(), len);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->err, Errno::kOk);
    ASSERT_EQ(r->bytes_done, len);
    std::copy(data.begin(), data.end(), mem.begin() + pos);
    absl::StrAppend(&op_, " write(", what, ") pid ", pid.value(), " 0x", absl::Hex(start + pos),
                    " len ", len);
  }

  void DoMadvise(Advice advice) {
    Pid pid = AnyPid();
    Vaddr start;
    uint64_t first, count;
    PickRange(pid, &start, &first, &count);
    Vaddr a = start + first * kPageSize;
    auto r = m_->Madvise(pid, a, count * kPageSize, advice);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(*r, Errno::kOk);
    if (advice == Advice::kDontNeed) {
      std::vector<uint8_t>& mem = shadow_[pid][start];
      std::fill(mem.begin() + first * kPageSize, mem.begin() + (first + count) * kPageSize, 0);
    }
    absl::StrAppend(&op_, " madvise(", static_cast<int>(advice), ") pid ", pid.value(), " 0x",
                    absl::Hex(a), " pages ", count);
  }

  void Step() {
    uint64_t r = Rand(100);
    if (r < 35) {
      DoWrite();
    } else if (r < 45) {
      DoMadvise(Advice::kMergeable);
    } else if (r < 49) {
      DoMadvise(Advice::kUnmergeable);
    } else if (r < 51) {
      DoMadvise(Advice::kDontNeed);
    } else if (r < 56) {
      if (shadow_.size() >= kMaxProcesses) return DoWrite();
      Pid parent = AnyPid();
      auto c = m_->Fork(parent);
      ASSERT_TRUE(c.ok()) << c.status();
      shadow_[*c] = shadow_[parent];
      absl::StrAppend(&op_, " fork ", parent.value(), " -> ", (*c).value());
    } else if (r < 60) {
      if (shadow_.size() <= 1) return NewProcess();
      Pid pid = AnyPid();
      auto e = m_->Exit(pid);
      ASSERT_TRUE(e.ok()) << e.status();
      shadow_.erase(pid);
      absl::StrAppend(&op_, " exit ", pid.value());
    } else if (r < 63) {
      if (shadow_.size() < kMaxProcesses) return NewProcess();
      Pid pid = AnyPid();
      if (shadow_[pid].size() < kMaxMappings) return NewMapping(pid);
      return DoWrite();
    } else if (r < 97) {
      uint64_t n = 1 + Rand(40);
      auto s = m_->KsmStepVisits(n);
      ASSERT_TRUE(s.ok()) << s.status();
      absl::StrAppend(&op_, " step visits ", n, " -> ", s->visits);
    } else {
      // run=2 then run=0 or 1.
      ASSERT_EQ(*m_->KsmUpdate(2, std::nullopt, std::nullopt), Errno::kOk);
      KsmInfo k = m_->GetKsm();
      // SEMANTICS KNOB-7 / SC-14: everything unmerged, items freed, full_scans 0.
      EXPECT_EQ(k.run, 2u);
      EXPECT_EQ(k.pages_shared, 0u);
      EXPECT_EQ(k.pages_sharing, 0u);
      EXPECT_EQ(k.pages_unshared, 0u);
      EXPECT_EQ(k.pages_volatile, 0u);
      EXPECT_EQ(k.full_scans, 0u);
      EXPECT_EQ(k.rmap_items, 0u);
      uint64_t next = Rand(2);
      ASSERT_EQ(*m_->KsmUpdate(next, std::nullopt, std::nullopt), Errno::kOk);
      absl::StrAppend(&op_, " run=2 then run=", next);
    }
  }

  void Verify() {
    for (const auto& [pid, maps] : shadow_) {
      for (const auto& [start, mem] : maps) {
        auto r = m_->Read(pid, start, mem.size());
        ASSERT_TRUE(r.ok()) << r.status();
        ASSERT_EQ(r->err, Errno::kOk);
        ASSERT_EQ(r->data.size(), mem.size());
        if (std::memcmp(r->data.data(), mem.data(), mem.size()) != 0) {
          size_t i = 0;
          while (static_cast<uint8_t>(r->data[i]) == mem[i]) ++i;
          FAIL() << "pid " << pid << " mapping 0x" << std::hex << start
                 << ": first difference at 0x" << start + i << " read 0x"
                 << int(static_cast<uint8_t>(r->data[i])) << " shadow 0x" << int(mem[i]);
        }
      }
    }
    CheckResult c = m_->Check();
    ASSERT_TRUE(c.ok()) << absl::StrJoin(c.violations, "\n");
    uint64_t shared = 0, sharing = 0;
    for (const StableNodeInfo& n : m_->KsmStableNodes()) {
      if (!n.mappings.empty()) {
        shared++;
        sharing += n.mappings.size() - 1;
      }
      if (n.stale) continue;
      auto f = m_->GetFrame(n.kpfn);
      ASSERT_TRUE(f.ok()) << f.status();
      EXPECT_EQ(f->state, PageState::kKsm) << "node " << n.id << " kpfn " << n.kpfn;
      EXPECT_EQ(f->stable_node_id, n.id) << "node " << n.id << " kpfn " << n.kpfn;
    }
    KsmInfo k = m_->GetKsm();
    EXPECT_EQ(k.pages_shared, shared);
    EXPECT_EQ(k.pages_sharing, sharing);
    if (k.pages_sharing) cov_->steps_with_sharing++;
    cov_->max_sharing = std::max(cov_->max_sharing, k.pages_sharing);
    if (k.pages_unshared) cov_->unstable_seen++;
    for (const StableNodeInfo& n : m_->KsmStableNodes()) cov_->stale_nodes_seen += n.stale;
    cov_->visits = k.visits_total;
    for (const auto& [pid, maps] : shadow_) {
      auto p = m_->GetProcess(pid);
      ASSERT_TRUE(p.ok()) << p.status();
      if (p->ppid) cov_->ksm_pages_in_children += p->ksm_pages;
    }
  }

  std::mt19937_64 rng_;
  Coverage* cov_;
  std::unique_ptr<Machine> m_;
  std::map<Pid, std::map<Vaddr, std::vector<uint8_t>>> shadow_;  // pid -> mapping -> bytes
  std::string op_;
};

TEST(KsmRandomTest, ShadowMemoryAndInvariants) {
  Coverage cov;
  uint64_t visits = 0;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    KsmRandom(static_cast<uint64_t>(seed) * 7919, &cov).Run();
    visits += cov.visits;
    if (::testing::Test::HasFailure()) return;
  }
  std::printf(
      "coverage: steps_with_sharing=%llu max_sharing=%llu stale_nodes_seen=%llu "
      "unstable_steps=%llu ksm_pages_in_children=%llu visits=%llu\n",
      (unsigned long long)cov.steps_with_sharing, (unsigned long long)cov.max_sharing,
      (unsigned long long)cov.stale_nodes_seen, (unsigned long long)cov.unstable_seen,
      (unsigned long long)cov.ksm_pages_in_children, (unsigned long long)visits);
  // The mix must actually merge, leave stale nodes and fork KSM pages.
  EXPECT_GT(cov.steps_with_sharing, uint64_t{kSeeds * kSteps / 10});
  EXPECT_GE(cov.max_sharing, 3u);
  EXPECT_GT(cov.stale_nodes_seen, 0u);
  EXPECT_GT(cov.unstable_seen, 0u);
  EXPECT_GT(cov.ksm_pages_in_children, 0u);
}

}  // namespace
}  // namespace memnode
