// Overview: NUMA memory policy, allocation by policy, the migration core with
// the seed's `offlining` flag, and the three migration syscalls, with the
// outcomes of Linux at the seed (kernel-semantics section 6).
//
//   1. migrate_pages() core (6.1): up to 10 passes over the list; -EAGAIN
//      keeps a page for the next pass (extra references: pins); -ENOMEM aborts
//      the call; other errors are permanent. A KSM page fails with -EBUSY
//      unless offlining (the seed's rule); a migrated KSM page takes its
//      stable node with it (kpfn = new pfn), every sharer keeps sharing.
//   2. mbind / migrate_pages(2) walk page tables (check_range) skipping
//      reserved and KSM pages before any node test (6.3 rule 11, 6.4 rule 15);
//      move_pages reports a KSM page as -ENOENT in both modes (6.2).
//   3. Contents and every mapping (ptes of all processes, shared objects)
//      follow a migrated page; refcounts and mapcounts move with it.
// The reverse map is built per call by scanning the page tables: memnode
// keeps no per-frame rmap, so a frame stays at 32 bytes.
#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/core/ksm/ksm.h"
#include "server/core/machine.h"
#include "server/core/status.h"

namespace memnode {

const char* MigrateReasonName(MigrateReason r) {
  switch (r) {
    case MigrateReason::kOffline: return "offline";
    case MigrateReason::kMbind: return "mbind";
    case MigrateReason::kMigratePages: return "migrate_pages";
    case MigrateReason::kMovePages: return "move_pages";
  }
  return "?";
}

namespace {

constexpr uint32_t kMfStrict = 1, kMfMove = 2, kMfMoveAll = 4;
constexpr int kEnomem = 12, kEagain = 11, kEbusy = 16, kEfault = 14, kEio = 5, kEnoent = 2,
              kEacces = 13;

int NthNode(uint64_t mask, uint64_t n) {
  for (int i = 0; i < 64; ++i)
    if (mask >> i & 1) {
      if (n == 0) return i;
      --n;
    }
  return -1;
}

int Weight(uint64_t mask) { return __builtin_popcountll(mask); }

}  // namespace

// ---------------------------------------------------------------------------
// Allocation

bool Machine::NodeHasMemory(NodeId n) {
  for (const MemoryBlock& b : blocks_)
    if (b.node == n && b.state == BlockState::kOnline) return true;
  return false;
}

uint64_t Machine::MemoryNodes() {
  uint64_t m = 0;
  for (const MemoryBlock& b : blocks_)
    if (b.state == BlockState::kOnline) m |= uint64_t{1} << b.node;
  return m;
}

std::vector<NodeId> Machine::FallbackOrder(NodeId first) {
  std::vector<NodeId> order{first};
  for (NodeId n = 0; n < config_.nodes; ++n)
    if (n != first) order.push_back(n);
  return order;
}

Pfn Machine::AllocFromOrder(const std::vector<NodeId>& order, PageState state, Content* content) {
  for (NodeId n : order) {
    if (n >= free_blocks_.size() || free_blocks_[n].empty()) continue;
    Pfn pfn = AllocOnNode(n);
    PageFrame& f = Frame(pfn);
    MEMNODE_CHECK(f.state == PageState::kFree && f.refcount == 0, "allocated a busy frame");
    SetState(pfn, f, state);
    f.content = content;
    contents_.Ref(content);
    f.refcount = f.mapcount = f.pins = 0;
    f.ksm_node = nullptr;
    f.shm_owned = false;
    f.unmovable = false;
    return pfn;
  }
  return kNoPfn;
}

std::vector<NodeId> Machine::PolicyOrder(const Process& p, const Vma* vma, uint64_t vpn) {
  const MemPolicy& pol = vma && vma->has_policy ? vma->policy : p.policy;
  switch (pol.mode) {
    case MemPolicy::kDefault: return FallbackOrder(p.home_node);
    case MemPolicy::kPreferred:
      return FallbackOrder(pol.nodes ? NthNode(pol.nodes, 0) : p.home_node);
    case MemPolicy::kBind: {
      // The local zonelist filtered by the mask: no fallback outside it.
      std::vector<NodeId> order;
      for (NodeId n : FallbackOrder(p.home_node))
        if (pol.nodes >> n & 1) order.push_back(n);
      return order;
    }
    case MemPolicy::kInterleave: {
      // interleave_nid: the page offset in the vma (anonymous: vm_pgoff is
      // vm_start >> PAGE_SHIFT) modulo the mask's weight.
      int w = Weight(pol.nodes);
      return FallbackOrder(NthNode(pol.nodes, w ? vpn % w : 0));
    }
  }
  return FallbackOrder(p.home_node);
}

Pfn Machine::AllocForFault(Process& p, Vma& vma, uint64_t vpn, PageState state, Content* content) {
  return AllocFromOrder(PolicyOrder(p, &vma, vpn), state, content);
}

// ---------------------------------------------------------------------------
// The migration core

int64_t Machine::MigrateList(std::vector<Pfn> pages, const PageAllocator& alloc, bool offlining,
                             MigrateReason reason, absl::flat_hash_map<Pfn, int32_t>* results) {
  // Reverse map of the listed pages: ptes and shared-object slots.
  absl::flat_hash_set<Pfn> wanted(pages.begin(), pages.end());
  absl::flat_hash_map<Pfn, std::vector<std::pair<Process*, uint64_t>>> ptes;
  absl::flat_hash_map<Pfn, std::pair<ShmObject*, uint64_t>> shm;
  for (auto& [pid, p] : processes_)
    for (auto& [vpn, pte] : p->ptes)
      if (wanted.count(pte.pfn)) ptes[pte.pfn].emplace_back(p.get(), vpn);
  for (auto& [obj, owned] : shm_objects_)
    for (auto& [off, pfn] : obj->pages)
      if (wanted.count(pfn)) shm[pfn] = {obj, off};

  auto emit = [&](Pfn pfn, int32_t result, bool ksm) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Event e{EventKind::kMigrate};
    e.pfn = pfn;
    e.migrate_reason = reason;
    e.result = result;
    e.ksm = ksm;
    Emit(e);
  };
  // unmap_and_move: 0, -EAGAIN, -ENOMEM or a permanent -errno.
  auto unmap_and_move = [&](Pfn pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> int {
    Pfn newpfn = alloc(pfn);
    if (newpfn == kNoPfn) return -kEnomem;
    PageFrame& f = Frame(pfn);
    PageFrame& nf = Frame(newpfn);
    const bool ksm = f.state == PageState::kKsm;
    int rc;
    if (f.state == PageState::kFree || f.refcount == 0) {
      rc = 0;  // freed under us: done (the new page goes back)
      FreePage(newpfn);
      if (results) (*results)[pfn] = static_cast<int32_t>(BlockOf(newpfn).node);
      emit(pfn, 0, false);
      return rc;
    }
    if (ksm && !offlining) {
      rc = -kEbusy;  // the seed: KSM pages move only for hot-remove
    } else if (f.pins > 0) {
      rc = -kEagain;  // extra references: the page cannot be frozen
    } else {
      rc = 0;
    }
    if (rc != 0) {
      FreePage(newpfn);
      if (results) (*results)[pfn] = rc;
      emit(pfn, rc, ksm);
      return rc;
    }
    // Move: contents, state, KSM identity, mappings.
    SetContent(nf, f.content);
    f.content = nullptr;
    SetState(newpfn, nf, f.state);
    nf.ksm_node = f.ksm_node;
    nf.shm_owned = f.shm_owned;
    nf.mapcount = f.mapcount;
    nf.refcount = f.refcount;
    if (ksm && f.ksm_node) ksm_->MigratedNode(f.ksm_node, newpfn);  // ksm_migrate_page
    auto pi = ptes.find(pfn);
    if (pi != ptes.end())
      for (auto& [proc, vpn] : pi->second) {
        proc->ptes[vpn].pfn = newpfn;
        proc->gen++;
      }
    auto si = shm.find(pfn);
    if (si != shm.end()) si->second.first->pages[si->second.second] = newpfn;
    f.mapcount = 0;
    f.refcount = 0;
    f.ksm_node = nullptr;
    f.shm_owned = false;
    FreePage(pfn);
    if (results) (*results)[pfn] = static_cast<int32_t>(BlockOf(newpfn).node);
    migrated_total_++;
    if (ksm) migrated_ksm_++;
    emit(pfn, 0, ksm);
    return 0;
  };

  int64_t nr_failed = 0;
  for (int pass = 0; pass < 10 && !pages.empty(); ++pass) {
    std::vector<Pfn> retry;
    for (Pfn pfn : pages) {
      int rc = unmap_and_move(pfn);
      if (rc == -kEnomem) return -kEnomem;
      if (rc == -kEagain)
        retry.push_back(pfn);
      else if (rc != 0)
        nr_failed++;
    }
    pages.swap(retry);
  }
  return nr_failed + static_cast<int64_t>(pages.size());
}

// ---------------------------------------------------------------------------
// Policies

Errno Machine::ValidatePolicy(MemPolicy::Mode mode, uint64_t nodes, MemPolicy* out) {
  if (mode < MemPolicy::kDefault || mode > MemPolicy::kInterleave) return Errno::kEINVAL;
  // Bits of nodes that do not exist are dropped with the memoryless ones
  // (mpol_set_nodemask intersects with N_HIGH_MEMORY); an empty result fails
  // for BIND and INTERLEAVE below.
  MemPolicy pol;
  pol.mode = mode;
  if (mode == MemPolicy::kDefault) {
    if (nodes) return Errno::kEINVAL;
  } else if (nodes == 0) {
    if (mode != MemPolicy::kPreferred) return Errno::kEINVAL;  // preferred: local
  } else {
    uint64_t usable = nodes & MemoryNodes();
    if (usable == 0 && mode != MemPolicy::kPreferred) return Errno::kEINVAL;
    pol.nodes =
        mode == MemPolicy::kPreferred && usable ? uint64_t{1} << NthNode(usable, 0) : usable;
  }
  *out = pol;
  return Errno::kOk;
}

absl::StatusOr<Errno> Machine::SetMempolicy(Pid pid, MemPolicy::Mode mode, uint64_t nodes) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  MemPolicy pol;
  Errno e = ValidatePolicy(mode, nodes, &pol);
  if (e == Errno::kOk) p->policy = pol;
  return e;
}

