// Overview: processes and their address spaces - VMAs, lifecycle and the
// memory syscalls - with the outcomes of Linux 2.6.33 (docs/SEMANTICS.md,
// section "Processes and memory"):
//   1. fork copies ptes only of private VMAs that have an anon_vma (like
//      copy_page_range), write-protecting both sides; shared VMAs are
//      re-faulted by the child from the shared object.
//   2. munmap/DONTNEED/exit drop mappings; KSM counters are never touched here:
//      ksmd notices later.
//   3. madvise(MERGEABLE) registers the mm with KSM on its first use and sets
//      VM_MERGEABLE; (UNMERGEABLE) breaks COW at every KSM-mapped address and
//      clears the flag only on success.
// Faults and COW are in fault.cc, byte access in access.cc.
//
// Invariants (Check()): VMAs are page aligned, ordered and disjoint inside
// user space; every pte lies inside a VMA; the next pid is above every pid.
#include "server/core/mm/mm.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/snapshot/snapshot_io.h"
#include "server/core/status.h"

namespace memnode {
namespace {

absl::Status NoProcess(Pid pid) {
  return MakeError(absl::StatusCode::kNotFound, Reason::kProcessNotFound,
                   absl::StrCat("no live process ", pid));
}

void PutPolicy(SnapshotWriter& w, const MemPolicy& p) {
  w.U64(static_cast<uint64_t>(p.mode));
  w.U64(p.nodes);
}

// A policy as set_mempolicy/mbind could have left it: BIND and INTERLEAVE
// name some existing node, PREFERRED at most one, DEFAULT none. Anything else
// poisons the reader (it would send allocations to nodes that do not exist).
MemPolicy GetPolicy(SnapshotReader& r, uint32_t nodes) {
  MemPolicy p;
  uint64_t m = r.U64();
  p.nodes = r.U64();
  const uint64_t all = nodes >= 64 ? ~uint64_t{0} : (uint64_t{1} << nodes) - 1;
  const int bits = __builtin_popcountll(p.nodes);
  bool ok = m <= 3 && (p.nodes & ~all) == 0;
  if (ok) p.mode = static_cast<MpolMode>(m);
  if (ok && p.mode == MpolMode::kDefault) ok = bits == 0;
  if (ok && p.mode == MpolMode::kPreferred) ok = bits <= 1;
  if (ok && (p.mode == MpolMode::kBind || p.mode == MpolMode::kInterleave)) ok = bits >= 1;
  if (!ok) {
    r.Poison();
    return MemPolicy();
  }
  return p;
}

}  // namespace

Mm::~Mm() { processes_.clear(); }

// ---------------------------------------------------------------------------
// Lookup helpers

absl::StatusOr<Process*> Mm::LiveProcess(Pid pid) {
  auto it = processes_.find(pid);
  if (it == processes_.end() || it->second->exited) return NoProcess(pid);
  return it->second.get();
}

Process* Mm::FindProcess(Pid pid) {
  auto it = processes_.find(pid);
  return it == processes_.end() ? nullptr : it->second.get();
}

uint32_t Mm::LiveProcessCount() const {
  uint32_t n = 0;
  for (const auto& [pid, p] : processes_)
    if (!p->exited) n++;
  return n;
}

Vma* Mm::FindVma(Process& p, Vaddr addr) {
  auto it = p.vmas.upper_bound(addr);
  if (it == p.vmas.begin()) return nullptr;
  --it;
  return addr < it->second.end ? &it->second : nullptr;
}

Pte* Mm::PteAt(Process& p, Vaddr addr) {
  auto it = p.ptes.find(addr >> kPageShift);
  return it == p.ptes.end() ? nullptr : &it->second;
}

void Mm::SplitVma(Process& p, Vaddr at) {
  Vma* v = FindVma(p, at);
  if (!v || v->start == at) return;
  Vma tail = *v;
  tail.start = at;
  if (tail.shm) {
    tail.shm_pgoff += (at - v->start) >> kPageShift;
    tail.shm->vma_refs++;
  }
  v->end = at;
  p.vmas.emplace(at, tail);
  p.gen++;
}

void Mm::MergeVmas(Process& p, Vaddr lo, Vaddr hi) {
  // From the vma that contains (or follows) `lo`; boundaries in [lo, hi].
  auto it = p.vmas.upper_bound(lo);
  if (it != p.vmas.begin()) --it;
  while (it != p.vmas.end() && it->second.end <= hi) {
    auto next = std::next(it);
    if (next == p.vmas.end()) break;
    Vma& a = it->second;
    Vma& b = next->second;
    bool compatible =
        a.end == b.start && a.end >= lo && a.prot == b.prot && a.shared == b.shared &&
        a.mergeable == b.mergeable && a.has_policy == b.has_policy &&
        (!a.has_policy || (a.policy.mode == b.policy.mode && a.policy.nodes == b.policy.nodes)) &&
        // is_mergeable_anon_vma: equal, or one of them has none yet
        (!a.anon_vma || !b.anon_vma || a.anon_vma == b.anon_vma);
    if (compatible && a.shared)
      compatible = a.shm == b.shm && a.shm_pgoff + ((a.end - a.start) >> kPageShift) == b.shm_pgoff;
    if (!compatible) {
      it = next;
      continue;
    }
    a.end = b.end;
    if (!a.anon_vma) a.anon_vma = b.anon_vma;
    if (b.shm) b.shm->vma_refs--;  // a already holds a reference to the same object
    p.vmas.erase(next);
    p.gen++;
  }
}

void Mm::ZapRange(Process& p, Vaddr start, Vaddr end) {
  auto it = p.ptes.lower_bound(start >> kPageShift);
  std::vector<uint64_t> vpns;
  for (; it != p.ptes.end() && it->first < (end >> kPageShift); ++it) vpns.push_back(it->first);
  for (uint64_t vpn : vpns) UnmapPte(p, vpn);
}

void Mm::ReleaseShm(ShmObject* shm) {
  if (--shm->vma_refs > 0) return;
  for (auto& [off, pfn] : shm->pages) {
    PageFrame& f = mem_.Frame(pfn);
    f.shm_owned = false;
    mem_.PutPage(pfn);
  }
  shm_objects_.erase(shm);
}

void Mm::UnmapRange(Process& p, Vaddr start, Vaddr end) {
  SplitVma(p, start);
  SplitVma(p, end);
  ZapRange(p, start, end);
  auto it = p.vmas.lower_bound(start);
  while (it != p.vmas.end() && it->first < end) {
    if (it->second.shm) ReleaseShm(it->second.shm);
    it = p.vmas.erase(it);
    p.gen++;
  }
}

// ---------------------------------------------------------------------------
// Process lifecycle

absl::StatusOr<Pid> Mm::CreateProcess(const ProcessParams& params) {
  if (params.home_node >= mem_.nodes())
    return MakeError(absl::StatusCode::kOutOfRange, Reason::kNodeOutOfRange,
                     absl::StrCat("home_node ", params.home_node, " >= nodes ", mem_.nodes()));
  auto p = std::make_unique<Process>();
  p->pid = next_pid_++;
  p->uid = params.uid;
  p->privileged = params.privileged;
  p->home_node = params.home_node;
  Pid pid = p->pid;
  processes_[pid] = std::move(p);
  return pid;
}

absl::StatusOr<Pid> Mm::Fork(Pid pid) {
  MEMNODE_ASSIGN_OR_RETURN(Process * parent, LiveProcess(pid));
  auto child = std::make_unique<Process>();
  child->pid = next_pid_++;
  child->ppid = parent->pid;
  child->uid = parent->uid;
  child->privileged = parent->privileged;
  child->home_node = parent->home_node;
  Process& c = *child;
  processes_[c.pid] = std::move(child);
  if (parent->ksm_slot) ksm_.KsmEnter(c);  // ksm_fork: registered like its parent
  for (auto& [start, v] : parent->vmas) {
    c.vmas[start] = v;
    if (v.shm) {
      v.shm->vma_refs++;
      continue;  // shared: the child faults pages in from the object
    }
    if (!v.anon_vma) continue;  // copy_page_range skips vmas without anon_vma
    auto it = parent->ptes.lower_bound(v.start >> kPageShift);
    for (; it != parent->ptes.end() && it->first < (v.end >> kPageShift); ++it) {
      it->second.write = false;  // COW: both sides read-only
      MapPte(c, it->first, it->second.pfn, false);
    }
  }
  return c.pid;
}

void Mm::ExitLocked(Process& p, uint64_t* freed) {
  uint64_t before = mem_.pages_freed();
  ksm_.KsmExit(p);  // __ksm_exit comes before the address space is torn down
  p.exited = true;
  for (auto& [addr, pfn] : p.pins) {
    mem_.Frame(pfn).pins--;
    mem_.PutPage(pfn);
  }
  p.pins.clear();
  ZapRange(p, 0, kTaskSize);
  for (auto& [s, v] : p.vmas)
    if (v.shm) ReleaseShm(v.shm);
  p.vmas.clear();
  *freed = mem_.pages_freed() - before;
  Event e{EventKind::kProcessExit};
  e.pid = p.pid;
  events_.Emit(e);
  if (!p.ksm_slot) DropMm(&p);
}

void Mm::DropMm(Process* p) {
  MEMNODE_CHECK(p->exited && !p->ksm_slot, "dropping a live or registered mm");
  processes_.erase(p->pid);
}

absl::StatusOr<uint64_t> Mm::Exit(Pid pid) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  uint64_t freed = 0;
  ExitLocked(*p, &freed);
  return freed;
}

