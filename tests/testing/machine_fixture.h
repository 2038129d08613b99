// Test helpers: the usual small MANUAL machine (2 nodes x 4 blocks x 64 pages)
// and shorthands that unwrap StatusOr results.
#ifndef MEMNODE_TESTS_TESTING_MACHINE_FIXTURE_H_
#define MEMNODE_TESTS_TESTING_MACHINE_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/machine.h"

namespace memnode::testing {

inline std::unique_ptr<Machine> SmallMachine(uint32_t nodes = 2, uint32_t blocks = 4,
                                             uint64_t pages = 64) {
  MachineConfig c;
  c.nodes = nodes;
  c.blocks_per_node = blocks;
  c.pages_per_block = pages;
  c.clock = ClockMode::kManual;
  auto m = Machine::Create(c);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

template <typename T>
T Unwrap(absl::StatusOr<T> s) {
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : T{};
}

inline std::string Joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

#define EXPECT_INVARIANTS(m)                                                                   \
  do {                                                                                         \
    auto memnode_check_ = (m).Check();                                                         \
    EXPECT_TRUE(memnode_check_.ok()) << ::memnode::testing::Joined(memnode_check_.violations); \
  } while (0)

inline Pfn PfnAt(Machine& m, Pid pid, Vaddr addr) {
  auto t = Unwrap(m.Translate(pid, addr, 1));
  return t.empty() || !t[0].present ? kNoPfn : t[0].pfn;
}

inline std::string ReadAll(Machine& m, Pid pid, Vaddr addr, uint64_t len) {
  return Unwrap(m.Read(pid, addr, len)).data;
}

inline Errno WriteStr(Machine& m, Pid pid, Vaddr addr, const std::string& s) {
  return Unwrap(m.Write(pid, addr, reinterpret_cast<const uint8_t*>(s.data()), s.size())).err;
}

}  // namespace memnode::testing

#endif  // MEMNODE_TESTS_TESTING_MACHINE_FIXTURE_H_
