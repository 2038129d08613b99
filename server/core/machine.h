// An emulated NUMA machine: nodes, hot-pluggable memory blocks, page frames,
// a per-node page allocator, processes with their address spaces, and KSM.
// Linux analogue: the machine as mm/ sees it (pglist_data, memory sections,
// struct page, mm_struct/vm_area_struct/page tables, mm/ksm.c).
//
// Thread safety: every public method is thread-safe; one mutex per machine
// serialises them (DESIGN.md: one lock per machine is a fine start).
// Lock order (outermost first):
//   Machine::mu_
//     observers (called under mu_, must not re-enter)
//
// Determinism: with ClockMode::kManual nothing happens between calls, and the
// same sequence of calls yields the same pfns, trees, counters and digest.
#ifndef MEMNODE_SERVER_CORE_MACHINE_H_
#define MEMNODE_SERVER_CORE_MACHINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/content.h"
#include "server/core/events.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/types.h"

namespace memnode {

class Ksm;

struct MachineConfig {
  uint32_t nodes = 2;                // NUMA nodes, 1..64
  uint32_t blocks_per_node = 8;      // memory blocks per node, 1..65536
  uint64_t pages_per_block = 32768;  // 4 KiB pages per block, multiple of 64
  ClockMode clock = ClockMode::kManual;
  std::string profile = "linux-2.6.33";
  absl::Status Validate() const;
  uint64_t total_pages() const { return uint64_t{nodes} * blocks_per_node * pages_per_block; }
};

// struct page, 32 bytes (the kernel's is 64).
struct PageFrame {
  Content* content = nullptr;      // bytes; null when free
  StableNode* ksm_node = nullptr;  // page->mapping of a KSM page (may be null
                                   // transiently during a merge)
  int32_t refcount = 0;            // page_count: mapcount + pins (+1 shm owner)
  int32_t mapcount = 0;            // ptes mapping the frame
  int32_t pins = 0;                // extra references (get_user_pages)
  PageState state = PageState::kFree;
  bool shm_owned = false;  // a shared-anonymous object holds a ref
  bool unmovable = false;  // kReserved: in an unmovable pageblock
                           // (false: a non-LRU page in a movable one)
};

enum class BlockState { kOnline, kGoingOffline, kOffline, kRemoved };
const char* BlockStateName(BlockState s);

// A memory block (sysfs memoryN; one sparsemem section in 2.6.33).
struct MemoryBlock {
  BlockId id = 0;
  NodeId node = 0;
  Pfn start = 0;
  uint64_t pages = 0;
  BlockState state = BlockState::kOnline;
  // Frame metadata, allocated when a page of the block is first used.
  std::unique_ptr<PageFrame[]> frames;
  std::vector<uint32_t> free_stack;  // offsets freed, reused LIFO
  uint64_t next_untouched = 0;       // offsets >= this were never allocated
  uint64_t free_pages = 0;
  uint64_t count[8] = {};        // frames per PageState (index = state)
  uint64_t unmovable_pages = 0;  // kReserved frames with `unmovable`
};

// A NUMA memory policy (struct mempolicy), 2.6.33 modes.
struct MemPolicy {
  enum Mode { kDefault = 0, kPreferred = 1, kBind = 2, kInterleave = 3 };
  Mode mode = kDefault;
  uint64_t nodes = 0;  // node mask (bit n = node n); PREFERRED: one bit or none (local)
};

// A page-table entry: pfn plus the hardware write bit.
struct Pte {
  Pfn pfn = kNoPfn;
  bool write = false;
};

// A shared anonymous object (shmem behind MAP_SHARED|MAP_ANONYMOUS).
struct ShmObject {
  absl::btree_map<uint64_t, Pfn> pages;  // page offset -> frame
  int vma_refs = 0;                      // VMAs referring to it
};

struct Vma {
  Vaddr start = 0;
  Vaddr end = 0;
  uint32_t prot = 0;
  bool shared = false;
  bool mergeable = false;  // VM_MERGEABLE
  bool anon_vma = false;   // has an anon_vma (some page was write-faulted)
  ShmObject* shm = nullptr;
  uint64_t shm_pgoff = 0;   // page offset of `start` in shm
  bool has_policy = false;  // a VMA policy set by mbind
  MemPolicy policy;         // valid when has_policy
};

// task_struct + mm_struct.
struct Process {
  Pid pid = 0;
  Pid ppid = 0;
  uint32_t uid = 0;
  bool privileged = false;
  NodeId home_node = 0;
  bool exited = false;                    // mm_users == 0 (ksm_test_exit)
  std::map<Vaddr, Vma> vmas;              // by start
  absl::btree_map<uint64_t, Pte> ptes;    // vpn -> pte
  absl::btree_multimap<Vaddr, Pfn> pins;  // pinned frames by address
  MmSlot* ksm_slot = nullptr;             // registered with KSM
  MemPolicy policy;                       // task policy (set_mempolicy)
  // Bumped by every change of a pte's pfn or of a VMA (boundaries, flags,
  // anon_vma): a result computed from the page tables at an equal `gen` is
  // still valid (KSM's unstable-tree lookups cache on it).
  uint64_t gen = 0;
};

struct FillPattern {
  enum Kind { kByte, kPattern64, kRandom } kind = kByte;
  uint64_t value = 0;
};

struct AccessResult {
  Errno err = Errno::kOk;
  uint64_t bytes_done = 0;
  Vaddr fault_address = 0;
};
struct ReadResult {
  Errno err = Errno::kOk;
  std::string data;
  Vaddr fault_address = 0;
};
struct DigestResult {
  Errno err = Errno::kOk;
  std::string digest;  // hex
  Vaddr fault_address = 0;
  uint64_t populated_pages = 0;
};
struct MmapResult {
  Errno err = Errno::kOk;
  Vaddr address = 0;
};
struct PinResult {
  Errno err = Errno::kOk;
  uint64_t pages = 0;
};
struct Translation {
  Vaddr address = 0;
  bool mapped = false;
  bool present = false;
  Pfn pfn = kNoPfn;
  NodeId node = 0;
  PageState state = PageState::kFree;
};
struct VmaInfo {
  Vaddr start = 0, end = 0;
  uint32_t prot = 0;
  bool shared = false, mergeable = false, anon_vma = false;
  uint64_t resident_pages = 0;
};
struct ProcessInfo {
  Pid pid = 0, ppid = 0;
  uint32_t uid = 0;
  bool privileged = false, exited = false, ksm_registered = false;
  NodeId home_node = 0;
  std::vector<VmaInfo> vmas;
  uint64_t anon_pages = 0, ksm_pages = 0, zero_pages = 0, shmem_pages = 0, pinned_pages = 0;
};
struct FrameInfo {
  Pfn pfn = 0;
  NodeId node = 0;
  BlockId block = 0;
  PageState state = PageState::kFree;
  int32_t refcount = 0, mapcount = 0, pins = 0;
  std::string content_digest;
  uint64_t stable_node_id = 0;
};
struct NodeStats {
  NodeId node = 0;
  uint32_t blocks = 0;
  uint64_t present_pages = 0, free_pages = 0, anon_pages = 0, ksm_pages = 0, shmem_pages = 0,
           reserved_pages = 0;
};
struct MachineInfo {
  MachineConfig config;
  std::vector<NodeStats> nodes;
  uint64_t total_pages = 0;
  uint32_t process_count = 0;
  uint64_t distinct_contents = 0;
  uint64_t emulated_time_ns = 0;
};
struct CheckResult {
  std::vector<std::string> violations;
  std::string state_digest;
  bool ok() const { return violations.empty(); }
};
struct ProcessParams {
  uint32_t uid = 0;
  bool privileged = false;
  NodeId home_node = 0;
};

// Host memory accounting, for benchmarks.
struct HostMemory {
  uint64_t frame_bytes = 0;       // page-frame metadata of populated blocks
  uint64_t block_bytes = 0;       // per-block bookkeeping
  uint64_t content_bytes = 0;     // distinct contents
  uint64_t populated_frames = 0;  // frames in use (not free)
};

class Machine {
 public:
  // The first address used for mmap without a hint.
  static constexpr Vaddr kMmapBase = 0x7f0000000000ULL;
  // The top of the user address space (x86_64 TASK_SIZE, 47 bits).
  static constexpr Vaddr kTaskSize = 0x7ffffffff000ULL;

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
  absl::StatusOr<FrameInfo> GetFrame(Pfn pfn) ABSL_LOCKS_EXCLUDED(mu_);
  // Frames of [start, start+count), optionally skipping free ones.
  absl::StatusOr<std::vector<FrameInfo>> ListFrames(Pfn start, uint64_t count, bool skip_free)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Self-check and state digest (CheckInvariants).
  CheckResult Check() ABSL_LOCKS_EXCLUDED(mu_);
  HostMemory HostMemoryUsage() ABSL_LOCKS_EXCLUDED(mu_);

