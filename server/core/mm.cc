// Overview: processes and their address spaces - VMAs, page tables, faults,
// copy-on-write, fork and exit - with the outcomes of Linux 2.6.33:
//   1. A write to an address with no page allocates on the home node (default
//      policy; falls back to the other nodes in id order, ENOMEM when none has
//      a free page) and gives the VMA an anon_vma.
//   2. A read fault maps the shared zero page (private) or allocates a shmem
//      page (shared); the VMA gets no anon_vma from a read.
//   3. A write to the zero page, to a KSM page (always, even when the bytes do
//      not change: 2.6.33 never reuses a KSM page) or to an anonymous page with
//      more than one mapping copies; a sole mapping is written in place.
//   4. fork copies ptes only of private VMAs that have an anon_vma (like
//      copy_page_range), write-protecting both sides; shared VMAs are
//      re-faulted by the child from the shared object.
//   5. munmap/DONTNEED/exit drop mappings; KSM counters are never touched here
//      (kernel-semantics 3.7): ksmd notices later.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/core/ksm/ksm.h"
#include "server/core/machine.h"
#include "server/core/status.h"

namespace memnode {
namespace {

constexpr uint64_t kSplitmixGamma = 0x9E3779B97F4A7C15ULL;

uint64_t SplitmixOutput(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * kSplitmixGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Byte k of a fill that starts at byte 0 of the range.
inline uint8_t PatternByte(const FillPattern& fp, uint64_t k) {
  switch (fp.kind) {
    case FillPattern::kByte: return static_cast<uint8_t>(fp.value);
    case FillPattern::kPattern64: return static_cast<uint8_t>(fp.value >> (8 * (k % 8)));
    case FillPattern::kRandom:
      return static_cast<uint8_t>(SplitmixOutput(fp.value, k / 8) >> (8 * (k % 8)));
  }
  return 0;
}

// Writes bytes [k, k+n) of the fill stream to dst.
void PatternBytes(const FillPattern& fp, uint64_t k, uint32_t n, uint8_t* dst) {
  if (fp.kind == FillPattern::kByte) {
    std::memset(dst, static_cast<int>(fp.value & 0xff), n);
    return;
  }
  uint32_t i = 0;
  while (i < n && (k + i) % 8 != 0) {
    dst[i] = PatternByte(fp, k + i);
    ++i;
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t w =
        fp.kind == FillPattern::kPattern64 ? fp.value : SplitmixOutput(fp.value, (k + i) / 8);
    std::memcpy(dst + i, &w, 8);  // little-endian host
  }
  for (; i < n; ++i) dst[i] = PatternByte(fp, k + i);
}

absl::Status NoProcess(Pid pid) {
  return MakeError(absl::StatusCode::kNotFound, "PROCESS_NOT_FOUND",
                   absl::StrCat("no live process ", pid));
}

}  // namespace

// ---------------------------------------------------------------------------
// Lookup helpers

absl::StatusOr<Process*> Machine::LiveProcess(Pid pid) {
  auto it = processes_.find(pid);
  if (it == processes_.end() || it->second->exited) return NoProcess(pid);
  return it->second.get();
}

Vma* Machine::FindVma(Process& p, Vaddr addr) {
  auto it = p.vmas.upper_bound(addr);
  if (it == p.vmas.begin()) return nullptr;
  --it;
  return addr < it->second.end ? &it->second : nullptr;
}

void Machine::SplitVma(Process& p, Vaddr at) {
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

void Machine::MergeVmas(Process& p) {
  auto it = p.vmas.begin();
  while (it != p.vmas.end()) {
    auto next = std::next(it);
    if (next == p.vmas.end()) break;
    Vma& a = it->second;
    Vma& b = next->second;
    bool compatible =
        a.end == b.start && a.prot == b.prot && a.shared == b.shared &&
        a.mergeable == b.mergeable && a.has_policy == b.has_policy &&
        (!a.has_policy || (a.policy.mode == b.policy.mode && a.policy.nodes == b.policy.nodes));
    if (compatible && a.shared)
      compatible = a.shm == b.shm && a.shm_pgoff + ((a.end - a.start) >> kPageShift) == b.shm_pgoff;
    if (!compatible) {
      it = next;
      continue;
    }
    a.end = b.end;
    a.anon_vma = a.anon_vma || b.anon_vma;
    if (b.shm) b.shm->vma_refs--;  // a already holds a reference to the same object
    p.vmas.erase(next);
    p.gen++;
  }
}

Content* Machine::ContentAt(Process& p, uint64_t vpn) {
  auto it = p.ptes.find(vpn);
  if (it != p.ptes.end()) return Frame(it->second.pfn).content;
  Vma* v = FindVma(p, vpn << kPageShift);
  if (v && v->shm) {
    auto si = v->shm->pages.find(v->shm_pgoff + (vpn - (v->start >> kPageShift)));
    if (si != v->shm->pages.end()) return Frame(si->second).content;
  }
  return contents_.zero();
}

void Machine::MapPte(Process& p, uint64_t vpn, Pfn pfn, bool write) {
  MEMNODE_CHECK(p.ptes.find(vpn) == p.ptes.end(), "mapping over a present pte");
  p.ptes[vpn] = Pte{pfn, write};
  p.gen++;
  if (pfn == zero_pfn_) return;
  PageFrame& f = Frame(pfn);
  f.mapcount++;
  f.refcount++;
}

void Machine::UnmapPte(Process& p, uint64_t vpn) {
  auto it = p.ptes.find(vpn);
  if (it == p.ptes.end()) return;
  Pfn pfn = it->second.pfn;
  p.ptes.erase(it);
  p.gen++;
  if (pfn == zero_pfn_) return;
  PageFrame& f = Frame(pfn);
  f.mapcount--;
  PutPage(pfn);
}

void Machine::ZapRange(Process& p, Vaddr start, Vaddr end) {
  auto it = p.ptes.lower_bound(start >> kPageShift);
  std::vector<uint64_t> vpns;
  for (; it != p.ptes.end() && it->first < (end >> kPageShift); ++it) vpns.push_back(it->first);
  for (uint64_t vpn : vpns) UnmapPte(p, vpn);
}

void Machine::ReleaseShm(ShmObject* shm) {
  if (--shm->vma_refs > 0) return;
  for (auto& [off, pfn] : shm->pages) {
    PageFrame& f = Frame(pfn);
    f.shm_owned = false;
    PutPage(pfn);
  }
  shm_objects_.erase(shm);
}

void Machine::UnmapRange(Process& p, Vaddr start, Vaddr end) {
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

Errno Machine::CheckAccess(Process& p, Vaddr addr, uint64_t len, uint32_t prot_needed,
                           Vaddr* fault) {
  if (len == 0) return Errno::kOk;
  if (addr + len < addr) {
    *fault = addr;
    return Errno::kEFAULT;
  }
  Vaddr a = addr;
  const Vaddr end = addr + len;
  while (a < end) {
    Vma* v = FindVma(p, a);
    if (!v) {
      *fault = a;
      return Errno::kEFAULT;
    }
    // x86: any access needs some permission; a write needs PROT_WRITE.
    if (v->prot == 0 || (prot_needed & kProtWrite && !(v->prot & kProtWrite))) {
      *fault = a;
      return Errno::kEACCES;
    }
    a = v->end;
  }
  return Errno::kOk;
}

// ---------------------------------------------------------------------------
// Faults

Errno Machine::ReadFault(Process& p, Vma& vma, uint64_t vpn) {
  if (p.ptes.count(vpn)) return Errno::kOk;
  if (!vma.shm) {
    MapPte(p, vpn, zero_pfn_, false);
    return Errno::kOk;
  }
  uint64_t off = vma.shm_pgoff + (vpn - (vma.start >> kPageShift));
  auto it = vma.shm->pages.find(off);
  Pfn pfn;
  if (it != vma.shm->pages.end()) {
    pfn = it->second;
  } else {
    pfn = AllocForFault(p, vma, vpn, PageState::kShmem, contents_.zero());
    if (pfn == kNoPfn) return Errno::kENOMEM;
    PageFrame& f = Frame(pfn);
    f.shm_owned = true;
    f.refcount = 1;
    vma.shm->pages[off] = pfn;
  }
  MapPte(p, vpn, pfn, (vma.prot & kProtWrite) != 0);
  return Errno::kOk;
}

Errno Machine::StorePage(Process& p, Vma& vma, uint64_t vpn, Content* c) {
  if (vma.shm) {
    Errno e = ReadFault(p, vma, vpn);
    if (e != Errno::kOk) {
      contents_.Unref(c);
      return e;
    }
    Pte& pte = p.ptes[vpn];
    pte.write = true;
    SetContent(Frame(pte.pfn), c);
    return Errno::kOk;
  }
  auto it = p.ptes.find(vpn);
  if (it != p.ptes.end() && it->second.pfn != zero_pfn_) {
    PageFrame& f = Frame(it->second.pfn);
    if (f.state == PageState::kAnon && f.mapcount == 1) {
      // do_wp_page reuse: the only mapping of an anonymous page.
      SetContent(f, c);
      it->second.write = true;
      return Errno::kOk;
    }
  }
  // Allocate: fresh page, copy of the zero page, COW copy, KSM COW break.
  Pfn pfn = AllocForFault(p, vma, vpn, PageState::kAnon, c);
  contents_.Unref(c);  // the allocation took its own reference
  if (pfn == kNoPfn) return Errno::kENOMEM;
  if (it != p.ptes.end()) {
    Pfn old = it->second.pfn;
    if (old != zero_pfn_ && Frame(old).state == PageState::kKsm) {
      Event e{EventKind::kCowBreak};
      e.pid = p.pid;
      e.address = vpn << kPageShift;
      e.pfn = old;
      Emit(e);
    }
    UnmapPte(p, vpn);
  }
  MapPte(p, vpn, pfn, true);
  vma.anon_vma = true;
  p.gen++;
  return Errno::kOk;
}

Errno Machine::WritePage(Process& p, Vma& vma, uint64_t vpn, uint32_t off, uint32_t n,
                         const uint8_t* src) {
  uint8_t* buf = contents_.scratch_bytes();
  if (n != kPageSize) std::memcpy(buf, ContentAt(p, vpn)->bytes, kPageSize);
  std::memcpy(buf + off, src, n);
  return StorePage(p, vma, vpn, contents_.Intern(buf));
}

Errno Machine::BreakKsmPage(Process& p, Vma& vma, uint64_t vpn) {
  auto it = p.ptes.find(vpn);
  if (it == p.ptes.end() || it->second.pfn == zero_pfn_) return Errno::kOk;
  PageFrame& f = Frame(it->second.pfn);
  if (f.state != PageState::kKsm) return Errno::kOk;
  Content* c = f.content;
  contents_.Ref(c);
  return StorePage(p, vma, vpn, c);
}

// ---------------------------------------------------------------------------
// Process lifecycle

absl::StatusOr<Pid> Machine::CreateProcess(const ProcessParams& params) {
  absl::MutexLock lock(&mu_);
  if (params.home_node >= config_.nodes)
    return MakeError(absl::StatusCode::kOutOfRange, "NODE_OUT_OF_RANGE",
                     absl::StrCat("home_node ", params.home_node, " >= nodes ", config_.nodes));
  auto p = std::make_unique<Process>();
  p->pid = next_pid_++;
  p->uid = params.uid;
  p->privileged = params.privileged;
  p->home_node = params.home_node;
  Pid pid = p->pid;
  processes_[pid] = std::move(p);
  return pid;
}

absl::StatusOr<Pid> Machine::Fork(Pid pid) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * parent, LiveProcess(pid));
  auto child = std::make_unique<Process>();
  child->pid = next_pid_++;
  child->ppid = parent->pid;
  child->uid = parent->uid;
  child->privileged = parent->privileged;
  child->home_node = parent->home_node;
  Process& c = *child;
  processes_[c.pid] = std::move(child);
  if (parent->ksm_slot) ksm_->Enter(c);  // ksm_fork: registered like its parent
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

void Machine::ExitLocked(Process& p, uint64_t* freed) {
  uint64_t before = pages_freed_;
  ksm_->Exit(p);  // __ksm_exit comes before the address space is torn down
  p.exited = true;
  for (auto& [addr, pfn] : p.pins) {
    Frame(pfn).pins--;
    PutPage(pfn);
  }
  p.pins.clear();
  ZapRange(p, 0, kTaskSize);
  for (auto& [s, v] : p.vmas)
    if (v.shm) ReleaseShm(v.shm);
  p.vmas.clear();
  *freed = pages_freed_ - before;
  Event e{EventKind::kProcessExit};
  e.pid = p.pid;
  Emit(e);
  if (!p.ksm_slot) DropMm(&p);
}

void Machine::DropMm(Process* p) {
  MEMNODE_CHECK(p->exited && !p->ksm_slot, "dropping a live or registered mm");
  processes_.erase(p->pid);
}

absl::StatusOr<uint64_t> Machine::Exit(Pid pid) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  uint64_t freed = 0;
  ExitLocked(*p, &freed);
  return freed;
}

ProcessInfo Machine::DescribeProcess(const Process& p) {
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
    vi.anon_vma = v.anon_vma;
    auto it = p.ptes.lower_bound(v.start >> kPageShift);
    auto end = p.ptes.lower_bound(v.end >> kPageShift);
    for (; it != end; ++it) vi.resident_pages++;
    pi.vmas.push_back(vi);
  }
  for (const auto& [vpn, pte] : p.ptes) {
    if (pte.pfn == zero_pfn_) {
      pi.zero_pages++;
      continue;
    }
    switch (Frame(pte.pfn).state) {
      case PageState::kKsm: pi.ksm_pages++; break;
      case PageState::kShmem: pi.shmem_pages++; break;
      default: pi.anon_pages++; break;
    }
  }
  pi.pinned_pages = p.pins.size();
  return pi;
}

absl::StatusOr<ProcessInfo> Machine::GetProcess(Pid pid) {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(pid);
  if (it == processes_.end()) return NoProcess(pid);
  return DescribeProcess(*it->second);
}

std::vector<ProcessInfo> Machine::ListProcesses(bool show_exited) {
  absl::MutexLock lock(&mu_);
  std::vector<ProcessInfo> out;
  for (const auto& [pid, p] : processes_)
    if (show_exited || !p->exited) out.push_back(DescribeProcess(*p));
  return out;
}

// ---------------------------------------------------------------------------
// Memory syscalls

absl::StatusOr<MmapResult> Machine::Mmap(Pid pid, Vaddr addr, uint64_t length, uint32_t prot,
                                         bool shared, bool fixed) {
  absl::MutexLock lock(&mu_);
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
  MergeVmas(*p);
  r.address = start;
  return r;
}

absl::StatusOr<Errno> Machine::Munmap(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  if (!PageAligned(addr) || length == 0) return Errno::kEINVAL;
  uint64_t len = (length + kPageSize - 1) & kPageMask;
  if (len == 0 || len > kTaskSize || addr > kTaskSize - len) return Errno::kEINVAL;
  UnmapRange(*p, addr, addr + len);
  return Errno::kOk;
}

absl::StatusOr<Errno> Machine::Mprotect(Pid pid, Vaddr addr, uint64_t length, uint32_t prot) {
  absl::MutexLock lock(&mu_);
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
  MergeVmas(*p);
  return err;
}

absl::StatusOr<Errno> Machine::Madvise(Pid pid, Vaddr addr, uint64_t length, Advice advice) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  // kernel-semantics 4.1: envelope.
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
        // kernel-semantics 4.2 rule 6: silently ignored for these vmas.
        if (v->mergeable || v->shared) break;
        if (!p->ksm_slot) ksm_->Enter(*p);
        SplitVma(*p, start);
        SplitVma(*p, seg_end);
        FindVma(*p, start)->mergeable = true;
        p->gen++;
        break;
      case Advice::kUnmergeable: {
        if (!v->mergeable) break;  // 4.3 rule 11
        if (v->anon_vma) {
          // 4.3 rule 12: break COW at each KSM-mapped address, in order.
          auto pt = p->ptes.lower_bound(start >> kPageShift);
          std::vector<uint64_t> vpns;
          for (; pt != p->ptes.end() && pt->first < (seg_end >> kPageShift); ++pt)
            vpns.push_back(pt->first);
          for (uint64_t vpn : vpns) {
            e = BreakKsmPage(*p, *v, vpn);
            if (e != Errno::kOk) break;
          }
          if (e == Errno::kENOMEM) e = Errno::kEAGAIN;  // 4.1 rule 5
        }
        if (e == Errno::kOk) {  // 4.3 rule 13: cleared only on success
          SplitVma(*p, start);
          SplitVma(*p, seg_end);
          FindVma(*p, start)->mergeable = false;
          p->gen++;
        }
        break;
      }
    }
    if (e != Errno::kOk) {
      MergeVmas(*p);
      return e;
    }
    start = seg_end;
    if (start >= end) break;
  }
  MergeVmas(*p);
  return unmapped;
}

