// Overview: the wiring of one machine's components, the hooks through which
// they reach one another, and the machine-wide views (info, frames, the
// self-check and the state digest).
//
// The state digest is order sensitive and covers, in this order: every block
// and populated frame (mem), every process's VMAs, ptes and pins (mm), then
// KSM's knobs, counters, cursor, trees and rmap items. A 2.6.33 machine's
// digest is the same as before the components were split (golden_test).
#include "server/core/kernel.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/status.h"

namespace memnode::internal {
namespace {

bool IsAnon(PageState s) { return s == PageState::kAnon || s == PageState::kKsm; }

}  // namespace

Kernel::Kernel(const MachineConfig& c, const KernelProfile& p)
    : config(c),
      profile(p),
      events(clock.now_ptr()),
      mem(c.nodes, c.blocks_per_node, c.pages_per_block),
      mm(mem, events, *this),
      ksm(*this, mem, events, p),
      ksm_notifier(ksm),
      migration(mem, mm, events, *this, p),
      notifiers(events),
      hotplug(mem, migration, notifiers, events, clock, p) {
  notifiers.Register(&ksm_notifier);
}

Kernel::~Kernel() = default;

// ---------------------------------------------------------------------------
// Machine-wide views

MachineInfo Kernel::Info() {
  MachineInfo mi;
  mi.config = config;
  mi.total_pages = mem.PfnLimit();
  mi.nodes.resize(config.nodes);
  for (NodeId n = 0; n < config.nodes; ++n) mi.nodes[n].node = n;
  for (const MemoryBlock& b : mem.blocks()) {
    NodeStats& ns = mi.nodes[b.node];
    if (b.state == BlockState::kRemoved) continue;
    ns.blocks++;
    if (b.state == BlockState::kOffline) continue;
    ns.present_pages += b.pages;
    ns.free_pages += b.free_pages;
    ns.anon_pages += b.Count(PageState::kAnon);
    ns.ksm_pages += b.Count(PageState::kKsm);
    ns.shmem_pages += b.Count(PageState::kShmem);
    ns.reserved_pages += b.Count(PageState::kReserved) + b.Count(PageState::kZero);
  }
  mi.process_count = mm.LiveProcessCount();
  mi.distinct_contents = mem.contents().distinct();
  mi.emulated_time_ns = clock.now_ns();
  mi.last_event_sequence = events.sequence();
  return mi;
}

FrameInfo Kernel::DescribeFrame(Pfn pfn) {
  FrameInfo fi;
  fi.pfn = pfn;
  MemoryBlock& b = mem.BlockOf(pfn);
  fi.node = b.node;
  fi.block = b.id;
  PageFrame* f = mem.FrameIfPopulated(pfn);
  if (b.state == BlockState::kOffline || b.state == BlockState::kRemoved) {
    fi.state = PageState::kOffline;
    return fi;
  }
  if (!f) return fi;
  fi.state = f->state;
  fi.refcount = f->refcount;
  fi.mapcount = f->mapcount;
  fi.pins = f->pins;
  if (f->content) fi.content_digest = mem.contents().DigestHex(f->content);
  if (f->state == PageState::kKsm && f->ksm_node) fi.stable_node_id = f->ksm_node->id;
  return fi;
}

CheckResult Kernel::Check() {
  CheckResult r;
  absl::btree_map<Pfn, int32_t> maps, pins;
  mm.Check(&maps, &pins, &r.violations);
  mem.Check(maps, pins, &r.violations);
  ksm.Check(&r.violations);
  Digester d;
  mem.AddToDigest(d, [](const StableNode* n) { return n->id; });
  mm.AddToDigest(d);
  ksm.AddToDigest(d);
  r.state_digest = absl::StrFormat("%016x", d.value());
  return r;
}

HostMemory Kernel::HostMemoryUsage() {
  PhysMem::HostBytes b = mem.HostMemoryUsage();
  HostMemory hm;
  hm.frame_bytes = b.frame_bytes;
  hm.block_bytes = b.block_bytes;
  hm.content_bytes = b.content_bytes;
  hm.populated_frames = b.populated_frames;
  return hm;
}

// ---------------------------------------------------------------------------
// KsmHost: the mm operations KSM performs

Pfn Kernel::MergeablePage(Process& p, Vaddr addr) {
  Vma* vma = mm.FindVma(p, addr);
  if (!vma || !vma->mergeable || !vma->anon_vma) return kNoPfn;
  Pte* pte = mm.PteAt(p, addr);
  if (!pte || pte->pfn == mem.zero_pfn() || !IsAnon(mem.Frame(pte->pfn).state)) return kNoPfn;
  return pte->pfn;
}

Pfn Kernel::MappedPage(Process& p, Vaddr addr) {
  Pte* pte = mm.PteAt(p, addr);
  return pte ? pte->pfn : kNoPfn;
}

uint64_t Kernel::AnonVmaOf(Process& p, Vaddr addr) {
  Vma* vma = mm.FindVma(p, addr);
  return vma ? vma->anon_vma : 0;
}

bool Kernel::InMergeableVma(Process& p, Vaddr addr) {
  Vma* vma = mm.FindVma(p, addr);
  return vma && vma->mergeable;
}

bool Kernel::WriteProtectPage(Process& p, Vaddr addr, Pfn page) {
  Pte* pte = mm.PteAt(p, addr);
  if (!pte || pte->pfn != page) return false;
  if (pte->write) {
    const PageFrame& f = mem.Frame(page);
    if (f.refcount != f.mapcount) return false;  // extra references
    pte->write = false;
  }
  return true;
}

void Kernel::ReplacePage(Process& p, Vaddr addr, Pfn page, Pfn kpage) {
  PageFrame& kf = mem.Frame(kpage);
  kf.mapcount++;
  kf.refcount++;
  mm.RetargetPte(p, addr >> kPageShift, kpage);
  mm.PteAt(p, addr)->write = false;
  mem.Frame(page).mapcount--;
  mem.PutPage(page);
}

void Kernel::BreakCow(Process& p, Vaddr addr) {
  Vma* vma = mm.FindVma(p, addr);
  if (!vma || !vma->mergeable || !vma->anon_vma) return;
  mm.BreakKsmPage(p, *vma, addr >> kPageShift);  // OOM: left as is
}

Errno Kernel::UnmergeMm(Process& p) {
  for (auto& [start, vma] : p.vmas) {
    if (!vma.mergeable || !vma.anon_vma) continue;
    std::vector<uint64_t> vpns;
    auto pit = p.ptes.lower_bound(vma.start >> kPageShift);
    for (; pit != p.ptes.end() && (pit->first << kPageShift) < vma.end; ++pit)
      vpns.push_back(pit->first);
    for (uint64_t vpn : vpns)
      if (mm.BreakKsmPage(p, vma, vpn) != Errno::kOk) return Errno::kENOMEM;
  }
  return Errno::kOk;
}

KsmHost::NextPage Kernel::NextMergeablePage(Process& p, Vaddr* cursor) {
  Vaddr& cur = *cursor;
  auto vit = p.vmas.upper_bound(cur);
  if (vit != p.vmas.begin() && std::prev(vit)->second.end > cur) --vit;
  for (; vit != p.vmas.end(); ++vit) {
    Vma& vma = vit->second;
    if (!vma.mergeable) continue;
    if (cur < vma.start) cur = vma.start;
    if (!vma.anon_vma) cur = vma.end;
    // Walk present ptes only: unpopulated addresses cost nothing.
    auto pit = p.ptes.lower_bound(cur >> kPageShift);
    for (; pit != p.ptes.end() && (pit->first << kPageShift) < vma.end; ++pit) {
      Pfn pfn = pit->second.pfn;
      if (pfn == mem.zero_pfn() || !IsAnon(mem.Frame(pfn).state)) continue;
      cur = pit->first << kPageShift;
      return NextPage{true, cur, pfn};
    }
    if (cur < vma.end) cur = vma.end;
  }
  return NextPage{};
}

void Kernel::DropMm(Process& p) { mm.DropMm(&p); }

// ---------------------------------------------------------------------------
// MigrateKsmHooks

void Kernel::KsmRmapWalk(const StableNode* node, std::vector<std::pair<Process*, uint64_t>>* out) {
  const Pfn kpfn = node->kpfn;
  ksm.ForEachRmapItem(node, [&](Process& item_mm, Vaddr addr, uint64_t anon_vma) {
    const uint64_t vpn = addr >> kPageShift;
    // The item's own mm first, then the forks sharing its anon_vma.
    for (int new_forks = 0; new_forks < 2; ++new_forks)
      for (auto& [pid, p] : mm.processes()) {
        if ((p.get() == &item_mm) == (new_forks == 1) || p->exited) continue;
        Vma* vma = mm.FindVma(*p, addr);
        if (!vma || !anon_vma || vma->anon_vma != anon_vma) continue;
        Pte* pte = mm.PteAt(*p, addr);
        if (pte && pte->pfn == kpfn) out->emplace_back(p.get(), vpn);
      }
  });
}

}  // namespace memnode::internal
