// Overview: memory blocks and hot-remove with the seed's sequence
// (docs/SEMANTICS.md, section "Memory hotplug"), the memory notifier chain
// (notifier.h; KSM's callback at priority 100), pause points (SPEC
// Decisions 4) and notifier error injection.
//
// offline_pages, as a resumable state machine:
//   kNone -> isolate: a block with unmovable pages fails EBUSY before any
//            notifier; else GOING_OFFLINE state, its free pages leave the
//            allocator.                                         -> kIsolated
//   kIsolated -> MEM_GOING_OFFLINE through the chain (KSM takes its lock);
//            a notifier error fails the offline.                -> kGoingOffline
//   kGoingOffline -> the migration loop: from the first LRU page, isolate up
//            to 256 LRU pages (a non-LRU in-use page among them: -EBUSY) and
//            migrate them with offlining set; -EBUSY/-ENOMEM use up one of
//            the profile's retries; pages that would not move (pins) loop
//            until the profile's deadline -> EAGAIN; no LRU page left: every
//            page must be free, else EBUSY.                     -> kMigrated
//   kMigrated -> pages leave the machine, block OFFLINE, MEM_OFFLINE (KSM
//            prunes nodes with kpfn in the block, then unlocks). -> kDone
// Failure after GOING_OFFLINE was sent: MEM_CANCEL_OFFLINE first, then the
// isolation is undone (the seed's order); pages already moved stay moved.
//
// Time: the loop runs in emulated time (1 ms per round). A round that moves
// nothing leaves the machine exactly as it was, so every later round until
// the deadline would too: the loop jumps to the deadline instead of spinning.
#include "server/core/hotplug/hotplug.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/core/names.h"
#include "server/core/profile/profile.h"
#include "server/core/status.h"