absl::StatusOr<AccessResult> Machine::Write(Pid pid, Vaddr addr, const uint8_t* data,
                                            uint64_t length) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  AccessResult r;
  r.err = CheckAccess(*p, addr, length, kProtWrite, &r.fault_address);
  if (r.err != Errno::kOk) return r;
  uint64_t done = 0;
  while (done < length) {
    Vaddr a = addr + done;
    uint64_t vpn = a >> kPageShift;
    uint32_t off = static_cast<uint32_t>(a & ~kPageMask);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kPageSize - off, length - done));
    Vma* v = FindVma(*p, a);
    Errno e = WritePage(*p, *v, vpn, off, n, data + done);
    if (e != Errno::kOk) {
      r.err = e;
      r.fault_address = a;
      break;
    }
    done += n;
  }
  r.bytes_done = done;
  return r;
}

absl::StatusOr<AccessResult> Machine::Fill(Pid pid, Vaddr addr, uint64_t length,
                                           const FillPattern& pattern) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  AccessResult r;
  r.err = CheckAccess(*p, addr, length, kProtWrite, &r.fault_address);
  if (r.err != Errno::kOk) return r;
  // Full pages of a byte or 64-bit pattern all hold the same content: build
  // it once (its phase is fixed by the range's start).
  Content* same = nullptr;
  uint8_t partial[kPageSize];
  uint64_t done = 0;
  Vma* v = nullptr;
  while (done < length) {
    Vaddr a = addr + done;
    uint64_t vpn = a >> kPageShift;
    uint32_t off = static_cast<uint32_t>(a & ~kPageMask);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kPageSize - off, length - done));
    if (!v || a >= v->end) v = FindVma(*p, a);
    Errno e;
    if (n == kPageSize) {
      Content* c;
      if (pattern.kind == FillPattern::kRandom) {
        PatternBytes(pattern, done, n, contents_.scratch_bytes());
        c = contents_.Intern(contents_.scratch_bytes());
      } else {
        if (!same) {
          PatternBytes(pattern, done, n, contents_.scratch_bytes());
          same = contents_.Intern(contents_.scratch_bytes());
        }
        c = same;
        contents_.Ref(c);
      }
      e = StorePage(*p, *v, vpn, c);
    } else {
      PatternBytes(pattern, done, n, partial);
      e = WritePage(*p, *v, vpn, off, n, partial);
    }
    if (e != Errno::kOk) {
      r.err = e;
      r.fault_address = a;
      break;
    }
    done += n;
  }
  if (same) contents_.Unref(same);
  r.bytes_done = done;
  return r;
}

