// Overview: the migration core and the three migration syscalls, with the
// outcomes of Linux 2.6.33 (docs/SEMANTICS.md, section "Migration"):
//
//   1. migrate_pages() core: up to 10 passes over the list; -EAGAIN keeps a
//      page for the next pass (extra references: pins); -ENOMEM aborts the
//      call; other errors are permanent. Whether a KSM page may move is the
//      profile's rule (2.6.33: only with the seed's `offlining` flag, else
//      -EBUSY); a migrated KSM page takes its stable node with it (kpfn = new
//      pfn), every sharer keeps sharing.
//   2. mbind / migrate_pages(2) walk page tables (check_range) skipping
//      reserved and KSM pages before any node test; move_pages reports a KSM
//      page as -ENOENT in both modes.
//   3. Contents and every mapping (ptes of all processes, shared objects)
//      follow a migrated page; refcounts and mapcounts move with it.
// The reverse map is built per call by scanning the page tables: memnode
// keeps no per-frame rmap, so a frame stays at 32 bytes.
#include "server/core/migrate/migrate.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "server/core/migrate/mempolicy.h"
#include "server/core/profile/profile.h"
#include "server/core/status.h"

namespace memnode {
namespace {

constexpr uint32_t kInvert = 1u << 30;       // check_range: MPOL_MF_INVERT
constexpr uint32_t kDiscontigOk = 1u << 29;  // check_range: MPOL_MF_DISCONTIG_OK

int Weight(uint64_t mask) { return __builtin_popcountll(mask); }

}  // namespace

void Migration::EmitMigrate(Pfn pfn, MigrateReason reason, int32_t result, bool ksm) {
  Event e{EventKind::kMigrate};
  e.pfn = pfn;
  e.migrate_reason = reason;
  e.result = result;
  e.ksm = ksm;
  events_.Emit(e);
}

// ---------------------------------------------------------------------------
// The migration core

bool Migration::KsmPageUnmappable(const PageFrame& f,
                                  const std::vector<std::pair<Process*, uint64_t>>& mappings) {
  // try_to_unmap_ksm needs the page's stable node (a KSM page left without
  // one cannot be unmapped), and reaches only what the node's rmap items
  // lead to.
  if (!f.ksm_node) return mappings.empty();
  std::vector<std::pair<Process*, uint64_t>> reached;
  ksm_.KsmRmapWalk(f.ksm_node, &reached);
  for (const auto& m : mappings)
    if (std::find(reached.begin(), reached.end(), m) == reached.end()) return false;
  return true;
}

Migration::Outcome Migration::MigrateList(std::vector<Pfn> pages, const PageAllocator& alloc,
                                          bool offlining, MigrateReason reason,
                                          absl::flat_hash_map<Pfn, int32_t>* results) {
  // Reverse map of the listed pages: ptes and shared-object slots.
  absl::flat_hash_set<Pfn> wanted(pages.begin(), pages.end());
  absl::flat_hash_map<Pfn, std::vector<std::pair<Process*, uint64_t>>> ptes;
  absl::flat_hash_map<Pfn, std::pair<ShmObject*, uint64_t>> shm;
  for (auto& [pid, p] : mm_.processes())
    for (auto& [vpn, pte] : p->ptes)
      if (wanted.count(pte.pfn)) ptes[pte.pfn].emplace_back(p.get(), vpn);
  for (auto& [obj, owned] : mm_.shm_objects())
    for (auto& [off, pfn] : obj->pages)
      if (wanted.count(pfn)) shm[pfn] = {obj, off};

  // unmap_and_move: kOk, kEAGAIN, kENOMEM or a permanent error.
  auto unmap_and_move = [&](Pfn pfn) -> Errno {
    Pfn newpfn = alloc(pfn);
    if (newpfn == kNoPfn) return Errno::kENOMEM;
    PageFrame& f = mem_.Frame(pfn);
    PageFrame& nf = mem_.Frame(newpfn);
    const bool ksm = f.state == PageState::kKsm;
    if (f.state == PageState::kFree || f.refcount == 0) {
      // Freed under us: done (the new page goes back).
      mem_.FreePage(newpfn);
      if (results) (*results)[pfn] = static_cast<int32_t>(mem_.NodeOf(newpfn));
      EmitMigrate(pfn, reason, 0, false);
      return Errno::kOk;
    }
    Errno rc = Errno::kOk;
    if (ksm && !profile_.KsmPageMigratable(offlining)) {
      rc = Errno::kEBUSY;  // the seed: KSM pages move only for hot-remove
    } else if (ksm && !KsmPageUnmappable(f, ptes[pfn])) {
      rc = Errno::kEAGAIN;  // try_to_unmap_ksm leaves a mapping: still mapped
    } else if (f.pins > 0) {
      rc = Errno::kEAGAIN;  // extra references: the page cannot be frozen
    }
    if (rc != Errno::kOk) {
      mem_.FreePage(newpfn);
      if (results) (*results)[pfn] = NegErrno(rc);
      EmitMigrate(pfn, reason, NegErrno(rc), ksm);
      return rc;
    }
    // Move: contents, state, KSM identity, mappings.
    mem_.SetContent(nf, f.content);
    f.content = nullptr;
    mem_.SetState(newpfn, nf, f.state);
    nf.ksm_node = f.ksm_node;
    nf.shm_owned = f.shm_owned;
    nf.mapcount = f.mapcount;
    nf.refcount = f.refcount;
    if (ksm && f.ksm_node) ksm_.KsmPageMigrated(f.ksm_node, newpfn);
    auto pi = ptes.find(pfn);
    if (pi != ptes.end())
      for (auto& [proc, vpn] : pi->second) mm_.RetargetPte(*proc, vpn, newpfn);
    auto si = shm.find(pfn);
    if (si != shm.end()) si->second.first->pages[si->second.second] = newpfn;
    f.mapcount = 0;
    f.refcount = 0;
    f.ksm_node = nullptr;
    f.shm_owned = false;
    mem_.FreePage(pfn);
    if (results) (*results)[pfn] = static_cast<int32_t>(mem_.NodeOf(newpfn));
    migrated_total_++;
    if (ksm) migrated_ksm_++;
    EmitMigrate(pfn, reason, 0, ksm);
    return Errno::kOk;
  };

  Outcome out;
  for (int pass = 0; pass < 10 && !pages.empty(); ++pass) {
    std::vector<Pfn> retry;
    for (Pfn pfn : pages) {
      Errno rc = unmap_and_move(pfn);
      if (rc == Errno::kENOMEM) {
        out.err = Errno::kENOMEM;
        return out;
      }
      if (rc == Errno::kEAGAIN)
        retry.push_back(pfn);
      else if (rc != Errno::kOk)
        out.failed++;
    }
    pages.swap(retry);
  }
  out.failed += pages.size();
  return out;
}

// ---------------------------------------------------------------------------
// Policies

absl::StatusOr<Errno> Migration::SetMempolicy(Pid pid, MpolMode mode, uint64_t nodes) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, mm_.LiveProcess(pid));
  MemPolicy pol;
  Errno e = ValidatePolicy(mem_, mode, nodes, &pol);
  if (e == Errno::kOk) p->policy = pol;
  return e;
}

