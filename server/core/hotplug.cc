// Overview: memory blocks and hot-remove with the seed's sequence
// (kernel-semantics section 7), the memory notifier chain with KSM's callback
// at priority 100 (7.3), pause points (SPEC Decisions 4) and notifier error
// injection.
//
// offline_pages (7.2), as a resumable state machine:
//   kNone -> isolate: a block with unmovable pages fails EBUSY before any
//            notifier; else GOING_OFFLINE state, its free pages leave the
//            allocator.                                         -> kIsolated
//   kIsolated -> MEM_GOING_OFFLINE through the chain (KSM takes its lock);
//            a notifier error fails the offline.                -> kGoingOffline
//   kGoingOffline -> the migration loop: from the first LRU page, isolate up
//            to 256 LRU pages (a non-LRU in-use page among them: -EBUSY) and
//            migrate them with offlining set; -EBUSY/-ENOMEM use up one of 5
//            retries; pages that would not move (pins) loop until the 120 s
//            deadline -> EAGAIN; no LRU page left: every page must be free,
//            else EBUSY.                                        -> kMigrated
//   kMigrated -> pages leave the machine, block OFFLINE, MEM_OFFLINE (KSM
//            prunes nodes with kpfn in the block, then unlocks). -> kDone
// Failure after GOING_OFFLINE was sent: MEM_CANCEL_OFFLINE first, then the
// isolation is undone (the seed's order); pages already moved stay moved.
//
// Time: the loop runs in emulated time (1 ms per round). A round that moves
// nothing leaves the machine exactly as it was, so every later round until
// the deadline would too: the loop jumps to the deadline instead of spinning.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/core/ksm/ksm.h"
#include "server/core/machine.h"
#include "server/core/status.h"

namespace memnode {
namespace {

constexpr uint64_t kRoundNs = 1000000;  // emulated cost of a migration round
constexpr int kKsmPriority = 100;       // hotplug_memory_notifier(ksm_memory_callback, 100)

bool IsLru(PageState s) {
  return s == PageState::kAnon || s == PageState::kKsm || s == PageState::kShmem;
}

}  // namespace

const char* BlockStateName(BlockState s) {
  switch (s) {
    case BlockState::kOnline: return "online";
    case BlockState::kGoingOffline: return "going-offline";
    case BlockState::kOffline: return "offline";
    case BlockState::kRemoved: return "removed";
  }
  return "?";
}

const char* Machine::MemEventName(MemEvent e) {
  switch (e) {
    case MemEvent::kGoingOnline: return "MEM_GOING_ONLINE";
    case MemEvent::kCancelOnline: return "MEM_CANCEL_ONLINE";
    case MemEvent::kOnline: return "MEM_ONLINE";
    case MemEvent::kGoingOffline: return "MEM_GOING_OFFLINE";
    case MemEvent::kCancelOffline: return "MEM_CANCEL_OFFLINE";
    case MemEvent::kOffline: return "MEM_OFFLINE";
  }
  return "?";
}

const char* Machine::OfflinePhaseName(OfflinePhase p) {
  switch (p) {
    case OfflinePhase::kNone: return "none";
    case OfflinePhase::kIsolated: return "isolated";
    case OfflinePhase::kGoingOffline: return "going_offline";
    case OfflinePhase::kMigrated: return "migrated";
    case OfflinePhase::kDone: return "done";
  }
  return "?";
}

absl::StatusOr<MemoryBlock*> Machine::BlockById(BlockId id) {
  if (id >= blocks_.size())
    return MakeError(
        absl::StatusCode::kNotFound, "BLOCK_NOT_FOUND",
        absl::StrCat("no memory block ", id, " (the machine has ", blocks_.size(), ")"));
  return &blocks_[id];
}

Machine::BlockInfo Machine::DescribeBlock(const MemoryBlock& b) {
  BlockInfo bi;
  bi.id = b.id;
  bi.node = b.node;
  bi.start_pfn = b.start;
  bi.pages = b.pages;
  bi.state = b.state;
  bi.free_pages =
      b.state == BlockState::kOnline || b.state == BlockState::kGoingOffline ? b.free_pages : 0;
  std::copy(std::begin(b.count), std::end(b.count), std::begin(bi.count));
  bi.unmovable_pages = b.unmovable_pages;
  // 7.1 rule 4: removable when every pageblock is movable (no unmovable or
  // reserved page; the zero page is reserved).
  bi.removable = b.state == BlockState::kOnline && b.unmovable_pages == 0 &&
                 b.count[static_cast<int>(PageState::kZero)] == 0;
  return bi;
}

std::vector<Machine::BlockInfo> Machine::ListBlocks() {
  absl::MutexLock lock(&mu_);
  std::vector<BlockInfo> out;
  for (const MemoryBlock& b : blocks_) out.push_back(DescribeBlock(b));
  return out;
}

absl::StatusOr<Machine::BlockInfo> Machine::GetBlock(BlockId id) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  return DescribeBlock(*b);
}