  // --- Processes (mm.cc) ------------------------------------------------------
  absl::StatusOr<Pid> CreateProcess(const ProcessParams& params) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Pid> Fork(Pid pid) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns pages freed.
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

  // --- KSM (ksm/ksm.cc) -------------------------------------------------------
  KsmInfo GetKsm() ABSL_LOCKS_EXCLUDED(mu_);
  // Typed knob writes with 2.6.33 validation; all validated before any applies.
  // A run write while an offline holds KSM's lock would block in the kernel:
  // FAILED_PRECONDITION KSM_LOCKED here, nothing changed (the service waits
  // and retries until the offline ends or the call's deadline).
  absl::StatusOr<Errno> KsmUpdate(std::optional<uint64_t> run,
                                  std::optional<uint64_t> pages_to_scan,
                                  std::optional<uint64_t> sleep_millisecs) ABSL_LOCKS_EXCLUDED(mu_);
  // A sysfs write as text. NOT_FOUND-like misuse (unknown file) is a Status.
  absl::StatusOr<Errno> KsmWriteSysfs(absl::string_view file, absl::string_view text)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Scanner steps (MANUAL stepping; works whatever `run` is).
  absl::StatusOr<KsmStepResult> KsmStepVisits(uint64_t visits) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<KsmStepResult> KsmStepPasses(uint64_t passes, uint64_t max_visits)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<StableNodeInfo> KsmStableNodes() ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<RmapItemInfo> KsmUnstableItems() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<RmapItemInfo>> KsmRmapItems(Pid pid) ABSL_LOCKS_EXCLUDED(mu_);

