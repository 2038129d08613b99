// NUMA memory policies: validation and the node order an allocation under a
// policy tries.
// Linux analogue: mm/mempolicy.c (mpol_new, mpol_set_nodemask,
// policy_zonelist, interleave_nid) of 2.6.33.
// Thread safety: stateless functions; callers hold the machine's lock.
#ifndef MEMNODE_SERVER_CORE_MIGRATE_MEMPOLICY_H_
#define MEMNODE_SERVER_CORE_MIGRATE_MEMPOLICY_H_

#include <cstdint>
#include <vector>

#include "server/core/mem/phys_mem.h"
#include "server/core/mm/process.h"
#include "server/core/types.h"

namespace memnode {

// The zonelist order of the task or VMA policy for a page of `vma` at `vpn`.
std::vector<NodeId> PolicyOrder(const PhysMem& mem, const Process& p, const Vma* vma, uint64_t vpn);

// mpol_new + mpol_set_nodemask: the policy `mode`/`nodes` would install, or
// EINVAL. Node bits without memory (nonexistent nodes included) are dropped.
Errno ValidatePolicy(const PhysMem& mem, MpolMode mode, uint64_t nodes, MemPolicy* out);

// The n-th set bit of `mask` (n from 0), or -1.
int NthNode(uint64_t mask, uint64_t n);

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MIGRATE_MEMPOLICY_H_
