// ModelDriver (model_driver.h): the choice sources, Run, the step dispatch
// (one draw picks the operation; model_ops_*.cc implement them), Verify (the
// checks after every step) and helpers shared by the operations.
#include "tests/testing/model_driver.h"

#include <cstring>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "server/core/machine.h"
#include "server/core/names.h"
#include "server/core/types.h"
#include "tests/testing/model_driver_check.h"

namespace memnode::testing {

uint64_t PrngSource::Rand(uint64_t n) {
  return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_);
}

uint64_t BytesSource::Rand(uint64_t n) {
  if (n <= 1) return 0;
  uint64_t v = 0;
  int bytes = n <= 0x100 ? 1 : n <= 0x10000 ? 2 : n <= 0x100000000ull ? 4 : 8;
  for (int i = 0; i < bytes; ++i) {
    if (pos_ >= size_) {
      exhausted_ = true;
      break;
    }
    v |= uint64_t{data_[pos_++]} << (8 * i);
  }
  return v % n;
}

std::string Coverage::ToString() const {
  return absl::StrCat(
      "offlines_ok=", offlines_ok, " failed=", offlines_failed, " pauses=", pauses,
      " resumes=", resumes, " cancels=", cancels, " expiries=", expiries,
      " ksm_migrated=", ksm_migrated, " pruned=", pruned, " pages_migrated=", pages_migrated,
      " sharing_steps=", steps_with_sharing, " locked_refusals=", locked_refusals,
      " move_pages_ksm=", move_pages_ksm, " added=", blocks_added, " removed=", blocks_removed,
      " onlines=", onlines, " online_vetoed=", online_vetoed, " munmaps=", munmaps,
      " mprotects=", mprotects, " readonly_refusals=", readonly_refusals,
      " shared_maps=", shared_maps, " snapshots=", snapshots, " mempolicies=", mempolicies,
      " misuses=", misuses, " ksm_without_node=", ksm_without_node, " fork_writes=", fork_writes,
      " full_node_migrations=", full_node_migrations, " move_pages_dups=", move_pages_dups,
      " ops=", ops);
}

// Runs up to options.steps operations; false at the first failed check.
bool ModelDriver::Run() {
  MachineConfig c;
  c.nodes = 2;
  c.blocks_per_node = 4;
  c.pages_per_block = kPagesPerBlock;
  c.clock = ClockMode::kManual;
  auto m = Machine::Create(c);
  MD_EXPECT(m.ok()) << m.status();
  if (failed_) return false;
  m_ = std::move(*m);
  auto run = m_->KsmUpdate(1, std::nullopt, std::nullopt);
  MD_EXPECT(run.ok() && *run == Errno::kOk);
  NewProcess();
  NewProcess();
  if (failed_) return false;
  for (step_ = 0; step_ < options_.steps && !src_->Exhausted(); ++step_) {
    op_.clear();
    now_ += absl::Seconds(1);
    Step();
    cov_->ops++;
    history_.push_back(absl::StrCat(step_, ":", op_));
    if (history_.size() > static_cast<size_t>(options_.history)) history_.erase(history_.begin());
    if (failed_) return false;
    Verify();
    if (failed_) return false;
  }
  // Leave nothing paused.
  if (paused_) {
    op_ = " final cancel";
    auto r = m_->CancelOffline(paused_->block);
    MD_EXPECT(r.ok()) << r.status();
    paused_.reset();
    if (!failed_) Verify();
  }
  return !failed_;
}

// The failed check, the step and the recent operations.
std::string ModelDriver::Report() const {
  return absl::StrCat("step ", step_, ": ", failure_, "\n  recent steps:\n    ",
                      absl::StrJoin(history_, "\n    "));
}

std::shared_ptr<std::vector<uint8_t>> ModelDriver::ZeroPage() {
  return std::make_shared<std::vector<uint8_t>>(kPageSize, 0);
}

Pid ModelDriver::AnyPid() {
  auto it = shadow_.begin();
  std::advance(it, Rand(shadow_.size()));
  return it->first;
}

// Runs of contiguous virtual pages of `pid`: (first vpn, pages).
std::vector<std::pair<uint64_t, uint64_t>> ModelDriver::Runs(Pid pid, bool readable_only) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& [vpn, pg] : shadow_[pid]) {
    if (readable_only && pg.prot == 0) continue;
    if (!out.empty() && out.back().first + out.back().second == vpn)
      out.back().second++;
    else
      out.emplace_back(vpn, 1);
  }
  return out;
}

// A random range of mapped pages of `pid` (contiguous, at most 6 pages).
bool ModelDriver::PickRange(Pid pid, Vaddr* start, uint64_t* count) {
  Space& s = shadow_[pid];
  if (s.empty()) return false;
  auto it = s.begin();
  std::advance(it, Rand(s.size()));
  uint64_t vpn = it->first, avail = 0;
  for (auto j = it; j != s.end() && j->first == vpn + avail && avail < kMaxMappingPages; ++j)
    avail++;
  *start = vpn << kPageShift;
  *count = 1 + Rand(avail);
  return true;
}