ProcessInfo Mm::DescribeProcess(const Process& p) {
  ProcessInfo pi;
  pi.pid = p.pid;
  pi.ppid = p.ppid;
  pi.uid = p.uid;
  pi.privileged = p.privileged;
  pi.exited = p.exited;
  pi.ksm_registered = p.ksm_slot != nullptr;
  pi.home_node = p.home_node;
  for (const auto& [s, v] : p.vmas) {
    VmaInfo vi;
    vi.start = v.start;
    vi.end = v.end;
    vi.prot = v.prot;
    vi.shared = v.shared;
    vi.mergeable = v.mergeable;
    vi.anon_vma = v.anon_vma != 0;
    auto it = p.ptes.lower_bound(v.start >> kPageShift);
    auto end = p.ptes.lower_bound(v.end >> kPageShift);
    for (; it != end; ++it) vi.resident_pages++;
    pi.vmas.push_back(vi);
  }
  for (const auto& [vpn, pte] : p.ptes) {
    if (pte.pfn == mem_.zero_pfn()) {
      pi.zero_pages++;
      continue;
    }
    switch (mem_.Frame(pte.pfn).state) {
      case PageState::kKsm: pi.ksm_pages++; break;
      case PageState::kShmem: pi.shmem_pages++; break;
      default: pi.anon_pages++; break;
    }
  }
  pi.pinned_pages = p.pins.size();
  return pi;
}

