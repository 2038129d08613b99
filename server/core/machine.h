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
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/core/content.h"
#include "server/core/events.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/types.h"

namespace memnode {

class Ksm;

struct MachineConfig {
  uint32_t nodes = 2;             // NUMA nodes, 1..64
  uint32_t blocks_per_node = 8;   // memory blocks per node, 1..65536
  uint64_t pages_per_block = 32768;  // 4 KiB pages per block, multiple of 64
  ClockMode clock = ClockMode::kManual;
  std::string profile = "linux-2.6.33";
  absl::Status Validate() const;
  uint64_t total_pages() const { return uint64_t{nodes} * blocks_per_node * pages_per_block; }
};

// struct page, 32 bytes (the kernel's is 64).
struct PageFrame {
  Content* content = nullptr;       // bytes; null when free
  StableNode* ksm_node = nullptr;   // page->mapping of a KSM page (may be null
                                    // transiently during a merge)
  int32_t refcount = 0;             // page_count: mapcount + pins (+1 shm owner)
  int32_t mapcount = 0;             // ptes mapping the frame
  int32_t pins = 0;                 // extra references (get_user_pages)
  PageState state = PageState::kFree;
  bool shm_owned = false;           // a shared-anonymous object holds a ref
};

enum class BlockState { kOnline, kGoingOffline, kOffline };

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
  uint64_t count[8] = {};            // frames per PageState (index = state)
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
  uint64_t shm_pgoff = 0;  // page offset of `start` in shm
};

// task_struct + mm_struct.
struct Process {
  Pid pid = 0;
  Pid ppid = 0;
  uint32_t uid = 0;
  bool privileged = false;
  NodeId home_node = 0;
  bool exited = false;  // mm_users == 0 (ksm_test_exit)
  std::map<Vaddr, Vma> vmas;                 // by start
  absl::btree_map<uint64_t, Pte> ptes;       // vpn -> pte
  absl::btree_multimap<Vaddr, Pfn> pins;     // pinned frames by address
  MmSlot* ksm_slot = nullptr;                // registered with KSM
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
  uint64_t anon_pages = 0, ksm_pages = 0, zero_pages = 0, shmem_pages = 0,
           pinned_pages = 0;
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
  uint64_t present_pages = 0, free_pages = 0, anon_pages = 0, ksm_pages = 0,
           shmem_pages = 0, reserved_pages = 0;
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
  uint64_t frame_bytes = 0;    // page-frame metadata of populated blocks
  uint64_t block_bytes = 0;    // per-block bookkeeping
  uint64_t content_bytes = 0;  // distinct contents
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
  absl::StatusOr<std::vector<FrameInfo>> ListFrames(Pfn start, uint64_t count,
                                                    bool skip_free)
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

  absl::StatusOr<MmapResult> Mmap(Pid pid, Vaddr addr, uint64_t length, uint32_t prot,
                                  bool shared, bool fixed) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Errno> Munmap(Pid pid, Vaddr addr, uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Errno> Mprotect(Pid pid, Vaddr addr, uint64_t length, uint32_t prot)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Errno> Madvise(Pid pid, Vaddr addr, uint64_t length, Advice advice)
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<AccessResult> Write(Pid pid, Vaddr addr, const uint8_t* data,
                                     uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<AccessResult> Fill(Pid pid, Vaddr addr, uint64_t length,
                                    const FillPattern& pattern) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<ReadResult> Read(Pid pid, Vaddr addr, uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<DigestResult> Digest(Pid pid, Vaddr addr, uint64_t length)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<AccessResult> Touch(Pid pid, Vaddr addr, uint64_t length)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<PinResult> Pin(Pid pid, Vaddr addr, uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<PinResult> Unpin(Pid pid, Vaddr addr, uint64_t length) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<Translation>> Translate(Pid pid, Vaddr addr, uint64_t pages)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- KSM (ksm/ksm.cc) -------------------------------------------------------
  KsmInfo GetKsm() ABSL_LOCKS_EXCLUDED(mu_);
  // Typed knob writes with 2.6.33 validation; all validated before any applies.
  Errno KsmUpdate(std::optional<uint64_t> run, std::optional<uint64_t> pages_to_scan,
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

 private:
  friend class Ksm;
  explicit Machine(const MachineConfig& config);

  // Frames and allocator.
  MemoryBlock& BlockOf(Pfn pfn) { return blocks_[pfn / config_.pages_per_block]; }
  PageFrame& Frame(Pfn pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frame if its block's metadata exists, else null (never allocates).
  PageFrame* FrameIfPopulated(Pfn pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnsureFrames(MemoryBlock& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Allocates a page preferring `node`, falling back to the other nodes in
  // id order (the default policy's zonelist). kNoPfn when memory is exhausted.
  Pfn AllocPage(NodeId node, PageState state, Content* content)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
  Errno CheckAccess(Process& p, Vaddr addr, uint64_t len, uint32_t prot_needed,
                    Vaddr* fault) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The write fault at page `vpn` and the store of `bytes` (partial page
  // [off, off+n)); with `force` (break_ksm) PROT_WRITE is not required.
  // Returns kENOMEM when no page can be allocated.
  Errno WritePage(Process& p, Vma& vma, uint64_t vpn, uint32_t off, uint32_t n,
                  const uint8_t* src) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MACHINE_H_