absl::StatusOr<MempolicyResult> Migration::GetMempolicy(Pid pid, std::optional<Vaddr> address,
                                                        bool node_of_address) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, mm_.LiveProcess(pid));
  MempolicyResult r;
  if (!address) {
    if (node_of_address) {
      r.err = Errno::kEINVAL;
      return r;
    }
    r.policy = p->policy;
    return r;
  }
  Vma* v = mm_.FindVma(*p, *address);
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
    Errno e = mm_.ReadFault(*p, *v, vpn);
    if (e != Errno::kOk) {
      r.err = e;
      return r;
    }
    r.node = static_cast<int32_t>(mem_.NodeOf(p->ptes[vpn].pfn));
  }
  return r;
}

Errno Migration::CheckRange(Process& p, Vaddr start, Vaddr end, uint64_t nodes, uint32_t flags,
                            std::vector<Pfn>* queue) {
  auto it = p.vmas.upper_bound(start);
  if (it != p.vmas.begin() && std::prev(it)->second.end > start) --it;
  if (it == p.vmas.end()) return Errno::kEFAULT;
  const Vma* prev = nullptr;
  for (; it != p.vmas.end() && it->second.start < end; ++it) {
    Vma& v = it->second;
    if (!(flags & kDiscontigOk)) {
      if (std::next(it) == p.vmas.end() && v.end < end) return Errno::kEFAULT;
      if (prev && prev->end < v.start) return Errno::kEFAULT;
    }
    if ((flags & kMpolMfStrict) ||
        (flags & (kMpolMfMove | kMpolMfMoveAll))) {  // anon vmas are migratable
      Vaddr s = std::max(start, v.start), e = std::min(end, v.end);
      auto pt = p.ptes.lower_bound(s >> kPageShift);
      for (; pt != p.ptes.end() && pt->first < (e >> kPageShift); ++pt) {
        Pfn pfn = pt->second.pfn;
        if (pfn == mem_.zero_pfn()) continue;  // vm_normal_page: no page
        PageFrame& f = mem_.Frame(pfn);
        // The seed: reserved and KSM pages are skipped before the node test.
        if (f.state == PageState::kReserved || f.state == PageState::kZero ||
            f.state == PageState::kKsm)
          continue;
        bool on_allowed = nodes >> mem_.NodeOf(pfn) & 1;
        if (on_allowed == ((flags & kInvert) != 0)) continue;
        if (flags & (kMpolMfMove | kMpolMfMoveAll)) {
          if ((flags & kMpolMfMoveAll) || f.mapcount == 1)
            if (std::find(queue->begin(), queue->end(), pfn) == queue->end()) queue->push_back(pfn);
        } else {
          return Errno::kEIO;  // STRICT check-only: a misplaced page
        }
      }
    }
    prev = &v;
  }
  return Errno::kOk;
}