  // Turns KSM's unstable-tree lookup cache off (differential tests only).
  void SetKsmLookupCacheForTesting(bool on) ABSL_LOCKS_EXCLUDED(mu_);
  // Makes MEM_OFFLINE prune with the seed's rescan from the tree's first node
  // for every node (quadratic) instead of the kpfn index: benchmarks and
  // differential tests compare the two; the results are identical.
  void SetPruneByRescanForTesting(bool on) ABSL_LOCKS_EXCLUDED(mu_);

  // ksmd of a REALTIME machine: one batch of pages_to_scan visits if run has
  // the MERGE bit and some mm is registered. Returns whether ksmd should keep
  // running (ksmd_should_run), and the sleep to take before the next batch.
  struct KsmdTick {
    bool should_run = false;
    uint32_t sleep_millisecs = 20;
  };
  KsmdTick KsmdBatch() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether ksmd has work (run & 1 and a registered mm), without scanning.
  KsmdTick KsmdState() ABSL_LOCKS_EXCLUDED(mu_);

  // --- NUMA policy and migration (migrate.cc) ----------------------------------
  // set_mempolicy(2) of `pid`; returns the emulated errno.
  absl::StatusOr<Errno> SetMempolicy(Pid pid, MemPolicy::Mode mode, uint64_t nodes)
      ABSL_LOCKS_EXCLUDED(mu_);
  struct MempolicyResult {
    Errno err = Errno::kOk;
    MemPolicy policy;   // the task or VMA policy
    int32_t node = -1;  // with node_of_address: the node of the page there
  };
  // get_mempolicy(2): task policy, or with `address` the VMA policy, or with
  // node_of_address the node of the page at `address` (read-faulted in like
  // get_user_pages, MPOL_F_NODE|MPOL_F_ADDR).
  absl::StatusOr<MempolicyResult> GetMempolicy(Pid pid, std::optional<Vaddr> address,
                                               bool node_of_address) ABSL_LOCKS_EXCLUDED(mu_);
  // mbind(2) with MPOL_MF_STRICT (1), MOVE (2), MOVE_ALL (4).
  absl::StatusOr<Errno> Mbind(Pid pid, Vaddr addr, uint64_t length, MemPolicy::Mode mode,
                              uint64_t nodes, uint32_t flags) ABSL_LOCKS_EXCLUDED(mu_);
  struct MigratePagesResult {
    Errno err = Errno::kOk;
    uint64_t not_migrated = 0;  // pages not migrated (the syscall's return)
  };
  // migrate_pages(2) called by `caller` on `target`.
  absl::StatusOr<MigratePagesResult> MigratePages(Pid caller, Pid target, uint64_t old_nodes,
                                                  uint64_t new_nodes) ABSL_LOCKS_EXCLUDED(mu_);
  struct MovePagesResult {
    Errno err = Errno::kOk;       // whole-call error
    std::vector<int32_t> status;  // per page: node id or -errno
  };
  // move_pages(2) called by `caller` on `target`; empty `nodes` = query mode.
  absl::StatusOr<MovePagesResult> MovePages(Pid caller, Pid target,
                                            const std::vector<Vaddr>& addresses,
                                            const std::vector<int32_t>& nodes, uint32_t flags)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Snapshots (snapshot.cc) ---------------------------------------------------
  // The whole machine as a versioned, checksummed byte string: restoring it
  // gives the same state digest, pfns, trees, counters and pending rmap items.
  // FAILED_PRECONDITION OFFLINE_IN_PROGRESS while an offline is paused.
  absl::StatusOr<std::string> Snapshot() ABSL_LOCKS_EXCLUDED(mu_);
  // Rebuilds a machine from Snapshot() bytes; INVALID_ARGUMENT
  // SNAPSHOT_CORRUPT (or SNAPSHOT_VERSION) and nothing built otherwise.
  static absl::StatusOr<std::unique_ptr<Machine>> Restore(absl::string_view bytes);