absl::StatusOr<ReadResult> Machine::Read(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  ReadResult r;
  r.err = CheckAccess(*p, addr, length, kProtRead, &r.fault_address);
  if (r.err != Errno::kOk) return r;
  r.data.resize(length);
  uint64_t done = 0;
  while (done < length) {
    Vaddr a = addr + done;
    uint32_t off = static_cast<uint32_t>(a & ~kPageMask);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kPageSize - off, length - done));
    std::memcpy(&r.data[done], ContentAt(*p, a >> kPageShift)->bytes + off, n);
    done += n;
  }
  return r;
}

absl::StatusOr<DigestResult> Machine::Digest(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  DigestResult r;
  r.err = CheckAccess(*p, addr, length, kProtRead, &r.fault_address);
  if (r.err != Errno::kOk) return r;
  Sha256 outer;
  uint64_t done = 0;
  while (done < length) {
    Vaddr a = addr + done;
    uint64_t vpn = a >> kPageShift;
    uint32_t off = static_cast<uint32_t>(a & ~kPageMask);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kPageSize - off, length - done));
    Content* c = ContentAt(*p, vpn);
    if (c != contents_.zero()) r.populated_pages++;
    if (n == kPageSize) {
      const Sha256::Digest& d = contents_.Digest(c);
      outer.Update(d.data(), d.size());
    } else {
      Sha256::Digest d = Sha256::Of(c->bytes + off, n);
      outer.Update(d.data(), d.size());
    }
    done += n;
  }
  r.digest = Sha256::Hex(outer.Finish());
  return r;
}