absl::StatusOr<ProcessInfo> Mm::GetProcess(Pid pid) {
  auto it = processes_.find(pid);
  if (it == processes_.end()) return NoProcess(pid);
  return DescribeProcess(*it->second);
}

std::vector<ProcessInfo> Mm::ListProcesses(bool show_exited) {
  std::vector<ProcessInfo> out;
  for (const auto& [pid, p] : processes_)
    if (show_exited || !p->exited) out.push_back(DescribeProcess(*p));
  return out;
}

// ---------------------------------------------------------------------------
// Memory syscalls

absl::StatusOr<MmapResult> Mm::Mmap(Pid pid, Vaddr addr, uint64_t length, uint32_t prot,
                                    bool shared, bool fixed) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  MmapResult r;
  if (length == 0 || (prot & ~(kProtRead | kProtWrite))) {
    r.err = Errno::kEINVAL;
    return r;
  }
  uint64_t len = (length + kPageSize - 1) & kPageMask;
  if (len == 0 || len > kTaskSize) {
    r.err = Errno::kENOMEM;
    return r;
  }
  Vaddr start = 0;
  if (fixed) {
    if (!PageAligned(addr)) {
      r.err = Errno::kEINVAL;
      return r;
    }
    if (addr > kTaskSize - len) {
      r.err = Errno::kENOMEM;
      return r;
    }
    start = addr;
    UnmapRange(*p, start, start + len);
  } else {
    auto range_free = [&](Vaddr s) {
      if (s < kPageSize || s > kTaskSize - len) return false;
      auto it = p->vmas.lower_bound(s);
      if (it != p->vmas.end() && it->first < s + len) return false;
      if (it != p->vmas.begin() && std::prev(it)->second.end > s) return false;
      return true;
    };
    Vaddr hint = PageAlignDown(addr);
    if (hint != 0 && range_free(hint)) {
      start = hint;
    } else {
      // First fit upwards from kMmapBase.
      Vaddr cand = kMmapBase;
      auto it = p->vmas.upper_bound(cand);
      if (it != p->vmas.begin() && std::prev(it)->second.end > cand)
        cand = std::prev(it)->second.end;
      for (; it != p->vmas.end(); ++it) {
        if (it->first >= cand + len) break;
        cand = std::max(cand, it->second.end);
      }
      if (cand > kTaskSize - len) {
        r.err = Errno::kENOMEM;
        return r;
      }
      start = cand;
    }
  }
  Vma v;
  v.start = start;
  v.end = start + len;
  v.prot = prot;
  v.shared = shared;
  if (shared) {
    auto obj = std::make_unique<ShmObject>();
    obj->vma_refs = 1;
    v.shm = obj.get();
    shm_objects_[obj.get()] = std::move(obj);
  }
  p->vmas[start] = v;
  p->gen++;
  MergeVmas(*p, start, start + len);  // vma_merge with the neighbours
  r.address = start;
  return r;
}

