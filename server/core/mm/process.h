// Processes and their address spaces: VMAs, page tables, shared anonymous
// objects, pins.
// Linux analogue: task_struct + mm_struct, vm_area_struct, the page tables
// (a pte is a pfn and its write bit), the shmem object behind
// MAP_SHARED|MAP_ANONYMOUS.
// Thread safety: plain data, used under the machine's lock.
#ifndef MEMNODE_SERVER_CORE_MM_PROCESS_H_
#define MEMNODE_SERVER_CORE_MM_PROCESS_H_

#include <cstdint>
#include <map>

#include "absl/container/btree_map.h"
#include "server/core/types.h"

namespace memnode {

struct MmSlot;

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
  // The vma's anon_vma (0 = none yet): set by the first write fault, shared
  // with the vmas of children forked while it existed (2.6.33's fork links a
  // child vma into its parent's anon_vma), kept by splits. KSM's reverse map
  // reaches the forked mappings of a KSM page through it.
  uint64_t anon_vma = 0;
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

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MM_PROCESS_H_
