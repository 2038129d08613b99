// Memory blocks and hot-remove: the block state machine, the resumable
// offline (isolation, MEM_GOING_OFFLINE, the migration loop, MEM_OFFLINE)
// with pause points, online, hot-add and remove, kernel allocations that pin
// a block, and notifier failure injection.
// Linux analogue: mm/memory_hotplug.c (offline_pages, online_pages,
// add_memory), drivers/base/memory.c (memoryN/state, removable).
// Thread safety: not thread-safe; used under the machine's lock.
#ifndef MEMNODE_SERVER_CORE_HOTPLUG_HOTPLUG_H_
#define MEMNODE_SERVER_CORE_HOTPLUG_HOTPLUG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/api.h"
#include "server/core/clock.h"
#include "server/core/hotplug/notifier.h"
#include "server/core/mem/phys_mem.h"
#include "server/core/migrate/migrate.h"
#include "server/core/profile/profile.h"

namespace memnode {

class Hotplug {
 public:
  Hotplug(PhysMem& mem, Migration& migration, NotifierChain& notifiers, EventSink& events,
          EmulatedClock& clock, const KernelProfile& profile)
      : mem_(mem),
        migration_(migration),
        notifiers_(notifiers),
        events_(events),
        clock_(clock),
        profile_(profile) {}
  Hotplug(const Hotplug&) = delete;
  Hotplug& operator=(const Hotplug&) = delete;

  std::vector<BlockInfo> ListBlocks();
  absl::StatusOr<BlockInfo> GetBlock(BlockId id);
  // Places kernel pages in a block: unmovable ones make the block's
  // isolation fail (EBUSY before any notifier); movable-block ones are
  // non-LRU pages that make the migration loop fail with EBUSY.
  absl::StatusOr<uint64_t> AllocKernelPages(BlockId id, uint64_t count, bool unmovable);
  absl::StatusOr<uint64_t> FreeKernelPages(BlockId id, uint64_t count);

  // offline_pages as a state machine (see hotplug.cc's overview).
  // FAILED_PRECONDITION OFFLINE_IN_PROGRESS while another offline is paused.
  absl::StatusOr<OfflineReport> OfflineBlock(BlockId id, const OfflineOptions& options,
                                             absl::Time now);
  // Continues a paused offline to its next pause point or its end.
  absl::StatusOr<OfflineReport> ResumeOffline(BlockId id, std::optional<OfflinePhase> pause_after,
                                              absl::Time now);
  // Cancels a paused offline (MEM_CANCEL_OFFLINE if GOING_OFFLINE was sent).
  absl::StatusOr<OfflineReport> CancelOffline(BlockId id);
  // Cancels a paused offline whose client went away (pause_ttl elapsed).
  bool ExpirePausedOffline(absl::Time now);
  bool offline_pending() const { return pending_.has_value(); }
  // online_pages: returns the emulated errno.
  absl::StatusOr<Errno> OnlineBlock(BlockId id);
  // Hot-adds a block to a node (state OFFLINE, like add_memory).
  absl::StatusOr<BlockId> AddBlock(NodeId node);
  // Removes an offline block (EBUSY unless OFFLINE).
  absl::StatusOr<Errno> RemoveBlock(BlockId id);

 private:
  struct PendingOffline {
    BlockId block = 0;
    OfflineOptions options;
    OfflinePolicy policy;
    OfflineReport report;
    uint64_t start_ns = 0;  // emulated time at start
    int retries_left = 5;
    bool going_offline_sent = false;
    absl::Time paused_at;
  };
  absl::StatusOr<MemoryBlock*> BlockById(BlockId id);
  BlockInfo DescribeBlock(const MemoryBlock& b);
  // Runs the pending offline from its current phase to the next pause or end.
  OfflineReport ContinueOffline(absl::Time now);
  OfflineReport FailOffline(Errno err, const std::string& why);
  // One do_migrate_range from the first LRU page of the block.
  struct RangeOutcome {
    bool found = false;      // an LRU page existed
    Errno err = Errno::kOk;  // kEBUSY (a non-LRU page), kENOMEM
    uint64_t failed = 0;     // pages not migrated
  };
  RangeOutcome DoMigrateRange(MemoryBlock& b);
  MemoryNotify NotifyArg(const MemoryBlock& b) const;
  void EmitPhase(BlockId b, OfflinePhase ph);
  void EmitResult(BlockId b, Errno err, uint64_t duration_ns);

  PhysMem& mem_;
  Migration& migration_;
  NotifierChain& notifiers_;
  EventSink& events_;
  EmulatedClock& clock_;
  const KernelProfile& profile_;
  std::optional<PendingOffline> pending_;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_HOTPLUG_HOTPLUG_H_