absl::StatusOr<uint64_t> Machine::AllocKernelPages(BlockId id, uint64_t count, bool unmovable) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  if (b->state != BlockState::kOnline)
    return MakeError(absl::StatusCode::kFailedPrecondition, "BLOCK_NOT_ONLINE",
                     absl::StrCat("block ", id, " is ", BlockStateName(b->state)));
  if (count > b->free_pages)
    return MakeError(absl::StatusCode::kResourceExhausted, "NO_FREE_PAGES",
                     absl::StrCat("block ", id, " has ", b->free_pages, " free pages"));
  EnsureFrames(*b);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t off;
    if (!b->free_stack.empty()) {
      off = b->free_stack.back();
      b->free_stack.pop_back();
    } else {
      off = b->next_untouched++;
    }
    if (--b->free_pages == 0) free_blocks_[b->node].erase(b->id);
    Pfn pfn = b->start + off;
    PageFrame& f = b->frames[off];
    SetState(pfn, f, PageState::kReserved);
    f.content = contents_.zero();
    f.refcount = 1;  // the kernel's own reference
    f.unmovable = unmovable;
    if (unmovable) b->unmovable_pages++;
  }
  return count;
}

absl::StatusOr<uint64_t> Machine::FreeKernelPages(BlockId id, uint64_t count) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  uint64_t freed = 0;
  if (!b->frames) return freed;
  for (uint64_t i = 0; i < b->pages && freed < count; ++i) {
    PageFrame& f = b->frames[i];
    if (f.state != PageState::kReserved) continue;
    if (f.unmovable) b->unmovable_pages--;
    f.unmovable = false;
    f.refcount = 0;
    FreePage(b->start + i);
    freed++;
  }
  return freed;
}

Errno Machine::CallMemoryNotifiers(MemEvent e, BlockId block, std::vector<std::string>* log) {
  Errno result = Errno::kOk;
  const MemoryBlock& b = blocks_[block];
  for (size_t i = 0; i < notifiers_.size(); ++i) {
    NotifierEntry& n = notifiers_[i];
    Errno err = Errno::kOk;
    if (n.is_ksm) {
      switch (e) {
        case MemEvent::kGoingOffline: ksm_->Lock(); break;
        case MemEvent::kOffline:
          last_pruned_ = prune_by_rescan_ ? ksm_->PruneRangeByRescan(b.start, b.start + b.pages)
                                          : ksm_->PruneRange(b.start, b.start + b.pages);
          ksm_->Unlock();
          break;
        case MemEvent::kCancelOffline:
          ksm_->Unlock();  // only if held: a no-op otherwise (7.3 rule 19)
          break;
        default: break;
      }
    } else if (n.fail_event == e && !n.spent) {
      err = n.fail_err;
    }
    if (log)
      log->push_back(absl::StrCat(MemEventName(e), " ", n.name, "(", n.priority, ") ",
                                  err == Errno::kOk ? "ok" : ErrnoName(err)));
    Event ev{EventKind::kNotifier};
    ev.mem_event = static_cast<int>(e);
    ev.priority = n.priority;
    ev.notifier = n.is_ksm ? "ksm" : "inject";
    ev.block = block;
    ev.result = -static_cast<int32_t>(err);
    Emit(ev);
    if (err != Errno::kOk) {
      // A spent injector stays registered (and sees the CANCEL that
      // follows, like any notifier) until the operation ends.
      if (n.remaining > 0 && --n.remaining == 0) n.spent = true;
      result = err;
      break;  // NOTIFY_BAD stops the chain
    }
  }
  return result;
}

