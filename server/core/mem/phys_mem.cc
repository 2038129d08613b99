// Overview: the machine's physical side - topology, lazily allocated page
// frame metadata, the per-node allocator - plus its part of the self-check,
// the state digest and snapshots.
//
// Invariants (checked by Check()):
//   1. A frame's mapcount equals the ptes (of all processes) that map it; the
//      zero page is not counted (its ptes are "special", like the kernel's).
//   2. refcount == mapcount + pins + (1 if a shared object owns the frame).
//   3. A frame is free exactly when its refcount is 0; free frames hold no
//      content; every other frame holds a live content.
//   4. Each block's free_pages and per-state counts agree with its frames.
//   5. A block is in its node's free set exactly when it is online and has
//      free pages.
#include "server/core/mem/phys_mem.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "server/core/snapshot/snapshot_io.h"
#include "server/core/status.h"

namespace memnode {

PhysMem::PhysMem(uint32_t nodes, uint32_t blocks_per_node, uint64_t pages_per_block)
    : nodes_(nodes), pages_per_block_(pages_per_block) {
  const uint32_t nblocks = nodes * blocks_per_node;
  blocks_.resize(nblocks);
  free_blocks_.resize(nodes);
  for (BlockId b = 0; b < nblocks; ++b) {
    MemoryBlock& blk = blocks_[b];
    blk.id = b;
    blk.node = b / blocks_per_node;
    blk.start = uint64_t{b} * pages_per_block;
    blk.pages = pages_per_block;
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
}

void PhysMem::EnsureFrames(MemoryBlock& b) {
  if (!b.frames) b.frames.reset(new PageFrame[b.pages]);
}

PageFrame* PhysMem::FrameIfPopulated(Pfn pfn) {
  if (pfn >= PfnLimit()) return nullptr;
  MemoryBlock& b = BlockOf(pfn);
  if (!b.frames) return nullptr;
  return &b.frames[pfn - b.start];
}

void PhysMem::SetState(Pfn pfn, PageFrame& f, PageState s) {
  MemoryBlock& b = BlockOf(pfn);
  b.count[static_cast<int>(f.state)]--;
  b.count[static_cast<int>(s)]++;
  f.state = s;
}

Pfn PhysMem::AllocOnNode(NodeId node) {
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

Pfn PhysMem::AllocFromOrder(const std::vector<NodeId>& order, PageState state, Content* content) {
  for (NodeId n : order) {
    if (n >= free_blocks_.size() || free_blocks_[n].empty()) continue;
    Pfn pfn = AllocOnNode(n);
    PageFrame& f = Frame(pfn);
    MEMNODE_CHECK(f.state == PageState::kFree && f.refcount == 0, "allocated a busy frame");
    SetState(pfn, f, state);
    f.content = content;
    contents_.Ref(content);
    f.refcount = f.mapcount = f.pins = 0;
    f.ksm_node = nullptr;
    f.shm_owned = false;
    f.unmovable = false;
    return pfn;
  }
  return kNoPfn;
}

std::vector<NodeId> PhysMem::FallbackOrder(NodeId first) const {
  std::vector<NodeId> order{first};
  for (NodeId n = 0; n < nodes_; ++n)
    if (n != first) order.push_back(n);
  return order;
}

void PhysMem::FreePage(Pfn pfn) {
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

void PhysMem::PutPage(Pfn pfn) {
  PageFrame& f = Frame(pfn);
  MEMNODE_CHECK(f.refcount > 0, "page refcount underflow");
  if (--f.refcount == 0) FreePage(pfn);
}

void PhysMem::SetContent(PageFrame& f, Content* c) {
  Content* old = f.content;
  f.content = c;
  if (old) contents_.Unref(old);
}

bool PhysMem::NodeHasMemory(NodeId n) const {
  for (const MemoryBlock& b : blocks_)
    if (b.node == n && b.state == BlockState::kOnline) return true;
  return false;
}

uint64_t PhysMem::MemoryNodes() const {
  uint64_t m = 0;
  for (const MemoryBlock& b : blocks_)
    if (b.state == BlockState::kOnline) m |= uint64_t{1} << b.node;
  return m;
}

// ---------------------------------------------------------------------------
// Hotplug's view

void PhysMem::Isolate(MemoryBlock& b) { free_blocks_[b.node].erase(b.id); }

void PhysMem::Unisolate(MemoryBlock& b) {
  if (b.free_pages > 0) free_blocks_[b.node].insert(b.id);
}

void PhysMem::DropFrames(MemoryBlock& b) {
  b.frames.reset();
  b.free_stack.clear();
  b.free_stack.shrink_to_fit();
  b.next_untouched = 0;
  b.free_pages = 0;
  std::fill(std::begin(b.count), std::end(b.count), 0);
  b.count[static_cast<int>(PageState::kFree)] = b.pages;
}

void PhysMem::ResetOnline(MemoryBlock& b) {
  b.frames.reset();
  b.free_stack.clear();
  b.next_untouched = 0;
  b.free_pages = b.pages;
  std::fill(std::begin(b.count), std::end(b.count), 0);
  b.count[static_cast<int>(PageState::kFree)] = b.pages;
  b.unmovable_pages = 0;
  b.state = BlockState::kOnline;
  free_blocks_[b.node].insert(b.id);
}

BlockId PhysMem::AddBlock(NodeId node) {
  MemoryBlock b;
  b.id = static_cast<BlockId>(blocks_.size());
  b.node = node;
  b.start = uint64_t{b.id} * pages_per_block_;
  b.pages = pages_per_block_;
  b.state = BlockState::kOffline;  // add_memory leaves new sections offline
  b.count[static_cast<int>(PageState::kFree)] = b.pages;
  blocks_.push_back(std::move(b));
  return blocks_.back().id;
}

void PhysMem::AllocKernelPages(MemoryBlock& b, uint64_t count, bool unmovable) {
  EnsureFrames(b);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t off;
    if (!b.free_stack.empty()) {
      off = b.free_stack.back();
      b.free_stack.pop_back();
    } else {
      off = b.next_untouched++;
    }
    if (--b.free_pages == 0) free_blocks_[b.node].erase(b.id);
    Pfn pfn = b.start + off;
    PageFrame& f = b.frames[off];
    SetState(pfn, f, PageState::kReserved);
    f.content = contents_.zero();
    f.refcount = 1;  // the kernel's own reference
    f.unmovable = unmovable;
    if (unmovable) b.unmovable_pages++;
  }
}

uint64_t PhysMem::FreeKernelPages(MemoryBlock& b, uint64_t count) {
  uint64_t freed = 0;
  if (!b.frames) return freed;
  for (uint64_t i = 0; i < b.pages && freed < count; ++i) {
    PageFrame& f = b.frames[i];
    if (f.state != PageState::kReserved) continue;
    if (f.unmovable) b.unmovable_pages--;
    f.unmovable = false;
    f.refcount = 0;
    FreePage(b.start + i);
    freed++;
  }
  return freed;
}

// ---------------------------------------------------------------------------
// Self-check and digest

void PhysMem::Check(const absl::btree_map<Pfn, int32_t>& maps,
                    const absl::btree_map<Pfn, int32_t>& pins, std::vector<std::string>* out) {
  auto fail = [out](std::string s) {
    if (out->size() < 100) out->push_back(std::move(s));
  };
  absl::btree_map<Content*, uint32_t> content_refs;
  for (const MemoryBlock& b : blocks_) {
    if (!b.frames) {
      if (b.count[0] != b.pages)
        fail(absl::StrFormat("block %d: unpopulated but counts differ", b.id));
      continue;
    }
    uint64_t free = 0;
    uint64_t counts[kPageStates] = {};
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
    for (int s = 0; s < kPageStates; ++s)
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
  for (const MemoryBlock& b : blocks_) {
    bool listed = free_blocks_[b.node].count(b.id) > 0;
    bool want = b.state == BlockState::kOnline && b.free_pages > 0;
    if (listed != want) fail(absl::StrFormat("block %d: free-list membership wrong", b.id));
  }
}

void PhysMem::AddToDigest(Digester& d,
                          const std::function<uint64_t(const StableNode*)>& node_id) const {
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
      d.Add(f.ksm_node ? node_id(f.ksm_node) : 0);
    }
  }
}

PhysMem::HostBytes PhysMem::HostMemoryUsage() const {
  HostBytes hm;
  hm.block_bytes = blocks_.capacity() * sizeof(MemoryBlock);
  for (const MemoryBlock& b : blocks_) {
    if (b.frames) hm.frame_bytes += b.pages * sizeof(PageFrame);
    hm.block_bytes += b.free_stack.capacity() * sizeof(uint32_t);
    hm.populated_frames += b.pages - b.count[static_cast<int>(PageState::kFree)];
  }
  hm.content_bytes = contents_.host_bytes();
  return hm;
}

// ---------------------------------------------------------------------------
// Snapshots: the distinct contents referenced by frames (id 0 = none, 1 =
// zero page, 2.. = stored), then every block with its allocator state (free
// stack order included: it decides future pfns) and, when populated, every
// frame.

void PhysMem::Save(SnapshotWriter& w, const std::function<uint64_t(const StableNode*)>& node_id) {
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
  auto cid = [&](Content* c) -> uint64_t {
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
      w.U64(f.ksm_node ? node_id(f.ksm_node) : 0);
    }
  }
}

bool PhysMem::Load(SnapshotReader& r, uint64_t min_blocks,
                   std::vector<std::pair<Pfn, uint64_t>>* ksm_refs, std::string* why) {
  auto bad = [why](const char* w) {
    *why = w;
    return false;
  };
  uint64_t ncontents = r.Count(kPageSize);
  std::vector<Content*> contents{nullptr, contents_.zero()};
  for (uint64_t i = 0; i < ncontents && r.ok(); ++i) {
    uint8_t* buf = contents_.scratch_bytes();
    if (!r.Bytes(buf, kPageSize)) break;
    contents.push_back(contents_.Intern(buf));
  }
  if (!r.ok()) return bad("contents");
  uint64_t nblocks = r.Count(6);
  if (nblocks < min_blocks || nblocks > uint64_t{nodes_} * 65536) return bad("block count");
  // Start from an empty machine: the constructor's zero page is re-read.
  blocks_.clear();
  blocks_.resize(nblocks);
  for (auto& set : free_blocks_) set.clear();
  for (uint64_t bi = 0; bi < nblocks && r.ok(); ++bi) {
    MemoryBlock& b = blocks_[bi];
    b.id = static_cast<BlockId>(bi);
    b.node = static_cast<NodeId>(r.U64());
    b.start = bi * pages_per_block_;
    b.pages = pages_per_block_;
    uint64_t st = r.U64();
    if (st > 3 || b.node >= nodes_) return bad("block state or node");
    b.state = static_cast<BlockState>(st);
    b.next_untouched = r.U64();
    b.free_pages = r.U64();
    b.unmovable_pages = r.U64();
    uint64_t nfree = r.Count(1);
    if (b.next_untouched > b.pages || nfree > b.pages) return bad("allocator state");
    for (uint64_t i = 0; i < nfree; ++i) {
      uint64_t off = r.U64();
      if (off >= b.pages) return bad("free stack");
      b.free_stack.push_back(static_cast<uint32_t>(off));
    }
    b.count[static_cast<int>(PageState::kFree)] = b.pages;
    if (r.U64()) {
      b.frames.reset(new PageFrame[b.pages]);
      for (uint64_t i = 0; i < b.pages && r.ok(); ++i) {
        PageFrame& f = b.frames[i];
        uint64_t fs = r.U64();
        if (fs > static_cast<uint64_t>(PageState::kOffline)) return bad("frame state");
        if (fs == 0) continue;
        b.count[0]--;
        b.count[fs]++;
        f.state = static_cast<PageState>(fs);
        uint64_t ci = r.U64();
        if (ci >= contents.size()) return bad("content reference");
        f.content = contents[ci];
        if (f.content) contents_.Ref(f.content);
        f.refcount = static_cast<int32_t>(r.U64());
        f.mapcount = static_cast<int32_t>(r.U64());
        f.pins = static_cast<int32_t>(r.U64());
        uint64_t flags = r.U64();
        f.shm_owned = flags & 1;
        f.unmovable = flags & 2;
        uint64_t node_id = r.U64();
        if (node_id) ksm_refs->emplace_back(b.start + i, node_id);
      }
    }
    if (b.state == BlockState::kOnline && b.free_pages > 0) free_blocks_[b.node].insert(b.id);
  }
  if (!r.ok()) return bad("blocks");
  // Drop the references Intern() gave the content table itself.
  for (size_t i = 2; i < contents.size(); ++i) contents_.Unref(contents[i]);
  return true;
}

}  // namespace memnode