absl::StatusOr<Machine::MempolicyResult> Machine::GetMempolicy(Pid pid,
                                                               std::optional<Vaddr> address,
                                                               bool node_of_address) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  MempolicyResult r;
  if (!address) {
    if (node_of_address) {
      r.err = Errno::kEINVAL;
      return r;
    }
    r.policy = p->policy;
    return r;
  }
  Vma* v = FindVma(*p, *address);
  if (!v) {
    r.err = Errno::kEFAULT;
    return r;
  }
  r.policy = v->has_policy ? v->policy : p->policy;
  if (node_of_address) {
    // lookup_node: get_user_pages for read, which read-faults the page in.
    uint64_t vpn = *address >> kPageShift;
    if (v->prot == 0) {
      r.err = Errno::kEFAULT;
      return r;
    }
    Errno e = ReadFault(*p, *v, vpn);
    if (e != Errno::kOk) {
      r.err = e;
      return r;
    }
    r.node = static_cast<int32_t>(BlockOf(p->ptes[vpn].pfn).node);
  }
  return r;
}

int Machine::CheckRange(Process& p, Vaddr start, Vaddr end, uint64_t nodes, uint32_t flags,
                        std::vector<Pfn>* queue) {
  constexpr uint32_t kInvert = 1u << 30, kDiscontigOk = 1u << 29;
  auto it = p.vmas.upper_bound(start);
  if (it != p.vmas.begin() && std::prev(it)->second.end > start) --it;
  if (it == p.vmas.end()) return -kEfault;
  const Vma* prev = nullptr;
  for (; it != p.vmas.end() && it->second.start < end; ++it) {
    Vma& v = it->second;
    if (!(flags & kDiscontigOk)) {
      if (std::next(it) == p.vmas.end() && v.end < end) return -kEfault;
      if (prev && prev->end < v.start) return -kEfault;
    }
    if ((flags & kMfStrict) || (flags & (kMfMove | kMfMoveAll))) {  // anon vmas are migratable
      Vaddr s = std::max(start, v.start), e = std::min(end, v.end);
      auto pt = p.ptes.lower_bound(s >> kPageShift);
      for (; pt != p.ptes.end() && pt->first < (e >> kPageShift); ++pt) {
        Pfn pfn = pt->second.pfn;
        if (pfn == zero_pfn_) continue;  // vm_normal_page: no page
        PageFrame& f = Frame(pfn);
        // The seed: reserved and KSM pages are skipped before the node test.
        if (f.state == PageState::kReserved || f.state == PageState::kZero ||
            f.state == PageState::kKsm)
          continue;
        bool on_allowed = nodes >> BlockOf(pfn).node & 1;
        if (on_allowed == ((flags & kInvert) != 0)) continue;
        if (flags & (kMfMove | kMfMoveAll)) {
          if ((flags & kMfMoveAll) || f.mapcount == 1)
            if (std::find(queue->begin(), queue->end(), pfn) == queue->end()) queue->push_back(pfn);
        } else {
          return -kEio;  // STRICT check-only: a misplaced page
        }
      }
    }
    prev = &v;
  }
  return 0;
}