absl::StatusOr<Errno> Migration::Mbind(Pid pid, Vaddr addr, uint64_t length, MpolMode mode,
                                       uint64_t nodes, uint32_t flags) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, mm_.LiveProcess(pid));
  // sys_mbind's validation.
  if (flags & ~(kMpolMfStrict | kMpolMfMove | kMpolMfMoveAll)) return Errno::kEINVAL;
  if ((flags & kMpolMfMoveAll) && !p->privileged) return Errno::kEPERM;
  if (!PageAligned(addr)) return Errno::kEINVAL;
  uint64_t len = (length + kPageSize - 1) & kPageMask;
  Vaddr end = addr + len;
  if (end < addr) return Errno::kEINVAL;
  if (end == addr) return Errno::kOk;
  MemPolicy pol;
  Errno e = ValidatePolicy(mem_, mode, nodes, &pol);
  if (e != Errno::kOk) return e;
  if (mode == MpolMode::kDefault) flags &= ~kMpolMfStrict;
  uint32_t walk = flags | kInvert | (mode == MpolMode::kDefault ? kDiscontigOk : 0);
  std::vector<Pfn> queue;
  Errno rc = CheckRange(*p, addr, end, nodes, walk, &queue);
  if (rc != Errno::kOk) return rc;
  // mbind_range (2.6.33): from the first vma check_range found (which may
  // begin after `addr`: 2.6.33 has no start-in-vma check), split at the range's
  // ends and set the policy. 2.6.33 does not merge the vmas again.
  mm_.SplitVma(*p, addr);
  mm_.SplitVma(*p, end);
  for (auto it = p->vmas.lower_bound(addr); it != p->vmas.end() && it->first < end; ++it) {
    it->second.has_policy = mode != MpolMode::kDefault;
    it->second.policy = pol;
  }
  bool failed = false;
  if (!queue.empty()) {
    // new_vma_page: allocate by the (new) policy of the page's vma.
    absl::flat_hash_map<Pfn, uint64_t> where;
    for (auto& [vpn, pte] : p->ptes) where.emplace(pte.pfn, vpn);
    Process* proc = p;
    Outcome o = MigrateList(
        queue,
        [this, proc, &where](Pfn old) {
          uint64_t vpn = where[old];
          return mem_.AllocFromOrder(
              PolicyOrder(mem_, *proc, mm_.FindVma(*proc, vpn << kPageShift), vpn),
              PageState::kFree, mem_.contents().zero());
        },
        false, MigrateReason::kMbind, nullptr);
    failed = o.err != Errno::kOk || o.failed != 0;
  }
  if (failed && (flags & kMpolMfStrict)) return Errno::kEIO;
  return Errno::kOk;
}