  // --- Memory blocks and hotplug (hotplug.cc) ----------------------------------
  struct BlockInfo {
    BlockId id = 0;
    NodeId node = 0;
    Pfn start_pfn = 0;
    uint64_t pages = 0;
    BlockState state = BlockState::kOnline;
    bool removable = false;  // the sysfs `removable` hint
    uint64_t free_pages = 0;
    uint64_t count[8] = {};  // frames per PageState
    uint64_t unmovable_pages = 0;
  };
  std::vector<BlockInfo> ListBlocks() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<BlockInfo> GetBlock(BlockId id) ABSL_LOCKS_EXCLUDED(mu_);
  // Places kernel pages in a block: unmovable ones make the block's
  // isolation fail (EBUSY before any notifier); movable-block ones are
  // non-LRU pages that make the migration loop fail with EBUSY.
  absl::StatusOr<uint64_t> AllocKernelPages(BlockId id, uint64_t count, bool unmovable)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> FreeKernelPages(BlockId id, uint64_t count) ABSL_LOCKS_EXCLUDED(mu_);

  enum class MemEvent {
    kGoingOnline,
    kCancelOnline,
    kOnline,
    kGoingOffline,
    kCancelOffline,
    kOffline
  };
  static const char* MemEventName(MemEvent e);
  enum class OfflinePhase { kNone, kIsolated, kGoingOffline, kMigrated, kDone };
  static const char* OfflinePhaseName(OfflinePhase p);

  struct OfflineReport {
    BlockId block = 0;
    Errno err = Errno::kOk;
    bool paused = false;                       // stopped at a pause point
    OfflinePhase phase = OfflinePhase::kNone;  // last phase passed
    std::vector<std::string> notifier_calls;   // "GOING_OFFLINE ksm(100) ok", ...
    uint64_t pages_migrated = 0;
    uint64_t ksm_pages_migrated = 0;
    uint64_t stable_nodes_pruned = 0;
    uint64_t rounds = 0;       // migration-loop rounds
    uint64_t emulated_ns = 0;  // emulated duration so far
    std::string failure;       // first reason for failure
  };
  struct OfflineOptions {
    OfflinePhase pause_after = OfflinePhase::kNone;  // kIsolated/kGoingOffline/kMigrated
    uint64_t timeout_ns = 120ull * 1000000000;       // the seed's 120 s
    absl::Duration pause_ttl = absl::Minutes(5);     // abandoned pauses are cancelled
  };
  // Offlines a block with the seed's sequence (kernel-semantics 7.2, 7.3).
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
  // online_pages (7.4): returns the emulated errno.
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
  // True while an offline holds KSM's lock (ksm_thread_mutex).
  bool KsmLocked() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class Ksm;
  explicit Machine(const MachineConfig& config);

