// Overview: the scanner and merge logic of KSM, step for step as Linux 2.6.33
// (docs/SEMANTICS.md, rules cited by id: "MERGE-4" etc.).
//
// A visit (ksm_do_scan -> cmp_and_merge_page):
//   a. take the item out of whatever tree it is in (counters move here);
//   b. search the stable tree first; a stale node touched on the way is
//      pruned and the search gives up for this visit;
//   c. equal content found -> merge into that KSM page, append, done (no
//      checksum on this path: a page equal to a KSM page merges on its first
//      visit);
//   d. else the checksum: changed -> remember it, done ("volatile");
//   e. else search the unstable tree by current contents: an unreadable tree
//      page abandons the search (item not inserted); not found -> insert;
//   f. found -> promote the current (later-visited) page to KSM, merge the
//      tree page into it, create the stable node with kpfn = current pfn.
//
// Invariants (Check()):
//   1. pages_shared == nodes with a non-empty list; pages_sharing == sum of
//      (list length - 1); pages_unshared == items flagged unstable;
//      rmap_items == items allocated.
//   2. Every stable item is on its node's list and its node is in the tree.
//   3. A valid node's kpfn holds a KSM frame that points back at the node;
//      every KSM frame with a node points at a node in the tree whose kpfn
//      is that frame (a KSM frame may lack a node, see Check()).
//   4. Consecutive valid nodes of the stable tree are in strictly ascending
//      content order (KSM pages are write-protected).
//   5. An unstable item is at most one pass old (age 0 or 1); age 0 items are
//      exactly the unstable tree's members.
#include "server/core/ksm/ksm.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "server/core/mm/process.h"
#include "server/core/names.h"
#include "server/core/profile/profile.h"
#include "server/core/status.h"