Process* Migration::MigrationTarget(Process& caller, Pid target, Errno* err) {
  Process* t = &caller;
  if (target != 0 && target != caller.pid) {
    t = mm_.FindProcess(target);
    if (!t || t->exited) {
      *err = Errno::kESRCH;  // find_task_by_vpid failed
      return nullptr;
    }
  }
  // The caller must own the target (uid) unless it has CAP_SYS_NICE.
  if (caller.uid != t->uid && !caller.privileged) {
    *err = Errno::kEPERM;
    return nullptr;
  }
  return t;
}

absl::StatusOr<MigratePagesResult> Migration::MigratePages(Pid caller, Pid target,
                                                           uint64_t old_nodes, uint64_t new_nodes) {
  MEMNODE_ASSIGN_OR_RETURN(Process * c, mm_.LiveProcess(caller));
  MigratePagesResult r;
  // New nodes without memory, nonexistent ones included, are EINVAL below;
  // extra bits in old_nodes select nothing.
  Process* t = MigrationTarget(*c, target, &r.err);
  if (!t) return r;
  if ((new_nodes & ~mem_.MemoryNodes()) != 0) {
    r.err = Errno::kEINVAL;
    return r;
  }
  const uint32_t flags = c->privileged ? kMpolMfMoveAll : kMpolMfMove;
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
    CheckRange(*t, first, Mm::kTaskSize, uint64_t{1} << source, flags | kDiscontigOk, &queue);
    if (queue.empty()) continue;
    NodeId dn = static_cast<NodeId>(dest);
    Outcome o = MigrateList(
        queue,
        [this, dn](Pfn) {
          // new_node_page: alloc_pages_exact_node without __GFP_THISNODE, so
          // a full destination falls back through its zonelist.
          return mem_.AllocFromOrder(mem_.FallbackOrder(dn), PageState::kFree,
                                     mem_.contents().zero());
        },
        false, MigrateReason::kMigratePages, nullptr);
    if (o.err != Errno::kOk) {
      r.err = o.err;
      return r;
    }
    busy += o.failed;
  }
  r.not_migrated = busy;
  return r;
}

