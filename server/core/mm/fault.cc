// Overview: page faults and copy-on-write, with the outcomes of Linux 2.6.33
// (docs/SEMANTICS.md, section "Processes and memory"):
//   1. A write to an address with no page allocates by the memory policy
//      (default: the home node, falling back to the other nodes in id order;
//      ENOMEM when none has a free page) and gives the VMA an anon_vma.
//   2. A read fault maps the shared zero page (private) or allocates a shmem
//      page (shared); the VMA gets no anon_vma from a read.
//   3. A write to the zero page, to a KSM page (always, even when the bytes do
//      not change: 2.6.33 never reuses a KSM page) or to an anonymous page with
//      more than one mapping copies; a sole mapping is written in place.
#include <cstring>

#include "server/core/migrate/mempolicy.h"
#include "server/core/mm/mm.h"
#include "server/core/status.h"

namespace memnode {

Pfn Mm::AllocForFault(Process& p, Vma& vma, uint64_t vpn, PageState state, Content* content) {
  return mem_.AllocFromOrder(PolicyOrder(mem_, p, &vma, vpn), state, content);
}

Content* Mm::ContentAt(Process& p, uint64_t vpn) {
  auto it = p.ptes.find(vpn);
  if (it != p.ptes.end()) return mem_.Frame(it->second.pfn).content;
  Vma* v = FindVma(p, vpn << kPageShift);
  if (v && v->shm) {
    auto si = v->shm->pages.find(v->shm_pgoff + (vpn - (v->start >> kPageShift)));
    if (si != v->shm->pages.end()) return mem_.Frame(si->second).content;
  }
  return mem_.contents().zero();
}

void Mm::MapPte(Process& p, uint64_t vpn, Pfn pfn, bool write) {
  MEMNODE_CHECK(p.ptes.find(vpn) == p.ptes.end(), "mapping over a present pte");
  p.ptes[vpn] = Pte{pfn, write};
  p.gen++;
  if (pfn == mem_.zero_pfn()) return;
  PageFrame& f = mem_.Frame(pfn);
  f.mapcount++;
  f.refcount++;
}

void Mm::UnmapPte(Process& p, uint64_t vpn) {
  auto it = p.ptes.find(vpn);
  if (it == p.ptes.end()) return;
  Pfn pfn = it->second.pfn;
  p.ptes.erase(it);
  p.gen++;
  if (pfn == mem_.zero_pfn()) return;
  PageFrame& f = mem_.Frame(pfn);
  f.mapcount--;
  mem_.PutPage(pfn);
}

void Mm::RetargetPte(Process& p, uint64_t vpn, Pfn pfn) {
  p.ptes[vpn].pfn = pfn;
  p.gen++;
}

Errno Mm::ReadFault(Process& p, Vma& vma, uint64_t vpn) {
  if (p.ptes.count(vpn)) return Errno::kOk;
  if (!vma.shm) {
    MapPte(p, vpn, mem_.zero_pfn(), false);
    return Errno::kOk;
  }
  uint64_t off = vma.shm_pgoff + (vpn - (vma.start >> kPageShift));
  auto it = vma.shm->pages.find(off);
  Pfn pfn;
  if (it != vma.shm->pages.end()) {
    pfn = it->second;
  } else {
    pfn = AllocForFault(p, vma, vpn, PageState::kShmem, mem_.contents().zero());
    if (pfn == kNoPfn) return Errno::kENOMEM;
    PageFrame& f = mem_.Frame(pfn);
    f.shm_owned = true;
    f.refcount = 1;
    vma.shm->pages[off] = pfn;
  }
  MapPte(p, vpn, pfn, (vma.prot & kProtWrite) != 0);
  return Errno::kOk;
}

Errno Mm::StorePage(Process& p, Vma& vma, uint64_t vpn, Content* c) {
  ContentStore& contents = mem_.contents();
  if (vma.shm) {
    Errno e = ReadFault(p, vma, vpn);
    if (e != Errno::kOk) {
      contents.Unref(c);
      return e;
    }
    Pte& pte = p.ptes[vpn];
    pte.write = true;
    mem_.SetContent(mem_.Frame(pte.pfn), c);
    return Errno::kOk;
  }
  auto it = p.ptes.find(vpn);
  if (it != p.ptes.end() && it->second.pfn != mem_.zero_pfn()) {
    PageFrame& f = mem_.Frame(it->second.pfn);
    if (f.state == PageState::kAnon && f.mapcount == 1) {
      // do_wp_page reuse: the only mapping of an anonymous page.
      mem_.SetContent(f, c);
      it->second.write = true;
      return Errno::kOk;
    }
  }
  // Allocate: fresh page, copy of the zero page, COW copy, KSM COW break.
  Pfn pfn = AllocForFault(p, vma, vpn, PageState::kAnon, c);
  contents.Unref(c);  // the allocation took its own reference
  if (pfn == kNoPfn) return Errno::kENOMEM;
  if (it != p.ptes.end()) {
    Pfn old = it->second.pfn;
    if (old != mem_.zero_pfn() && mem_.Frame(old).state == PageState::kKsm) {
      Event e{EventKind::kCowBreak};
      e.pid = p.pid;
      e.address = vpn << kPageShift;
      e.pfn = old;
      events_.Emit(e);
    }
    UnmapPte(p, vpn);
  }
  MapPte(p, vpn, pfn, true);
  if (!vma.anon_vma) vma.anon_vma = next_anon_vma_++;  // anon_vma_prepare
  p.gen++;
  return Errno::kOk;
}

Errno Mm::WritePage(Process& p, Vma& vma, uint64_t vpn, uint32_t off, uint32_t n,
                    const uint8_t* src) {
  ContentStore& contents = mem_.contents();
  uint8_t* buf = contents.scratch_bytes();
  if (n != kPageSize) std::memcpy(buf, ContentAt(p, vpn)->bytes, kPageSize);
  std::memcpy(buf + off, src, n);
  return StorePage(p, vma, vpn, contents.Intern(buf));
}

Errno Mm::BreakKsmPage(Process& p, Vma& vma, uint64_t vpn) {
  auto it = p.ptes.find(vpn);
  if (it == p.ptes.end() || it->second.pfn == mem_.zero_pfn()) return Errno::kOk;
  PageFrame& f = mem_.Frame(it->second.pfn);
  if (f.state != PageState::kKsm) return Errno::kOk;
  Content* c = f.content;
  mem_.contents().Ref(c);
  return StorePage(p, vma, vpn, c);
}

}  // namespace memnode