absl::StatusOr<AccessResult> Machine::Touch(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  AccessResult r;
  r.err = CheckAccess(*p, addr, length, kProtRead, &r.fault_address);
  if (r.err != Errno::kOk || length == 0) return r;
  uint64_t first = addr >> kPageShift, last = (addr + length - 1) >> kPageShift;
  for (uint64_t vpn = first; vpn <= last; ++vpn) {
    Errno e = ReadFault(*p, *FindVma(*p, vpn << kPageShift), vpn);
    if (e != Errno::kOk) {
      r.err = e;
      r.fault_address = std::max(addr, vpn << kPageShift);
      r.bytes_done = r.fault_address - addr;
      return r;
    }
  }
  r.bytes_done = length;
  return r;
}

absl::StatusOr<PinResult> Machine::Pin(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  PinResult r;
  if (!PageAligned(addr)) {
    r.err = Errno::kEINVAL;
    return r;
  }
  uint64_t pages = (length + kPageSize - 1) >> kPageShift;
  uint64_t first = addr >> kPageShift;
  for (uint64_t i = 0; i < pages; ++i) {  // all or nothing
    auto it = p->ptes.find(first + i);
    if (it == p->ptes.end() || it->second.pfn == zero_pfn_) {
      r.err = Errno::kEFAULT;
      return r;
    }
  }
  for (uint64_t i = 0; i < pages; ++i) {
    Pfn pfn = p->ptes[first + i].pfn;
    PageFrame& f = Frame(pfn);
    f.pins++;
    f.refcount++;
    p->pins.emplace((first + i) << kPageShift, pfn);
  }
  r.pages = pages;
  return r;
}

