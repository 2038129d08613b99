// KSM's unstable-tree lookup cache (RmapItem::cache_gen) must never change a
// result: the same random workload on two machines, one with the cache off,
// gives the same state digest (trees, items, counters, frames) after every
// step. The workload rewrites pages while they sit in the unstable tree (the
// "corrupt tree" cases), unmaps them, forks, exits, migrates and unmerges.
#include <random>

#include "gtest/gtest.h"
#include "server/core/machine.h"
#include "tests/testing/machine_fixture.h"

namespace memnode {
namespace {

using testing::SmallMachine;
using testing::Unwrap;

constexpr Vaddr kBase = Machine::kMmapBase;
constexpr uint64_t kPages = 10;

void Step(Machine& m, std::mt19937_64& rng) {
  std::vector<Pid> live;
  for (const auto& p : m.ListProcesses(false)) live.push_back(p.pid);
  if (live.size() < 3) {
    ProcessParams pp;
    pp.home_node = rng() % 2;
    Pid p = Unwrap(m.CreateProcess(pp));
    Unwrap(m.Mmap(p, kBase, kPages * kPageSize, kProtRead | kProtWrite, false, true));
    Unwrap(m.Madvise(p, kBase, kPages * kPageSize, Advice::kMergeable));
    return;
  }
  Pid pid = live[rng() % live.size()];
  Vaddr page = kBase + (rng() % kPages) * kPageSize;
  switch (rng() % 12) {
    case 0:
      if (live.size() < 6) Unwrap(m.Fork(pid));
      break;
    case 1:
      if (live.size() > 3) Unwrap(m.Exit(pid));
      break;
    case 2: Unwrap(m.Madvise(pid, page, kPageSize, Advice::kDontNeed)); break;
    case 3:
      Unwrap(
          m.Madvise(pid, page, kPageSize, rng() % 2 ? Advice::kUnmergeable : Advice::kMergeable));
      break;
    case 4: Unwrap(m.MigratePages(pid, pid, 1, 2)); break;
    case 5:
    case 6: Unwrap(m.KsmStepVisits(1 + rng() % 9)); break;
    default: {
      // Few distinct contents so pages match; small writes change contents
      // of pages that may be in the unstable tree.
      std::string s(rng() % 3 ? kPageSize : 8, static_cast<char>('a' + rng() % 3));
      Unwrap(m.Write(pid, page, reinterpret_cast<const uint8_t*>(s.data()), s.size()));
      break;
    }
  }
}

TEST(KsmLookupCacheTest, SameResultsWithAndWithoutTheCache) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    auto with = SmallMachine(2, 4, 64), without = SmallMachine(2, 4, 64);
    without->SetKsmLookupCacheForTesting(false);
    std::mt19937_64 ra(seed), rb(seed);
    for (int i = 0; i < 400; ++i) {
      Step(*with, ra);
      Step(*without, rb);
      ASSERT_EQ(with->Check().state_digest, without->Check().state_digest)
          << "seed " << seed << " step " << i;
    }
    EXPECT_INVARIANTS(*with);
    // The workload did exercise KSM.
    EXPECT_GT(with->GetKsm().visits_total, 0u);
  }
}

}  // namespace
}  // namespace memnode
