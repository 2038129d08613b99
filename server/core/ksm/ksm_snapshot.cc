// KSM's part of a machine snapshot: knobs, counters, the mm list in order
// with each mm's rmap items, the cursor, and both trees in pre-order with
// their colours, so the restored trees have the same shape.
#include <functional>
#include <map>

#include "server/core/ksm/ksm.h"
#include "server/core/mm/process.h"
#include "server/core/snapshot/snapshot_io.h"

namespace memnode {

void Ksm::Save(SnapshotWriter& w) const {
  w.U64(run_);
  w.U64(pages_to_scan_);
  w.U64(sleep_millisecs_);
  w.U64(pages_shared_);
  w.U64(pages_sharing_);
  w.U64(pages_unshared_);
  w.U64(rmap_items_);
  w.U64(stable_nodes_);
  w.U64(mm_slots_);
  w.U64(visits_total_);
  w.U64(seqnr_);
  w.U64(next_node_id_);
  std::map<const MmSlot*, uint64_t> slot_index;
  uint64_t n = 0;
  for (MmSlot* s = head_.next; s != &head_; s = s->next) slot_index[s] = ++n;
  w.U64(n);
  for (MmSlot* s = head_.next; s != &head_; s = s->next) {
    w.U64(static_cast<uint64_t>(s->mm->pid));
    w.U64(s->items.size());
    for (const auto& [a, item] : s->items) {
      w.U64(a);
      w.U64(item->oldchecksum);
      w.U64(item->seqnr);
      w.U64(static_cast<uint64_t>(item->state));
      w.U64(item->in_tree);
      w.U64(item->anon_vma);  // v2
    }
  }
  w.U64(cur_slot_ == &head_ ? 0 : slot_index[cur_slot_]);
  w.U64(cur_address_);
  w.U64(rmap_floor_);
  // Stable tree, pre-order; each node: id, kpfn, colour, its list.
  std::function<void(const RbNode*)> put_stable = [&](const RbNode* n) {
    if (!n) {
      w.U64(0);
      return;
    }
    const StableNode* node = reinterpret_cast<const StableNode*>(reinterpret_cast<const char*>(n) -
                                                                 offsetof(StableNode, rb));
    w.U64(1);
    w.U64(node->id);
    w.U64(node->kpfn);
    w.U64(n->red);
    uint64_t len = 0;
    for (RmapItem* i = node->hlist; i; i = i->hnext) len++;
    w.U64(len);
    for (RmapItem* i = node->hlist; i; i = i->hnext) {
      w.U64(slot_index[i->slot]);
      w.U64(i->address);
    }
    put_stable(n->left);
    put_stable(n->right);
  };
  put_stable(stable_.root());
  std::function<void(const RbNode*)> put_unstable = [&](const RbNode* n) {
    if (!n) {
      w.U64(0);
      return;
    }
    const RmapItem* item = reinterpret_cast<const RmapItem*>(reinterpret_cast<const char*>(n) -
                                                             offsetof(RmapItem, rb));
    w.U64(1);
    w.U64(slot_index[item->slot]);
    w.U64(item->address);
    w.U64(n->red);
    put_unstable(n->left);
    put_unstable(n->right);
  };
  put_unstable(unstable_.root());
}

bool Ksm::Load(SnapshotReader& r, const std::map<Pid, Process*>& procs,
               std::map<uint64_t, StableNode*>* by_id) {
  run_ = static_cast<uint32_t>(r.U64());
  pages_to_scan_ = static_cast<uint32_t>(r.U64());
  sleep_millisecs_ = static_cast<uint32_t>(r.U64());
  pages_shared_ = r.U64();
  pages_sharing_ = r.U64();
  pages_unshared_ = r.U64();
  rmap_items_ = r.U64();
  stable_nodes_ = r.U64();
  mm_slots_ = r.U64();
  visits_total_ = r.U64();
  seqnr_ = r.U64();
  next_node_id_ = r.U64();
  if (run_ > 2) return false;
  std::vector<MmSlot*> slots;
  uint64_t nslots = r.Count(2);
  for (uint64_t i = 0; i < nslots && r.ok(); ++i) {
    auto it = procs.find(static_cast<Pid>(r.U64()));
    if (it == procs.end() || it->second->ksm_slot) return false;
    MmSlot* s = new MmSlot;
    s->mm = it->second;
    s->prev = head_.prev;
    s->next = &head_;
    head_.prev->next = s;
    head_.prev = s;
    it->second->ksm_slot = s;
    slots.push_back(s);
    uint64_t nitems = r.Count(5);
    for (uint64_t j = 0; j < nitems && r.ok(); ++j) {
      RmapItem* item = new RmapItem;
      item->slot = s;
      item->address = r.U64();
      item->oldchecksum = static_cast<uint32_t>(r.U64());
      item->seqnr = static_cast<uint8_t>(r.U64());
      uint64_t st = r.U64();
      item->state = st <= 2 ? static_cast<RmapState>(st) : RmapState::kNone;
      item->in_tree = r.U64() != 0;
      if (r.version() >= 2)
        item->anon_vma = r.U64();
      else if (item->state == RmapState::kStable)  // v1: the vma's, as merged
        item->anon_vma = host_.AnonVmaOf(*s->mm, item->address);
      if (st > 2 || !s->items.emplace(item->address, item).second) {
        delete item;
        return false;
      }
    }
  }
  auto slot_at = [&](uint64_t idx) -> MmSlot* {
    return idx >= 1 && idx <= slots.size() ? slots[idx - 1] : nullptr;
  };
  uint64_t cur = r.U64();
  cur_slot_ = cur == 0 ? &head_ : slot_at(cur);
  if (!cur_slot_) return false;
  cur_address_ = r.U64();
  rmap_floor_ = r.U64();
  auto item_at = [&](uint64_t idx, Vaddr a) -> RmapItem* {
    MmSlot* s = slot_at(idx);
    if (!s) return nullptr;
    auto it = s->items.find(a);
    return it == s->items.end() ? nullptr : it->second;
  };
  // Trees, pre-order; depth bounded to refuse hostile input.
  std::function<RbNode*(RbNode*, int)> get_stable = [&](RbNode* parent, int depth) -> RbNode* {
    if (!r.ok() || depth > 128) return nullptr;
    if (r.U64() == 0) return nullptr;
    StableNode* node = new StableNode;
    node->id = r.U64();
    node->kpfn = r.U64();
    node->rb.red = r.U64() != 0;
    node->rb.parent = parent;
    if (!by_id->emplace(node->id, node).second) {
      delete node;
      r.Poison();
      return nullptr;
    }
    by_kpfn_.emplace(node->kpfn, node);
    uint64_t len = r.Count(2);
    RmapItem** tail = &node->hlist;
    for (uint64_t i = 0; i < len && r.ok(); ++i) {
      uint64_t idx = r.U64();
      RmapItem* item = item_at(idx, r.U64());
      if (!item || item->state != RmapState::kStable || item->head) {
        r.Poison();
        break;
      }
      item->head = node;
      item->hpprev = tail;
      *tail = item;
      tail = &item->hnext;
    }
    node->rb.left = get_stable(&node->rb, depth + 1);
    node->rb.right = get_stable(&node->rb, depth + 1);
    return &node->rb;
  };
  *stable_.root_link() = get_stable(nullptr, 0);
  std::function<RbNode*(RbNode*, int)> get_unstable = [&](RbNode* parent, int depth) -> RbNode* {
    if (!r.ok() || depth > 128) return nullptr;
    if (r.U64() == 0) return nullptr;
    uint64_t idx = r.U64();
    RmapItem* item = item_at(idx, r.U64());
    bool red = r.U64() != 0;
    if (!item || item->state != RmapState::kUnstable || !item->in_tree || item->rb.parent ||
        item == nullptr) {
      r.Poison();
      return nullptr;
    }
    item->rb.red = red;
    item->rb.parent = parent;
    item->rb.left = get_unstable(&item->rb, depth + 1);
    item->rb.right = get_unstable(&item->rb, depth + 1);
    return &item->rb;
  };
  *unstable_.root_link() = get_unstable(nullptr, 0);
  return r.ok();
}

}  // namespace memnode
