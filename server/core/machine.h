// An emulated NUMA machine: the public API of the core. A façade over the
// machine's components (kernel.h wires them: mem/, mm/, ksm/, migrate/,
// hotplug/, snapshot/, profile/) that holds the machine's lock.
// Linux analogue: the machine as user space sees it through syscalls and
// sysfs.
//
// Thread safety: every public method is thread-safe; one mutex per machine
// serialises them (one lock per machine: docs/ARCHITECTURE.md, Concurrency).
// Lock order (outermost first):
//   host::Registry::mu_  (server/host)
//     Machine::mu_
//       observers (called under mu_, must be O(1) and never re-enter)
//
// Determinism: with ClockMode::kManual nothing happens between calls, and the
// same sequence of calls yields the same pfns, trees, counters and digest.
#ifndef MEMNODE_SERVER_CORE_MACHINE_H_
#define MEMNODE_SERVER_CORE_MACHINE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/api.h"
#include "server/core/events.h"
#include "server/core/types.h"

namespace memnode {

namespace internal {
class Kernel;
}  // namespace internal

class Machine {
 public:
  // The first address used for mmap without a hint.
  static constexpr Vaddr kMmapBase = 0x7f0000000000ULL;
  // The top of the user address space (x86_64 TASK_SIZE, 47 bits).
  static constexpr Vaddr kTaskSize = 0x7ffffffff000ULL;

  // INVALID_ARGUMENT INVALID_TOPOLOGY or UNKNOWN_PROFILE for a bad config.
  static absl::StatusOr<std::unique_ptr<Machine>> Create(const MachineConfig& config);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  const MachineConfig& config() const { return config_; }

  // Observers (not owned) receive every core event; see events.h.
  void AddObserver(Observer* o) ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveObserver(Observer* o) ABSL_LOCKS_EXCLUDED(mu_);

  // --- Machine and frames ---------------------------------------------------
  MachineInfo Info() ABSL_LOCKS_EXCLUDED(mu_);
  // OUT_OF_RANGE PFN_OUT_OF_RANGE beyond the machine.
  absl::StatusOr<FrameInfo> GetFrame(Pfn pfn) ABSL_LOCKS_EXCLUDED(mu_);
  // Frames of [start, start+count), optionally skipping free ones.
  absl::StatusOr<std::vector<FrameInfo>> ListFrames(Pfn start, uint64_t count, bool skip_free)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Self-check of every invariant, and the state digest.
  CheckResult Check() ABSL_LOCKS_EXCLUDED(mu_);
  HostMemory HostMemoryUsage() ABSL_LOCKS_EXCLUDED(mu_);

