// Test helpers (gtest; library memnode_testing_gtest): the usual small MANUAL
// machine (2 nodes x 4 blocks x 64 pages), shorthands that unwrap StatusOr
// results, and SmallMachineTest, the fixture of the tests that drive such a
// machine call by call (hotplug_test, migrate_test).
//
// The machine: blocks 0-3 are node 0 (pfns 0..255; pfn 0 is the shared zero
// page), blocks 4-7 node 1 (pfns 256..511). See docs/SEMANTICS.md ("Worked
// example") for how the allocator hands out pages.
//
// Thread safety: test-thread only, like the gtest fixtures they serve.
#ifndef MEMNODE_TESTS_TESTING_MACHINE_FIXTURE_H_
#define MEMNODE_TESTS_TESTING_MACHINE_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "server/core/machine.h"
#include "server/core/types.h"

namespace memnode::testing {

// A MANUAL machine of `nodes` x `blocks` x `pages` (a failed Create is an
// EXPECT failure and a null machine).
std::unique_ptr<Machine> SmallMachine(uint32_t nodes = 2, uint32_t blocks = 4, uint64_t pages = 64);

template <typename T>
T Unwrap(absl::StatusOr<T> s) {
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : T{};
}

// The lines of `v`, each ended by a newline.
std::string Joined(const std::vector<std::string>& v);

#define EXPECT_INVARIANTS(m)                                                                   \
  do {                                                                                         \
    auto memnode_check_ = (m).Check();                                                         \
    EXPECT_TRUE(memnode_check_.ok()) << ::memnode::testing::Joined(memnode_check_.violations); \
  } while (0)

// The pfn mapped at `addr` of `pid`, kNoPfn when none.
Pfn PfnAt(Machine& m, Pid pid, Vaddr addr);
std::string ReadAll(Machine& m, Pid pid, Vaddr addr, uint64_t len);
Errno WriteStr(Machine& m, Pid pid, Vaddr addr, const std::string& s);

// KSM's counters on one line (failure messages).
std::string KsmInfoString(const KsmInfo& k);

// A fixture owning SmallMachine(2, 4, 64) in m_, with shorthands for the
// calls such tests make most. Each shorthand checks that the call was
// accepted (a refused call is a test failure); emulated errnos are returned
// for the test to compare with the kernel's.
class SmallMachineTest : public ::testing::Test {
 protected:
  // Visits enough for any number of passes over the small machine.
  static constexpr uint64_t kBigVisits = uint64_t{1} << 20;

  void SetUp() override;

  // A process with home node `home`; 0 on failure.
  Pid NewProcess(NodeId home, uint32_t uid = 0, bool privileged = false);
  // A private read-write mapping of `pages` (MAP_FIXED at `fixed_at` when
  // not 0); its address, 0 on failure.
  Vaddr Map(Pid pid, uint64_t pages, Vaddr fixed_at = 0);
  // Fills `pages` pages at `addr` with `byte` (must succeed).
  void FillPage(Pid pid, Vaddr addr, uint8_t byte, uint64_t pages = 1);
  // A page of `byte`s, as ReadPage returns it.
  static std::string Page(uint8_t byte);
  std::string ReadPage(Pid pid, Vaddr addr);
  Errno Madvise(Pid pid, Vaddr addr, uint64_t len, Advice a);

  // The translation of one page (an empty Translation on failure).
  Translation Tr(Pid pid, Vaddr addr);
  Pfn PfnOf(Pid pid, Vaddr addr) { return Tr(pid, addr).pfn; }
  NodeId NodeOf(Pid pid, Vaddr addr) { return Tr(pid, addr).node; }
  FrameInfo Frame(Pfn pfn);
  BlockInfo Block(BlockId b);

  // KSM: writes `run` (must succeed with 0); `k` full passes of ksmd.
  void SetRun(uint64_t run);
  void StepPasses(uint64_t k);
  // KSM's counters (pages_shared, _sharing, _unshared, _volatile, full_scans).
  ::testing::AssertionResult CountersAre(uint64_t shared, uint64_t sharing, uint64_t unshared,
                                         uint64_t vol, uint64_t full_scans);
  // pages_shared and pages_sharing only.
  ::testing::AssertionResult SharedSharing(uint64_t shared, uint64_t sharing);
  // Machine::Check() holds (the violations otherwise).
  ::testing::AssertionResult MachineOk();

  std::unique_ptr<Machine> m_;
};

}  // namespace memnode::testing

#endif  // MEMNODE_TESTS_TESTING_MACHINE_FIXTURE_H_
