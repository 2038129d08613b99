// The processes of a machine and their memory: VMAs, page tables, faults,
// copy-on-write, fork, exit, and the memory syscalls (mmap, munmap,
// mprotect, madvise) plus the emulator's byte-level access (write, fill,
// read, digest, touch, pin, translate).
// Linux analogue: mm/memory.c, mm/mmap.c, mm/mprotect.c, mm/madvise.c,
// kernel/fork.c, kernel/exit.c.
//
// KSM is reached only through MmKsmHooks (ksm_madvise / ksm_fork / ksm_exit
// of include/linux/ksm.h); allocation follows the memory policy
// (migrate/mempolicy.h).
//
// Thread safety: not thread-safe; used under the machine's lock.
#ifndef MEMNODE_SERVER_CORE_MM_MM_H_
#define MEMNODE_SERVER_CORE_MM_MM_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "server/core/api.h"
#include "server/core/events.h"
#include "server/core/mem/phys_mem.h"
#include "server/core/mm/process.h"
#include "server/core/state_digest.h"

namespace memnode {

class SnapshotReader;
class SnapshotWriter;

// What the memory-management code calls in KSM (include/linux/ksm.h).
class MmKsmHooks {
 public:
  virtual ~MmKsmHooks() = default;
  // __ksm_enter: a first MADV_MERGEABLE, or fork of a registered mm.
  virtual void KsmEnter(Process& mm) = 0;
  // __ksm_exit: before the address space is torn down.
  virtual void KsmExit(Process& mm) = 0;
};

class Mm {
 public:
  // The first address used for mmap without a hint.
  static constexpr Vaddr kMmapBase = 0x7f0000000000ULL;
  // The top of the user address space (x86_64 TASK_SIZE, 47 bits).
  static constexpr Vaddr kTaskSize = 0x7ffffffff000ULL;

  Mm(PhysMem& mem, EventSink& events, MmKsmHooks& ksm) : mem_(mem), events_(events), ksm_(ksm) {}
  ~Mm();
  Mm(const Mm&) = delete;
  Mm& operator=(const Mm&) = delete;

  // --- Processes (mm.cc) ---------------------------------------------------
  absl::StatusOr<Pid> CreateProcess(const ProcessParams& params);
  absl::StatusOr<Pid> Fork(Pid pid);
  // Returns the pages freed.
  absl::StatusOr<uint64_t> Exit(Pid pid);
  absl::StatusOr<ProcessInfo> GetProcess(Pid pid);
  std::vector<ProcessInfo> ListProcesses(bool show_exited);
  // A running process, or NOT_FOUND PROCESS_NOT_FOUND.
  absl::StatusOr<Process*> LiveProcess(Pid pid);
  // Any process still known (exited ones whose mm KSM holds included).
  Process* FindProcess(Pid pid);
  std::map<Pid, std::unique_ptr<Process>>& processes() { return processes_; }
  uint32_t LiveProcessCount() const;
  // Removes an exited process whose KSM slot is gone (mmdrop).
  void DropMm(Process* p);

  // --- Memory syscalls (mm.cc) ---------------------------------------------
  absl::StatusOr<MmapResult> Mmap(Pid pid, Vaddr addr, uint64_t length, uint32_t prot, bool shared,
                                  bool fixed);
  absl::StatusOr<Errno> Munmap(Pid pid, Vaddr addr, uint64_t length);
  absl::StatusOr<Errno> Mprotect(Pid pid, Vaddr addr, uint64_t length, uint32_t prot);
  absl::StatusOr<Errno> Madvise(Pid pid, Vaddr addr, uint64_t length, Advice advice);

  // --- Byte access (access.cc) ---------------------------------------------
  absl::StatusOr<AccessResult> Write(Pid pid, Vaddr addr, const uint8_t* data, uint64_t length);
  absl::StatusOr<AccessResult> Fill(Pid pid, Vaddr addr, uint64_t length,
                                    const FillPattern& pattern);
  absl::StatusOr<ReadResult> Read(Pid pid, Vaddr addr, uint64_t length);
  absl::StatusOr<DigestResult> Digest(Pid pid, Vaddr addr, uint64_t length);
  absl::StatusOr<AccessResult> Touch(Pid pid, Vaddr addr, uint64_t length);
  absl::StatusOr<PinResult> Pin(Pid pid, Vaddr addr, uint64_t length);
  absl::StatusOr<PinResult> Unpin(Pid pid, Vaddr addr, uint64_t length);
  absl::StatusOr<std::vector<Translation>> Translate(Pid pid, Vaddr addr, uint64_t pages);