absl::Status Machine::InjectNotifierFailure(MemEvent event, int priority, Errno err,
                                            uint32_t count) {
  absl::MutexLock lock(&mu_);
  if (err == Errno::kOk)
    return MakeError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                     "an injected failure needs a non-zero errno");
  // Like the kernel's memory notifier error injection, only the events whose
  // result is acted upon can fail: a failed MEM_OFFLINE or CANCEL would stop
  // the chain before KSM's callback and leave its lock held for good.
  if (event != MemEvent::kGoingOffline && event != MemEvent::kGoingOnline)
    return MakeError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                     "only MEM_GOING_OFFLINE and MEM_GOING_ONLINE can be made to fail");
  NotifierEntry n;
  n.priority = priority;
  n.name = "inject";
  n.fail_event = event;
  n.fail_err = err;
  n.remaining = count;
  // notifier_chain_register: after every entry of equal or higher priority.
  auto it = notifiers_.begin();
  while (it != notifiers_.end() && it->priority >= priority) ++it;
  notifiers_.insert(it, n);
  return absl::OkStatus();
}

void Machine::ClearNotifierFailures() {
  absl::MutexLock lock(&mu_);
  notifiers_.erase(std::remove_if(notifiers_.begin(), notifiers_.end(),
                                  [](const NotifierEntry& n) { return !n.is_ksm; }),
                   notifiers_.end());
}

bool Machine::KsmLocked() {
  absl::MutexLock lock(&mu_);
  return ksm_->locked();
}

void Machine::EmitPhase(BlockId b, OfflinePhase ph) {
  Event e{EventKind::kOfflinePhase};
  e.block = b;
  e.phase = static_cast<int>(ph);
  Emit(e);
}

int64_t Machine::DoMigrateRange(MemoryBlock& b, bool* found) {
  *found = false;
  if (!b.frames) return 0;
  uint64_t first = b.pages;
  for (uint64_t i = 0; i < b.pages; ++i)
    if (IsLru(b.frames[i].state)) {
      first = i;
      break;
    }
  if (first == b.pages) return 0;
  *found = true;
  std::vector<Pfn> list;
  uint64_t not_managed = 0;
  for (uint64_t i = first; i < b.pages && list.size() < 256; ++i) {
    const PageFrame& f = b.frames[i];
    if (f.state == PageState::kFree) continue;
    if (IsLru(f.state))
      list.push_back(b.start + i);
    else
      not_managed++;  // in use but not on an LRU list: kernel memory
  }
  if (not_managed) return -16;  // -EBUSY
  const NodeId node = b.node;
  return MigrateList(
      list,
      [this, node](Pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return AllocFromOrder(FallbackOrder(node), PageState::kFree, contents_.zero());
      },
      /*offlining=*/true, MigrateReason::kOffline, nullptr);
}

Machine::OfflineReport Machine::FailOffline(Errno err, const std::string& why) {
  PendingOffline& po = *pending_offline_;
  MemoryBlock& b = blocks_[po.block];
  if (po.going_offline_sent) {
    // GOING_OFFLINE was sent: cancel first, then undo the isolation.
    CallMemoryNotifiers(MemEvent::kCancelOffline, po.block, &po.report.notifier_calls);
  }
  b.state = BlockState::kOnline;
  if (b.free_pages > 0) free_blocks_[b.node].insert(b.id);
  po.report.err = err;
  po.report.paused = false;
  if (po.report.failure.empty()) po.report.failure = why;
  po.report.emulated_ns = emulated_time_ns_ - po.start_ns;
  Event e{EventKind::kOfflineResult};
  e.block = po.block;
  e.result = -static_cast<int32_t>(err);
  e.duration_ns = po.report.emulated_ns;
  Emit(e);
  OfflineReport r = po.report;
  pending_offline_.reset();
  PurgeSpentInjectors();
  return r;
}

void Machine::PurgeSpentInjectors() {
  notifiers_.erase(std::remove_if(notifiers_.begin(), notifiers_.end(),
                                  [](const NotifierEntry& n) { return n.spent; }),
                   notifiers_.end());
}

