// Data structures of KSM: rmap items, stable nodes, mm slots, and the
// information structs the machine returns about them.
// Linux analogue: struct rmap_item, struct stable_node, struct mm_slot of
// mm/ksm.c at the seed commit (kernel-semantics 1.1-1.4).
// Thread safety: owned by one Machine, used under its lock.
#ifndef MEMNODE_SERVER_CORE_KSM_KSM_TYPES_H_
#define MEMNODE_SERVER_CORE_KSM_KSM_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "server/core/rbtree.h"
#include "server/core/types.h"

namespace memnode {

struct Process;
struct MmSlot;
struct StableNode;

// kernel-semantics 1.1 rule 4: an item is in exactly one of these states.
enum class RmapState : uint8_t { kNone, kUnstable, kStable };

// One (mm, address) at which ksmd found an anonymous page in a mergeable vma.
struct RmapItem {
  MmSlot* slot = nullptr;    // owning mm slot
  Vaddr address = 0;         // page aligned
  uint32_t oldchecksum = 0;  // checksum at the previous visit (0 = none)
  uint8_t seqnr = 0;         // low 8 bits of the pass at unstable insert
  RmapState state = RmapState::kNone;
  bool in_tree = false;  // linked in unstable_ (see Ksm::ResetUnstable)
  RbNode rb;             // unstable tree link, when in_tree
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
// recognisable (kernel-semantics 1.2 rule 7).
struct StableNode {
  RbNode rb;
  RmapItem* hlist = nullptr;  // first item of the list
  Pfn kpfn = kNoPfn;
  uint64_t id = 0;  // emulator id, for the API
};

// Registration of an mm with KSM (kernel-semantics 1.3).
struct MmSlot {
  MmSlot* prev = nullptr;  // circular list through the head sentinel
  MmSlot* next = nullptr;
  Process* mm = nullptr;                    // null only for the head sentinel
  absl::btree_map<Vaddr, RmapItem*> items;  // the rmap_list, address order
};

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

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_KSM_KSM_TYPES_H_
