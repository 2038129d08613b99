// Passive observers of core events (merges, COW breaks, prunes, passes, ...).
// Linux analogue: tracepoints. Observers are called under the machine's lock,
// must be O(1), must not block and must never call back into the machine.
// Thread safety: an observer may be called from any thread that drives the
// machine (RPC threads, the machine's ksmd thread), one at a time.
#ifndef MEMNODE_SERVER_CORE_EVENTS_H_
#define MEMNODE_SERVER_CORE_EVENTS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/core/types.h"

namespace memnode {

enum class EventKind {
  kMerge,          // an rmap item joined a stable node (new or existing)
  kCowBreak,       // a write (or unmerge) copied a KSM page
  kPrune,          // a stable node was removed from the tree
  kPassEnd,        // ksmd completed a pass (full_scans grew)
  kProcessExit,    // a process exited
  kMigrate,        // migrate_pages() finished with one page (moved or not)
  kNotifier,       // a memory notifier was called
  kOfflinePhase,   // an offline passed a phase (isolated, going offline, ...)
  kOfflineResult,  // an offline ended (result: -errno, 0 = offlined)
  kKsmdHeld,       // a ksmd batch was held back by an offline's lock
  // linux-6.18: the kernel's KSM tracepoints (include/trace/events/ksm.h),
  // with their arguments, so a trace and a stream compare mechanically.
  kKsmStartScan,         // value: seq (full_scans); rmap_entries
  kKsmStopScan,          // value: seq; rmap_entries
  kKsmEnter,             // pid: the mm registered
  kKsmExit,              // pid: the mm leaving
  kKsmMergeOnePage,      // pfn (the zero page), pid + address (the item), result: err
  kKsmMergeWithKsmPage,  // ksm: a KSM page was given; pfn; pid + address; result: err
  kKsmRemoveKsmPage,     // pfn: the KSM page whose stable node is removed
  kKsmRemoveRmapItem,    // pfn; pid + address: an item stripped from a removed node
  kKsmAdvisor,           // value: scan_time (s); rmap_entries: new pages_to_scan; result: cpu %
};

struct Event {
  EventKind kind;
  uint64_t sequence = 0;                     // numbered by the machine's EventSink, from 1
  uint64_t time_ns = 0;                      // the machine's emulated clock when emitted
  Pid pid = 0;                               // kMerge, kCowBreak, kProcessExit
  Vaddr address = 0;                         // kMerge, kCowBreak
  Pfn pfn = kNoPfn;                          // kMerge: kpfn; kCowBreak: KSM page; kPrune: kpfn
  uint64_t node_id = 0;                      // stable node id (kMerge, kPrune)
  PruneReason reason = PruneReason::kStale;  // kPrune
  uint64_t value = 0;     // kPassEnd: full_scans after the pass; kPrune: items stripped
  bool new_node = false;  // kMerge: the merge created the stable node
  // kMigrate: why, and the result (0 moved, else -errno: -EBUSY, -EAGAIN, -ENOMEM).
  MigrateReason migrate_reason = MigrateReason::kOffline;
  int32_t result = 0;
  bool ksm = false;  // kMigrate: the page was a KSM page
  // kNotifier: the event, notifier priority and name.
  MemEvent mem_event = MemEvent::kGoingOnline;
  int priority = 0;
  const char* notifier = "";
  // kNotifier, kOfflinePhase, kOfflineResult: the memory block.
  BlockId block = 0;
  // kOfflinePhase: the phase passed; kOfflineResult: duration.
  OfflinePhase phase = OfflinePhase::kNone;
  uint64_t duration_ns = 0;
  uint64_t rmap_entries = 0;  // kKsmStartScan/StopScan: rmap items; kKsmAdvisor: pages
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void OnEvent(const Event& event) = 0;
};

// The observers of one machine, as the components see them. Numbers every
// event and stamps it with the emulated clock.
// Thread safety: used under the machine's lock.
class EventSink {
 public:
  explicit EventSink(const uint64_t* clock_ns = nullptr) : clock_ns_(clock_ns) {}
  void Add(Observer* o) { observers_.push_back(o); }
  void Remove(Observer* o) {
    for (std::size_t i = 0; i < observers_.size(); ++i)
      if (observers_[i] == o) {
        observers_.erase(observers_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
  }
  void Emit(Event e) {
    e.sequence = ++sequence_;
    e.time_ns = clock_ns_ ? *clock_ns_ : 0;
    for (Observer* o : observers_) o->OnEvent(e);
  }
  uint64_t sequence() const { return sequence_; }
  void set_sequence(uint64_t s) { sequence_ = s; }

 private:
  const uint64_t* clock_ns_;
  uint64_t sequence_ = 0;
  std::vector<Observer*> observers_;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_EVENTS_H_