Machine::OfflineReport Machine::ContinueOffline(absl::Time now) {
  PendingOffline& po = *pending_offline_;
  MemoryBlock& b = blocks_[po.block];
  auto pause_here = [&](OfflinePhase ph) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (po.options.pause_after != ph) return false;
    po.report.paused = true;
    po.paused_at = now;
    po.report.emulated_ns = emulated_time_ns_ - po.start_ns;
    return true;
  };
  po.report.paused = false;
  for (;;) {
    switch (po.report.phase) {
      case OfflinePhase::kNone: {
        // 7.2 rule 7: isolation; unmovable pageblocks fail before notifiers.
        if (b.unmovable_pages > 0 || b.count[static_cast<int>(PageState::kZero)] > 0) {
          OfflineReport r = po.report;
          r.err = Errno::kEBUSY;
          r.failure = "isolation failed: the block holds unmovable pages";
          Event e{EventKind::kOfflineResult};
          e.block = po.block;
          e.result = -static_cast<int32_t>(Errno::kEBUSY);
          Emit(e);
          pending_offline_.reset();
          return r;
        }
        b.state = BlockState::kGoingOffline;
        free_blocks_[b.node].erase(b.id);
        po.report.phase = OfflinePhase::kIsolated;
        EmitPhase(po.block, OfflinePhase::kIsolated);
        if (pause_here(OfflinePhase::kIsolated)) return po.report;
        break;
      }
      case OfflinePhase::kIsolated: {
        // 7.2 rule 8: MEM_GOING_OFFLINE; KSM takes its lock (7.3 rule 15).
        po.going_offline_sent = true;
        Errno err =
            CallMemoryNotifiers(MemEvent::kGoingOffline, po.block, &po.report.notifier_calls);
        if (err != Errno::kOk)
          return FailOffline(
              err, absl::StrCat("a notifier refused MEM_GOING_OFFLINE: ", ErrnoName(err)));
        po.report.phase = OfflinePhase::kGoingOffline;
        EmitPhase(po.block, OfflinePhase::kGoingOffline);
        if (pause_here(OfflinePhase::kGoingOffline)) return po.report;
        break;
      }
      case OfflinePhase::kGoingOffline: {
        // 7.2 rule 9: the migration loop.
        for (;;) {
          if (emulated_time_ns_ > po.deadline_ns)
            return FailOffline(Errno::kEAGAIN, "timeout: pages would not migrate (pinned?)");
          uint64_t moved_before = migrated_total_, ksm_before = migrated_ksm_;
          bool found = false;
          int64_t ret = DoMigrateRange(b, &found);
          if (!found) break;
          po.report.rounds++;
          emulated_time_ns_ += kRoundNs;
          uint64_t moved = migrated_total_ - moved_before;
          po.report.pages_migrated += moved;
          po.report.ksm_pages_migrated += migrated_ksm_ - ksm_before;
          if (ret == 0) continue;
          if (ret < 0) {
            if (--po.retry_max == 0)
              return FailOffline(static_cast<Errno>(-ret),
                                 ret == -16 ? "a page in use is not on an LRU list (kernel memory)"
                                            : "out of memory for migration targets");
            continue;
          }
          if (moved == 0) emulated_time_ns_ = po.deadline_ns + 1;  // no progress: fast-forward
        }
        // No LRU page left: every page must now be free.
        if (b.frames) {
          for (uint64_t i = 0; i < b.pages; ++i)
            if (b.frames[i].state != PageState::kFree)
              return FailOffline(Errno::kEBUSY,
                                 "a page in use is not on an LRU list (kernel memory)");
        }
        po.report.phase = OfflinePhase::kMigrated;
        EmitPhase(po.block, OfflinePhase::kMigrated);
        if (pause_here(OfflinePhase::kMigrated)) return po.report;
        break;
      }
      case OfflinePhase::kMigrated: {
        // 7.2 rule 10: the pages leave the machine; MEM_OFFLINE.
        b.frames.reset();
        b.free_stack.clear();
        b.free_stack.shrink_to_fit();
        b.next_untouched = 0;
        b.free_pages = 0;
        std::fill(std::begin(b.count), std::end(b.count), 0);
        b.count[static_cast<int>(PageState::kFree)] = b.pages;
        b.state = BlockState::kOffline;
        last_pruned_ = 0;
        CallMemoryNotifiers(MemEvent::kOffline, po.block, &po.report.notifier_calls);
        po.report.stable_nodes_pruned = last_pruned_;
        po.report.phase = OfflinePhase::kDone;
        EmitPhase(po.block, OfflinePhase::kDone);
        po.report.err = Errno::kOk;
        po.report.emulated_ns = emulated_time_ns_ - po.start_ns;
        Event e{EventKind::kOfflineResult};
        e.block = po.block;
        e.duration_ns = po.report.emulated_ns;
        Emit(e);
        OfflineReport r = po.report;
        pending_offline_.reset();
        PurgeSpentInjectors();
        return r;
      }
      case OfflinePhase::kDone: return po.report;
    }
  }
}

