#include "server/core/migrate/mempolicy.h"

namespace memnode {
namespace {

int Weight(uint64_t mask) { return __builtin_popcountll(mask); }

}  // namespace

int NthNode(uint64_t mask, uint64_t n) {
  for (int i = 0; i < 64; ++i)
    if (mask >> i & 1) {
      if (n == 0) return i;
      --n;
    }
  return -1;
}

std::vector<NodeId> PolicyOrder(const PhysMem& mem, const Process& p, const Vma* vma,
                                uint64_t vpn) {
  const MemPolicy& pol = vma && vma->has_policy ? vma->policy : p.policy;
  switch (pol.mode) {
    case MpolMode::kDefault: return mem.FallbackOrder(p.home_node);
    case MpolMode::kPreferred:
      return mem.FallbackOrder(pol.nodes ? NthNode(pol.nodes, 0) : p.home_node);
    case MpolMode::kBind: {
      // The local zonelist filtered by the mask: no fallback outside it.
      std::vector<NodeId> order;
      for (NodeId n : mem.FallbackOrder(p.home_node))
        if (pol.nodes >> n & 1) order.push_back(n);
      return order;
    }
    case MpolMode::kInterleave: {
      // interleave_nid: the page offset in the vma (anonymous: vm_pgoff is
      // vm_start >> PAGE_SHIFT) modulo the mask's weight.
      int w = Weight(pol.nodes);
      return mem.FallbackOrder(NthNode(pol.nodes, w ? vpn % w : 0));
    }
  }
  return mem.FallbackOrder(p.home_node);
}

Errno ValidatePolicy(const PhysMem& mem, MpolMode mode, uint64_t nodes, MemPolicy* out) {
  if (mode < MpolMode::kDefault || mode > MpolMode::kInterleave) return Errno::kEINVAL;
  // Bits of nodes that do not exist are dropped with the memoryless ones
  // (mpol_set_nodemask intersects with N_HIGH_MEMORY); an empty result fails
  // for BIND and INTERLEAVE below.
  MemPolicy pol;
  pol.mode = mode;
  if (mode == MpolMode::kDefault) {
    if (nodes) return Errno::kEINVAL;
  } else if (nodes == 0) {
    if (mode != MpolMode::kPreferred) return Errno::kEINVAL;  // preferred: local
  } else {
    // mpol_set_nodemask: a non-empty mask is intersected with the nodes that
    // have memory; mpol_new_preferred refuses an empty result like the
    // others (only an empty user mask means "local").
    uint64_t usable = nodes & mem.MemoryNodes();
    if (usable == 0) return Errno::kEINVAL;
    pol.nodes = mode == MpolMode::kPreferred && usable ? uint64_t{1} << NthNode(usable, 0) : usable;
  }
  *out = pol;
  return Errno::kOk;
}

}  // namespace memnode