absl::StatusOr<PinResult> Machine::Unpin(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  PinResult r;
  if (!PageAligned(addr)) {
    r.err = Errno::kEINVAL;
    return r;
  }
  Vaddr end = addr + ((length + kPageSize - 1) & kPageMask);
  auto lo = p->pins.lower_bound(addr), hi = p->pins.lower_bound(end);
  if (lo == hi) {
    r.err = Errno::kEINVAL;
    return r;
  }
  for (auto it = lo; it != hi; ++it) {
    Frame(it->second).pins--;
    PutPage(it->second);
    r.pages++;
  }
  p->pins.erase(lo, hi);
  return r;
}

absl::StatusOr<std::vector<Translation>> Machine::Translate(Pid pid, Vaddr addr, uint64_t pages) {
  absl::MutexLock lock(&mu_);
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  std::vector<Translation> out;
  out.reserve(pages);
  Vaddr base = PageAlignDown(addr);
  for (uint64_t i = 0; i < pages; ++i) {
    Translation t;
    t.address = base + i * kPageSize;
    t.mapped = FindVma(*p, t.address) != nullptr;
    auto it = p->ptes.find(t.address >> kPageShift);
    if (it != p->ptes.end()) {
      t.present = true;
      t.pfn = it->second.pfn;
      t.node = BlockOf(t.pfn).node;
      t.state = Frame(t.pfn).state;
    }
    out.push_back(t);
  }
  return out;
}

}  // namespace memnode
