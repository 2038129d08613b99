// The KSM engine: mm slots, rmap items, the stable tree keyed by content with
// nodes that name their page by kpfn, the unstable tree rebuilt every pass,
// checksums for volatility, the counters with their lazy update rules, run
// 0/1/2 and the knobs. The rules that differ between kernels come from the
// machine's KernelProfile (profile/profile.h); the rest of the machine is
// reached through KsmHost (ksm_host.h) and PhysMem only.
// Linux analogue: mm/ksm.c (2.6.33 at the seed commit "ksm: memory hotremove
// migration only"); docs/SEMANTICS.md (DS, SCAN, MERGE, CNT, ...) states every rule.
//
// Thread safety: not thread-safe. Owned by a machine and called only with the
// machine's lock held.
#ifndef MEMNODE_SERVER_CORE_KSM_KSM_H_
#define MEMNODE_SERVER_CORE_KSM_KSM_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "server/core/events.h"
#include "server/core/ksm/ksm_host.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/ksm/ksmd_cost.h"
#include "server/core/ksm/rbtree.h"
#include "server/core/mem/phys_mem.h"
#include "server/core/state_digest.h"
#include "server/core/types.h"

namespace memnode {

class KernelProfile;
class SnapshotReader;
class SnapshotWriter;
struct Process;

class Ksm {
 public:
  Ksm(KsmHost& host, PhysMem& mem, EventSink& events, const KernelProfile& profile);
  ~Ksm();
  Ksm(const Ksm&) = delete;
  Ksm& operator=(const Ksm&) = delete;

  // __ksm_enter: registers `mm` just behind the scan cursor.
  void Enter(Process& mm);
  // __ksm_exit: frees an easy slot now, else moves it right after the cursor
  // for ksmd to reap. Called before the mm is torn down.
  void Exit(Process& mm);

  // ksm_do_scan: up to `visits` visits; stops at the end of a pass.
  // Returns the visits made (a pass end shows as a grown full_scans).
  uint64_t DoScan(uint64_t visits);
  // Visits across pass boundaries until `visits` are done, or a pass ends
  // without a single visit, or no mm is registered.
  KsmStepResult StepVisits(uint64_t visits);
  // Scans until `passes` passes complete (or max_visits, or nothing to scan).
  KsmStepResult StepPasses(uint64_t passes, uint64_t max_visits);

  // Knob stores (the profile's sysfs table parses and validates first).
  // WriteRun returns the emulated errno; nothing changes on error except as
  // the kernel does (run=2 failure leaves run 0).
  Errno WriteRun(uint64_t value);
  void set_pages_to_scan(uint32_t v) { pages_to_scan_ = v; }
  void set_sleep_millisecs(uint32_t v) { sleep_millisecs_ = v; }
  uint32_t run() const { return run_; }
  // Tests compare runs with and without the unstable-tree lookup cache.
  void set_use_lookup_cache(bool on) { use_lookup_cache_ = on; }
  uint32_t pages_to_scan() const { return pages_to_scan_; }
  uint32_t sleep_millisecs() const { return sleep_millisecs_; }
  bool HasSlots() const { return head_.next != &head_; }

  // ksm_thread_mutex as taken by KSM's memory notifier: while locked, ksmd
  // makes no progress and run writes wait. Unlock only if held.
  void Lock() { locked_ = true; }
  void Unlock() { locked_ = false; }
  bool locked() const { return locked_; }
  // The rmap items listed on a stable node: (mm, address, anon_vma) of each,
  // newest first (what try_to_unmap_ksm / rmap_walk_ksm walk).
  void ForEachRmapItem(const StableNode* node,
                       const std::function<void(Process& mm, Vaddr addr, uint64_t anon_vma)>& fn);
  // ksm_migrate_page: the node's KSM page moved to `new_kpfn`.
  void MigratedNode(StableNode* node, Pfn new_kpfn);
  // MEM_OFFLINE: prunes every node whose kpfn lies in
  // [start, end), in the order the seed's rescan from the tree's first node
  // finds them, in time proportional to the nodes pruned (kpfn index).
  uint64_t PruneRange(Pfn start, Pfn end);
  // The seed's algorithm verbatim in effect (rescan from the first node for
  // each prune): quadratic; kept as the reference for tests and benchmarks.
  uint64_t PruneRangeByRescan(Pfn start, Pfn end);

