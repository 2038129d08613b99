// Data structures of KSM: rmap items, stable nodes, mm slots.
// Linux analogue: struct rmap_item, struct stable_node, struct mm_slot of
// mm/ksm.c at the seed commit (docs/SEMANTICS.md, KSM data structures).
// Thread safety: owned by one Machine, used under its lock.
#ifndef MEMNODE_SERVER_CORE_KSM_KSM_TYPES_H_
#define MEMNODE_SERVER_CORE_KSM_KSM_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "server/core/api.h"
#include "server/core/ksm/rbtree.h"
#include "server/core/types.h"

namespace memnode {

struct Process;
struct MmSlot;
struct StableNode;

// One (mm, address) at which ksmd found an anonymous page in a mergeable vma.
struct RmapItem {
  MmSlot* slot = nullptr;    // owning mm slot
  Vaddr address = 0;         // page aligned
  uint32_t oldchecksum = 0;  // checksum at the previous visit (0 = none)
  uint8_t seqnr = 0;         // low 8 bits of the pass at unstable insert
  RmapState state = RmapState::kNone;
  bool in_tree = false;  // linked in unstable_ (see Ksm::ResetUnstable)
  RbNode rb;             // unstable tree link, when in_tree
  // The anon_vma of the mapping, recorded when the item joined a stable node
  // (try_to_merge_with_ksm_page): KSM's reverse map reaches the mapping, and
  // the forked mappings sharing that anon_vma, through it.
  uint64_t anon_vma = 0;
  // Stable state: the node and the node's list (hlist: newest first).
  StableNode* head = nullptr;
  RmapItem* hnext = nullptr;
  RmapItem** hpprev = nullptr;
  // get_mergeable_page's last answer for this item, valid while the mm's
  // `gen` equals cache_gen (an emulator cache: same results, fewer lookups).
  uint64_t cache_gen = ~uint64_t{0};
  Pfn cache_pfn = kNoPfn;
};

// A node of the stable tree. Identifies its KSM page by pfn only (the seed's
// kpfn): the frame may vanish with its block, the node must still be
// recognisable.
struct StableNode {
  RbNode rb;
  RmapItem* hlist = nullptr;  // first item of the list
  Pfn kpfn = kNoPfn;
  uint64_t id = 0;  // emulator id, for the API
};

// Registration of an mm with KSM.
struct MmSlot {
  MmSlot* prev = nullptr;  // circular list through the head sentinel
  MmSlot* next = nullptr;
  Process* mm = nullptr;                    // null only for the head sentinel
  absl::btree_map<Vaddr, RmapItem*> items;  // the rmap_list, address order
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_KSM_KSM_TYPES_H_
