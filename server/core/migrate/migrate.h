// Page migration and NUMA policy syscalls: the migration core, mbind,
// set/get_mempolicy, migrate_pages(2) and move_pages(2).
// Linux analogue: mm/migrate.c (migrate_pages with the seed's `offlining`
// flag, unmap_and_move, do_move_page_to_node_array, do_pages_stat) and
// mm/mempolicy.c (do_mbind, check_range, do_migrate_pages) of 2.6.33.
//
// Whether a KSM page may move is the kernel profile's rule; a migrated KSM
// page's stable node follows it through MigrateKsmHooks (ksm_migrate_page).
//
// Thread safety: not thread-safe; used under the machine's lock.
#ifndef MEMNODE_SERVER_CORE_MIGRATE_MIGRATE_H_
#define MEMNODE_SERVER_CORE_MIGRATE_MIGRATE_H_

#include <functional>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "server/core/api.h"
#include "server/core/events.h"
#include "server/core/mem/phys_mem.h"
#include "server/core/mm/mm.h"

namespace memnode {

class KernelProfile;

// What migration calls in KSM.
class MigrateKsmHooks {
 public:
  virtual ~MigrateKsmHooks() = default;
  // ksm_migrate_page: the KSM page of `node` now lives at `new_kpfn`.
  virtual void KsmPageMigrated(StableNode* node, Pfn new_kpfn) = 0;
  // try_to_unmap_ksm's reach: the (process, vpn) pairs mapping the node's
  // KSM page that its rmap items lead to, through each item's mm and the
  // vmas sharing the item's anon_vma (forked children) at the item's address.
  virtual void KsmRmapWalk(const StableNode* node,
                           std::vector<std::pair<Process*, uint64_t>>* out) = 0;
};

class Migration {
 public:
  Migration(PhysMem& mem, Mm& mm, EventSink& events, MigrateKsmHooks& ksm,
            const KernelProfile& profile)
      : mem_(mem), mm_(mm), events_(events), ksm_(ksm), profile_(profile) {}
  Migration(const Migration&) = delete;
  Migration& operator=(const Migration&) = delete;

  // --- Syscalls -------------------------------------------------------------
  // set_mempolicy(2) of `pid`; returns the emulated errno.
  absl::StatusOr<Errno> SetMempolicy(Pid pid, MpolMode mode, uint64_t nodes);
  // get_mempolicy(2): task policy, or with `address` the VMA policy, or with
  // node_of_address the node of the page at `address` (read-faulted in like
  // get_user_pages, MPOL_F_NODE|MPOL_F_ADDR).
  absl::StatusOr<MempolicyResult> GetMempolicy(Pid pid, std::optional<Vaddr> address,
                                               bool node_of_address);
  // mbind(2) with MPOL_MF_STRICT, MOVE, MOVE_ALL.
  absl::StatusOr<Errno> Mbind(Pid pid, Vaddr addr, uint64_t length, MpolMode mode, uint64_t nodes,
                              uint32_t flags);
  // migrate_pages(2) called by `caller` on `target`.
  absl::StatusOr<MigratePagesResult> MigratePages(Pid caller, Pid target, uint64_t old_nodes,
                                                  uint64_t new_nodes);
  // move_pages(2) called by `caller` on `target`; empty `nodes` = query mode.
  absl::StatusOr<MovePagesResult> MovePages(Pid caller, Pid target,
                                            const std::vector<Vaddr>& addresses,
                                            const std::vector<int32_t>& nodes, uint32_t flags);

  // --- The migration core -----------------------------------------------------
  // Allocates the new page for `old_pfn` (kNoPfn: none).
  using PageAllocator = std::function<Pfn(Pfn old_pfn)>;
  struct Outcome {
    Errno err = Errno::kOk;  // kENOMEM: the call was aborted
    uint64_t failed = 0;     // pages not migrated (permanent failures + retries left)
  };
  // migrate_pages() of mm/migrate.c: up to 10 passes; -EAGAIN keeps a page
  // for the next pass (extra references: pins); -ENOMEM aborts the call;
  // other errors are permanent. `results`, when given, receives per pfn the
  // new page's node or -errno.
  Outcome MigrateList(std::vector<Pfn> pages, const PageAllocator& alloc, bool offlining,
                      MigrateReason reason, absl::flat_hash_map<Pfn, int32_t>* results);

  // Pages moved ever, and KSM pages among them (offline reports).
  uint64_t migrated_total() const { return migrated_total_; }
  uint64_t migrated_ksm() const { return migrated_ksm_; }
  void set_counters(uint64_t total, uint64_t ksm) {
    migrated_total_ = total;
    migrated_ksm_ = ksm;
  }

 private:
  // check_range of mm/mempolicy.c: queues misplaced pages of [start,end).
  // Returns kOk, kEFAULT (hole) or kEIO (STRICT without MOVE found one).
  Errno CheckRange(Process& p, Vaddr start, Vaddr end, uint64_t nodes, uint32_t flags,
                   std::vector<Pfn>* queue);
  // The target of migrate_pages/move_pages (0 = the caller): null with
  // ESRCH (no such live process) or EPERM (another uid, not privileged).
  Process* MigrationTarget(Process& caller, Pid target, Errno* err);
  void EmitMigrate(Pfn pfn, MigrateReason reason, int32_t result, bool ksm);
  // Whether the rmap walk of a KSM page reaches every one of `mappings`.
  bool KsmPageUnmappable(const PageFrame& f,
                         const std::vector<std::pair<Process*, uint64_t>>& mappings);

  PhysMem& mem_;
  Mm& mm_;
  EventSink& events_;
  MigrateKsmHooks& ksm_;
  const KernelProfile& profile_;
  uint64_t migrated_total_ = 0;
  uint64_t migrated_ksm_ = 0;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MIGRATE_MIGRATE_H_