absl::StatusOr<Errno> Mm::Munmap(Pid pid, Vaddr addr, uint64_t length) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  if (!PageAligned(addr) || length == 0) return Errno::kEINVAL;
  uint64_t len = (length + kPageSize - 1) & kPageMask;
  if (len == 0 || len > kTaskSize || addr > kTaskSize - len) return Errno::kEINVAL;
  UnmapRange(*p, addr, addr + len);
  return Errno::kOk;
}

absl::StatusOr<Errno> Mm::Mprotect(Pid pid, Vaddr addr, uint64_t length, uint32_t prot) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  if (!PageAligned(addr) || (prot & ~(kProtRead | kProtWrite))) return Errno::kEINVAL;
  uint64_t len = (length + kPageSize - 1) & kPageMask;
  if (length != 0 && len == 0) return Errno::kENOMEM;
  if (len == 0) return Errno::kOk;
  const Vaddr end = addr + len;
  if (end < addr) return Errno::kENOMEM;
  Vma* first = FindVma(*p, addr);
  if (!first) return Errno::kENOMEM;
  Errno err = Errno::kOk;
  Vaddr a = addr;
  while (a < end) {
    Vma* v = FindVma(*p, a);
    if (!v) {
      err = Errno::kENOMEM;  // a hole: parts before it were changed
      break;
    }
    Vaddr seg_end = std::min(end, v->end);
    if (v->prot != prot) {
      SplitVma(*p, a);
      SplitVma(*p, seg_end);
      Vma* s = FindVma(*p, a);
      s->prot = prot;
      if (!(prot & kProtWrite)) {
        auto it = p->ptes.lower_bound(a >> kPageShift);
        for (; it != p->ptes.end() && it->first < (seg_end >> kPageShift); ++it)
          it->second.write = false;
      }
    }
    a = seg_end;
  }
  MergeVmas(*p, addr, a);  // mprotect_fixup's vma_merge over what changed
  return err;
}