  // --- VMAs and page tables, for the other components (mm.cc, fault.cc) ----
  Vma* FindVma(Process& p, Vaddr addr);
  void SplitVma(Process& p, Vaddr at);
  // vma_merge at the boundaries within [lo, hi]: adjacent vmas with equal
  // attributes and compatible anon_vmas (equal, or one without) become one.
  void MergeVmas(Process& p, Vaddr lo, Vaddr hi);
  // The pte at `addr`, or null.
  Pte* PteAt(Process& p, Vaddr addr);
  // Read fault at `vpn`: maps the zero page (private) or a shmem page.
  Errno ReadFault(Process& p, Vma& vma, uint64_t vpn);
  // Breaks COW of a KSM page at vpn (break_ksm's write fault): the address
  // gets a private copy. kENOMEM when no page can be allocated.
  Errno BreakKsmPage(Process& p, Vma& vma, uint64_t vpn);
  // Points the pte at `vpn` to `pfn` (same mapping, another frame).
  void RetargetPte(Process& p, uint64_t vpn, Pfn pfn);
  // Shared anonymous objects (migration's reverse map walks their pages).
  absl::btree_map<ShmObject*, std::unique_ptr<ShmObject>>& shm_objects() { return shm_objects_; }

  // --- Self-check, digest, snapshots (mm.cc) --------------------------------
  // Fills the mappings and pins per frame the page tables hold, and appends
  // broken address-space invariants.
  void Check(absl::btree_map<Pfn, int32_t>* maps, absl::btree_map<Pfn, int32_t>* pins,
             std::vector<std::string>* out);
  void AddToDigest(Digester& d) const;
  Pid next_pid() const { return next_pid_; }
  uint64_t next_anon_vma() const { return next_anon_vma_; }
  void set_next_pid(Pid p) { next_pid_ = p; }
  // Shared objects and processes (snapshot format v1 order).
  absl::Status Save(SnapshotWriter& w);
  // Rebuilds shared objects and processes; *procs receives every process.
  bool Load(SnapshotReader& r, std::map<Pid, Process*>* procs, std::string* why);

 private:
  void ZapRange(Process& p, Vaddr start, Vaddr end);
  void UnmapRange(Process& p, Vaddr start, Vaddr end);
  void ReleaseShm(ShmObject* shm);
  // Checks that [addr, addr+len) is inside VMAs allowing `prot_needed`.
  Errno CheckAccess(Process& p, Vaddr addr, uint64_t len, uint32_t prot_needed, Vaddr* fault);
  // The write fault at page `vpn` and the store of `n` bytes at `off`.
  Errno WritePage(Process& p, Vma& vma, uint64_t vpn, uint32_t off, uint32_t n, const uint8_t* src);
  // Makes `content` (one reference owned by the caller) the page at `vpn`:
  // reuse, fresh page, COW copy or KSM COW break. kENOMEM when no page can
  // be allocated.
  Errno StorePage(Process& p, Vma& vma, uint64_t vpn, Content* content);
  Content* ContentAt(Process& p, uint64_t vpn);
  void MapPte(Process& p, uint64_t vpn, Pfn pfn, bool write);
  // Removes the pte at vpn, dropping the frame's mapping and reference.
  void UnmapPte(Process& p, uint64_t vpn);
  void ExitLocked(Process& p, uint64_t* freed);
  ProcessInfo DescribeProcess(const Process& p);
  // Allocates a page for a fault by the task/VMA policy (alloc_page_vma).
  Pfn AllocForFault(Process& p, Vma& vma, uint64_t vpn, PageState state, Content* content);

  PhysMem& mem_;
  EventSink& events_;
  MmKsmHooks& ksm_;
  std::map<Pid, std::unique_ptr<Process>> processes_;
  Pid next_pid_ = 1;
  uint64_t next_anon_vma_ = 1;  // anon_vma identities handed out
  absl::btree_map<ShmObject*, std::unique_ptr<ShmObject>> shm_objects_;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MM_MM_H_