  // Frames and allocator.
  MemoryBlock& BlockOf(Pfn pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return blocks_[pfn / config_.pages_per_block];
  }
  // One past the highest pfn (hot-added blocks extend the range).
  uint64_t PfnLimit() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return blocks_.size() * config_.pages_per_block;
  }
  PageFrame& Frame(Pfn pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    MemoryBlock& b = BlockOf(pfn);
    if (!b.frames) EnsureFrames(b);
    return b.frames[pfn - b.start];
  }
  // Frame if its block's metadata exists, else null (never allocates).
  PageFrame* FrameIfPopulated(Pfn pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnsureFrames(MemoryBlock& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Pfn AllocOnNode(NodeId node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreePage(Pfn pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetState(Pfn pfn, PageFrame& f, PageState s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops one reference; frees the frame when none is left.
  void PutPage(Pfn pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetContent(PageFrame& f, Content* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Processes (mm.cc).
  absl::StatusOr<Process*> LiveProcess(Pid pid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Vma* FindVma(Process& p, Vaddr addr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SplitVma(Process& p, Vaddr at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MergeVmas(Process& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ZapRange(Process& p, Vaddr start, Vaddr end) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnmapRange(Process& p, Vaddr start, Vaddr end) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseShm(ShmObject* shm) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks that [addr, addr+len) is inside VMAs allowing `prot_needed`.
  Errno CheckAccess(Process& p, Vaddr addr, uint64_t len, uint32_t prot_needed, Vaddr* fault)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The write fault at page `vpn` and the store of `bytes` (partial page
  // [off, off+n)); with `force` (break_ksm) PROT_WRITE is not required.
  // Returns kENOMEM when no page can be allocated.
  Errno WritePage(Process& p, Vma& vma, uint64_t vpn, uint32_t off, uint32_t n, const uint8_t* src)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Builds the page content for `vpn` (written = whole page from `page`).
  Errno StorePage(Process& p, Vma& vma, uint64_t vpn, Content* content)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Read fault at `vpn`: maps the zero page (private) or a shmem page.
  Errno ReadFault(Process& p, Vma& vma, uint64_t vpn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Breaks COW of a KSM page at vpn (break_ksm's write fault): the address
  // gets a private copy. kENOMEM when no page can be allocated.
  Errno BreakKsmPage(Process& p, Vma& vma, uint64_t vpn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Content* ContentAt(Process& p, uint64_t vpn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MapPte(Process& p, uint64_t vpn, Pfn pfn, bool write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the pte at vpn, dropping the frame's mapping and reference.
  void UnmapPte(Process& p, uint64_t vpn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExitLocked(Process& p, uint64_t* freed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes an exited process whose KSM slot is gone (mmdrop).
  void DropMm(Process* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ProcessInfo DescribeProcess(const Process& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  FrameInfo DescribeFrame(Pfn pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Emit(const Event& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Allocation (migrate.cc).
  bool NodeHasMemory(NodeId n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t MemoryNodes() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Allocates from the first node of `order` that has a free page.
  Pfn AllocFromOrder(const std::vector<NodeId>& order, PageState state, Content* content)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The zonelist order of a policy for a page of `vma` at `vpn`.
  std::vector<NodeId> PolicyOrder(const Process& p, const Vma* vma, uint64_t vpn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<NodeId> FallbackOrder(NodeId first) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Allocates a page for a fault by the task/VMA policy (alloc_page_vma).
  Pfn AllocForFault(Process& p, Vma& vma, uint64_t vpn, PageState state, Content* content)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The migration core (mm/migrate.c migrate_pages with the seed's
  // `offlining`): up to 10 passes; returns -ENOMEM (as -12) or the number of
  // pages not migrated. `results`, when given, receives per pfn the new
  // page's node or -errno.
  using PageAllocator = std::function<Pfn(Pfn old_pfn)>;
  int64_t MigrateList(std::vector<Pfn> pages, const PageAllocator& alloc, bool offlining,
                      MigrateReason reason, absl::flat_hash_map<Pfn, int32_t>* results)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // check_range of mm/mempolicy.c: queues misplaced pages of [start,end).
  // Returns 0, -EFAULT (hole) or -EIO (STRICT without MOVE found one).
  int CheckRange(Process& p, Vaddr start, Vaddr end, uint64_t nodes, uint32_t flags,
                 std::vector<Pfn>* queue) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Errno ValidatePolicy(MemPolicy::Mode mode, uint64_t nodes, MemPolicy* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The target of migrate_pages/move_pages (0 = the caller): null with
  // ESRCH (no such live process) or EPERM (another uid, not privileged).
  Process* MigrationTarget(Process& caller, Pid target, Errno* err)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Hotplug (hotplug.cc).
  struct NotifierEntry {
    int priority = 0;
    std::string name;
    bool is_ksm = false;                            // ksm_memory_callback
    MemEvent fail_event = MemEvent::kGoingOffline;  // injector: event it fails
    Errno fail_err = Errno::kOk;
    uint32_t remaining = 0;  // injector: failures left (0 = until cleared)
    bool spent = false;      // injector: used up; removed when the operation ends
  };
  void PurgeSpentInjectors() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls the chain for `e` by descending priority; returns the first
  // failure's errno (the chain stops there) or kOk.
  Errno CallMemoryNotifiers(MemEvent e, BlockId block, std::vector<std::string>* log)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct PendingOffline {
    BlockId block = 0;
    OfflineOptions options;
    OfflineReport report;
    uint64_t start_ns = 0;     // emulated time at start
    uint64_t deadline_ns = 0;  // emulated deadline of the migration loop
    int retry_max = 5;
    bool going_offline_sent = false;
    absl::Time paused_at;
  };
  // Runs the pending offline from its current phase to the next pause or end.
  OfflineReport ContinueOffline(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  OfflineReport FailOffline(Errno err, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One do_migrate_range from the first LRU page of the block: 0, -EBUSY,
  // -ENOMEM, or the number not migrated; *found says whether an LRU page existed.
  int64_t DoMigrateRange(MemoryBlock& b, bool* found) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<MemoryBlock*> BlockById(BlockId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  BlockInfo DescribeBlock(const MemoryBlock& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitPhase(BlockId b, OfflinePhase ph) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const MachineConfig config_;
  absl::Mutex mu_;
  ContentStore contents_ ABSL_GUARDED_BY(mu_);
  std::vector<MemoryBlock> blocks_ ABSL_GUARDED_BY(mu_);
  // Per node: blocks (by id) that are online and have free pages.
  std::vector<absl::btree_set<BlockId>> free_blocks_ ABSL_GUARDED_BY(mu_);
  Pfn zero_pfn_ = 0;  // the shared zero page (first pfn of node 0)
  std::map<Pid, std::unique_ptr<Process>> processes_ ABSL_GUARDED_BY(mu_);
  Pid next_pid_ ABSL_GUARDED_BY(mu_) = 1;
  absl::btree_map<ShmObject*, std::unique_ptr<ShmObject>> shm_objects_ ABSL_GUARDED_BY(mu_);
  uint64_t pages_freed_ ABSL_GUARDED_BY(mu_) = 0;  // FreePage calls, ever
  std::unique_ptr<Ksm> ksm_ ABSL_GUARDED_BY(mu_);
  std::vector<Observer*> observers_ ABSL_GUARDED_BY(mu_);
  uint64_t emulated_time_ns_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<NotifierEntry> notifiers_ ABSL_GUARDED_BY(mu_);
  std::optional<PendingOffline> pending_offline_ ABSL_GUARDED_BY(mu_);
  uint64_t last_pruned_ ABSL_GUARDED_BY(mu_) = 0;      // by the last MEM_OFFLINE
  bool prune_by_rescan_ ABSL_GUARDED_BY(mu_) = false;  // SetPruneByRescanForTesting
  uint64_t migrated_total_ ABSL_GUARDED_BY(mu_) = 0;   // pages moved, ever
  uint64_t migrated_ksm_ ABSL_GUARDED_BY(mu_) = 0;     // KSM pages moved, ever
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MACHINE_H_
