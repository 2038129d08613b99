// Passive observers of core events (merges, COW breaks, prunes, passes, ...).
// Linux analogue: tracepoints. Observers are called under the machine's lock,
// must be O(1), must not block and must never call back into the machine.
// Thread safety: an observer may be called from any thread that drives the
// machine (RPC threads, the machine's ksmd thread), one at a time.
#ifndef MEMNODE_SERVER_CORE_EVENTS_H_
#define MEMNODE_SERVER_CORE_EVENTS_H_

#include <cstdint>

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
  kOfflineResult,  // an offline ended (value: errno, 0 = offlined)
  kKsmdHeld,       // a ksmd batch was held back by an offline's lock
};

// Who asked for a migration (kernel-semantics 6.1 rule 5).
enum class MigrateReason { kOffline, kMbind, kMigratePages, kMovePages };
const char* MigrateReasonName(MigrateReason r);

enum class PruneReason {
  kStale,    // get_ksm_page found the KSM page gone (lazy pruning)
  kOffline,  // MEM_OFFLINE pruned a node whose kpfn lies in the block
  kUnmerge,  // run=2 unmerge freed the node's page
};

const char* EventKindName(EventKind k);
const char* PruneReasonName(PruneReason r);

struct Event {
  EventKind kind;
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
  // kNotifier: the event (Machine::MemEvent as int), notifier priority, name.
  int mem_event = 0;
  int priority = 0;
  const char* notifier = "";
  // kNotifier, kOfflinePhase, kOfflineResult: the memory block.
  BlockId block = 0;
  // kOfflinePhase: Machine::OfflinePhase as int; kOfflineResult: duration.
  int phase = 0;
  uint64_t duration_ns = 0;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void OnEvent(const Event& event) = 0;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_EVENTS_H_