absl::StatusOr<Machine::OfflineReport> Machine::OfflineBlock(BlockId id,
                                                             const OfflineOptions& options,
                                                             absl::Time now) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  if (pending_offline_)
    return MakeError(absl::StatusCode::kFailedPrecondition, "OFFLINE_IN_PROGRESS",
                     absl::StrCat("the offline of block ", pending_offline_->block,
                                  " is paused; resume or cancel it first"));
  if (b->state != BlockState::kOnline) {
    OfflineReport r;
    r.block = id;
    r.err = Errno::kEINVAL;  // 7.1 rule 2: transition from the wrong state
    r.failure = absl::StrCat("block is ", BlockStateName(b->state));
    return r;
  }
  PendingOffline po;
  po.block = id;
  po.options = options;
  po.report.block = id;
  po.start_ns = emulated_time_ns_;
  po.deadline_ns = emulated_time_ns_ + options.timeout_ns;
  pending_offline_ = po;
  return ContinueOffline(now);
}

absl::StatusOr<Machine::OfflineReport> Machine::ResumeOffline(
    BlockId id, std::optional<OfflinePhase> pause_after, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (!pending_offline_ || pending_offline_->block != id)
    return MakeError(absl::StatusCode::kFailedPrecondition, "NO_PAUSED_OFFLINE",
                     absl::StrCat("no paused offline of block ", id));
  OfflinePhase next = pause_after.value_or(OfflinePhase::kNone);
  if (next != OfflinePhase::kNone && next <= pending_offline_->report.phase)
    return MakeError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                     absl::StrCat("pause_after must be a phase after ",
                                  OfflinePhaseName(pending_offline_->report.phase)));
  pending_offline_->options.pause_after = next;
  return ContinueOffline(now);
}

absl::StatusOr<Machine::OfflineReport> Machine::CancelOffline(BlockId id) {
  absl::MutexLock lock(&mu_);
  if (!pending_offline_ || pending_offline_->block != id)
    return MakeError(absl::StatusCode::kFailedPrecondition, "NO_PAUSED_OFFLINE",
                     absl::StrCat("no paused offline of block ", id));
  return FailOffline(Errno::kEINTR, "cancelled by the client");
}

bool Machine::ExpirePausedOffline(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (!pending_offline_ || !pending_offline_->report.paused) return false;
  if (now - pending_offline_->paused_at < pending_offline_->options.pause_ttl) return false;
  FailOffline(Errno::kEINTR, "cancelled: the paused offline was abandoned by its client");
  return true;
}

absl::StatusOr<Errno> Machine::OnlineBlock(BlockId id) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  if (b->state != BlockState::kOffline) return Errno::kEINVAL;
  // 7.4 rule 20.
  Errno err = CallMemoryNotifiers(MemEvent::kGoingOnline, id, nullptr);
  if (err != Errno::kOk) {
    CallMemoryNotifiers(MemEvent::kCancelOnline, id, nullptr);
    PurgeSpentInjectors();
    return err;
  }
  b->frames.reset();
  b->free_stack.clear();
  b->next_untouched = 0;
  b->free_pages = b->pages;
  std::fill(std::begin(b->count), std::end(b->count), 0);
  b->count[static_cast<int>(PageState::kFree)] = b->pages;
  b->unmovable_pages = 0;
  b->state = BlockState::kOnline;
  free_blocks_[b->node].insert(b->id);
  CallMemoryNotifiers(MemEvent::kOnline, id, nullptr);
  PurgeSpentInjectors();
  return Errno::kOk;
}

absl::StatusOr<BlockId> Machine::AddBlock(NodeId node) {
  absl::MutexLock lock(&mu_);
  if (node >= config_.nodes)
    return MakeError(absl::StatusCode::kOutOfRange, "NODE_OUT_OF_RANGE",
                     absl::StrCat("node ", node, " >= nodes ", config_.nodes));
  if (blocks_.size() >= uint64_t{config_.nodes} * 65536)
    return MakeError(absl::StatusCode::kResourceExhausted, "BLOCK_LIMIT", "too many memory blocks");
  MemoryBlock b;
  b.id = static_cast<BlockId>(blocks_.size());
  b.node = node;
  b.start = uint64_t{b.id} * config_.pages_per_block;
  b.pages = config_.pages_per_block;
  b.state = BlockState::kOffline;  // add_memory leaves new sections offline
  b.count[static_cast<int>(PageState::kFree)] = b.pages;
  blocks_.push_back(std::move(b));
  return blocks_.back().id;
}

absl::StatusOr<Errno> Machine::RemoveBlock(BlockId id) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  if (b->state != BlockState::kOffline) return Errno::kEBUSY;
  b->state = BlockState::kRemoved;
  return Errno::kOk;
}

}  // namespace memnode
