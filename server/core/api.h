// The value types of the machine's public API (machine.h): configurations,
// requests and results. Results of emulated syscalls carry the emulated errno
// as data (SEMANTICS CH-21); API misuse is an absl::Status instead.
// Thread safety: plain values.
#ifndef MEMNODE_SERVER_CORE_API_H_
#define MEMNODE_SERVER_CORE_API_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/types.h"

namespace memnode {

struct MachineConfig {
  uint32_t nodes = 2;                // NUMA nodes, 1..64
  uint32_t blocks_per_node = 8;      // memory blocks per node, 1..65536
  uint64_t pages_per_block = 32768;  // 4 KiB pages per block, multiple of 64
  ClockMode clock = ClockMode::kManual;
  std::string profile = "linux-2.6.33";  // a name of profile/profiles.h
  absl::Status Validate() const;
  uint64_t total_pages() const { return uint64_t{nodes} * blocks_per_node * pages_per_block; }
};

// --- Processes and memory ----------------------------------------------------

struct ProcessParams {
  uint32_t uid = 0;
  bool privileged = false;  // CAP_SYS_NICE
  NodeId home_node = 0;
};

struct FillPattern {
  enum Kind { kByte, kPattern64, kRandom } kind = kByte;
  uint64_t value = 0;  // the byte, the 64-bit pattern, or the seed
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
  std::string digest;  // hex SHA-256 over the per-page SHA-256s
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
  bool mapped = false;   // inside a VMA
  bool present = false;  // a pte exists
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

// --- Frames and the machine --------------------------------------------------

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
  uint64_t last_event_sequence = 0;  // events emitted so far (numbered from 1)
};
struct CheckResult {
  std::vector<std::string> violations;
  std::string state_digest;
  bool ok() const { return violations.empty(); }
};
// Host memory accounting, for benchmarks.
struct HostMemory {
  uint64_t frame_bytes = 0;       // page-frame metadata of populated blocks
  uint64_t block_bytes = 0;       // per-block bookkeeping
  uint64_t content_bytes = 0;     // distinct contents
  uint64_t populated_frames = 0;  // frames in use (not free)
};

// --- KSM ---------------------------------------------------------------------

enum class RmapState : uint8_t { kNone, kUnstable, kStable };

struct KsmInfo {
  uint32_t run = 0;  // as `run` reads (6.18: with KSM_RUN_OFFLINE, 4, during an offline)
  uint32_t pages_to_scan = 100;
  uint32_t sleep_millisecs = 20;
  uint64_t pages_shared = 0;
  uint64_t pages_sharing = 0;
  uint64_t pages_unshared = 0;
  uint64_t pages_volatile = 0;
  uint64_t full_scans = 0;
  // linux-6.18 counters (0 in linux-2.6.33, which has none of them).
  uint64_t pages_scanned = 0;       // visits ever (not reset by run=2)
  uint64_t pages_skipped = 0;       // smart_scan skips ever
  uint64_t ksm_zero_pages = 0;      // zero pages KSM mapped (use_zero_pages)
  int64_t general_profit = 0;       // bytes: (sharing + zero pages) * 4096 - rmap_items * 64
  uint64_t stable_node_chains = 0;  // chains of the stable trees
  uint64_t stable_node_dups = 0;    // dups hanging off those chains
  uint64_t cow_ksm = 0;             // /proc/vmstat cow_ksm: KSM pages copied on write/unshare
  // Every file of /sys/kernel/mm/ksm of the machine's profile, as read (no
  // trailing newline), in `ls` order.
  std::vector<std::pair<std::string, std::string>> sysfs;
  uint64_t rmap_items = 0;
  uint64_t stable_nodes = 0;
  uint64_t mm_slots = 0;
  Pid cursor_pid = 0;
  Vaddr cursor_address = 0;
  uint64_t visits_total = 0;
  // ksmd's CPU time as the real kernel would have spent it on these visits
  // (a model: ksm/ksmd_cost.h), nanoseconds since the machine was created.
  uint64_t ksmd_cpu_ns = 0;
  bool locked_by_offline = false;
};
struct StableNodeInfo {
  // kRegular: a node of the stable tree with its KSM page; kChain (6.18): a
  // node of the tree holding dups, no page of its own; kDup (6.18): one KSM
  // page copy of its chain's content, listed right after its chain.
  enum Kind : uint8_t { kRegular, kChain, kDup };
  Kind kind = kRegular;
  uint64_t chain_id = 0;      // kDup: its chain's id
  int32_t nid = 0;            // the stable tree it is in (merge_across_nodes=0: per node)
  bool migrate_list = false;  // on the migrate_nodes list (kpfn on another node)
  uint64_t id = 0;
  Pfn kpfn = kNoPfn;
  NodeId node = 0;
  std::string content_digest;                   // empty when stale
  std::vector<std::pair<Pid, Vaddr>> mappings;  // hlist order
  bool stale = false;
  int32_t mapcount = 0;
  uint32_t depth = 0;
};
struct RmapItemInfo {
  Pid pid = 0;
  Vaddr address = 0;
  RmapState state = RmapState::kNone;
  uint32_t oldchecksum = 0;
  uint32_t seqnr = 0;
  uint64_t stable_node_id = 0;
  std::string content_digest;
  uint32_t depth = 0;
  bool previous_pass = false;
};
// /proc/PID/ksm_stat (linux-6.18; linux-2.6.33 has no such file: ENOENT).
struct KsmStat {
  Errno err = Errno::kOk;
  uint64_t ksm_rmap_items = 0;
  uint64_t ksm_zero_pages = 0;
  uint64_t ksm_merging_pages = 0;
  int64_t ksm_process_profit = 0;  // bytes
  bool ksm_merge_any = false;      // MMF_VM_MERGE_ANY (prctl)
  bool ksm_mergeable = false;      // some vma has VM_MERGEABLE
};
// A read of a sysfs file: its text (with the trailing newline), or ENOENT.
struct SysfsRead {
  Errno err = Errno::kOk;
  std::string text;
};
// prctl(2): the emulated errno, and the value of a GET.
struct PrctlResult {
  Errno err = Errno::kOk;
  int64_t value = 0;
};
inline constexpr int kPrSetMemoryMerge = 67, kPrGetMemoryMerge = 68;
// One input of the scan-time advisor replay: a full scan's duration (s)
// and ksmd's CPU share during it (percent), as trace_ksm_advisor reports.
struct AdvisorInput {
  uint64_t scan_time_s = 0;
  uint64_t cpu_percent = 0;
};
// A profile a server offers: its name, and its KSM sysfs files.
struct ProfileInfo {
  struct File {
    std::string name;
    bool writable = false;
    std::string default_value;
    std::string description;
  };
  std::string name;
  std::string description;
  std::vector<File> ksm_files;
};

struct KsmStepResult {
  uint64_t visits = 0;
  uint64_t passes = 0;
};
// ksmd of a REALTIME machine: whether it should keep running
// (ksmd_should_run), and the sleep to take before the next batch.
struct KsmdTick {
  bool should_run = false;
  uint32_t sleep_millisecs = 20;
};

// --- NUMA policy and migration -----------------------------------------------

// mbind / migrate_pages / move_pages flags (MPOL_MF_*).
inline constexpr uint32_t kMpolMfStrict = 1, kMpolMfMove = 2, kMpolMfMoveAll = 4;

struct MempolicyResult {
  Errno err = Errno::kOk;
  MemPolicy policy;   // the task or VMA policy
  int32_t node = -1;  // with node_of_address: the node of the page there
};
struct MigratePagesResult {
  Errno err = Errno::kOk;
  uint64_t not_migrated = 0;  // pages not migrated (the syscall's return)
};
struct MovePagesResult {
  Errno err = Errno::kOk;       // whole-call error
  std::vector<int32_t> status;  // per page: node id or -errno
};

// --- Memory blocks and hotplug -----------------------------------------------

struct BlockInfo {
  BlockId id = 0;
  NodeId node = 0;
  Pfn start_pfn = 0;
  uint64_t pages = 0;
  BlockState state = BlockState::kOnline;
  bool removable = false;  // the sysfs `removable` hint (the profile's rule)
  uint64_t free_pages = 0;
  uint64_t count[kPageStates] = {};  // frames per PageState
  uint64_t unmovable_pages = 0;
};
struct OfflineReport {
  BlockId block = 0;
  Errno err = Errno::kOk;
  bool paused = false;                       // stopped at a pause point
  OfflinePhase phase = OfflinePhase::kNone;  // last phase passed
  std::vector<std::string> notifier_calls;   // "MEM_GOING_OFFLINE ksm(100) ok", ...
  uint64_t pages_migrated = 0;
  uint64_t ksm_pages_migrated = 0;
  uint64_t stable_nodes_pruned = 0;
  uint64_t rounds = 0;       // migration-loop rounds
  uint64_t emulated_ns = 0;  // emulated duration so far
  std::string failure;       // first reason for failure
};
struct OfflineOptions {
  OfflinePhase pause_after = OfflinePhase::kNone;  // kIsolated/kGoingOffline/kMigrated
  uint64_t timeout_ns = 120ull * 1000000000;       // the seed's 120 s (profiles may ignore)
  absl::Duration pause_ttl = absl::Minutes(5);     // abandoned pauses are cancelled
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_API_H_