void ModelDriver::Step() {
  uint64_t r = Rand(116);
  if (paused_ && r < 8) return DoPausedAction();
  if (r < 25) return DoWrite();
  if (r < 32) return DoMadvise(Advice::kMergeable);
  if (r < 34) return DoMadvise(Advice::kUnmergeable);
  if (r < 35) return DoMadvise(Advice::kDontNeed);
  if (r < 38) return DoFork();
  if (r < 40) return DoExit();
  if (r < 42) {
    if (shadow_.size() < kMaxProcesses) return NewProcess();
    return NewMapping(AnyPid());
  }
  if (r < 60) return DoKsmStep();
  if (r < 62) return DoRun();
  if (r < 67) return DoMigratePages();
  if (r < 72) return DoMbind();
  if (r < 77) return DoMovePages();
  if (r < 80) return DoPin();
  if (r < 88) return DoOffline();
  if (r < 91) return DoBlocks();
  if (r < 93) return DoInject();
  if (r < 100) return DoKsmStep();
  if (r < 103) return NewMapping(AnyPid());
  if (r < 105) return DoMunmap();
  if (r < 107) return DoMprotect();
  if (r < 109) return DoMempolicy();
  if (r < 110) return DoSnapshot();
  if (r < 112) return DoMisuse();
  if (r < 113) return DoForkAndWriteKsm();
  if (r < 114) return DoKsmNodelessScenario();
  return DoMigrateToFullNode();
}

void ModelDriver::Verify() {
  for (auto& [pid, space] : shadow_) {
    for (const auto& [vpn0, pages] : Runs(pid, /*readable_only=*/true)) {
      const Vaddr start = vpn0 << kPageShift;
      auto r = m_->Read(pid, start, pages * kPageSize);
      MD_ASSERT(r.ok()) << r.status();
      MD_ASSERT(r->err == Errno::kOk)
          << r->err << " reading pid " << pid << " 0x" << std::hex << start;
      MD_ASSERT(r->data.size() == pages * kPageSize) << r->data.size();
      for (uint64_t i = 0; i < pages; ++i) {
        const std::vector<uint8_t>& mem = *space[vpn0 + i].data;
        const char* got = r->data.data() + i * kPageSize;
        if (std::memcmp(got, mem.data(), kPageSize) != 0) {
          size_t j = 0;
          while (static_cast<uint8_t>(got[j]) == mem[j]) ++j;
          MD_ASSERT(false) << "pid " << pid << ": first difference at 0x" << std::hex
                           << start + i * kPageSize + j << " read 0x"
                           << int(static_cast<uint8_t>(got[j])) << " shadow 0x" << int(mem[j]);
        }
      }
    }
    for (const auto& [vpn0, pages] : Runs(pid)) {
      auto t = m_->Translate(pid, vpn0 << kPageShift, pages);
      MD_ASSERT(t.ok()) << t.status();
      for (const Translation& x : *t) {
        MD_EXPECT(x.mapped) << "pid " << pid << " 0x" << std::hex << x.address << " unmapped";
        if (!x.present) continue;
        auto f = m_->GetFrame(x.pfn);
        MD_ASSERT(f.ok()) << f.status();
        if (f->state == PageState::kKsm && f->stable_node_id == 0) cov_->ksm_without_node++;
        MD_EXPECT(f->state != PageState::kOffline)
            << "pid " << pid << " 0x" << std::hex << x.address << " maps offline pfn " << x.pfn;
        MD_EXPECT(f->state != PageState::kFree)
            << "pid " << pid << " 0x" << std::hex << x.address << " maps free pfn " << x.pfn;
      }
    }
  }
  CheckResult c = m_->Check();
  MD_ASSERT(c.ok()) << absl::StrJoin(c.violations, "\n");
  digests_.push_back(c.state_digest);
  auto blocks = m_->ListBlocks();
  uint64_t shared = 0, sharing = 0;
  for (const StableNodeInfo& n : m_->KsmStableNodes()) {
    if (!n.mappings.empty()) {
      shared++;
      sharing += n.mappings.size() - 1;
    }
    BlockId b = static_cast<BlockId>(n.kpfn / kPagesPerBlock);
    MD_ASSERT(b < blocks.size()) << "kpfn " << n.kpfn;
    MD_EXPECT(blocks[b].state == BlockState::kOnline ||
              blocks[b].state == BlockState::kGoingOffline)
        << "node " << n.id << " kpfn " << n.kpfn << " in a block that is "
        << BlockStateName(blocks[b].state);
    if (n.stale) continue;
    auto f = m_->GetFrame(n.kpfn);
    MD_ASSERT(f.ok()) << f.status();
    MD_EXPECT(f->state == PageState::kKsm) << "node " << n.id << " kpfn " << n.kpfn;
    MD_EXPECT(f->stable_node_id == n.id) << "node " << n.id << " kpfn " << n.kpfn;
  }
  KsmInfo k = m_->GetKsm();
  MD_EXPECT(k.pages_shared == shared) << k.pages_shared << " vs " << shared;
  MD_EXPECT(k.pages_sharing == sharing) << k.pages_sharing << " vs " << sharing;
  MD_EXPECT(m_->KsmLocked() == Locked()) << m_->KsmLocked();
  MD_EXPECT(k.locked_by_offline == Locked()) << k.locked_by_offline;
  if (k.pages_sharing) cov_->steps_with_sharing++;
}

}  // namespace memnode::testing