absl::StatusOr<Errno> Mm::Madvise(Pid pid, Vaddr addr, uint64_t length, Advice advice) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  // The envelope of sys_madvise.
  if (!PageAligned(addr)) return Errno::kEINVAL;
  uint64_t len = (length + kPageSize - 1) & kPageMask;
  if (length != 0 && len == 0) return Errno::kEINVAL;
  const Vaddr end = addr + len;
  if (end < addr) return Errno::kEINVAL;
  if (end == addr) return Errno::kOk;
  Errno unmapped = Errno::kOk;
  Vaddr start = addr;
  for (;;) {
    auto it = p->vmas.upper_bound(start);
    Vma* v = nullptr;
    if (it != p->vmas.begin() && std::prev(it)->second.end > start) {
      v = &std::prev(it)->second;
    } else if (it != p->vmas.end()) {
      v = &it->second;
    }
    if (!v) return Errno::kENOMEM;
    if (start < v->start) {
      unmapped = Errno::kENOMEM;  // a gap: keep going, report at the end
      start = v->start;
      if (start >= end) return unmapped;
    }
    Vaddr seg_end = std::min(end, v->end);
    Errno e = Errno::kOk;
    switch (advice) {
      case Advice::kDontNeed: ZapRange(*p, start, seg_end); break;
      case Advice::kMergeable:
        // ksm_madvise: silently ignored for these vmas.
        if (v->mergeable || v->shared) break;
        if (!p->ksm_slot) ksm_.KsmEnter(*p);
        SplitVma(*p, start);
        SplitVma(*p, seg_end);
        FindVma(*p, start)->mergeable = true;
        p->gen++;
        break;
      case Advice::kUnmergeable: {
        if (!v->mergeable) break;
        if (v->anon_vma) {
          // unmerge_ksm_pages: break COW at each KSM-mapped address, in order.
          auto pt = p->ptes.lower_bound(start >> kPageShift);
          std::vector<uint64_t> vpns;
          for (; pt != p->ptes.end() && pt->first < (seg_end >> kPageShift); ++pt)
            vpns.push_back(pt->first);
          for (uint64_t vpn : vpns) {
            e = BreakKsmPage(*p, *v, vpn);
            if (e != Errno::kOk) break;
          }
          if (e == Errno::kENOMEM) e = Errno::kEAGAIN;  // madvise's conversion
        }
        if (e == Errno::kOk) {  // VM_MERGEABLE cleared only on success
          SplitVma(*p, start);
          SplitVma(*p, seg_end);
          FindVma(*p, start)->mergeable = false;
          p->gen++;
        }
        break;
      }
    }
    if (e != Errno::kOk) {
      if (advice != Advice::kDontNeed) MergeVmas(*p, addr, start);  // madvise_behavior's vma_merge
      return e;
    }
    start = seg_end;
    if (start >= end) break;
  }
  if (advice != Advice::kDontNeed) MergeVmas(*p, addr, end);
  return unmapped;
}

// ---------------------------------------------------------------------------
// Self-check, digest, snapshots

void Mm::Check(absl::btree_map<Pfn, int32_t>* maps, absl::btree_map<Pfn, int32_t>* pins,
               std::vector<std::string>* out) {
  auto fail = [out](std::string s) {
    if (out->size() < 100) out->push_back(std::move(s));
  };
  for (const auto& [pid, p] : processes_) {
    for (const auto& [vpn, pte] : p->ptes) {
      if (pte.pfn == mem_.zero_pfn()) continue;
      (*maps)[pte.pfn]++;
      const Vma* v = nullptr;
      auto it = p->vmas.upper_bound(vpn << kPageShift);
      if (it != p->vmas.begin()) {
        --it;
        if ((vpn << kPageShift) < it->second.end) v = &it->second;
      }
      if (!v) fail(absl::StrFormat("pid %d: pte at 0x%x outside any vma", pid, vpn << kPageShift));
    }
    for (const auto& [addr, pfn] : p->pins) (*pins)[pfn]++;
    Vaddr prev_end = 0;
    for (const auto& [s, v] : p->vmas) {
      if (v.start != s || v.start >= v.end || v.start < prev_end || v.end > kTaskSize)
        fail(absl::StrFormat("pid %d: vma [0x%x, 0x%x) malformed or overlapping", pid, v.start,
                             v.end));
      prev_end = v.end;
    }
  }
  if (!processes_.empty() && next_pid_ <= processes_.rbegin()->first)
    fail(absl::StrFormat("next pid %d not above pid %d", next_pid_, processes_.rbegin()->first));
  // Shared objects: each is referenced by exactly vma_refs VMAs (at least
  // one: the last unmap frees it), and its pages are shmem frames it owns.
  absl::btree_map<const ShmObject*, int> refs;
  for (const auto& [pid, p] : processes_)
    for (const auto& [s, v] : p->vmas)
      if (v.shm) {
        if (!shm_objects_.count(v.shm))
          fail(absl::StrFormat("pid %d: vma at 0x%x names an unknown shared object", pid, s));
        refs[v.shm]++;
      }
  for (const auto& [obj, owned] : shm_objects_) {
    auto it = refs.find(obj);
    const int n = it == refs.end() ? 0 : it->second;
    if (n == 0 || n != obj->vma_refs)
      fail(absl::StrFormat("shared object with vma_refs %d is referenced by %d vmas", obj->vma_refs,
                           n));
    for (const auto& [off, pfn] : obj->pages) {
      PageFrame* f = mem_.FrameIfPopulated(pfn);
      if (!f || f->state != PageState::kShmem || !f->shm_owned)
        fail(absl::StrFormat("shared object page %d: pfn %d is not a shmem frame it owns", off,
                             pfn));
    }
  }
}

