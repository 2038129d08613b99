// Emulates KSM of Linux 2.6.33 (mm/ksm.c at the seed commit "ksm: memory
// hotremove migration only", without max_kernel_pages): mm slots, rmap items,
// the stable tree keyed by content with nodes that name their page by kpfn,
// the unstable tree rebuilt every pass, checksums for volatility, the five
// counters with their lazy update rules, run 0/1/2 and the knobs.
// Reference: shared/kernel-semantics.md sections 1-5 and 9.
//
// Thread safety: not thread-safe. Owned by a Machine and called only with the
// machine's mutex held (every method REQUIRES Machine::mu_).
#ifndef MEMNODE_SERVER_CORE_KSM_KSM_H_
#define MEMNODE_SERVER_CORE_KSM_KSM_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/rbtree.h"
#include "server/core/types.h"

namespace memnode {

class Machine;
struct Process;
struct Vma;
enum class PruneReason;

class Ksm {
 public:
  explicit Ksm(Machine& machine);
  ~Ksm();
  Ksm(const Ksm&) = delete;
  Ksm& operator=(const Ksm&) = delete;

  // __ksm_enter: registers `mm` just behind the scan cursor (1.3 rule 11).
  void Enter(Process& mm);
  // __ksm_exit: frees an easy slot now, else moves it right after the cursor
  // for ksmd to reap (5.2 rule 6). Called before the mm is torn down.
  void Exit(Process& mm);

  // ksm_do_scan: up to `visits` visits; stops at the end of a pass.
  // Returns the visits made (a pass end shows as a grown full_scans).
  uint64_t DoScan(uint64_t visits);
  // Visits across pass boundaries until `visits` are done, or a pass ends
  // without a single visit, or no mm is registered.
  KsmStepResult StepVisits(uint64_t visits);
  // Scans until `passes` passes complete (or max_visits, or nothing to scan).
  KsmStepResult StepPasses(uint64_t passes, uint64_t max_visits);

  // Knob writes (9.1). Return the emulated errno; nothing changes on error
  // except as the kernel does (run=2 failure leaves run 0).
  Errno WriteRun(uint64_t value);
  static bool ValidKnob(uint64_t value) { return value <= 0xffffffffULL; }
  void set_pages_to_scan(uint32_t v) { pages_to_scan_ = v; }
  void set_sleep_millisecs(uint32_t v) { sleep_millisecs_ = v; }
  uint32_t run() const { return run_; }
  // Tests compare runs with and without the unstable-tree lookup cache.
  void set_use_lookup_cache(bool on) { use_lookup_cache_ = on; }
  uint32_t pages_to_scan() const { return pages_to_scan_; }
  uint32_t sleep_millisecs() const { return sleep_millisecs_; }
  bool HasSlots() const { return head_.next != &head_; }

  // ksm_thread_mutex as taken by KSM's memory notifier (7.3): while locked,
  // ksmd makes no progress and run writes wait. Unlock only if held (7.3 r19).
  void Lock() { locked_ = true; }
  void Unlock() { locked_ = false; }
  bool locked() const { return locked_; }
  // ksm_migrate_page: the node's KSM page moved to `new_kpfn`.
  void MigratedNode(StableNode* node, Pfn new_kpfn);
  // MEM_OFFLINE (7.3 rule 16): prunes every node whose kpfn lies in
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
  void Save(class SnapshotWriter& w) const;
  // Rebuilds the KSM state into this (fresh) object; *by_id receives every
  // stable node by id so frames can point back at theirs. False on bad input.
  bool Load(class SnapshotReader& r, const std::map<Pid, Process*>& procs,
            std::map<uint64_t, StableNode*>* by_id);

  // Appends broken invariants to *out.
  void Check(std::vector<std::string>* out);
  void AddToDigest(const std::function<void(uint64_t)>& add) const;

 private:
  // Scanner (2.2).
  RmapItem* ScanNext(Pfn* page);
  RmapItem* NextRmapItem(MmSlot* slot, Vaddr addr);
  void RemoveItemsBelow(MmSlot* slot, Vaddr from, Vaddr to);
  void UnregisterSlot(MmSlot* slot);
  void FreeItem(RmapItem* item);
  // Visit (2.3).
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
  bool TryMergeOnePage(Process& mm, Vma& vma, Vaddr addr, Pfn page, Pfn kpage);
  Pfn TryMergeTwoPages(RmapItem* item, Pfn page, RmapItem* tree_item, Pfn tree_page);
  void BreakCow(RmapItem* item);
  // run=2 (4.3 rule 15).
  Errno UnmergeAll();
  RmapItemInfo DescribeItem(const RmapItem* item);

  Machine& m_;
  // mm list: circular, through head_ (ksm_mm_head).
  MmSlot head_;
  // Cursor (1.4).
  MmSlot* cur_slot_;
  Vaddr cur_address_ = 0;
  Vaddr rmap_floor_ = 0;  // items below this address were handled this pass
  uint64_t seqnr_ = 0;    // full_scans
  RbTree stable_;
  RbTree unstable_;
  // Counters (3).
  uint64_t pages_shared_ = 0;
  uint64_t pages_sharing_ = 0;
  uint64_t pages_unshared_ = 0;
  uint64_t rmap_items_ = 0;
  uint64_t stable_nodes_ = 0;
  uint64_t mm_slots_ = 0;
  uint64_t visits_total_ = 0;
  // Knobs (9.1).
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