  // --- Processes and memory (mm/) ----------------------------------------------
  // NOT_FOUND PROCESS_NOT_FOUND for a pid that is not running.
  absl::StatusOr<Pid> CreateProcess(const ProcessParams& params) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Pid> Fork(Pid pid) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns the pages freed.
  absl::StatusOr<uint64_t> Exit(Pid pid) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<ProcessInfo> GetProcess(Pid pid) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<ProcessInfo> ListProcesses(bool show_exited) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<MmapResult> Mmap(Pid pid, Vaddr addr, uint64_t length, uint32_t prot, bool shared,
                                  bool fixed) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Errno> Munmap(Pid pid, Vaddr addr, uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Errno> Mprotect(Pid pid, Vaddr addr, uint64_t length, uint32_t prot)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Errno> Madvise(Pid pid, Vaddr addr, uint64_t length, Advice advice)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<AccessResult> Write(Pid pid, Vaddr addr, const uint8_t* data, uint64_t length)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<AccessResult> Fill(Pid pid, Vaddr addr, uint64_t length,
                                    const FillPattern& pattern) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<ReadResult> Read(Pid pid, Vaddr addr, uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<DigestResult> Digest(Pid pid, Vaddr addr, uint64_t length)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<AccessResult> Touch(Pid pid, Vaddr addr, uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<PinResult> Pin(Pid pid, Vaddr addr, uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<PinResult> Unpin(Pid pid, Vaddr addr, uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<Translation>> Translate(Pid pid, Vaddr addr, uint64_t pages)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- KSM (ksm/) ---------------------------------------------------------------
  KsmInfo GetKsm() ABSL_LOCKS_EXCLUDED(mu_);
  // Typed knob writes with the profile's validation; all validated before
  // any applies. A run write while an offline holds KSM's lock would block
  // in the kernel: FAILED_PRECONDITION KSM_LOCKED here, nothing changed (the
  // host layer waits and retries until the offline ends or a deadline).
  absl::StatusOr<Errno> KsmUpdate(std::optional<uint64_t> run,
                                  std::optional<uint64_t> pages_to_scan,
                                  std::optional<uint64_t> sleep_millisecs) ABSL_LOCKS_EXCLUDED(mu_);
  // A sysfs write as text: the emulated errno (EACCES for a read-only file);
  // INVALID_ARGUMENT UNKNOWN_SYSFS_FILE for a file the profile lacks.
  absl::StatusOr<Errno> KsmWriteSysfs(absl::string_view file, absl::string_view text)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Scanner steps (MANUAL stepping; works whatever `run` is).
  absl::StatusOr<KsmStepResult> KsmStepVisits(uint64_t visits) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<KsmStepResult> KsmStepPasses(uint64_t passes, uint64_t max_visits)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<StableNodeInfo> KsmStableNodes() ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<RmapItemInfo> KsmUnstableItems() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<RmapItemInfo>> KsmRmapItems(Pid pid) ABSL_LOCKS_EXCLUDED(mu_);
  // ksmd of a REALTIME machine: one batch of pages_to_scan visits if run has
  // the MERGE bit and some mm is registered.
  KsmdTick KsmdBatch() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether ksmd has work (run & 1 and a registered mm), without scanning.
  KsmdTick KsmdState() ABSL_LOCKS_EXCLUDED(mu_);
  // True while an offline holds KSM's lock (ksm_thread_mutex).
  bool KsmLocked() ABSL_LOCKS_EXCLUDED(mu_);
  // Turns KSM's unstable-tree lookup cache off (differential tests only).
  void SetKsmLookupCacheForTesting(bool on) ABSL_LOCKS_EXCLUDED(mu_);
  // Makes MEM_OFFLINE prune with the seed's rescan from the tree's first node
  // for every node (quadratic) instead of the kpfn index: benchmarks and
  // differential tests compare the two; the results are identical.
  void SetPruneByRescanForTesting(bool on) ABSL_LOCKS_EXCLUDED(mu_);

  // --- NUMA policy and migration (migrate/) --------------------------------------
  absl::StatusOr<Errno> SetMempolicy(Pid pid, MpolMode mode, uint64_t nodes)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<MempolicyResult> GetMempolicy(Pid pid, std::optional<Vaddr> address,
                                               bool node_of_address) ABSL_LOCKS_EXCLUDED(mu_);
  // mbind(2) with MPOL_MF_STRICT (1), MOVE (2), MOVE_ALL (4).
  absl::StatusOr<Errno> Mbind(Pid pid, Vaddr addr, uint64_t length, MpolMode mode, uint64_t nodes,
                              uint32_t flags) ABSL_LOCKS_EXCLUDED(mu_);
  // migrate_pages(2) called by `caller` on `target`.
  absl::StatusOr<MigratePagesResult> MigratePages(Pid caller, Pid target, uint64_t old_nodes,
                                                  uint64_t new_nodes) ABSL_LOCKS_EXCLUDED(mu_);
  // move_pages(2) called by `caller` on `target`; empty `nodes` = query mode.
  absl::StatusOr<MovePagesResult> MovePages(Pid caller, Pid target,
                                            const std::vector<Vaddr>& addresses,
                                            const std::vector<int32_t>& nodes, uint32_t flags)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Snapshots (snapshot/) ------------------------------------------------------
  // The whole machine as a versioned, checksummed byte string: restoring it
  // gives the same state digest, pfns, trees, counters and pending rmap items.
  // FAILED_PRECONDITION OFFLINE_IN_PROGRESS while an offline is paused.
  absl::StatusOr<std::string> Snapshot() ABSL_LOCKS_EXCLUDED(mu_);
  // Rebuilds a machine from Snapshot() bytes; INVALID_ARGUMENT
  // SNAPSHOT_CORRUPT (or SNAPSHOT_VERSION) and nothing built otherwise.
  static absl::StatusOr<std::unique_ptr<Machine>> Restore(absl::string_view bytes);

  // --- Memory blocks and hotplug (hotplug/) ---------------------------------------
  std::vector<BlockInfo> ListBlocks() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<BlockInfo> GetBlock(BlockId id) ABSL_LOCKS_EXCLUDED(mu_);
  // Places kernel pages in a block: unmovable ones make the block's
  // isolation fail (EBUSY before any notifier); movable-block ones are
  // non-LRU pages that make the migration loop fail with EBUSY.
  absl::StatusOr<uint64_t> AllocKernelPages(BlockId id, uint64_t count, bool unmovable)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> FreeKernelPages(BlockId id, uint64_t count) ABSL_LOCKS_EXCLUDED(mu_);
  // Offlines a block with the seed's sequence (hotplug/hotplug.cc).
  // FAILED_PRECONDITION OFFLINE_IN_PROGRESS while another offline is paused.
  absl::StatusOr<OfflineReport> OfflineBlock(BlockId id, const OfflineOptions& options,
                                             absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Continues a paused offline to its next pause point or its end.
  absl::StatusOr<OfflineReport> ResumeOffline(BlockId id, std::optional<OfflinePhase> pause_after,
                                              absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels a paused offline (MEM_CANCEL_OFFLINE if GOING_OFFLINE was sent).
  absl::StatusOr<OfflineReport> CancelOffline(BlockId id) ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels a paused offline whose client went away (pause_ttl elapsed).
  // Returns whether one was cancelled.
  bool ExpirePausedOffline(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // online_pages: returns the emulated errno.
  absl::StatusOr<Errno> OnlineBlock(BlockId id) ABSL_LOCKS_EXCLUDED(mu_);
  // Hot-adds a block to a node (state OFFLINE, like add_memory).
  absl::StatusOr<BlockId> AddBlock(NodeId node) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes an offline block (EBUSY unless OFFLINE).
  absl::StatusOr<Errno> RemoveBlock(BlockId id) ABSL_LOCKS_EXCLUDED(mu_);
  // Notifier error injection: the next `count` calls of `event` reach a
  // notifier at `priority` that fails with `err` (count 0 = until cleared).
  absl::Status InjectNotifierFailure(MemEvent event, int priority, Errno err, uint32_t count)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ClearNotifierFailures() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Machine(const MachineConfig& config, std::unique_ptr<internal::Kernel> kernel);

  const MachineConfig config_;
  absl::Mutex mu_;
  std::unique_ptr<internal::Kernel> k_ ABSL_GUARDED_BY(mu_);
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MACHINE_H_