absl::StatusOr<Errno> Machine::Mbind(Pid pid, Vaddr addr, uint64_t length, MemPolicy::Mode mode,
                                     uint64_t nodes, uint32_t flags) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  // 6.3 rule 10: validation.
  if (flags & ~(kMfStrict | kMfMove | kMfMoveAll)) return Errno::kEINVAL;
  if ((flags & kMfMoveAll) && !p->privileged) return Errno::kEPERM;
  if (!PageAligned(addr)) return Errno::kEINVAL;
  uint64_t len = (length + kPageSize - 1) & kPageMask;
  Vaddr end = addr + len;
  if (end < addr) return Errno::kEINVAL;
  if (end == addr) return Errno::kOk;
  MemPolicy pol;
  Errno e = ValidatePolicy(mode, nodes, &pol);
  if (e != Errno::kOk) return e;
  if (mode == MemPolicy::kDefault) flags &= ~kMfStrict;
  constexpr uint32_t kInvert = 1u << 30, kDiscontigOk = 1u << 29;
  uint32_t walk = flags | kInvert | (mode == MemPolicy::kDefault ? kDiscontigOk : 0);
  std::vector<Pfn> queue;
  int rc = CheckRange(*p, addr, end, nodes, walk, &queue);
  if (rc < 0) return static_cast<Errno>(-rc);
  // mbind_range: the range must start inside a vma; split and set the policy.
  Errno applied = Errno::kOk;
  Vma* first = FindVma(*p, addr);
  if (!first) {
    applied = Errno::kEFAULT;
  } else {
    SplitVma(*p, addr);
    SplitVma(*p, end);
    for (auto it = p->vmas.lower_bound(addr); it != p->vmas.end() && it->first < end; ++it) {
      it->second.has_policy = mode != MemPolicy::kDefault;
      it->second.policy = pol;
    }
  }
  int64_t nr_failed = 0;
  if (!queue.empty()) {
    // new_vma_page: allocate by the (new) policy of the page's vma.
    absl::flat_hash_map<Pfn, uint64_t> where;
    for (auto& [vpn, pte] : p->ptes) where.emplace(pte.pfn, vpn);
    Process* proc = p;
    nr_failed = MigrateList(
        queue,
        [this, proc, &where](Pfn old) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          uint64_t vpn = where[old];
          return AllocFromOrder(PolicyOrder(*proc, FindVma(*proc, vpn << kPageShift), vpn),
                                PageState::kFree, contents_.zero());
        },
        false, MigrateReason::kMbind, nullptr);
  }
  MergeVmas(*p);
  if (applied == Errno::kOk && nr_failed != 0 && (flags & kMfStrict)) return Errno::kEIO;
  return applied;
}