absl::StatusOr<MovePagesResult> Migration::MovePages(Pid caller, Pid target,
                                                     const std::vector<Vaddr>& addresses,
                                                     const std::vector<int32_t>& nodes,
                                                     uint32_t flags) {
  MEMNODE_ASSIGN_OR_RETURN(Process * c, mm_.LiveProcess(caller));
  MovePagesResult r;
  // Whole-call checks of sys_move_pages.
  if (flags & ~(kMpolMfMove | kMpolMfMoveAll)) {
    r.err = Errno::kEINVAL;
    return r;
  }
  if ((flags & kMpolMfMoveAll) && !c->privileged) {
    r.err = Errno::kEPERM;
    return r;
  }
  Process* t = MigrationTarget(*c, target, &r.err);
  if (!t) return r;
  if (nodes.empty()) {
    // Query mode (do_pages_stat).
    for (Vaddr a : addresses) {
      Vaddr va = PageAlignDown(a);
      auto vit = t->vmas.upper_bound(va);
      bool any_vma_at_or_above =
          vit != t->vmas.end() || (vit != t->vmas.begin() && std::prev(vit)->second.end > va);
      if (!any_vma_at_or_above) {
        r.status.push_back(NegErrno(Errno::kEFAULT));
        continue;
      }
      auto pt = t->ptes.find(va >> kPageShift);
      if (pt == t->ptes.end() || pt->second.pfn == mem_.zero_pfn()) {
        r.status.push_back(NegErrno(Errno::kENOENT));
        continue;
      }
      PageFrame& f = mem_.Frame(pt->second.pfn);
      if (f.state == PageState::kKsm || f.state == PageState::kReserved) {
        r.status.push_back(NegErrno(Errno::kENOENT));
        continue;
      }
      r.status.push_back(static_cast<int32_t>(mem_.NodeOf(pt->second.pfn)));
    }
    return r;
  }
  // Move mode (do_pages_move): chunks of 169 entries.
  constexpr size_t kChunk = kPageSize / 24 - 1;
  const bool move_all = flags & kMpolMfMoveAll;
  for (size_t cs = 0; cs < addresses.size(); cs += kChunk) {
    size_t ce = std::min(addresses.size(), cs + kChunk);
    for (size_t i = cs; i < ce; ++i) {
      if (nodes[i] < 0 || nodes[i] >= static_cast<int32_t>(mem_.nodes()) ||
          !mem_.NodeHasMemory(static_cast<NodeId>(nodes[i]))) {
        r.err = Errno::kENODEV;  // this chunk's statuses are not written
        return r;
      }
    }
    // do_move_page_to_node_array: each entry records its page (pp->page)
    // before the "already on the target node" test; new_page_node later
    // gives a migrating page to the FIRST entry that recorded it (its target
    // node, its status), whichever entry isolated it.
    std::vector<int32_t> st(ce - cs);
    std::vector<Pfn> queue;
    absl::flat_hash_map<Pfn, size_t> first_entry;
    for (size_t i = cs; i < ce; ++i) {
      Vaddr va = PageAlignDown(addresses[i]);
      int32_t& s = st[i - cs];
      // find_vma without the vm_start check: a gap below a vma is "in" it.
      auto vit = t->vmas.upper_bound(va);
      bool found =
          vit != t->vmas.end() || (vit != t->vmas.begin() && std::prev(vit)->second.end > va);
      if (!found) {
        s = NegErrno(Errno::kEFAULT);
        continue;
      }
      auto pt = t->ptes.find(va >> kPageShift);
      if (pt == t->ptes.end() || pt->second.pfn == mem_.zero_pfn()) {
        s = NegErrno(Errno::kENOENT);
        continue;
      }
      Pfn pfn = pt->second.pfn;
      PageFrame& f = mem_.Frame(pfn);
      if (f.state == PageState::kReserved || f.state == PageState::kKsm) {
        s = NegErrno(Errno::kENOENT);  // the seed's PageKsm test: KSM pages never move
        continue;
      }
      first_entry.emplace(pfn, i - cs);  // pp->page = page
      if (static_cast<int32_t>(mem_.NodeOf(pfn)) == nodes[i]) {
        s = nodes[i];
        continue;
      }
      if (f.mapcount > 1 && !move_all) {
        s = NegErrno(Errno::kEACCES);
        continue;
      }
      if (std::find(queue.begin(), queue.end(), pfn) != queue.end()) {
        s = NegErrno(Errno::kEBUSY);  // isolate_lru_page: already isolated
        continue;
      }
      queue.push_back(pfn);
      s = 0;  // isolated; the migration result goes to the page's first entry
    }
    if (!queue.empty()) {
      absl::flat_hash_map<Pfn, int32_t> results;
      Outcome o = MigrateList(
          queue,
          [this, &first_entry, &nodes, cs](Pfn old) {
            NodeId n = static_cast<NodeId>(nodes[cs + first_entry[old]]);
            return mem_.AllocFromOrder({n}, PageState::kFree,
                                       mem_.contents().zero());  // GFP_THISNODE
          },
          false, MigrateReason::kMovePages, &results);
      if (o.err != Errno::kOk) {
        r.err = o.err;
        return r;
      }
      for (auto& [pfn, res] : results) st[first_entry[pfn]] = res;
    }
    r.status.insert(r.status.end(), st.begin(), st.end());
  }
  return r;  // the count not migrated is ignored: move_pages returns 0
}

}  // namespace memnode