  KsmInfo Info() const;
  std::vector<StableNodeInfo> StableNodes();
  std::vector<RmapItemInfo> UnstableItems();
  std::vector<RmapItemInfo> RmapItems(const Process& mm);

  // Snapshot support (snapshot.cc): slots refer to processes by pid.
  void Save(SnapshotWriter& w) const;
  // Rebuilds the KSM state into this (fresh) object; *by_id receives every
  // stable node by id so frames can point back at theirs. False on bad input.
  bool Load(SnapshotReader& r, const std::map<Pid, Process*>& procs,
            std::map<uint64_t, StableNode*>* by_id);

  // Appends broken invariants to *out.
  void Check(std::vector<std::string>* out);
  void AddToDigest(Digester& d) const;

 private:
  // Scanner.
  RmapItem* ScanNext(Pfn* page);
  RmapItem* NextRmapItem(MmSlot* slot, Vaddr addr);
  void RemoveItemsBelow(MmSlot* slot, Vaddr from, Vaddr to);
  void UnregisterSlot(MmSlot* slot);
  void FreeItem(RmapItem* item);
  // Visit.
  void CmpAndMergePage(Pfn page, RmapItem* item);
  void RemoveFromTree(RmapItem* item);
  // Forgets the unstable tree at the start of a pass (the kernel's
  // "root = RB_ROOT"), clearing the members' in_tree marks.
  void ResetUnstable();
  // get_ksm_page: the KSM page of a node, or kNoPfn after pruning it.
  Pfn GetKsmPage(StableNode* node);
  bool NodeValid(const StableNode* node) const;
  void RemoveNode(StableNode* node, PruneReason reason);
  Pfn StableTreeSearch(Pfn page);
  StableNode* StableTreeInsert(Pfn kpage);
  RmapItem* UnstableTreeSearchInsert(RmapItem* item, Pfn page, Pfn* tree_page);
  void StableTreeAppend(RmapItem* item, StableNode* node, bool new_node);
  Pfn GetMergeablePage(RmapItem* item);
  bool TryMergeWithKsmPage(RmapItem* item, Pfn page, Pfn kpage);
  bool TryMergeOnePage(Process& mm, Vaddr addr, Pfn page, Pfn kpage);
  Pfn TryMergeTwoPages(RmapItem* item, Pfn page, RmapItem* tree_item, Pfn tree_page);
  void BreakCow(RmapItem* item);
  // run=2.
  Errno UnmergeAll();
  RmapItemInfo DescribeItem(const RmapItem* item);

  KsmHost& host_;
  PhysMem& mem_;
  EventSink& events_;
  const KernelProfile& profile_;
  // mm list: circular, through head_ (ksm_mm_head).
  MmSlot head_;
  // Cursor.
  MmSlot* cur_slot_;
  Vaddr cur_address_ = 0;
  Vaddr rmap_floor_ = 0;  // items below this address were handled this pass
  uint64_t seqnr_ = 0;    // full_scans
  RbTree stable_;
  RbTree unstable_;
  // Counters.
  uint64_t pages_shared_ = 0;
  uint64_t pages_sharing_ = 0;
  uint64_t pages_unshared_ = 0;
  uint64_t rmap_items_ = 0;
  uint64_t stable_nodes_ = 0;
  uint64_t mm_slots_ = 0;
  uint64_t visits_total_ = 0;
  uint64_t ksmd_cpu_ns_ = 0;                    // modelled (ksmd_cost.h)
  VisitKind visit_kind_ = VisitKind::kRevisit;  // of the visit in progress
  // Knobs.
  uint32_t run_ = 0;
  uint32_t pages_to_scan_ = 100;
  uint32_t sleep_millisecs_ = 20;
  uint64_t next_node_id_ = 1;
  bool unmerging_ = false;                          // prunes during run=2 are reported as kUnmerge
  bool locked_ = false;                             // an offline holds ksm_thread_mutex
  bool use_lookup_cache_ = true;                    // see GetMergeablePage
  absl::btree_multimap<Pfn, StableNode*> by_kpfn_;  // every node, by kpfn
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_KSM_KSM_H_
