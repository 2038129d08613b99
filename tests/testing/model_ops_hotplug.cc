// ModelDriver's hotplug operations (model_driver.h): offline of a block
// (with pauses at phase boundaries, unmovable kernel pages), resume, cancel
// and expiry of a paused offline, online, add and remove of blocks, and
// injected memory-notifier failures.
#include "tests/testing/model_driver.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/core/machine.h"
#include "server/core/names.h"
#include "server/core/status.h"
#include "server/core/types.h"
#include "tests/testing/model_driver_check.h"

namespace memnode::testing {

void ModelDriver::CheckOfflineResult(const OfflineReport& r) {
  auto b = m_->GetBlock(r.block);
  MD_ASSERT(b.ok()) << b.status();
  cov_->pages_migrated += r.pages_migrated;
  cov_->ksm_migrated += r.ksm_pages_migrated;
  cov_->pruned += r.stable_nodes_pruned;
  if (r.paused) {
    MD_EXPECT(b->state == BlockState::kGoingOffline) << BlockStateName(b->state);
    cov_->pauses++;
    paused_ = Paused{r.block, r.phase, now_, ttl_};
    return;
  }
  paused_.reset();
  if (r.err == Errno::kOk) {
    MD_EXPECT(r.phase == Phase::kDone) << OfflinePhaseName(r.phase);
    MD_EXPECT(b->state == BlockState::kOffline) << BlockStateName(b->state);
    cov_->offlines_ok++;
  } else {
    // SEMANTICS HP-11: the isolation is undone.
    MD_EXPECT(b->state == BlockState::kOnline) << BlockStateName(b->state) << " " << r.failure;
    cov_->offlines_failed++;
  }
}

void ModelDriver::DoOffline() {
  if (paused_) {
    OfflineOptions o;
    auto r = m_->OfflineBlock(1 + static_cast<BlockId>(Rand(7)), o, now_);
    MD_EXPECT(r.status().code() == absl::StatusCode::kFailedPrecondition) << r.status();
    MD_EXPECT(ErrorReason(r.status()) == "OFFLINE_IN_PROGRESS") << r.status();
    absl::StrAppend(&op_, " offline while paused -> refused");
    return;
  }
  auto blocks = m_->ListBlocks();
  std::vector<BlockId> cand;
  for (const auto& b : blocks) {
    if (b.id == 0 || b.state != BlockState::kOnline) continue;
    int others = 0;
    for (const auto& o : blocks)
      if (o.node == b.node && o.id != b.id && o.state == BlockState::kOnline) others++;
    if (others > 0) cand.push_back(b.id);
  }
  if (cand.empty()) return;
  // Prefer blocks holding KSM pages, then blocks in use (more migrations,
  // more chances of the seed's race: a freed KSM page with a live node).
  std::vector<BlockId> ksm, used;
  for (BlockId b : cand) {
    if (blocks[b].count[static_cast<int>(PageState::kKsm)] > 0) ksm.push_back(b);
    if (blocks[b].free_pages < blocks[b].pages) used.push_back(b);
  }
  std::vector<BlockId> stale;  // blocks named by a stale node's kpfn
  for (const StableNodeInfo& n : m_->KsmStableNodes())
    if (n.stale && std::count(cand.begin(), cand.end(), n.kpfn / kPagesPerBlock))
      stale.push_back(static_cast<BlockId>(n.kpfn / kPagesPerBlock));
  BlockId id = cand[Rand(cand.size())];
  if (!stale.empty() && Chance(80))
    id = stale[Rand(stale.size())];
  else if (!ksm.empty() && Chance(50))
    id = ksm[Rand(ksm.size())];
  else if (!used.empty() && Chance(70))
    id = used[Rand(used.size())];
  OfflineOptions o;
  static constexpr Phase kPauses[] = {Phase::kNone,         Phase::kNone,         Phase::kIsolated,
                                      Phase::kGoingOffline, Phase::kGoingOffline, Phase::kMigrated};
  o.pause_after = kPauses[Rand(6)];
  o.timeout_ns = 5 * 1000000ull;
  ttl_ = absl::Seconds(3 + static_cast<int64_t>(Rand(20)));
  o.pause_ttl = ttl_;
  if (Chance(10)) {
    // Sometimes an unmovable kernel page: isolation fails (SEMANTICS HP-7).
    auto k = m_->AllocKernelPages(id, 1, true);
    if (k.ok()) kernel_pages_.push_back(id);
  }
  auto r = m_->OfflineBlock(id, o, now_);
  MD_ASSERT(r.ok()) << r.status();
  absl::StrAppend(&op_, " offline ", id, " pause ", OfflinePhaseName(o.pause_after), " -> ",
                  ErrnoName(r->err), r->paused ? " paused" : "", " ", r->failure);
  CheckOfflineResult(*r);
  MD_RETURN_IF_FAILED();
  if (!kernel_pages_.empty() && kernel_pages_.back() == id && !r->paused) {
    MD_EXPECT(r->err == Errno::kEBUSY) << r->err;
    MD_EXPECT(r->notifier_calls.empty()) << "notifiers called";  // SEMANTICS HP-7
    MD_ASSERT(m_->FreeKernelPages(id, 1).ok());
    kernel_pages_.pop_back();
  }
}

void ModelDriver::DoPausedAction() {
  uint64_t k = Rand(3);
  if (k == 0) {
    std::optional<Phase> next;
    if (Chance(30)) next = paused_->phase == Phase::kIsolated ? Phase::kMigrated : Phase::kNone;
    BlockId id = paused_->block;
    auto r = m_->ResumeOffline(id, next, now_);
    MD_ASSERT(r.ok()) << r.status();
    cov_->resumes++;
    absl::StrAppend(&op_, " resume ", id, " -> ", ErrnoName(r->err), r->paused ? " paused" : "",
                    " ", r->failure);
    CheckOfflineResult(*r);
  } else if (k == 1) {
    BlockId id = paused_->block;
    auto r = m_->CancelOffline(id);
    MD_ASSERT(r.ok()) << r.status();
    cov_->cancels++;
    absl::StrAppend(&op_, " cancel ", id);
    MD_EXPECT(r->err != Errno::kOk);
    CheckOfflineResult(*r);
  } else {
    bool expect = now_ - paused_->paused_at >= paused_->ttl;
    BlockId id = paused_->block;
    bool got = m_->ExpirePausedOffline(now_);
    MD_EXPECT(got == expect) << got;
    absl::StrAppend(&op_, " expire -> ", got);
    if (got) {
      cov_->expiries++;
      paused_.reset();
      MD_EXPECT(m_->GetBlock(id)->state == BlockState::kOnline);
    }
  }
}

void ModelDriver::DoBlocks() {
  uint64_t k = Rand(4);
  auto blocks = m_->ListBlocks();
  std::vector<BlockId> offline;
  for (const auto& b : blocks)
    if (b.state == BlockState::kOffline) offline.push_back(b.id);
  if (k == 0 && !offline.empty()) {
    BlockId id = offline[Rand(offline.size())];
    auto r = m_->OnlineBlock(id);
    MD_ASSERT(r.ok()) << r.status();
    if (online_vetoes_ > 0) {
      // An injected GOING_ONLINE failure: MEM_CANCEL_ONLINE, still offline.
      MD_EXPECT(*r != Errno::kOk);
      MD_EXPECT(m_->GetBlock(id)->state == BlockState::kOffline);
      online_vetoes_--;
      cov_->online_vetoed++;
    } else {
      MD_EXPECT(*r == Errno::kOk) << *r;  // SEMANTICS HP-20
      cov_->onlines++;
    }
    absl::StrAppend(&op_, " online ", id, " -> ", ErrnoName(*r));
  } else if (k == 1 && blocks.size() < kMaxBlocks) {
    auto r = m_->AddBlock(static_cast<NodeId>(Rand(2)));
    MD_ASSERT(r.ok()) << r.status();
    MD_EXPECT(m_->GetBlock(*r)->state == BlockState::kOffline);
    cov_->blocks_added++;
    absl::StrAppend(&op_, " add block ", *r);
  } else if (k == 2 && !offline.empty()) {
    BlockId id = offline[Rand(offline.size())];
    auto r = m_->RemoveBlock(id);
    MD_ASSERT(r.ok()) << r.status();
    MD_EXPECT(*r == Errno::kOk) << *r;
    cov_->blocks_removed++;
    absl::StrAppend(&op_, " remove block ", id);
  } else {
    // A block not offline can neither be onlined nor removed.
    BlockId id = static_cast<BlockId>(Rand(blocks.size()));
    if (blocks[id].state == BlockState::kOnline || blocks[id].state == BlockState::kGoingOffline) {
      MD_EXPECT(*m_->OnlineBlock(id) == Errno::kEINVAL);
      MD_EXPECT(*m_->RemoveBlock(id) == Errno::kEBUSY);
    }
    absl::StrAppend(&op_, " wrong-state online/remove ", id);
  }
}

void ModelDriver::DoInject() {
  if (Chance(30)) {
    m_->ClearNotifierFailures();
    online_vetoes_ = 0;
    absl::StrAppend(&op_, " clear notifier failures");
    return;
  }
  int prio = Chance(50) ? 50 : 200;
  Errno err = Chance(50) ? Errno::kEBUSY : Errno::kENOMEM;
  auto event = MemEvent::kGoingOffline;
  uint64_t k = Rand(10);
  if (k == 0) {
    event = MemEvent::kGoingOnline;
    online_vetoes_++;
  } else if (k == 1) {
    event = MemEvent::kOffline;  // the kernel ignores MEM_OFFLINE's result
  } else if (k == 2) {
    event = MemEvent::kCancelOffline;
  }
  absl::Status st = m_->InjectNotifierFailure(event, prio, err, 1);
  if (event == MemEvent::kOffline || event == MemEvent::kCancelOffline) {
    // Events whose result the kernel ignores: refused as misuse.
    MD_EXPECT(st.ok() || st.code() == absl::StatusCode::kInvalidArgument) << st;
  } else {
    MD_ASSERT(st.ok()) << st;
  }
  absl::StrAppend(&op_, " inject ", MemEventName(event), " prio ", prio, " ", ErrnoName(err));
}

}  // namespace memnode::testing