Process* Machine::MigrationTarget(Process& caller, Pid target, Errno* err) {
  Process* t = &caller;
  if (target != 0 && target != caller.pid) {
    auto it = processes_.find(target);
    if (it == processes_.end() || it->second->exited) {
      *err = Errno::kESRCH;  // find_task_by_vpid failed
      return nullptr;
    }
    t = it->second.get();
  }
  // The caller must own the target (uid) unless it has CAP_SYS_NICE.
  if (caller.uid != t->uid && !caller.privileged) {
    *err = Errno::kEPERM;
    return nullptr;
  }
  return t;
}

absl::StatusOr<Machine::MigratePagesResult> Machine::MigratePages(Pid caller, Pid target,
                                                                  uint64_t old_nodes,
                                                                  uint64_t new_nodes) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * c, LiveProcess(caller));
  MigratePagesResult r;
  // 6.4 rule 14 (new nodes without memory, nonexistent ones included, are
  // EINVAL below; extra bits in old_nodes select nothing).
  Process* t = MigrationTarget(*c, target, &r.err);
  if (!t) return r;
  if ((new_nodes & ~MemoryNodes()) != 0) {
    r.err = Errno::kEINVAL;
    return r;
  }
  const uint32_t flags = c->privileged ? kMfMoveAll : kMfMove;
  constexpr uint32_t kDiscontigOk = 1u << 29;
  // do_migrate_pages: pick (source, dest) pairs so that a destination is not
  // a source still to be emptied, as long as that is possible.
  auto remap = [&](int s) {
    int n = Weight(old_nodes & ((uint64_t{1} << s) - 1));
    int w = Weight(new_nodes);
    if (!(old_nodes >> s & 1) || w == 0) return s;
    return NthNode(new_nodes, n % w);
  };
  uint64_t tmp = old_nodes;
  uint64_t busy = 0;
  while (tmp) {
    int source = -1, dest = 0;
    for (int s = 0; s < 64; ++s) {
      if (!(tmp >> s & 1)) continue;
      int d = remap(s);
      if (s == d) continue;
      source = s;
      dest = d;
      if (!(tmp >> dest & 1)) break;
    }
    if (source == -1) break;
    tmp &= ~(uint64_t{1} << source);
    std::vector<Pfn> queue;
    Vaddr first = t->vmas.empty() ? 0 : t->vmas.begin()->first;
    CheckRange(*t, first, kTaskSize, uint64_t{1} << source, flags | kDiscontigOk, &queue);
    if (queue.empty()) continue;
    NodeId dn = static_cast<NodeId>(dest);
    int64_t rc = MigrateList(
        queue,
        [this, dn](Pfn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return AllocFromOrder({dn}, PageState::kFree, contents_.zero());
        },
        false, MigrateReason::kMigratePages, nullptr);
    if (rc < 0) {
      r.err = static_cast<Errno>(-rc);
      return r;
    }
    busy += rc;
  }
  r.not_migrated = busy;
  return r;
}