void Mm::AddToDigest(Digester& d) const {
  for (const auto& [pid, p] : processes_) {
    d.Add(pid);
    d.Add(p->exited);
    for (const auto& [s, v] : p->vmas) {
      d.Add(v.start);
      d.Add(v.end);
      d.Add(v.prot | (v.shared << 4) | (v.mergeable << 5) | ((v.anon_vma != 0) << 6));
    }
    for (const auto& [vpn, pte] : p->ptes) {
      d.Add(vpn);
      d.Add(pte.pfn * 2 + pte.write);
    }
    for (const auto& [a, pfn] : p->pins) {
      d.Add(a);
      d.Add(pfn);
    }
  }
}

absl::Status Mm::Save(SnapshotWriter& w) {
  // Shared objects in order of first use by a VMA (pid order): deterministic,
  // unlike their host addresses.
  std::map<const ShmObject*, uint64_t> shm_id;
  std::vector<const ShmObject*> shm_order;
  for (const auto& [pid, p] : processes_)
    for (const auto& [s, v] : p->vmas)
      if (v.shm && shm_id.emplace(v.shm, shm_id.size() + 1).second) shm_order.push_back(v.shm);
  if (shm_order.size() != shm_objects_.size())
    return MakeError(absl::StatusCode::kInternal, Reason::kInternal,
                     "an unreferenced shared object");
  w.U64(next_anon_vma_);  // v2
  w.U64(shm_order.size());
  for (const ShmObject* obj : shm_order) {
    w.U64(obj->vma_refs);
    w.U64(obj->pages.size());
    for (const auto& [off, pfn] : obj->pages) {
      w.U64(off);
      w.U64(pfn);
    }
  }
  w.U64(processes_.size());
  for (const auto& [pid, p] : processes_) {
    w.U64(static_cast<uint64_t>(pid));
    w.U64(static_cast<uint64_t>(p->ppid));
    w.U64(p->uid);
    w.U64(p->privileged);
    w.U64(p->home_node);
    w.U64(p->exited);
    PutPolicy(w, p->policy);
    w.U64(p->vmas.size());
    for (const auto& [s, v] : p->vmas) {
      w.U64(v.start);
      w.U64(v.end);
      w.U64(v.prot);
      w.U64(v.shared | (v.mergeable << 1) | ((v.anon_vma != 0) << 2) | (v.has_policy << 3));
      w.U64(v.shm ? shm_id[v.shm] : 0);
      w.U64(v.shm_pgoff);
      PutPolicy(w, v.policy);
      w.U64(v.anon_vma);  // v2
    }
    w.U64(p->ptes.size());
    for (const auto& [vpn, pte] : p->ptes) {
      w.U64(vpn);
      w.U64(pte.pfn);
      w.U64(pte.write);
    }
    w.U64(p->pins.size());
    for (const auto& [a, pfn] : p->pins) {
      w.U64(a);
      w.U64(pfn);
    }
  }
  return absl::OkStatus();
}

