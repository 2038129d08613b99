// What KSM needs from the rest of the machine, as a narrow interface: page
// lookups in an mm, the pte operations of a merge, COW breaks, the scan's
// page-table walk and the release of an exited mm. KSM never touches VMAs or
// page tables directly; page frames (struct page) it reads and promotes
// through PhysMem, as mm/ksm.c does with struct page.
// Linux analogue: the mm helpers mm/ksm.c calls (find_mergeable_vma,
// follow_page, write_protect_page/replace_page's pte work, break_ksm,
// mmdrop).
// Thread safety: called under the machine's lock only.
#ifndef MEMNODE_SERVER_CORE_KSM_KSM_HOST_H_
#define MEMNODE_SERVER_CORE_KSM_KSM_HOST_H_

#include "server/core/types.h"

namespace memnode {

struct Process;

class KsmHost {
 public:
  virtual ~KsmHost() = default;

  // get_mergeable_page: the anonymous page mapped at `addr` of a VM_MERGEABLE
  // vma with an anon_vma (not the zero page), else kNoPfn.
  virtual Pfn MergeablePage(Process& mm, Vaddr addr) = 0;
  // The frame a pte at `addr` maps (any kind), or kNoPfn.
  virtual Pfn MappedPage(Process& mm, Vaddr addr) = 0;
  // The anon_vma identity of the vma at `addr` (0: none).
  virtual uint64_t AnonVmaOf(Process& mm, Vaddr addr) = 0;
  // Whether `addr` lies in a VM_MERGEABLE vma.
  virtual bool InMergeableVma(Process& mm, Vaddr addr) = 0;
  // write_protect_page: false unless the pte at `addr` maps `page`; a
  // writable pte is made read-only only when no extra reference is held
  // (the profile decides whether a dirty read-only pte is checked too).
  virtual bool WriteProtectPage(Process& mm, Vaddr addr, Pfn page) = 0;
  // replace_page: `addr` maps `kpage` read-only instead of `page`.
  virtual void ReplacePage(Process& mm, Vaddr addr, Pfn page, Pfn kpage) = 0;
  // break_cow: a write fault at `addr` if it lies in a mergeable vma with an
  // anon_vma and maps a KSM page (out of memory: left as is).
  virtual void BreakCow(Process& mm, Vaddr addr) = 0;
  // unmerge_ksm_pages over every mergeable vma of `mm`: kENOMEM on failure.
  virtual Errno UnmergeMm(Process& mm) = 0;
  // The scan's walk (scan_get_next_rmap_item): from *cursor, the next
  // present anonymous page of a mergeable vma with an anon_vma. On return
  // *cursor is that page's address, or (none found) the end of the last
  // mergeable vma passed, unchanged when there was none.
  struct NextPage {
    bool found = false;
    Vaddr addr = 0;
    Pfn pfn = kNoPfn;
  };
  virtual NextPage NextMergeablePage(Process& mm, Vaddr* cursor) = 0;
  // mmdrop: KSM released the last reference to an exited mm.
  virtual void DropMm(Process& mm) = 0;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_KSM_KSM_HOST_H_
