// Event-driven metrics of one machine: a passive core Observer that turns
// merges, COW breaks and stable-node prunes into Prometheus counters, plus the
// feed through which memory hot-remove will report migrations, offlines,
// notifier events and held ksmd batches.
// Linux analogue: counting tracepoint hits (there is no per-event counter in
// /sys/kernel/mm/ksm; pages_shared/pages_sharing only show the net result).
//
// Thread safety: OnEvent is called under the machine's lock (events.h) and
// only increments prometheus counters (atomics): O(1), no lock of ours, never
// re-enters the machine. The Record* feed methods are thread-safe too.
// The counters are owned by the families of ServerMetrics; a MachineMetrics
// must be detached from its machine before those children are removed.
#ifndef MEMNODE_SERVER_METRICS_MACHINE_METRICS_H_
#define MEMNODE_SERVER_METRICS_MACHINE_METRICS_H_

#include <array>
#include <cstddef>
#include <iterator>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include "absl/strings/string_view.h"
#include "server/core/events.h"
#include "server/core/types.h"

namespace memnode::metrics {

// Label values of the hot-remove families. They are fixed lists so that every
// series exists (at zero) as soon as its machine does.

// Per-page outcome of unmap_and_move (6.1 rules 2-4).
enum class MigrateResult : size_t {
  kSuccess,  // page moved
  kEbusy,    // permanent failure (e.g. a KSM page without offlining)
  kEagain,   // still busy after the last pass (pinned, locked)
  kEnomem,   // no target page: the call was aborted
  kOther,    // another permanent -errno
  kCount
};
// Outcome of an offline request (7.2 rules 7-11).
enum class OfflineResult : size_t {
  kSuccess,  // block offline, MEM_OFFLINE sent
  kEbusy,    // isolation failed or a non-LRU page was met
  kEagain,   // migration did not finish before the timeout
  kEintr,    // interrupted (a signal; the client cancelled a paused offline)
  kEinval,   // bad range or state
  kOther,    // another errno (e.g. chosen by a notifier that vetoed)
  kCount
};
const char* MigrateReasonLabel(MigrateReason r);
const char* MigrateResultLabel(MigrateResult r);
const char* OfflineResultLabel(OfflineResult r);
const char* NotifierEventLabel(MemEvent e);
// "stale", "offline", "unmerge".
const char* PruneReasonLabel(PruneReason r);
inline constexpr size_t kPruneReasons = std::size(kAllPruneReasons);
inline constexpr size_t kMigrateReasons = std::size(kAllMigrateReasons);
inline constexpr size_t kMemEvents = std::size(kAllMemEvents);

// The families the per-machine children live in (owned by ServerMetrics).
struct EventFamilies {
  prometheus::Family<prometheus::Counter>* merges = nullptr;
  prometheus::Family<prometheus::Counter>* cow_breaks = nullptr;
  prometheus::Family<prometheus::Counter>* pruned = nullptr;
  prometheus::Family<prometheus::Counter>* process_exits = nullptr;
  prometheus::Family<prometheus::Counter>* migrate_pages = nullptr;
  prometheus::Family<prometheus::Counter>* offline = nullptr;
  prometheus::Family<prometheus::Histogram>* offline_duration = nullptr;
  prometheus::Family<prometheus::Counter>* notifier_events = nullptr;
  prometheus::Family<prometheus::Counter>* ksm_batches_held = nullptr;
};

// Buckets of memnode_memory_offline_duration_seconds: from a small block
// offlined in well under a millisecond to the seed's 120 s EAGAIN timeout.
const prometheus::Histogram::BucketBoundaries& OfflineDurationBuckets();

class MachineMetrics final : public Observer {
 public:
  // Adds this machine's children (every label combination, at zero).
  MachineMetrics(const EventFamilies& families, std::string machine_id);
  // Removes the children. REQUIRES: detached from the machine.
  ~MachineMetrics() override;
  MachineMetrics(const MachineMetrics&) = delete;
  MachineMetrics& operator=(const MachineMetrics&) = delete;

  const std::string& machine_id() const { return machine_id_; }

  // Observer: O(1) counter increments only.
  void OnEvent(const Event& event) override;

  // --- HOT-REMOVE FEED ------------------------------------------------------
  // OnEvent dispatches the core's hot-remove events (kMigrate, kNotifier,
  // kOfflineResult, kKsmdHeld) to these; they are public so that another
  // source (or a test) can feed the same series.
  // Pages that migrate_pages() moved (or failed to move) for `reason`.
  void RecordMigration(MigrateReason reason, MigrateResult result, uint64_t pages);
  // An offline request finished; `seconds` on the machine's clock (emulated
  // time for MANUAL machines) from isolation to the result.
  void RecordOffline(OfflineResult result, double seconds);
  // The memory notifier chain delivered `event` for one of this machine's blocks.
  void RecordNotifierEvent(MemEvent event);
  // A ksmd batch found ksm_thread_mutex held by an offline and waited.
  void RecordKsmBatchHeld();

 private:
  const EventFamilies families_;
  const std::string machine_id_;
  prometheus::Counter* merges_;
  prometheus::Counter* cow_breaks_;
  prometheus::Counter* process_exits_;
  std::array<prometheus::Counter*, kPruneReasons> pruned_;
  std::array<std::array<prometheus::Counter*, size_t(MigrateResult::kCount)>, kMigrateReasons>
      migrate_;
  std::array<prometheus::Counter*, size_t(OfflineResult::kCount)> offline_;
  prometheus::Histogram* offline_duration_;
  std::array<prometheus::Counter*, kMemEvents> notifier_;
  prometheus::Counter* batches_held_;
};

}  // namespace memnode::metrics

#endif  // MEMNODE_SERVER_METRICS_MACHINE_METRICS_H_