bool Mm::Load(SnapshotReader& r, std::map<Pid, Process*>* procs, std::string* why) {
  auto bad = [why](const char* w) {
    *why = w;
    return false;
  };
  const Pfn limit = mem_.PfnLimit();
  const uint32_t nodes = mem_.nodes();
  // v1 has no anon_vma identities: every vma that had one gets its own
  // (fork sharing is not recorded in v1).
  if (r.version() >= 2) next_anon_vma_ = r.U64();
  uint64_t nshm = r.Count(2);
  std::vector<ShmObject*> shms;
  for (uint64_t i = 0; i < nshm && r.ok(); ++i) {
    auto obj = std::make_unique<ShmObject>();
    obj->vma_refs = static_cast<int>(r.U64());
    uint64_t np = r.Count(2);
    for (uint64_t j = 0; j < np && r.ok(); ++j) {
      uint64_t off = r.U64();
      Pfn pfn = r.U64();
      if (pfn >= limit) return bad("shared object page");
      obj->pages[off] = pfn;
    }
    shms.push_back(obj.get());
    shm_objects_[obj.get()] = std::move(obj);
  }
  uint64_t nprocs = r.Count(8);
  for (uint64_t i = 0; i < nprocs && r.ok(); ++i) {
    auto p = std::make_unique<Process>();
    p->pid = static_cast<Pid>(r.U64());
    p->ppid = static_cast<Pid>(r.U64());
    p->uid = static_cast<uint32_t>(r.U64());
    p->privileged = r.U64() != 0;
    p->home_node = static_cast<NodeId>(r.U64());
    p->exited = r.U64() != 0;
    p->policy = GetPolicy(r, nodes);
    if (p->home_node >= nodes || p->pid <= 0) return bad("process");
    uint64_t nv = r.Count(7);
    for (uint64_t j = 0; j < nv && r.ok(); ++j) {
      Vma v;
      v.start = r.U64();
      v.end = r.U64();
      v.prot = static_cast<uint32_t>(r.U64());
      uint64_t fl = r.U64();
      v.shared = fl & 1;
      v.mergeable = fl & 2;
      v.anon_vma = (fl & 4) ? 1 : 0;
      v.has_policy = fl & 8;
      uint64_t sid = r.U64();
      if (sid > shms.size() || v.start >= v.end || !PageAligned(v.start) || !PageAligned(v.end))
        return bad("vma");
      // VMAs come in address order and never overlap or leave user space.
      if (v.end > kTaskSize || (!p->vmas.empty() && v.start < p->vmas.rbegin()->second.end))
        return bad("vma overlaps another or leaves the address space");
      v.shm = sid ? shms[sid - 1] : nullptr;
      v.shm_pgoff = r.U64();
      v.policy = GetPolicy(r, nodes);
      if (r.version() >= 2) {
        uint64_t id = r.U64();
        if ((id != 0) != (v.anon_vma != 0) || id >= next_anon_vma_) return bad("vma anon_vma");
        v.anon_vma = id;
      } else if (v.anon_vma) {
        v.anon_vma = next_anon_vma_++;
      }
      p->vmas[v.start] = v;
    }
    uint64_t npte = r.Count(3);
    for (uint64_t j = 0; j < npte && r.ok(); ++j) {
      uint64_t vpn = r.U64();
      Pte pte;
      pte.pfn = r.U64();
      pte.write = r.U64() != 0;
      if (pte.pfn >= limit) return bad("pte");
      p->ptes[vpn] = pte;
    }
    uint64_t npins = r.Count(2);
    for (uint64_t j = 0; j < npins && r.ok(); ++j) {
      Vaddr a = r.U64();
      Pfn pfn = r.U64();
      if (pfn >= limit) return bad("pin");
      p->pins.emplace(a, pfn);
    }
    Process* raw = p.get();
    if (!processes_.emplace(p->pid, std::move(p)).second) return bad("duplicate pid");
    (*procs)[raw->pid] = raw;
  }
  if (!r.ok()) return bad("processes");
  return true;
}

}  // namespace memnode