absl::StatusOr<Machine::MovePagesResult> Machine::MovePages(Pid caller, Pid target,
                                                            const std::vector<Vaddr>& addresses,
                                                            const std::vector<int32_t>& nodes,
                                                            uint32_t flags) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * c, LiveProcess(caller));
  MovePagesResult r;
  // 6.2 rule 6: whole-call checks.
  if (flags & ~(kMfMove | kMfMoveAll)) {
    r.err = Errno::kEINVAL;
    return r;
  }
  if ((flags & kMfMoveAll) && !c->privileged) {
    r.err = Errno::kEPERM;
    return r;
  }
  Process* t = MigrationTarget(*c, target, &r.err);
  if (!t) return r;
  if (nodes.empty()) {
    // Query mode (do_pages_stat), 6.2 rule 7.
    for (Vaddr a : addresses) {
      Vaddr va = PageAlignDown(a);
      auto vit = t->vmas.upper_bound(va);
      bool any_vma_at_or_above =
          vit != t->vmas.end() || (vit != t->vmas.begin() && std::prev(vit)->second.end > va);
      if (!any_vma_at_or_above) {
        r.status.push_back(-kEfault);
        continue;
      }
      auto pt = t->ptes.find(va >> kPageShift);
      if (pt == t->ptes.end() || pt->second.pfn == zero_pfn_) {
        r.status.push_back(-kEnoent);
        continue;
      }
      PageFrame& f = Frame(pt->second.pfn);
      if (f.state == PageState::kKsm || f.state == PageState::kReserved) {
        r.status.push_back(-kEnoent);
        continue;
      }
      r.status.push_back(static_cast<int32_t>(BlockOf(pt->second.pfn).node));
    }
    return r;
  }
  // Move mode (do_pages_move), 6.2 rule 8: chunks of 169 entries.
  constexpr size_t kChunk = kPageSize / 24 - 1;
  const bool move_all = flags & kMfMoveAll;
  for (size_t cs = 0; cs < addresses.size(); cs += kChunk) {
    size_t ce = std::min(addresses.size(), cs + kChunk);
    for (size_t i = cs; i < ce; ++i) {
      if (nodes[i] < 0 || nodes[i] >= static_cast<int32_t>(config_.nodes) ||
          !NodeHasMemory(static_cast<NodeId>(nodes[i]))) {
        r.err = Errno::kENODEV;  // this chunk's statuses are not written
        return r;
      }
    }
    std::vector<int32_t> st(ce - cs);
    std::vector<Pfn> queue;
    absl::flat_hash_map<Pfn, size_t> entry_of;
    for (size_t i = cs; i < ce; ++i) {
      Vaddr va = PageAlignDown(addresses[i]);
      int32_t& s = st[i - cs];
      // find_vma without the vm_start check: a gap below a vma is "in" it.
      auto vit = t->vmas.upper_bound(va);
      bool found =
          vit != t->vmas.end() || (vit != t->vmas.begin() && std::prev(vit)->second.end > va);
      if (!found) {
        s = -kEfault;
        continue;
      }
      auto pt = t->ptes.find(va >> kPageShift);
      if (pt == t->ptes.end() || pt->second.pfn == zero_pfn_) {
        s = -kEnoent;
        continue;
      }
      Pfn pfn = pt->second.pfn;
      PageFrame& f = Frame(pfn);
      if (f.state == PageState::kReserved || f.state == PageState::kKsm) {
        s = -kEnoent;  // the seed's PageKsm test: KSM pages never move
        continue;
      }
      if (static_cast<int32_t>(BlockOf(pfn).node) == nodes[i]) {
        s = nodes[i];
        continue;
      }
      if (f.mapcount > 1 && !move_all) {
        s = -kEacces;
        continue;
      }
      if (entry_of.count(pfn)) {
        s = -kEbusy;  // already isolated by an earlier entry
        continue;
      }
      entry_of[pfn] = i - cs;
      queue.push_back(pfn);
      s = -kEbusy;  // overwritten by the migration result
    }
    if (!queue.empty()) {
      absl::flat_hash_map<Pfn, int32_t> results;
      int64_t rc = MigrateList(
          queue,
          [this, &entry_of, &nodes, cs](Pfn old) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            NodeId n = static_cast<NodeId>(nodes[cs + entry_of[old]]);
            return AllocFromOrder({n}, PageState::kFree, contents_.zero());  // GFP_THISNODE
          },
          false, MigrateReason::kMovePages, &results);
      if (rc < 0) {
        r.err = static_cast<Errno>(-rc);
        return r;
      }
      for (auto& [pfn, res] : results) st[entry_of[pfn]] = res;
    }
    r.status.insert(r.status.end(), st.begin(), st.end());
  }
  return r;  // the count not migrated is ignored: move_pages returns 0
}

}  // namespace memnode
