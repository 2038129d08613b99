// Overview: machine snapshots. Layout (all integers varint unless "raw"):
//   "MNSNAP\0\0" raw | version (raw u32 LE) | payload length (raw u64 LE) |
//   SHA-256 of the payload (raw 32 bytes) | payload
// The payload lists, in order: config, clocks and counters; the distinct
// contents (id 0 = none, 1 = zero page, 2.. = stored); every block with its
// allocator state (free stack order included: it decides future pfns) and,
// when populated, every frame; shared objects; processes (VMAs, ptes,
// pins, policies); the notifier chain; KSM (knobs, counters, the mm list in
// order with each mm's rmap items, the cursor, and both trees in pre-order
// with their colours, so the restored trees have the same shape).
// Restore checks the header, the checksum, every count against the input
// left, every reference (pfn, content, node, pid) against what was read,
// and finally runs Check(): a snapshot that decodes into a machine with a
// broken invariant is refused.
#include <map>

#include "absl/strings/str_cat.h"
#include "server/core/ksm/ksm.h"
#include "server/core/machine.h"
#include "server/core/snapshot_io.h"
#include "server/core/status.h"

namespace memnode {
namespace {

constexpr char kMagic[8] = {'M', 'N', 'S', 'N', 'A', 'P', 0, 0};
constexpr uint32_t kVersion = 1;

absl::Status Corrupt(absl::string_view why) {
  return MakeError(absl::StatusCode::kInvalidArgument, "SNAPSHOT_CORRUPT",
                   absl::StrCat("snapshot refused: ", why));
}

void PutPolicy(SnapshotWriter& w, const MemPolicy& p) {
  w.U64(p.mode);
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
  if (ok) p.mode = static_cast<MemPolicy::Mode>(m);
  if (ok && p.mode == MemPolicy::kDefault) ok = bits == 0;
  if (ok && p.mode == MemPolicy::kPreferred) ok = bits <= 1;
  if (ok && (p.mode == MemPolicy::kBind || p.mode == MemPolicy::kInterleave)) ok = bits >= 1;
  if (!ok) {
    r.Poison();
    return MemPolicy();
  }
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------
// KSM

void Ksm::Save(SnapshotWriter& w) const {
  m_.mu_.AssertHeld();
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
  m_.mu_.AssertHeld();
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

// ---------------------------------------------------------------------------
// Machine

absl::StatusOr<std::string> Machine::Snapshot() {
  absl::MutexLock lock(&mu_);
  if (pending_offline_)
    return MakeError(absl::StatusCode::kFailedPrecondition, "OFFLINE_IN_PROGRESS",
                     "a paused offline cannot be saved; resume or cancel it first");
  SnapshotWriter w;
  w.U64(config_.nodes);
  w.U64(config_.blocks_per_node);
  w.U64(config_.pages_per_block);
  w.U64(config_.clock == ClockMode::kRealtime);
  w.Str(config_.profile);
  w.U64(emulated_time_ns_);
  w.U64(static_cast<uint64_t>(next_pid_));
  w.U64(pages_freed_);
  w.U64(migrated_total_);
  w.U64(migrated_ksm_);
  // Contents referenced by frames.
  std::map<Content*, uint64_t> content_id;
  std::vector<Content*> contents;
  for (const MemoryBlock& b : blocks_) {
    if (!b.frames) continue;
    for (uint64_t i = 0; i < b.pages; ++i) {
      Content* c = b.frames[i].content;
      if (c && c != contents_.zero() && !content_id.count(c)) {
        content_id[c] = contents.size() + 2;
        contents.push_back(c);
      }
    }
  }
  w.U64(contents.size());
  for (Content* c : contents) w.Bytes(c->bytes, kPageSize);
  auto cid = [&](Content* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> uint64_t {
    if (!c) return 0;
    if (c == contents_.zero()) return 1;
    return content_id[c];
  };
  w.U64(blocks_.size());
  for (const MemoryBlock& b : blocks_) {
    w.U64(b.node);
    w.U64(static_cast<uint64_t>(b.state));
    w.U64(b.next_untouched);
    w.U64(b.free_pages);
    w.U64(b.unmovable_pages);
    w.U64(b.free_stack.size());
    for (uint32_t off : b.free_stack) w.U64(off);
    w.U64(b.frames != nullptr);
    if (!b.frames) continue;
    for (uint64_t i = 0; i < b.pages; ++i) {
      const PageFrame& f = b.frames[i];
      w.U64(static_cast<uint64_t>(f.state));
      if (f.state == PageState::kFree) continue;
      w.U64(cid(f.content));
      w.U64(static_cast<uint32_t>(f.refcount));
      w.U64(static_cast<uint32_t>(f.mapcount));
      w.U64(static_cast<uint32_t>(f.pins));
      w.U64((f.shm_owned ? 1 : 0) | (f.unmovable ? 2 : 0));
      w.U64(f.ksm_node ? f.ksm_node->id : 0);
    }
  }
  // Shared objects in order of first use by a VMA (pid order): deterministic,
  // unlike their host addresses.
  std::map<const ShmObject*, uint64_t> shm_id;
  std::vector<const ShmObject*> shm_order;
  for (const auto& [pid, p] : processes_)
    for (const auto& [s, v] : p->vmas)
      if (v.shm && shm_id.emplace(v.shm, shm_id.size() + 1).second) shm_order.push_back(v.shm);
  if (shm_order.size() != shm_objects_.size())
    return MakeError(absl::StatusCode::kInternal, "INTERNAL", "an unreferenced shared object");
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
      w.U64(v.shared | (v.mergeable << 1) | (v.anon_vma << 2) | (v.has_policy << 3));
      w.U64(v.shm ? shm_id[v.shm] : 0);
      w.U64(v.shm_pgoff);
      PutPolicy(w, v.policy);
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
  w.U64(notifiers_.size());
  for (const NotifierEntry& n : notifiers_) {
    w.U64(static_cast<uint64_t>(static_cast<int64_t>(n.priority)));
    w.Str(n.name);
    w.U64(n.is_ksm);
    w.U64(static_cast<uint64_t>(n.fail_event));
    w.U64(static_cast<uint64_t>(n.fail_err));
    w.U64(n.remaining);
  }
  ksm_->Save(w);

  std::string out(kMagic, sizeof(kMagic));
  uint32_t version = kVersion;
  uint64_t len = w.buffer().size();
  out.append(reinterpret_cast<const char*>(&version), 4);
  out.append(reinterpret_cast<const char*>(&len), 8);
  Sha256::Digest d = Sha256::Of(w.buffer().data(), w.buffer().size());
  out.append(reinterpret_cast<const char*>(d.data()), d.size());
  out += w.buffer();
  return out;
}

absl::StatusOr<std::unique_ptr<Machine>> Machine::Restore(absl::string_view bytes) {
  constexpr size_t kHeader = 8 + 4 + 8 + 32;
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kMagic, 8) != 0)
    return Corrupt("not a memnode snapshot (bad magic)");
  uint32_t version;
  uint64_t len;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&len, bytes.data() + 12, 8);
  if (version != kVersion)
    return MakeError(absl::StatusCode::kInvalidArgument, "SNAPSHOT_VERSION",
                     absl::StrCat("snapshot version ", version,
                                  " is not supported (this server reads ", kVersion, ")"));
  if (len != bytes.size() - kHeader) return Corrupt("truncated or padded (length mismatch)");
  absl::string_view payload = bytes.substr(kHeader);
  Sha256::Digest d = Sha256::Of(payload.data(), payload.size());
  if (std::memcmp(d.data(), bytes.data() + 20, 32) != 0) return Corrupt("checksum mismatch");

  SnapshotReader r(payload);
  MachineConfig c;
  c.nodes = static_cast<uint32_t>(r.U64());
  c.blocks_per_node = static_cast<uint32_t>(r.U64());
  c.pages_per_block = r.U64();
  c.clock = r.U64() ? ClockMode::kRealtime : ClockMode::kManual;
  c.profile = r.Str();
  if (!r.ok()) return Corrupt("header fields");
  MEMNODE_RETURN_IF_ERROR(c.Validate());
  std::unique_ptr<Machine> m(new Machine(c));
  Machine& M = *m;
  absl::MutexLock lock(&M.mu_);
  // Start from an empty machine: the constructor's zero page is re-read below.
  M.emulated_time_ns_ = r.U64();
  M.next_pid_ = static_cast<Pid>(r.U64());
  M.pages_freed_ = r.U64();
  M.migrated_total_ = r.U64();
  M.migrated_ksm_ = r.U64();
  uint64_t ncontents = r.Count(kPageSize);
  std::vector<Content*> contents{nullptr, M.contents_.zero()};
  for (uint64_t i = 0; i < ncontents && r.ok(); ++i) {
    uint8_t* buf = M.contents_.scratch_bytes();
    if (!r.Bytes(buf, kPageSize)) break;
    Content* ct = M.contents_.Intern(buf);
    contents.push_back(ct);
  }
  if (!r.ok()) return Corrupt("contents");
  uint64_t nblocks = r.Count(6);
  if (nblocks < uint64_t{c.nodes} * c.blocks_per_node || nblocks > uint64_t{c.nodes} * 65536)
    return Corrupt("block count");
  M.blocks_.clear();
  M.blocks_.resize(nblocks);
  for (auto& set : M.free_blocks_) set.clear();
  std::vector<std::pair<Pfn, uint64_t>> ksm_refs;  // frame -> stable node id
  for (uint64_t bi = 0; bi < nblocks && r.ok(); ++bi) {
    MemoryBlock& b = M.blocks_[bi];
    b.id = static_cast<BlockId>(bi);
    b.node = static_cast<NodeId>(r.U64());
    b.start = bi * c.pages_per_block;
    b.pages = c.pages_per_block;
    uint64_t st = r.U64();
    if (st > 3 || b.node >= c.nodes) return Corrupt("block state or node");
    b.state = static_cast<BlockState>(st);
    b.next_untouched = r.U64();
    b.free_pages = r.U64();
    b.unmovable_pages = r.U64();
    uint64_t nfree = r.Count(1);
    if (b.next_untouched > b.pages || nfree > b.pages) return Corrupt("allocator state");
    for (uint64_t i = 0; i < nfree; ++i) {
      uint64_t off = r.U64();
      if (off >= b.pages) return Corrupt("free stack");
      b.free_stack.push_back(static_cast<uint32_t>(off));
    }
    b.count[static_cast<int>(PageState::kFree)] = b.pages;
    if (r.U64()) {
      b.frames.reset(new PageFrame[b.pages]);
      for (uint64_t i = 0; i < b.pages && r.ok(); ++i) {
        PageFrame& f = b.frames[i];
        uint64_t fs = r.U64();
        if (fs > static_cast<uint64_t>(PageState::kOffline)) return Corrupt("frame state");
        if (fs == 0) continue;
        b.count[0]--;
        b.count[fs]++;
        f.state = static_cast<PageState>(fs);
        uint64_t ci = r.U64();
        if (ci >= contents.size()) return Corrupt("content reference");
        f.content = contents[ci];
        if (f.content) M.contents_.Ref(f.content);
        f.refcount = static_cast<int32_t>(r.U64());
        f.mapcount = static_cast<int32_t>(r.U64());
        f.pins = static_cast<int32_t>(r.U64());
        uint64_t flags = r.U64();
        f.shm_owned = flags & 1;
        f.unmovable = flags & 2;
        uint64_t node_id = r.U64();
        if (node_id) ksm_refs.emplace_back(b.start + i, node_id);
      }
    }
    if (b.state == BlockState::kOnline && b.free_pages > 0) M.free_blocks_[b.node].insert(b.id);
  }
  if (!r.ok()) return Corrupt("blocks");
  // Drop the references Intern() gave the content table itself.
  for (size_t i = 2; i < contents.size(); ++i) M.contents_.Unref(contents[i]);
  const Pfn limit = M.PfnLimit();
  uint64_t nshm = r.Count(2);
  std::vector<ShmObject*> shms;
  for (uint64_t i = 0; i < nshm && r.ok(); ++i) {
    auto obj = std::make_unique<ShmObject>();
    obj->vma_refs = static_cast<int>(r.U64());
    uint64_t np = r.Count(2);
    for (uint64_t j = 0; j < np && r.ok(); ++j) {
      uint64_t off = r.U64();
      Pfn pfn = r.U64();
      if (pfn >= limit) return Corrupt("shared object page");
      obj->pages[off] = pfn;
    }
    shms.push_back(obj.get());
    M.shm_objects_[obj.get()] = std::move(obj);
  }
  uint64_t nprocs = r.Count(8);
  std::map<Pid, Process*> procs;
  for (uint64_t i = 0; i < nprocs && r.ok(); ++i) {
    auto p = std::make_unique<Process>();
    p->pid = static_cast<Pid>(r.U64());
    p->ppid = static_cast<Pid>(r.U64());
    p->uid = static_cast<uint32_t>(r.U64());
    p->privileged = r.U64() != 0;
    p->home_node = static_cast<NodeId>(r.U64());
    p->exited = r.U64() != 0;
    p->policy = GetPolicy(r, c.nodes);
    if (p->home_node >= c.nodes || p->pid <= 0) return Corrupt("process");
    uint64_t nv = r.Count(7);
    for (uint64_t j = 0; j < nv && r.ok(); ++j) {
      Vma v;
      v.start = r.U64();
      v.end = r.U64();
      v.prot = static_cast<uint32_t>(r.U64());
      uint64_t fl = r.U64();
      v.shared = fl & 1;
      v.mergeable = fl & 2;
      v.anon_vma = fl & 4;
      v.has_policy = fl & 8;
      uint64_t sid = r.U64();
      if (sid > shms.size() || v.start >= v.end || !PageAligned(v.start) || !PageAligned(v.end))
        return Corrupt("vma");
      // VMAs come in address order and never overlap or leave user space.
      if (v.end > kTaskSize || (!p->vmas.empty() && v.start < p->vmas.rbegin()->second.end))
        return Corrupt("vma overlaps another or leaves the address space");
      v.shm = sid ? shms[sid - 1] : nullptr;
      v.shm_pgoff = r.U64();
      v.policy = GetPolicy(r, c.nodes);
      p->vmas[v.start] = v;
    }
    uint64_t npte = r.Count(3);
    for (uint64_t j = 0; j < npte && r.ok(); ++j) {
      uint64_t vpn = r.U64();
      Pte pte;
      pte.pfn = r.U64();
      pte.write = r.U64() != 0;
      if (pte.pfn >= limit) return Corrupt("pte");
      p->ptes[vpn] = pte;
    }
    uint64_t npins = r.Count(2);
    for (uint64_t j = 0; j < npins && r.ok(); ++j) {
      Vaddr a = r.U64();
      Pfn pfn = r.U64();
      if (pfn >= limit) return Corrupt("pin");
      p->pins.emplace(a, pfn);
    }
    Process* raw = p.get();
    if (!M.processes_.emplace(p->pid, std::move(p)).second) return Corrupt("duplicate pid");
    procs[raw->pid] = raw;
  }
  if (!r.ok()) return Corrupt("processes");
  uint64_t nn = r.Count(4);
  M.notifiers_.clear();
  for (uint64_t i = 0; i < nn && r.ok(); ++i) {
    NotifierEntry n;
    n.priority = static_cast<int>(static_cast<int64_t>(r.U64()));
    n.name = r.Str();
    n.is_ksm = r.U64() != 0;
    uint64_t ev = r.U64();
    if (ev > 5) return Corrupt("notifier");
    n.fail_event = static_cast<MemEvent>(ev);
    n.fail_err = static_cast<Errno>(r.U64());
    n.remaining = static_cast<uint32_t>(r.U64());
    M.notifiers_.push_back(n);
  }
  // Every pid must be below the next one handed out, or a later create or
  // fork would reuse a live pid.
  if (!M.processes_.empty() && M.next_pid_ <= M.processes_.rbegin()->first)
    return Corrupt("next pid not above every process");
  M.ksm_ = std::make_unique<Ksm>(M);
  std::map<uint64_t, StableNode*> by_id;
  if (!M.ksm_->Load(r, procs, &by_id) || !r.ok() || !r.done())
    return Corrupt("KSM state");  // ~Machine frees KSM before the processes
  for (const auto& [pfn, id] : ksm_refs) {
    auto it = by_id.find(id);
    if (it == by_id.end()) return Corrupt("stable node reference");
    M.Frame(pfn).ksm_node = it->second;
  }
  M.mu_.Unlock();
  CheckResult check = M.Check();
  M.mu_.Lock();
  if (!check.ok()) return Corrupt(absl::StrCat("invariants: ", check.violations[0]));
  return m;
}

}  // namespace memnode
