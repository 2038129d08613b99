#include "server/metrics/machine_metrics.h"

#include "server/core/machine.h"

namespace memnode::metrics {

const char* MigrateReasonLabel(MigrateReason r) {
  switch (r) {
    case MigrateReason::kOffline: return "memory_offline";
    case MigrateReason::kMbind: return "mbind";
    case MigrateReason::kMigratePages: return "migrate_pages";
    case MigrateReason::kMovePages: return "move_pages";
  }
  return "unknown";
}

const char* MigrateResultLabel(MigrateResult r) {
  switch (r) {
    case MigrateResult::kSuccess: return "success";
    case MigrateResult::kEbusy: return "ebusy";
    case MigrateResult::kEagain: return "eagain";
    case MigrateResult::kEnomem: return "enomem";
    case MigrateResult::kOther: return "other";
    case MigrateResult::kCount: break;
  }
  return "unknown";
}

const char* OfflineResultLabel(OfflineResult r) {
  switch (r) {
    case OfflineResult::kSuccess: return "success";
    case OfflineResult::kEbusy: return "ebusy";
    case OfflineResult::kEagain: return "eagain";
    case OfflineResult::kEintr: return "eintr";
    case OfflineResult::kEinval: return "einval";
    case OfflineResult::kOther: return "other";
    case OfflineResult::kCount: break;
  }
  return "unknown";
}

const char* NotifierEventLabel(MemEvent e) {
  switch (e) {
    case MemEvent::kGoingOnline: return "going_online";
    case MemEvent::kCancelOnline: return "cancel_online";
    case MemEvent::kOnline: return "online";
    case MemEvent::kGoingOffline: return "going_offline";
    case MemEvent::kCancelOffline: return "cancel_offline";
    case MemEvent::kOffline: return "offline";
  }
  return "unknown";
}

const char* PruneReasonLabel(PruneReason r) {
  switch (r) {
    case PruneReason::kStale: return "stale";
    case PruneReason::kOffline: return "offline";
    case PruneReason::kUnmerge: return "unmerge";
  }
  return "unknown";
}

const prometheus::Histogram::BucketBoundaries& OfflineDurationBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{0.0001, 0.001, 0.01, 0.1, 1, 10, 60, 120, 300};
  return *kBuckets;
}

namespace {
// Core event field `result` is 0 or -errno (Linux x86_64 numbers).
MigrateResult MigrateResultOf(int32_t result) {
  switch (-result) {
    case 0: return MigrateResult::kSuccess;
    case static_cast<int>(Errno::kEBUSY): return MigrateResult::kEbusy;
    case static_cast<int>(Errno::kEAGAIN): return MigrateResult::kEagain;
    case static_cast<int>(Errno::kENOMEM): return MigrateResult::kEnomem;
    default: return MigrateResult::kOther;
  }
}

OfflineResult OfflineResultOf(int32_t result) {
  switch (-result) {
    case 0: return OfflineResult::kSuccess;
    case static_cast<int>(Errno::kEBUSY): return OfflineResult::kEbusy;
    case static_cast<int>(Errno::kEAGAIN): return OfflineResult::kEagain;
    case static_cast<int>(Errno::kEINTR): return OfflineResult::kEintr;
    case static_cast<int>(Errno::kEINVAL): return OfflineResult::kEinval;
    default: return OfflineResult::kOther;
  }
}

}  // namespace

MachineMetrics::MachineMetrics(const EventFamilies& f, std::string machine_id)
    : families_(f), machine_id_(std::move(machine_id)) {
  const prometheus::Labels m{{"machine", machine_id_}};
  merges_ = &f.merges->Add(m);
  cow_breaks_ = &f.cow_breaks->Add(m);
  process_exits_ = &f.process_exits->Add(m);
  for (PruneReason r : kAllPruneReasons)
    pruned_[size_t(r)] =
        &f.pruned->Add({{"machine", machine_id_}, {"reason", PruneReasonLabel(r)}});
  for (MigrateReason r : kAllMigrateReasons)
    for (size_t s = 0; s < size_t(MigrateResult::kCount); ++s)
      migrate_[size_t(r)][s] =
          &f.migrate_pages->Add({{"machine", machine_id_},
                                 {"reason", MigrateReasonLabel(r)},
                                 {"result", MigrateResultLabel(MigrateResult(s))}});
  for (size_t s = 0; s < size_t(OfflineResult::kCount); ++s)
    offline_[s] = &f.offline->Add(
        {{"machine", machine_id_}, {"result", OfflineResultLabel(OfflineResult(s))}});
  offline_duration_ = &f.offline_duration->Add(m, OfflineDurationBuckets());
  for (MemEvent e : kAllMemEvents)
    notifier_[size_t(e)] =
        &f.notifier_events->Add({{"machine", machine_id_}, {"event", NotifierEventLabel(e)}});
  batches_held_ = &f.ksm_batches_held->Add(m);
}

MachineMetrics::~MachineMetrics() {
  families_.merges->Remove(merges_);
  families_.cow_breaks->Remove(cow_breaks_);
  families_.process_exits->Remove(process_exits_);
  for (auto* c : pruned_) families_.pruned->Remove(c);
  for (auto& row : migrate_)
    for (auto* c : row) families_.migrate_pages->Remove(c);
  for (auto* c : offline_) families_.offline->Remove(c);
  families_.offline_duration->Remove(offline_duration_);
  for (auto* c : notifier_) families_.notifier_events->Remove(c);
  families_.ksm_batches_held->Remove(batches_held_);
}

void MachineMetrics::OnEvent(const Event& event) {
  switch (event.kind) {
    case EventKind::kMerge: merges_->Increment(); break;
    case EventKind::kCowBreak: cow_breaks_->Increment(); break;
    case EventKind::kPrune:
      if (size_t(event.reason) < kPruneReasons) pruned_[size_t(event.reason)]->Increment();
      break;
    case EventKind::kProcessExit: process_exits_->Increment(); break;
    case EventKind::kPassEnd:
      // full_scans is read from the core at scrape time (the kernel's own
      // counter, reset by run=2), not counted here.
      break;
    // HOT-REMOVE FEED.
    case EventKind::kMigrate:  // one page, moved or not
      RecordMigration(event.migrate_reason, MigrateResultOf(event.result), 1);
      break;
    case EventKind::kNotifier:  // one notifier callback called
      RecordNotifierEvent(event.mem_event);
      break;
    case EventKind::kOfflineResult:
      RecordOffline(OfflineResultOf(event.result), event.duration_ns / 1e9);
      break;
    case EventKind::kKsmdHeld: RecordKsmBatchHeld(); break;
    case EventKind::kOfflinePhase: break;  // phases are in the event stream, not in metrics
  }
}

void MachineMetrics::RecordMigration(MigrateReason reason, MigrateResult result, uint64_t pages) {
  if (size_t(reason) >= kMigrateReasons || result >= MigrateResult::kCount) return;
  migrate_[size_t(reason)][size_t(result)]->Increment(static_cast<double>(pages));
}

void MachineMetrics::RecordOffline(OfflineResult result, double seconds) {
  if (result >= OfflineResult::kCount) return;
  offline_[size_t(result)]->Increment();
  offline_duration_->Observe(seconds);
}

void MachineMetrics::RecordNotifierEvent(MemEvent event) {
  if (static_cast<size_t>(event) >= kMemEvents) return;
  notifier_[size_t(event)]->Increment();
}

void MachineMetrics::RecordKsmBatchHeld() { batches_held_->Increment(); }

}  // namespace memnode::metrics
