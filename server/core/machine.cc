// Overview: the machine's physical side - topology, lazily allocated page
// frame metadata, the per-node allocator - plus the self-check and the state
// digest. Processes live in mm.cc, KSM in ksm/ksm.cc.
//
// Invariants (checked by Check()):
//   1. A frame's mapcount equals the ptes (of all processes) that map it; the
//      zero page is not counted (its ptes are "special", like the kernel's).
//   2. refcount == mapcount + pins + (1 if a shared object owns the frame).
//   3. A frame is free exactly when its refcount is 0; free frames hold no
//      content; every other frame holds a live content.
//   4. Each block's free_pages and per-state counts agree with its frames.
//   5. KSM's counters and trees agree with the rmap items (ksm.cc).
#include "server/core/machine.h"

#include <algorithm>
#include <cinttypes>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/ksm/ksm.h"
#include "server/core/status.h"

namespace memnode {

const char* EventKindName(EventKind k) {
  switch (k) {
    case EventKind::kMerge: return "merge";
    case EventKind::kCowBreak: return "cow_break";
    case EventKind::kPrune: return "prune";
    case EventKind::kPassEnd: return "pass_end";
    case EventKind::kProcessExit: return "process_exit";
    case EventKind::kMigrate: return "migrate";
    case EventKind::kNotifier: return "notifier";
    case EventKind::kOfflinePhase: return "offline_phase";
    case EventKind::kOfflineResult: return "offline_result";
    case EventKind::kKsmdHeld: return "ksmd_held";
  }
  return "?";
}

const char* PruneReasonName(PruneReason r) {
  switch (r) {
    case PruneReason::kStale: return "stale";
    case PruneReason::kOffline: return "offline";
    case PruneReason::kUnmerge: return "unmerge";
  }
  return "?";
}

absl::Status MachineConfig::Validate() const {
  auto bad = [](const std::string& m) {
    return MakeError(absl::StatusCode::kInvalidArgument, "INVALID_TOPOLOGY", m);
  };
  if (nodes < 1 || nodes > 64) return bad("nodes must be 1..64");
  if (blocks_per_node < 1 || blocks_per_node > 65536)
    return bad("blocks_per_node must be 1..65536");
  if (pages_per_block < 64 || pages_per_block > (uint64_t{1} << 22) || pages_per_block % 64 != 0)
    return bad("pages_per_block must be a multiple of 64 in 64..4194304");
  if (profile != "linux-2.6.33")
    return MakeError(absl::StatusCode::kInvalidArgument, "UNKNOWN_PROFILE",
                     "profile must be \"linux-2.6.33\"");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Machine>> Machine::Create(const MachineConfig& config) {
  MEMNODE_RETURN_IF_ERROR(config.Validate());
  return std::unique_ptr<Machine>(new Machine(config));
}

Machine::Machine(const MachineConfig& config) : config_(config) {
  absl::MutexLock lock(&mu_);
  const uint32_t nblocks = config.nodes * config.blocks_per_node;
  blocks_.resize(nblocks);
  free_blocks_.resize(config.nodes);
  for (BlockId b = 0; b < nblocks; ++b) {
    MemoryBlock& blk = blocks_[b];
    blk.id = b;
    blk.node = b / config.blocks_per_node;
    blk.start = uint64_t{b} * config.pages_per_block;
    blk.pages = config.pages_per_block;
    blk.free_pages = blk.pages;
    blk.count[static_cast<int>(PageState::kFree)] = blk.pages;
    free_blocks_[blk.node].insert(b);
  }
  // The shared zero page: the first frame of node 0, reserved for good.
  MemoryBlock& b0 = blocks_[0];
  EnsureFrames(b0);
  b0.next_untouched = 1;
  b0.free_pages -= 1;
  zero_pfn_ = 0;
  PageFrame& z = b0.frames[0];
  z.content = contents_.zero();
  SetState(0, z, PageState::kZero);
  ksm_ = std::make_unique<Ksm>(*this);
  NotifierEntry ksm_cb;
  ksm_cb.priority = 100;  // hotplug_memory_notifier(ksm_memory_callback, 100)
  ksm_cb.name = "ksm";
  ksm_cb.is_ksm = true;
  notifiers_.push_back(ksm_cb);
}

Machine::~Machine() {
  absl::MutexLock lock(&mu_);
  ksm_.reset();
  processes_.clear();
}

void Machine::AddObserver(Observer* o) {
  absl::MutexLock lock(&mu_);
  observers_.push_back(o);
}

void Machine::RemoveObserver(Observer* o) {
  absl::MutexLock lock(&mu_);
  observers_.erase(std::remove(observers_.begin(), observers_.end(), o), observers_.end());
}

void Machine::Emit(const Event& e) {
  for (Observer* o : observers_) o->OnEvent(e);
}

void Machine::EnsureFrames(MemoryBlock& b) {
  if (!b.frames) b.frames.reset(new PageFrame[b.pages]);
}

PageFrame* Machine::FrameIfPopulated(Pfn pfn) {
  if (pfn >= PfnLimit()) return nullptr;
  MemoryBlock& b = BlockOf(pfn);
  if (!b.frames) return nullptr;
  return &b.frames[pfn - b.start];
}

void Machine::SetState(Pfn pfn, PageFrame& f, PageState s) {
  MemoryBlock& b = BlockOf(pfn);
  b.count[static_cast<int>(f.state)]--;
  b.count[static_cast<int>(s)]++;
  f.state = s;
}

Pfn Machine::AllocOnNode(NodeId node) {
  auto& set = free_blocks_[node];
  if (set.empty()) return kNoPfn;
  MemoryBlock& b = blocks_[*set.begin()];
  EnsureFrames(b);
  uint64_t off;
  if (!b.free_stack.empty()) {
    off = b.free_stack.back();
    b.free_stack.pop_back();
  } else {
    off = b.next_untouched++;
  }
  MEMNODE_CHECK(off < b.pages, "allocator overran a block");
  if (--b.free_pages == 0) set.erase(b.id);
  return b.start + off;
}

void Machine::FreePage(Pfn pfn) {
  MemoryBlock& b = BlockOf(pfn);
  PageFrame& f = b.frames[pfn - b.start];
  MEMNODE_CHECK(f.refcount == 0 && f.mapcount == 0, "freeing a referenced frame");
  if (f.content) contents_.Unref(f.content);
  f.content = nullptr;
  f.ksm_node = nullptr;  // freeing clears page->mapping: KSM nodes go stale
  f.shm_owned = false;
  pages_freed_++;
  SetState(pfn, f, PageState::kFree);
  b.free_stack.push_back(static_cast<uint32_t>(pfn - b.start));
  if (b.free_pages++ == 0 && b.state == BlockState::kOnline) free_blocks_[b.node].insert(b.id);
}

void Machine::PutPage(Pfn pfn) {
  PageFrame& f = Frame(pfn);
  MEMNODE_CHECK(f.refcount > 0, "page refcount underflow");
  if (--f.refcount == 0) FreePage(pfn);
}

void Machine::SetContent(PageFrame& f, Content* c) {
  Content* old = f.content;
  f.content = c;  // the caller passes a reference it owns
  if (old) contents_.Unref(old);
}

FrameInfo Machine::DescribeFrame(Pfn pfn) {
  FrameInfo fi;
  fi.pfn = pfn;
  MemoryBlock& b = BlockOf(pfn);
  fi.node = b.node;
  fi.block = b.id;
  PageFrame* f = FrameIfPopulated(pfn);
  if (b.state == BlockState::kOffline || b.state == BlockState::kRemoved) {
    fi.state = PageState::kOffline;
    return fi;
  }
  if (!f) return fi;
  fi.state = f->state;
  fi.refcount = f->refcount;
  fi.mapcount = f->mapcount;
  fi.pins = f->pins;
  if (f->content) fi.content_digest = contents_.DigestHex(f->content);
  if (f->state == PageState::kKsm && f->ksm_node) fi.stable_node_id = f->ksm_node->id;
  return fi;
}

absl::StatusOr<FrameInfo> Machine::GetFrame(Pfn pfn) {
  absl::MutexLock lock(&mu_);
  if (pfn >= PfnLimit())
    return MakeError(absl::StatusCode::kOutOfRange, "PFN_OUT_OF_RANGE",
                     absl::StrCat("pfn ", pfn, " beyond the machine's ", PfnLimit(), " pages"));
  return DescribeFrame(pfn);
}

absl::StatusOr<std::vector<FrameInfo>> Machine::ListFrames(Pfn start, uint64_t count,
                                                           bool skip_free) {
  absl::MutexLock lock(&mu_);
  const uint64_t total = PfnLimit();
  if (start >= total)
    return MakeError(absl::StatusCode::kOutOfRange, "PFN_OUT_OF_RANGE",
                     absl::StrCat("start_pfn ", start, " beyond the machine"));
  uint64_t end = std::min(total, start + count);
  std::vector<FrameInfo> out;
  for (Pfn pfn = start; pfn < end; ++pfn) {
    MemoryBlock& b = BlockOf(pfn);
    if (skip_free && (!b.frames || b.frames[pfn - b.start].state == PageState::kFree) &&
        b.state != BlockState::kOffline && b.state != BlockState::kRemoved) {
      if (!b.frames) pfn = b.start + b.pages - 1;  // skip the untouched block
      continue;
    }
    out.push_back(DescribeFrame(pfn));
  }
  return out;
}

MachineInfo Machine::Info() {
  absl::MutexLock lock(&mu_);
  MachineInfo mi;
  mi.config = config_;
  mi.total_pages = PfnLimit();
  mi.nodes.resize(config_.nodes);
  for (NodeId n = 0; n < config_.nodes; ++n) mi.nodes[n].node = n;
  for (const MemoryBlock& b : blocks_) {
    NodeStats& ns = mi.nodes[b.node];
    if (b.state == BlockState::kRemoved) continue;
    ns.blocks++;
    if (b.state == BlockState::kOffline) continue;
    ns.present_pages += b.pages;
    ns.free_pages += b.free_pages;
    ns.anon_pages += b.count[static_cast<int>(PageState::kAnon)];
    ns.ksm_pages += b.count[static_cast<int>(PageState::kKsm)];
    ns.shmem_pages += b.count[static_cast<int>(PageState::kShmem)];
    ns.reserved_pages += b.count[static_cast<int>(PageState::kReserved)] +
                         b.count[static_cast<int>(PageState::kZero)];
  }
  for (const auto& [pid, p] : processes_)
    if (!p->exited) mi.process_count++;
  mi.distinct_contents = contents_.distinct();
  mi.emulated_time_ns = emulated_time_ns_;
  return mi;
}

HostMemory Machine::HostMemoryUsage() {
  absl::MutexLock lock(&mu_);
  HostMemory hm;
  hm.block_bytes = blocks_.capacity() * sizeof(MemoryBlock);
  for (const MemoryBlock& b : blocks_) {
    if (b.frames) hm.frame_bytes += b.pages * sizeof(PageFrame);
    hm.block_bytes += b.free_stack.capacity() * sizeof(uint32_t);
    hm.populated_frames += b.pages - b.count[static_cast<int>(PageState::kFree)];
  }
  hm.content_bytes = contents_.host_bytes();
  return hm;
}

namespace {

// Deterministic digest accumulator (64-bit, order sensitive).
class Digester {
 public:
  void Add(uint64_t v) {
    h_ ^= v + 0x9e3779b97f4a7c15ULL + (h_ << 6) + (h_ >> 2);
    h_ *= 0xff51afd7ed558ccdULL;
    h_ ^= h_ >> 32;
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

}  // namespace

CheckResult Machine::Check() {
  absl::MutexLock lock(&mu_);
  CheckResult r;
  auto fail = [&r](std::string s) {
    if (r.violations.size() < 100) r.violations.push_back(std::move(s));
  };
  // Expected mapcounts and pins from the page tables.
  absl::btree_map<Pfn, int32_t> maps, pins;
  for (const auto& [pid, p] : processes_) {
    for (const auto& [vpn, pte] : p->ptes) {
      if (pte.pfn == zero_pfn_) continue;
      maps[pte.pfn]++;
      const Vma* v = nullptr;
      auto it = p->vmas.upper_bound(vpn << kPageShift);
      if (it != p->vmas.begin()) {
        --it;
        if ((vpn << kPageShift) < it->second.end) v = &it->second;
      }
      if (!v) fail(absl::StrFormat("pid %d: pte at 0x%x outside any vma", pid, vpn << kPageShift));
    }
    for (const auto& [addr, pfn] : p->pins) pins[pfn]++;
    Vaddr prev_end = 0;
    for (const auto& [s, v] : p->vmas) {
      if (v.start != s || v.start >= v.end || v.start < prev_end || v.end > kTaskSize)
        fail(absl::StrFormat("pid %d: vma [0x%x, 0x%x) malformed or overlapping", pid, v.start,
                             v.end));
      prev_end = v.end;
    }
  }
  absl::btree_map<Content*, uint32_t> content_refs;
  for (const MemoryBlock& b : blocks_) {
    if (!b.frames) {
      if (b.count[0] != b.pages)
        fail(absl::StrFormat("block %d: unpopulated but counts differ", b.id));
      continue;
    }
    uint64_t free = 0;
    uint64_t counts[8] = {};
    for (uint64_t i = 0; i < b.pages; ++i) {
      const Pfn pfn = b.start + i;
      const PageFrame& f = b.frames[i];
      counts[static_cast<int>(f.state)]++;
      if (f.state == PageState::kFree) {
        free++;
        if (f.refcount || f.mapcount || f.pins || f.content)
          fail(absl::StrFormat("pfn %d: free frame with references or content", pfn));
        continue;
      }
      if (f.content) content_refs[f.content]++;
      if (f.state == PageState::kZero || f.state == PageState::kReserved) continue;
      if (!f.content) fail(absl::StrFormat("pfn %d: in use without content", pfn));
      auto mi = maps.find(pfn);
      int32_t want_map = mi == maps.end() ? 0 : mi->second;
      if (f.mapcount != want_map)
        fail(absl::StrFormat("pfn %d: mapcount %d, page tables say %d", pfn, f.mapcount, want_map));
      auto pi = pins.find(pfn);
      int32_t want_pins = pi == pins.end() ? 0 : pi->second;
      if (f.pins != want_pins)
        fail(absl::StrFormat("pfn %d: pins %d, processes hold %d", pfn, f.pins, want_pins));
      if (f.refcount != f.mapcount + f.pins + (f.shm_owned ? 1 : 0))
        fail(absl::StrFormat("pfn %d: refcount %d != mapcount %d + pins %d + shm %d", pfn,
                             f.refcount, f.mapcount, f.pins, f.shm_owned ? 1 : 0));
      if (f.refcount <= 0)
        fail(absl::StrFormat("pfn %d: in use with refcount %d", pfn, f.refcount));
      if (f.state == PageState::kKsm && f.shm_owned)
        fail(absl::StrFormat("pfn %d: KSM page owned by a shared object", pfn));
    }
    // Untouched offsets count as free frames in state kFree.
    if (free != b.free_pages)
      fail(absl::StrFormat("block %d: free_pages %d, frames say %d", b.id, b.free_pages, free));
    for (int s = 0; s < 8; ++s)
      if (counts[s] != b.count[s])
        fail(absl::StrFormat("block %d: %d frames in state %d, counter says %d", b.id, counts[s], s,
                             b.count[s]));
  }
  for (const auto& [pfn, n] : maps) {
    PageFrame* f = FrameIfPopulated(pfn);
    if (!f || f->state == PageState::kFree)
      fail(absl::StrFormat("pfn %d: mapped %d times but free", pfn, n));
  }
  for (const auto& [c, n] : content_refs) {
    if (c != contents_.zero() && c->refs != n)
      fail(absl::StrFormat("content %016x: refs %d, frames %d", c->hash, c->refs, n));
  }
  // Free-block sets agree with blocks.
  for (const MemoryBlock& b : blocks_) {
    bool listed = free_blocks_[b.node].count(b.id) > 0;
    bool want = b.state == BlockState::kOnline && b.free_pages > 0;
    if (listed != want) fail(absl::StrFormat("block %d: free-list membership wrong", b.id));
  }
  if (!processes_.empty() && next_pid_ <= processes_.rbegin()->first)
    fail(absl::StrFormat("next pid %d not above pid %d", next_pid_, processes_.rbegin()->first));
  ksm_->Check(&r.violations);

  // State digest.
  Digester d;
  for (const MemoryBlock& b : blocks_) {
    d.Add(b.id);
    d.Add(static_cast<uint64_t>(b.state));
    d.Add(b.free_pages);
    if (!b.frames) continue;
    for (uint64_t i = 0; i < b.pages; ++i) {
      const PageFrame& f = b.frames[i];
      if (f.state == PageState::kFree) continue;
      d.Add(b.start + i);
      d.Add(static_cast<uint64_t>(f.state));
      d.Add(f.content ? f.content->hash : 0);
      d.Add((uint64_t(uint32_t(f.refcount)) << 32) | uint32_t(f.mapcount));
      d.Add(f.pins);
      d.Add(f.ksm_node ? f.ksm_node->id : 0);
    }
  }
  for (const auto& [pid, p] : processes_) {
    d.Add(pid);
    d.Add(p->exited);
    for (const auto& [s, v] : p->vmas) {
      d.Add(v.start);
      d.Add(v.end);
      d.Add(v.prot | (v.shared << 4) | (v.mergeable << 5) | (v.anon_vma << 6));
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
  ksm_->AddToDigest([&d](uint64_t v) { d.Add(v); });
  r.state_digest = absl::StrFormat("%016x", d.value());
  return r;
}

}  // namespace memnode