namespace memnode {
namespace {

template <typename T>
T* Container(RbNode* n);
template <>
StableNode* Container<StableNode>(RbNode* n) {
  return reinterpret_cast<StableNode*>(reinterpret_cast<char*>(n) - offsetof(StableNode, rb));
}
template <>
RmapItem* Container<RmapItem>(RbNode* n) {
  return reinterpret_cast<RmapItem*>(reinterpret_cast<char*>(n) - offsetof(RmapItem, rb));
}

bool IsAnon(PageState s) { return s == PageState::kAnon || s == PageState::kKsm; }

}  // namespace

Ksm::Ksm(KsmHost& host, PhysMem& mem, EventSink& events, const KernelProfile& profile)
    : host_(host), mem_(mem), events_(events), profile_(profile) {
  head_.prev = head_.next = &head_;
  cur_slot_ = &head_;
}

Ksm::~Ksm() {
  // Free everything without touching the machine (it is being destroyed).
  for (MmSlot* s = head_.next; s != &head_;) {
    MmSlot* next = s->next;
    for (auto& [a, item] : s->items) delete item;
    s->mm->ksm_slot = nullptr;
    delete s;
    s = next;
  }
  // Every node is in the kpfn index (even one a failed restore never linked).
  for (auto& [kpfn, node] : by_kpfn_) delete node;
}

// ---------------------------------------------------------------------------
// Registration

void Ksm::Enter(Process& mm) {
  MmSlot* slot = new MmSlot;
  slot->mm = &mm;
  // Just behind the cursor: before cur_slot_ in the circular list (DS-11).
  slot->next = cur_slot_;
  slot->prev = cur_slot_->prev;
  cur_slot_->prev->next = slot;
  cur_slot_->prev = slot;
  mm.ksm_slot = slot;
  mm_slots_++;
}

void Ksm::Exit(Process& mm) {
  MmSlot* slot = mm.ksm_slot;
  if (!slot || slot == cur_slot_) return;
  // Unlink, then either free (no items) or re-add right after the cursor.
  slot->prev->next = slot->next;
  slot->next->prev = slot->prev;
  if (slot->items.empty()) {
    mm.ksm_slot = nullptr;
    mm_slots_--;
    delete slot;
    return;
  }
  slot->prev = cur_slot_;
  slot->next = cur_slot_->next;
  cur_slot_->next->prev = slot;
  cur_slot_->next = slot;
}

void Ksm::UnregisterSlot(MmSlot* slot) {
  slot->prev->next = slot->next;
  slot->next->prev = slot->prev;
  Process* mm = slot->mm;
  mm->ksm_slot = nullptr;
  mm_slots_--;
  delete slot;
  if (mm->exited) host_.DropMm(*mm);  // mmdrop: the last holder of an exited mm
}

// ---------------------------------------------------------------------------
// Trees and nodes

bool Ksm::NodeValid(const StableNode* node) const {
  PageFrame* f = mem_.FrameIfPopulated(node->kpfn);
  if (!f) return false;
  if (mem_.BlockOf(node->kpfn).state == BlockState::kOffline) return false;
  return f->state == PageState::kKsm && f->ksm_node == node && f->refcount > 0;
}

Pfn Ksm::GetKsmPage(StableNode* node) {
  if (NodeValid(node)) return node->kpfn;
  RemoveNode(node, unmerging_ ? PruneReason::kUnmerge : PruneReason::kStale);
  return kNoPfn;
}

void Ksm::RemoveNode(StableNode* node, PruneReason reason) {
  uint64_t stripped = 0;
  // PRUNE-2: every item still listed loses its flag; counters follow.
  for (RmapItem* item = node->hlist; item;) {
    RmapItem* next = item->hnext;
    if (next)
      pages_sharing_--;
    else
      pages_shared_--;
    item->state = RmapState::kNone;
    item->head = nullptr;
    item->hnext = nullptr;
    item->hpprev = nullptr;
    item = next;
    stripped++;
  }
  PageFrame* f = mem_.FrameIfPopulated(node->kpfn);
  if (f && f->ksm_node == node) f->ksm_node = nullptr;  // never dangle
  for (auto it = by_kpfn_.lower_bound(node->kpfn); it != by_kpfn_.end() && it->first == node->kpfn;
       ++it)
    if (it->second == node) {
      by_kpfn_.erase(it);
      break;
    }
  stable_.Erase(&node->rb);
  stable_nodes_--;
  Event e{EventKind::kPrune};
  e.pfn = node->kpfn;
  e.node_id = node->id;
  e.reason = reason;
  e.value = stripped;
  events_.Emit(e);
  delete node;
}

void Ksm::RemoveFromTree(RmapItem* item) {
  if (item->state == RmapState::kStable) {
    StableNode* node = item->head;
    if (GetKsmPage(node) == kNoPfn) return;  // pruned: item already flagless
    *item->hpprev = item->hnext;
    if (item->hnext) item->hnext->hpprev = item->hpprev;
    item->hnext = nullptr;
    item->hpprev = nullptr;
    item->head = nullptr;
    if (node->hlist)
      pages_sharing_--;
    else
      pages_shared_--;
    item->state = RmapState::kNone;
  } else if (item->state == RmapState::kUnstable) {
    uint8_t age = static_cast<uint8_t>(seqnr_ - item->seqnr);
    MEMNODE_CHECK(age <= 1, "unstable rmap item older than one pass");
    // The kernel erases only age-0 items; an age-1 item can still be linked
    // between a pass end and the next pass start (the old tree is about to be
    // forgotten). Unlinking it too changes nothing observable and keeps the
    // old tree listable without dangling items.
    if (item->in_tree) {
      unstable_.Erase(&item->rb);
      item->in_tree = false;
    }
    pages_unshared_--;
    item->state = RmapState::kNone;
  }
}

Pfn Ksm::StableTreeSearch(Pfn page) {
  PageFrame& pf = mem_.Frame(page);
  if (pf.state == PageState::kKsm && pf.ksm_node) return page;  // KSM page forked
  RbNode* n = stable_.root();
  while (n) {
    StableNode* node = Container<StableNode>(n);
    Pfn tree_page = GetKsmPage(node);
    if (tree_page == kNoPfn) return kNoPfn;  // [seed] gives up after pruning
    int cmp = CompareContent(pf.content, mem_.Frame(tree_page).content);
    if (cmp < 0)
      n = n->left;
    else if (cmp > 0)
      n = n->right;
    else
      return tree_page;
  }
  return kNoPfn;
}

StableNode* Ksm::StableTreeInsert(Pfn kpage) {
  Content* c = mem_.Frame(kpage).content;
  RbNode** link = stable_.root_link();
  RbNode* parent = nullptr;
  while (*link) {
    StableNode* node = Container<StableNode>(*link);
    Pfn tree_page = GetKsmPage(node);
    if (tree_page == kNoPfn) return nullptr;
    int cmp = CompareContent(c, mem_.Frame(tree_page).content);
    parent = *link;
    if (cmp < 0)
      link = &parent->left;
    else if (cmp > 0)
      link = &parent->right;
    else
      return nullptr;  // an identical node exists (MERGE-8)
  }
  StableNode* node = new StableNode;
  node->id = next_node_id_++;
  RbTree::Link(&node->rb, parent, link);
  stable_.InsertColor(&node->rb);
  node->kpfn = kpage;
  mem_.Frame(kpage).ksm_node = node;
  by_kpfn_.emplace(kpage, node);
  stable_nodes_++;
  return node;
}

Pfn Ksm::GetMergeablePage(RmapItem* item) {
  Process* mm = item->slot->mm;
  if (mm->exited) return kNoPfn;
  // The answer depends only on the mm's VMAs and ptes (and the frame's
  // anon-ness, which cannot change while this pte maps it): reuse it while
  // the mm is unchanged.
  if (use_lookup_cache_ && item->cache_gen == mm->gen) return item->cache_pfn;
  Pfn result = host_.MergeablePage(*mm, item->address);
  item->cache_gen = mm->gen;
  item->cache_pfn = result;
  return result;
}

RmapItem* Ksm::UnstableTreeSearchInsert(RmapItem* item, Pfn page, Pfn* tree_page_out) {
  Content* c = mem_.Frame(page).content;
  RbNode** link = unstable_.root_link();
  RbNode* parent = nullptr;
  while (*link) {
    RmapItem* tree_item = Container<RmapItem>(*link);
    Pfn tree_page = GetMergeablePage(tree_item);
    if (tree_page == kNoPfn) return nullptr;  // abandoned: not inserted
    if (tree_page == page) return nullptr;    // the same (forked) page
    int cmp = CompareContent(c, mem_.Frame(tree_page).content);
    parent = *link;
    if (cmp < 0) {
      link = &parent->left;
    } else if (cmp > 0) {
      link = &parent->right;
    } else {
      *tree_page_out = tree_page;
      return tree_item;
    }
  }
  item->state = RmapState::kUnstable;
  item->seqnr = static_cast<uint8_t>(seqnr_);
  item->in_tree = true;
  RbTree::Link(&item->rb, parent, link);
  unstable_.InsertColor(&item->rb);
  pages_unshared_++;
  return nullptr;
}

void Ksm::StableTreeAppend(RmapItem* item, StableNode* node, bool new_node) {
  item->head = node;
  item->state = RmapState::kStable;
  item->hnext = node->hlist;
  if (node->hlist) node->hlist->hpprev = &item->hnext;
  item->hpprev = &node->hlist;
  node->hlist = item;
  if (item->hnext)
    pages_sharing_++;
  else
    pages_shared_++;
  Event e{EventKind::kMerge};
  e.pid = item->slot->mm->pid;
  e.address = item->address;
  e.pfn = node->kpfn;
  e.node_id = node->id;
  e.new_node = new_node;
  events_.Emit(e);
}

// ---------------------------------------------------------------------------
// Merging (MERGE-10)

bool Ksm::TryMergeOnePage(Process& mm, Vaddr addr, Pfn page, Pfn kpage) {
  if (page == kpage) return true;  // KSM page forked
  if (!host_.InMergeableVma(mm, addr)) return false;
  PageFrame& f = mem_.Frame(page);
  if (!IsAnon(f.state)) return false;
  // write_protect_page finds the pte through page_address_in_vma, which
  // compares the vma's anon_vma with page_anon_vma(page): NULL for a KSM
  // page, so a KSM page (other than kpage itself) never merges again - not
  // even one left without a stable node (docs/SEMANTICS.md).
  if (f.state == PageState::kKsm) return false;
  // The page must still be mapped here; a writable pte is write-protected
  // only if no extra reference is held (pins).
  if (!host_.WriteProtectPage(mm, addr, page)) return false;
  if (kpage == kNoPfn) {
    // Promote in place: PageAnon -> PageKsm with no node yet.
    mem_.SetState(page, f, PageState::kKsm);
    f.ksm_node = nullptr;
    return true;
  }
  PageFrame& kf = mem_.Frame(kpage);
  if (CompareContent(f.content, kf.content) != 0) return false;
  host_.ReplacePage(mm, addr, page, kpage);
  return true;
}

bool Ksm::TryMergeWithKsmPage(RmapItem* item, Pfn page, Pfn kpage) {
  Process* mm = item->slot->mm;
  if (mm->exited) return false;
  if (!TryMergeOnePage(*mm, item->address, page, kpage)) return false;
  item->anon_vma = host_.AnonVmaOf(*mm, item->address);  // rmap_item->anon_vma
  return true;
}

void Ksm::BreakCow(RmapItem* item) {
  Process* mm = item->slot->mm;
  if (mm->exited) return;
  host_.BreakCow(*mm, item->address);
}

Pfn Ksm::TryMergeTwoPages(RmapItem* item, Pfn page, RmapItem* tree_item, Pfn tree_page) {
  // linux-2.6.33 profile: no max_kernel_pages gate (SEMANTICS CH-1).
  if (!TryMergeWithKsmPage(item, page, kNoPfn)) return kNoPfn;
  if (!TryMergeWithKsmPage(tree_item, tree_page, page)) {
    BreakCow(item);  // a KSM page with a single pte: undo
    return kNoPfn;
  }
  return page;
}

void Ksm::CmpAndMergePage(Pfn page, RmapItem* item) {
  RemoveFromTree(item);  // MERGE-2
  // MERGE-3, MERGE-4: stable tree first.
  Pfn kpage = StableTreeSearch(page);
  if (kpage != kNoPfn) {
    visit_kind_ = VisitKind::kMerge;
    if (TryMergeWithKsmPage(item, page, kpage)) {
      StableNode* node = mem_.Frame(kpage).ksm_node;
      StableTreeAppend(item, node, false);
    }
    return;
  }
  // MERGE-5: volatility.
  uint32_t checksum = mem_.Frame(page).content->Checksum();
  if (item->oldchecksum != checksum) {
    item->oldchecksum = checksum;
    visit_kind_ = VisitKind::kChecksum;
    return;
  }
  // MERGE-6, MERGE-7: unstable tree.
  Pfn tree_page = kNoPfn;
  visit_kind_ = VisitKind::kUnique;
  RmapItem* tree_item = UnstableTreeSearchInsert(item, page, &tree_page);
  if (!tree_item) return;
  visit_kind_ = VisitKind::kMerge;
  kpage = TryMergeTwoPages(item, page, tree_item, tree_page);
  if (kpage == kNoPfn) return;
  RemoveFromTree(tree_item);
  StableNode* node = StableTreeInsert(kpage);
  if (node) {
    StableTreeAppend(tree_item, node, true);
    StableTreeAppend(item, node, false);
  } else {
    BreakCow(tree_item);
    BreakCow(item);
  }
}

// ---------------------------------------------------------------------------
// The scanner (SCAN-4..SCAN-8)

void Ksm::FreeItem(RmapItem* item) {
  RemoveFromTree(item);
  rmap_items_--;
  delete item;
}

void Ksm::RemoveItemsBelow(MmSlot* slot, Vaddr from, Vaddr to) {
  auto it = slot->items.lower_bound(from);
  while (it != slot->items.end() && it->first < to) {
    RmapItem* item = it->second;
    it = slot->items.erase(it);
    FreeItem(item);
  }
}

RmapItem* Ksm::NextRmapItem(MmSlot* slot, Vaddr addr) {
  // Items between the cursor and addr no longer match a mergeable page
  // (get_next_rmap_item); one search finds both those and the item at addr.
  auto it = slot->items.lower_bound(rmap_floor_);
  while (it != slot->items.end() && it->first < addr) {
    RmapItem* stale = it->second;
    it = slot->items.erase(it);
    FreeItem(stale);
  }
  rmap_floor_ = addr + kPageSize;
  if (it != slot->items.end() && it->first == addr) return it->second;
  RmapItem* item = new RmapItem;  // zeroed: oldchecksum 0
  item->slot = slot;
  item->address = addr;
  slot->items.emplace_hint(it, addr, item);
  rmap_items_++;
  return item;
}

void Ksm::ResetUnstable() {
  for (RbNode* n = unstable_.First(); n; n = RbTree::Next(n))
    Container<RmapItem>(n)->in_tree = false;
  unstable_.Reset();
}

RmapItem* Ksm::ScanNext(Pfn* page) {
  if (!HasSlots()) return nullptr;
  MmSlot* slot = cur_slot_;
  if (slot == &head_) {
    ResetUnstable();  // SCAN-4
    slot = head_.next;
    cur_slot_ = slot;
    cur_address_ = 0;
    rmap_floor_ = 0;
  }
  for (;;) {
    Process* mm = slot->mm;
    if (!mm->exited) {
      // Present pages only: unpopulated addresses cost nothing.
      KsmHost::NextPage next = host_.NextMergeablePage(*mm, &cur_address_);
      if (next.found) {
        RmapItem* item = NextRmapItem(slot, cur_address_);
        cur_address_ += kPageSize;
        *page = next.pfn;
        return item;
      }
    }
    if (mm->exited) {
      cur_address_ = 0;
      rmap_floor_ = 0;
    }
    // Trailing items: above the last page found (SCAN-7).
    RemoveItemsBelow(slot, rmap_floor_, ~Vaddr{0});
    cur_slot_ = slot->next;
    if (cur_address_ == 0) UnregisterSlot(slot);  // no mergeable vma (or exiting)
    slot = cur_slot_;
    if (slot == &head_) break;
    cur_address_ = 0;
    rmap_floor_ = 0;
  }
  seqnr_++;  // SCAN-8
  Event e{EventKind::kPassEnd};
  e.value = seqnr_;
  events_.Emit(e);
  return nullptr;
}

uint64_t Ksm::DoScan(uint64_t visits) {
  uint64_t done = 0;
  while (done < visits) {
    Pfn page = kNoPfn;
    RmapItem* item = ScanNext(&page);
    if (!item) break;  // end of a pass (seqnr_ grew) or nothing registered
    done++;
    visits_total_++;
    PageFrame& f = mem_.Frame(page);
    // MERGE-1: an already-stable KSM page costs a visit and nothing else.
    visit_kind_ = VisitKind::kRevisit;
    if (f.state != PageState::kKsm || item->state != RmapState::kStable)
      CmpAndMergePage(page, item);
    ksmd_cpu_ns_ += KsmdVisitCostNs(visit_kind_);
  }
  return done;
}

KsmStepResult Ksm::StepVisits(uint64_t visits) {
  KsmStepResult r;
  uint64_t since_pass = 1;  // visits since the last pass end (unknown: assume some)
  while (r.visits < visits && HasSlots()) {
    uint64_t before_seq = seqnr_;
    uint64_t n = DoScan(visits - r.visits);
    r.visits += n;
    since_pass += n;
    if (seqnr_ != before_seq) {
      r.passes += seqnr_ - before_seq;
      if (since_pass == 0) break;  // a whole pass without a visit
      since_pass = 0;
    }
    if (n == 0 && seqnr_ == before_seq) break;
  }
  return r;
}

KsmStepResult Ksm::StepPasses(uint64_t passes, uint64_t max_visits) {
  KsmStepResult r;
  const uint64_t target = seqnr_ + passes;
  while (seqnr_ < target && r.visits < max_visits && HasSlots()) {
    uint64_t before_seq = seqnr_;
    uint64_t n = DoScan(std::min<uint64_t>(max_visits - r.visits, 1u << 20));
    r.visits += n;
    r.passes += seqnr_ - before_seq;
    if (n == 0 && seqnr_ == before_seq) break;
  }
  return r;
}

// ---------------------------------------------------------------------------
// run (KNOB-4, KNOB-5) and run=2 (KNOB-7)

Errno Ksm::WriteRun(uint64_t value) {
  if (value > 2) return Errno::kEINVAL;
  if (run_ == value) return Errno::kOk;  // equal: no-op
  run_ = static_cast<uint32_t>(value);
  if (value == 2) {
    Errno e = UnmergeAll();
    if (e != Errno::kOk) {
      run_ = 0;
      return e;
    }
  }
  return Errno::kOk;
}

Errno Ksm::UnmergeAll() {
  unmerging_ = true;
  cur_slot_ = head_.next;
  for (MmSlot* slot = cur_slot_; slot != &head_; slot = cur_slot_) {
    Process* mm = slot->mm;
    if (!mm->exited && host_.UnmergeMm(*mm) != Errno::kOk) {
      cur_slot_ = &head_;
      unmerging_ = false;
      return Errno::kENOMEM;
    }
    RemoveItemsBelow(slot, 0, ~Vaddr{0});
    cur_slot_ = slot->next;
    if (mm->exited) UnregisterSlot(slot);
  }
  seqnr_ = 0;
  unmerging_ = false;
  return Errno::kOk;
}

// ---------------------------------------------------------------------------
// Hot-remove support (HP-14..HP-19)

void Ksm::ForEachRmapItem(
    const StableNode* node,
    const std::function<void(Process& mm, Vaddr addr, uint64_t anon_vma)>& fn) {
  for (RmapItem* item = node->hlist; item; item = item->hnext)
    fn(*item->slot->mm, item->address, item->anon_vma);
}

void Ksm::MigratedNode(StableNode* node, Pfn new_kpfn) {
  for (auto it = by_kpfn_.lower_bound(node->kpfn); it != by_kpfn_.end() && it->first == node->kpfn;
       ++it)
    if (it->second == node) {
      by_kpfn_.erase(it);
      break;
    }
  node->kpfn = new_kpfn;
  by_kpfn_.emplace(new_kpfn, node);
}

namespace {

// Path from the root: false = left, true = right.
std::vector<bool> PathOf(const RbNode* n) {
  std::vector<bool> path;
  while (n->parent) {
    path.push_back(n->parent->right == n);
    n = n->parent;
  }
  std::reverse(path.begin(), path.end());
  return path;
}

// In-order comparison of two nodes of the same tree by their paths.
bool InOrderLess(const std::vector<bool>& a, const std::vector<bool>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  if (i == a.size() && i == b.size()) return false;
  if (i == a.size()) return b[i];   // a is an ancestor: a < b iff b went right
  if (i == b.size()) return !a[i];  // b is an ancestor: a < b iff a went left
  return !a[i];                     // diverged: the left side is smaller
}

}  // namespace

uint64_t Ksm::PruneRange(Pfn start, Pfn end) {
  // The seed removes, each time, the first node in tree order within the
  // range; removing one does not reorder the others, so the nodes can be
  // collected in tree order first and removed in that order.
  auto lo = by_kpfn_.lower_bound(start), hi = by_kpfn_.lower_bound(end);
  const size_t k = static_cast<size_t>(std::distance(lo, hi));
  std::vector<StableNode*> order;
  order.reserve(k);
  if (k * 32 >= stable_nodes_) {
    // Many of the tree's nodes: one in-order walk is cheaper than sorting.
    for (RbNode* n = stable_.First(); n; n = RbTree::Next(n)) {
      StableNode* node = Container<StableNode>(n);
      if (node->kpfn >= start && node->kpfn < end) order.push_back(node);
    }
  } else {
    // Few: sort them by their in-order position (root paths), O(k log k).
    std::vector<std::pair<std::vector<bool>, StableNode*>> hits;
    hits.reserve(k);
    for (auto it = lo; it != hi; ++it) hits.emplace_back(PathOf(&it->second->rb), it->second);
    std::sort(hits.begin(), hits.end(),
              [](const auto& x, const auto& y) { return InOrderLess(x.first, y.first); });
    for (auto& [path, node] : hits) order.push_back(node);
  }
  for (StableNode* node : order) RemoveNode(node, PruneReason::kOffline);
  return order.size();
}

uint64_t Ksm::PruneRangeByRescan(Pfn start, Pfn end) {
  uint64_t pruned = 0;
  for (;;) {
    StableNode* found = nullptr;
    for (RbNode* n = stable_.First(); n; n = RbTree::Next(n)) {
      StableNode* node = Container<StableNode>(n);
      if (node->kpfn >= start && node->kpfn < end) {
        found = node;
        break;
      }
    }
    if (!found) return pruned;
    RemoveNode(found, PruneReason::kOffline);
    pruned++;
  }
}

// ---------------------------------------------------------------------------
// Inspection

KsmInfo Ksm::Info() const {
  KsmInfo i;
  i.run = run_;
  i.pages_to_scan = pages_to_scan_;
  i.sleep_millisecs = sleep_millisecs_;
  i.pages_shared = pages_shared_;
  i.pages_sharing = pages_sharing_;
  i.pages_unshared = pages_unshared_;
  int64_t vol = int64_t(rmap_items_) - int64_t(pages_shared_) - int64_t(pages_sharing_) -
                int64_t(pages_unshared_);
  i.pages_volatile = vol < 0 ? 0 : uint64_t(vol);  // CNT-4: clamped
  i.full_scans = seqnr_;
  i.rmap_items = rmap_items_;
  i.stable_nodes = stable_nodes_;
  i.mm_slots = mm_slots_;
  i.cursor_pid = cur_slot_ == &head_ ? Pid(0) : cur_slot_->mm->pid;
  i.cursor_address = cur_slot_ == &head_ ? Vaddr(0) : cur_address_;
  i.visits_total = visits_total_;
  i.ksmd_cpu_ns = ksmd_cpu_ns_;
  i.locked_by_offline = locked_;
  return i;
}

std::vector<StableNodeInfo> Ksm::StableNodes() {
  std::vector<StableNodeInfo> out;
  for (RbNode* n = stable_.First(); n; n = RbTree::Next(n)) {
    StableNode* node = Container<StableNode>(n);
    StableNodeInfo si;
    si.id = node->id;
    si.kpfn = node->kpfn;
    si.node = mem_.BlockOf(node->kpfn).node;
    si.stale = !NodeValid(node);
    if (!si.stale) {
      PageFrame& f = mem_.Frame(node->kpfn);
      si.content_digest = mem_.contents().DigestHex(f.content);
      si.mapcount = f.mapcount;
    }
    for (RmapItem* item = node->hlist; item; item = item->hnext)
      si.mappings.emplace_back(item->slot->mm->pid, item->address);
    si.depth = RbTree::Depth(n);
    out.push_back(std::move(si));
  }
  return out;
}

RmapItemInfo Ksm::DescribeItem(const RmapItem* item) {
  RmapItemInfo ri;
  ri.pid = item->slot->mm->pid;
  ri.address = item->address;
  ri.state = item->state;
  ri.oldchecksum = item->oldchecksum;
  if (item->state == RmapState::kUnstable) {
    ri.seqnr = item->seqnr;
    // Between a pass end and the next pass start the last tree is still
    // whole; "previous pass" means the item is in no tree any more.
    ri.previous_pass = !item->in_tree;
    if (item->in_tree) ri.depth = RbTree::Depth(&item->rb);
  }
  if (item->state == RmapState::kStable && item->head) ri.stable_node_id = item->head->id;
  Pfn pfn = host_.MappedPage(*item->slot->mm, item->address);
  if (pfn != kNoPfn) ri.content_digest = mem_.contents().DigestHex(mem_.Frame(pfn).content);
  return ri;
}

std::vector<RmapItemInfo> Ksm::UnstableItems() {
  std::vector<RmapItemInfo> out;
  for (RbNode* n = unstable_.First(); n; n = RbTree::Next(n))
    out.push_back(DescribeItem(Container<RmapItem>(n)));
  // Items still flagged unstable from the previous pass are in no tree but
  // count in pages_unshared (SCAN-9): listed after, in mm-list order.
  for (MmSlot* s = head_.next; s != &head_; s = s->next)
    for (const auto& [a, item] : s->items)
      if (item->state == RmapState::kUnstable && !item->in_tree) out.push_back(DescribeItem(item));
  return out;
}

std::vector<RmapItemInfo> Ksm::RmapItems(const Process& mm) {
  std::vector<RmapItemInfo> out;
  if (!mm.ksm_slot) return out;
  for (const auto& [a, item] : mm.ksm_slot->items) out.push_back(DescribeItem(item));
  return out;
}

void Ksm::Check(std::vector<std::string>* out) {
  auto fail = [out](std::string s) {
    if (out->size() < 100) out->push_back("ksm: " + std::move(s));
  };
  absl::flat_hash_set<const StableNode*> nodes;
  uint64_t shared = 0, sharing = 0, count = 0;
  const StableNode* prev_valid = nullptr;
  for (RbNode* n = stable_.First(); n; n = RbTree::Next(n)) {
    StableNode* node = Container<StableNode>(n);
    nodes.insert(node);
    count++;
    uint64_t len = 0;
    for (RmapItem* item = node->hlist; item; item = item->hnext) {
      len++;
      if (item->head != node || item->state != RmapState::kStable)
        fail(absl::StrFormat("node %d lists an item that is not its own", node->id));
    }
    if (len) {
      shared++;
      sharing += len - 1;
    }
    if (NodeValid(node)) {
      if (prev_valid &&
          CompareContent(mem_.Frame(prev_valid->kpfn).content, mem_.Frame(node->kpfn).content) >= 0)
        fail(absl::StrFormat("stable tree out of order at node %d", node->id));
      prev_valid = node;
    }
  }
  if (count != stable_nodes_) fail("stable node count mismatch");
  if (by_kpfn_.size() != count) fail("kpfn index size mismatch");
  for (const auto& [kpfn, node] : by_kpfn_)
    if (node->kpfn != kpfn || !nodes.count(node)) fail("kpfn index entry wrong");
  if (shared != pages_shared_)
    fail(absl::StrFormat("pages_shared %d, lists say %d", pages_shared_, shared));
  if (sharing != pages_sharing_)
    fail(absl::StrFormat("pages_sharing %d, lists say %d", pages_sharing_, sharing));
  absl::flat_hash_set<const RmapItem*> in_unstable;
  for (RbNode* n = unstable_.First(); n; n = RbTree::Next(n))
    in_unstable.insert(Container<RmapItem>(n));
  uint64_t items = 0, unshared = 0, slots = 0;
  for (MmSlot* s = head_.next; s != &head_; s = s->next) {
    slots++;
    if (s->mm->ksm_slot != s) fail(absl::StrFormat("pid %d: slot mismatch", s->mm->pid));
    for (const auto& [a, item] : s->items) {
      items++;
      if (item->address != a || item->slot != s) fail("rmap item keyed wrongly");
      if (item->state == RmapState::kStable && !nodes.count(item->head))
        fail(absl::StrFormat("pid %d 0x%x: stable item on a node not in the tree", s->mm->pid, a));
      if (item->state == RmapState::kUnstable) {
        unshared++;
        uint8_t age = static_cast<uint8_t>(seqnr_ - item->seqnr);
        if (age > 1) fail("unstable item older than one pass");
        // Age 0 items are in the tree; age 1 items only until the next pass
        // starts (the cursor is then between passes).
        bool want = age == 0 || (item->in_tree && cur_slot_ == &head_);
        if (want != (in_unstable.count(item) > 0) || item->in_tree != (in_unstable.count(item) > 0))
          fail(absl::StrFormat("pid %d 0x%x: unstable tree membership wrong", s->mm->pid, a));
      }
    }
  }
  if (slots != mm_slots_) fail("mm slot count mismatch");
  if (items != rmap_items_)
    fail(absl::StrFormat("rmap_items %d, lists hold %d", rmap_items_, items));
  if (unshared != pages_unshared_)
    fail(absl::StrFormat("pages_unshared %d, items say %d", pages_unshared_, unshared));
  // KSM frames point at nodes in the tree.
  for (MemoryBlock& b : mem_.blocks()) {
    if (!b.frames) continue;
    for (uint64_t i = 0; i < b.pages; ++i) {
      PageFrame& f = b.frames[i];
      if (f.state != PageState::kKsm) continue;
      // A KSM page may have no node: promoted while forked (several ptes),
      // then the merge of the tree page failed and only this address's COW
      // was broken (MERGE-7); the other mappers keep it until they write
      // or ksmd revisits them (DS-17: never demoted).
      if (!f.ksm_node) continue;
      if (!nodes.count(f.ksm_node))
        fail(absl::StrFormat("pfn %d: KSM page's node is not in the tree", b.start + i));
      else if (f.ksm_node->kpfn != b.start + i)
        fail(absl::StrFormat("pfn %d: its node's kpfn is %d", b.start + i, f.ksm_node->kpfn));
    }
  }
}

void Ksm::AddToDigest(Digester& d) const {
  auto add = [&d](uint64_t v) { d.Add(v); };
  add(run_);
  add(pages_to_scan_);
  add(sleep_millisecs_);
  add(pages_shared_);
  add(pages_sharing_);
  add(pages_unshared_);
  add(rmap_items_);
  add(seqnr_);
  add(cur_slot_ == &head_ ? 0 : cur_slot_->mm->pid.value());
  add(cur_address_);
  for (RbNode* n = stable_.First(); n; n = RbTree::Next(n)) {
    StableNode* node = Container<StableNode>(n);
    add(node->id);
    add(node->kpfn);
    add(RbTree::Depth(n));
    for (RmapItem* item = node->hlist; item; item = item->hnext) add(item->address);
  }
  for (RbNode* n = unstable_.First(); n; n = RbTree::Next(n)) {
    add(Container<RmapItem>(n)->slot->mm->pid);
    add(Container<RmapItem>(n)->address);
  }
  for (MmSlot* s = head_.next; s != &head_; s = s->next) {
    add(s->mm->pid);
    for (const auto& [a, item] : s->items) {
      add(a);
      add(static_cast<uint64_t>(item->state));
      add(item->oldchecksum);
      add(item->seqnr);
    }
  }
}

}  // namespace memnode