namespace memnode {
namespace {

constexpr uint64_t kRoundNs = 1000000;  // emulated cost of a migration round

bool IsLru(PageState s) {
  return s == PageState::kAnon || s == PageState::kKsm || s == PageState::kShmem;
}

}  // namespace

absl::StatusOr<MemoryBlock*> Hotplug::BlockById(BlockId id) {
  auto& blocks = mem_.blocks();
  if (id >= blocks.size())
    return MakeError(
        absl::StatusCode::kNotFound, Reason::kBlockNotFound,
        absl::StrCat("no memory block ", id, " (the machine has ", blocks.size(), ")"));
  return &blocks[id];
}

BlockInfo Hotplug::DescribeBlock(const MemoryBlock& b) {
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
  bi.removable = profile_.Removable(b);
  return bi;
}

std::vector<BlockInfo> Hotplug::ListBlocks() {
  std::vector<BlockInfo> out;
  for (const MemoryBlock& b : mem_.blocks()) out.push_back(DescribeBlock(b));
  return out;
}

absl::StatusOr<BlockInfo> Hotplug::GetBlock(BlockId id) {
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  return DescribeBlock(*b);
}

absl::StatusOr<uint64_t> Hotplug::AllocKernelPages(BlockId id, uint64_t count, bool unmovable) {
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  if (b->state != BlockState::kOnline)
    return MakeError(absl::StatusCode::kFailedPrecondition, Reason::kBlockNotOnline,
                     absl::StrCat("block ", id, " is ", BlockStateName(b->state)));
  if (count > b->free_pages)
    return MakeError(absl::StatusCode::kResourceExhausted, Reason::kNoFreePages,
                     absl::StrCat("block ", id, " has ", b->free_pages, " free pages"));
  mem_.AllocKernelPages(*b, count, unmovable);
  return count;
}

absl::StatusOr<uint64_t> Hotplug::FreeKernelPages(BlockId id, uint64_t count) {
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  return mem_.FreeKernelPages(*b, count);
}

MemoryNotify Hotplug::NotifyArg(const MemoryBlock& b) const {
  MemoryNotify arg;
  arg.block = b.id;
  arg.start_pfn = b.start;
  arg.nr_pages = b.pages;
  return arg;
}

void Hotplug::EmitPhase(BlockId b, OfflinePhase ph) {
  Event e{EventKind::kOfflinePhase};
  e.block = b;
  e.phase = ph;
  events_.Emit(e);
}

void Hotplug::EmitResult(BlockId b, Errno err, uint64_t duration_ns) {
  Event e{EventKind::kOfflineResult};
  e.block = b;
  e.result = NegErrno(err);
  e.duration_ns = duration_ns;
  events_.Emit(e);
}

Hotplug::RangeOutcome Hotplug::DoMigrateRange(MemoryBlock& b) {
  RangeOutcome out;
  if (!b.frames) return out;
  uint64_t first = b.pages;
  for (uint64_t i = 0; i < b.pages; ++i)
    if (IsLru(b.frames[i].state)) {
      first = i;
      break;
    }
  if (first == b.pages) return out;
  out.found = true;
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
  if (not_managed) {
    out.err = Errno::kEBUSY;
    return out;
  }
  const NodeId node = b.node;
  Migration::Outcome o = migration_.MigrateList(
      list,
      [this, node](Pfn) {
        return mem_.AllocFromOrder(mem_.FallbackOrder(node), PageState::kFree,
                                   mem_.contents().zero());
      },
      /*offlining=*/true, MigrateReason::kOffline, nullptr);
  out.err = o.err;
  out.failed = o.failed;
  return out;
}

OfflineReport Hotplug::FailOffline(Errno err, const std::string& why) {
  PendingOffline& po = *pending_;
  MemoryBlock& b = mem_.blocks()[po.block];
  if (po.going_offline_sent) {
    // GOING_OFFLINE was sent: cancel first, then undo the isolation.
    MemoryNotify arg = NotifyArg(b);
    notifiers_.Call(MemEvent::kCancelOffline, arg, &po.report.notifier_calls);
  }
  b.state = BlockState::kOnline;
  mem_.Unisolate(b);
  po.report.err = err;
  po.report.paused = false;
  if (po.report.failure.empty()) po.report.failure = why;
  po.report.emulated_ns = clock_.now_ns() - po.start_ns;
  EmitResult(po.block, err, po.report.emulated_ns);
  OfflineReport r = po.report;
  pending_.reset();
  notifiers_.PurgeSpent();
  return r;
}

OfflineReport Hotplug::ContinueOffline(absl::Time now) {
  PendingOffline& po = *pending_;
  MemoryBlock& b = mem_.blocks()[po.block];
  auto pause_here = [&](OfflinePhase ph) {
    if (po.options.pause_after != ph) return false;
    po.report.paused = true;
    po.paused_at = now;
    po.report.emulated_ns = clock_.now_ns() - po.start_ns;
    return true;
  };
  po.report.paused = false;
  for (;;) {
    switch (po.report.phase) {
      case OfflinePhase::kNone: {
        // Isolation; unmovable pageblocks fail before any notifier.
        if (b.unmovable_pages > 0 || b.Count(PageState::kZero) > 0) {
          OfflineReport r = po.report;
          r.err = Errno::kEBUSY;
          r.failure = "isolation failed: the block holds unmovable pages";
          EmitResult(po.block, Errno::kEBUSY, 0);
          pending_.reset();
          return r;
        }
        b.state = BlockState::kGoingOffline;
        mem_.Isolate(b);
        po.report.phase = OfflinePhase::kIsolated;
        EmitPhase(po.block, OfflinePhase::kIsolated);
        if (pause_here(OfflinePhase::kIsolated)) return po.report;
        break;
      }
      case OfflinePhase::kIsolated: {
        // MEM_GOING_OFFLINE; KSM takes its lock.
        po.going_offline_sent = true;
        MemoryNotify arg = NotifyArg(b);
        Errno err = notifiers_.Call(MemEvent::kGoingOffline, arg, &po.report.notifier_calls);
        if (err != Errno::kOk)
          return FailOffline(
              err, absl::StrCat("a notifier refused MEM_GOING_OFFLINE: ", ErrnoName(err)));
        po.report.phase = OfflinePhase::kGoingOffline;
        EmitPhase(po.block, OfflinePhase::kGoingOffline);
        if (pause_here(OfflinePhase::kGoingOffline)) return po.report;
        break;
      }
      case OfflinePhase::kGoingOffline: {
        // The migration loop.
        const uint64_t deadline_ns = po.start_ns + po.policy.timeout_ns.value_or(~uint64_t{0} / 2);
        for (;;) {
          if (clock_.now_ns() > deadline_ns)
            return FailOffline(Errno::kEAGAIN, "timeout: pages would not migrate (pinned?)");
          uint64_t moved_before = migration_.migrated_total();
          uint64_t ksm_before = migration_.migrated_ksm();
          RangeOutcome ret = DoMigrateRange(b);
          if (!ret.found) break;
          po.report.rounds++;
          clock_.Advance(kRoundNs);
          uint64_t moved = migration_.migrated_total() - moved_before;
          po.report.pages_migrated += moved;
          po.report.ksm_pages_migrated += migration_.migrated_ksm() - ksm_before;
          if (ret.err != Errno::kOk) {
            if (--po.retries_left == 0)
              return FailOffline(ret.err,
                                 ret.err == Errno::kEBUSY
                                     ? "a page in use is not on an LRU list (kernel memory)"
                                     : "out of memory for migration targets");
            continue;
          }
          if (ret.failed == 0) continue;
          if (moved == 0) clock_.Set(deadline_ns + 1);  // no progress: fast-forward
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
        // The pages leave the machine; MEM_OFFLINE.
        mem_.DropFrames(b);
        b.state = BlockState::kOffline;
        MemoryNotify arg = NotifyArg(b);
        notifiers_.Call(MemEvent::kOffline, arg, &po.report.notifier_calls);
        po.report.stable_nodes_pruned = arg.stable_nodes_pruned;
        po.report.phase = OfflinePhase::kDone;
        EmitPhase(po.block, OfflinePhase::kDone);
        po.report.err = Errno::kOk;
        po.report.emulated_ns = clock_.now_ns() - po.start_ns;
        EmitResult(po.block, Errno::kOk, po.report.emulated_ns);
        OfflineReport r = po.report;
        pending_.reset();
        notifiers_.PurgeSpent();
        return r;
      }
      case OfflinePhase::kDone: return po.report;
    }
  }
}

absl::StatusOr<OfflineReport> Hotplug::OfflineBlock(BlockId id, const OfflineOptions& options,
                                                    absl::Time now) {
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  if (pending_)
    return MakeError(absl::StatusCode::kFailedPrecondition, Reason::kOfflineInProgress,
                     absl::StrCat("the offline of block ", pending_->block,
                                  " is paused; resume or cancel it first"));
  if (b->state != BlockState::kOnline) {
    OfflineReport r;
    r.block = id;
    r.err = Errno::kEINVAL;  // a transition from the wrong state
    r.failure = absl::StrCat("block is ", BlockStateName(b->state));
    return r;
  }
  PendingOffline po;
  po.block = id;
  po.options = options;
  po.policy = profile_.offline_policy(options.timeout_ns);
  po.retries_left = po.policy.retry_max;
  po.report.block = id;
  po.start_ns = clock_.now_ns();
  pending_ = po;
  return ContinueOffline(now);
}

absl::StatusOr<OfflineReport> Hotplug::ResumeOffline(BlockId id,
                                                     std::optional<OfflinePhase> pause_after,
                                                     absl::Time now) {
  if (!pending_ || pending_->block != id)
    return MakeError(absl::StatusCode::kFailedPrecondition, Reason::kNoPausedOffline,
                     absl::StrCat("no paused offline of block ", id));
  OfflinePhase next = pause_after.value_or(OfflinePhase::kNone);
  if (next != OfflinePhase::kNone && next <= pending_->report.phase)
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidField,
                     absl::StrCat("pause_after must be a phase after ",
                                  OfflinePhaseName(pending_->report.phase)));
  pending_->options.pause_after = next;
  return ContinueOffline(now);
}

absl::StatusOr<OfflineReport> Hotplug::CancelOffline(BlockId id) {
  if (!pending_ || pending_->block != id)
    return MakeError(absl::StatusCode::kFailedPrecondition, Reason::kNoPausedOffline,
                     absl::StrCat("no paused offline of block ", id));
  return FailOffline(Errno::kEINTR, "cancelled by the client");
}

bool Hotplug::ExpirePausedOffline(absl::Time now) {
  if (!pending_ || !pending_->report.paused) return false;
  if (now - pending_->paused_at < pending_->options.pause_ttl) return false;
  FailOffline(Errno::kEINTR, "cancelled: the paused offline was abandoned by its client");
  return true;
}

absl::StatusOr<Errno> Hotplug::OnlineBlock(BlockId id) {
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  if (b->state != BlockState::kOffline) return Errno::kEINVAL;
  MemoryNotify arg = NotifyArg(*b);
  Errno err = notifiers_.Call(MemEvent::kGoingOnline, arg, nullptr);
  if (err != Errno::kOk) {
    notifiers_.Call(MemEvent::kCancelOnline, arg, nullptr);
    notifiers_.PurgeSpent();
    return err;
  }
  mem_.ResetOnline(*b);
  notifiers_.Call(MemEvent::kOnline, arg, nullptr);
  notifiers_.PurgeSpent();
  return Errno::kOk;
}

absl::StatusOr<BlockId> Hotplug::AddBlock(NodeId node) {
  if (node >= mem_.nodes())
    return MakeError(absl::StatusCode::kOutOfRange, Reason::kNodeOutOfRange,
                     absl::StrCat("node ", node, " >= nodes ", mem_.nodes()));
  if (mem_.blocks().size() >= uint64_t{mem_.nodes()} * 65536)
    return MakeError(absl::StatusCode::kResourceExhausted, Reason::kBlockLimit,
                     "too many memory blocks");
  return mem_.AddBlock(node);
}

absl::StatusOr<Errno> Hotplug::RemoveBlock(BlockId id) {
  MEMNODE_ASSIGN_OR_RETURN(MemoryBlock * b, BlockById(id));
  if (b->state != BlockState::kOffline) return Errno::kEBUSY;
  b->state = BlockState::kRemoved;
  return Errno::kOk;
}

}  // namespace memnode
