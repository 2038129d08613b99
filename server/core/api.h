// The value types of the machine's public API (machine.h): configurations,
// requests and results. Results of emulated syscalls carry the emulated errno
// as data (SPEC Decisions 6); API misuse is an absl::Status instead.
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
  uint32_t run = 0;
  uint32_t pages_to_scan = 100;
  uint32_t sleep_millisecs = 20;
  uint64_t pages_shared = 0;
  uint64_t pages_sharing = 0;
  uint64_t pages_unshared = 0;
  uint64_t pages_volatile = 0;
  uint64_t full_scans = 0;
  uint64_t rmap_items = 0;
  uint64_t stable_nodes = 0;
  uint64_t mm_slots = 0;
  Pid cursor_pid = 0;
  Vaddr cursor_address = 0;
  uint64_t visits_total = 0;
  bool locked_by_offline = false;
};
struct StableNodeInfo {
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
