// Test helpers and SmallMachineTest (machine_fixture.h).
#include "tests/testing/machine_fixture.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "server/core/machine.h"
#include "server/core/types.h"

namespace memnode::testing {

std::unique_ptr<Machine> SmallMachine(uint32_t nodes, uint32_t blocks, uint64_t pages) {
  MachineConfig c;
  c.nodes = nodes;
  c.blocks_per_node = blocks;
  c.pages_per_block = pages;
  c.clock = ClockMode::kManual;
  auto m = Machine::Create(c);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

Pfn PfnAt(Machine& m, Pid pid, Vaddr addr) {
  auto t = Unwrap(m.Translate(pid, addr, 1));
  return t.empty() || !t[0].present ? kNoPfn : t[0].pfn;
}

std::string ReadAll(Machine& m, Pid pid, Vaddr addr, uint64_t len) {
  return Unwrap(m.Read(pid, addr, len)).data;
}

Errno WriteStr(Machine& m, Pid pid, Vaddr addr, const std::string& s) {
  return Unwrap(m.Write(pid, addr, reinterpret_cast<const uint8_t*>(s.data()), s.size())).err;
}

std::string KsmInfoString(const KsmInfo& k) {
  return absl::StrCat("run=", k.run, " shared=", k.pages_shared, " sharing=", k.pages_sharing,
                      " unshared=", k.pages_unshared, " volatile=", k.pages_volatile,
                      " full_scans=", k.full_scans, " rmap_items=", k.rmap_items,
                      " stable_nodes=", k.stable_nodes, " locked_by_offline=", k.locked_by_offline);
}

void SmallMachineTest::SetUp() { m_ = SmallMachine(2, 4, 64); }

Pid SmallMachineTest::NewProcess(NodeId home, uint32_t uid, bool privileged) {
  ProcessParams pp;
  pp.home_node = home;
  pp.uid = uid;
  pp.privileged = privileged;
  auto p = m_->CreateProcess(pp);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : 0;
}

Vaddr SmallMachineTest::Map(Pid pid, uint64_t pages, Vaddr fixed_at) {
  auto r = m_->Mmap(pid, fixed_at, pages * kPageSize, kProtRead | kProtWrite, false, fixed_at != 0);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return 0;
  EXPECT_EQ(r->err, Errno::kOk);
  return r->address;
}

void SmallMachineTest::FillPage(Pid pid, Vaddr addr, uint8_t byte, uint64_t pages) {
  FillPattern p;
  p.kind = FillPattern::kByte;
  p.value = byte;
  auto r = m_->Fill(pid, addr, pages * kPageSize, p);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->err, Errno::kOk);
}

std::string SmallMachineTest::Page(uint8_t byte) {
  return std::string(kPageSize, static_cast<char>(byte));
}

std::string SmallMachineTest::ReadPage(Pid pid, Vaddr addr) {
  return ReadAll(*m_, pid, addr, kPageSize);
}

Errno SmallMachineTest::Madvise(Pid pid, Vaddr addr, uint64_t len, Advice a) {
  auto r = m_->Madvise(pid, addr, len, a);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : Errno::kEINVAL;
}

Translation SmallMachineTest::Tr(Pid pid, Vaddr addr) {
  auto r = m_->Translate(pid, addr, 1);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() && !r->empty() ? (*r)[0] : Translation{};
}

FrameInfo SmallMachineTest::Frame(Pfn pfn) { return Unwrap(m_->GetFrame(pfn)); }

BlockInfo SmallMachineTest::Block(BlockId b) { return Unwrap(m_->GetBlock(b)); }

void SmallMachineTest::SetRun(uint64_t run) {
  auto r = m_->KsmUpdate(run, std::nullopt, std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(*r, Errno::kOk);
}

void SmallMachineTest::StepPasses(uint64_t k) {
  auto r = m_->KsmStepPasses(k, kBigVisits);
  ASSERT_TRUE(r.ok()) << r.status();
}

::testing::AssertionResult SmallMachineTest::CountersAre(uint64_t shared, uint64_t sharing,
                                                         uint64_t unshared, uint64_t vol,
                                                         uint64_t full_scans) {
  KsmInfo k = m_->GetKsm();
  if (k.pages_shared == shared && k.pages_sharing == sharing && k.pages_unshared == unshared &&
      k.pages_volatile == vol && k.full_scans == full_scans)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "expected shared=" << shared << " sharing=" << sharing << " unshared=" << unshared
         << " volatile=" << vol << " full_scans=" << full_scans << "\n  actual "
         << KsmInfoString(k);
}

::testing::AssertionResult SmallMachineTest::SharedSharing(uint64_t shared, uint64_t sharing) {
  KsmInfo k = m_->GetKsm();
  if (k.pages_shared == shared && k.pages_sharing == sharing) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "shared=" << k.pages_shared << " sharing=" << k.pages_sharing;
}

::testing::AssertionResult SmallMachineTest::MachineOk() {
  CheckResult r = m_->Check();
  if (r.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << absl::StrJoin(r.violations, "\n");
}

}  // namespace memnode::testing
