// Physical memory of an emulated machine: NUMA nodes made of memory blocks,
// lazily allocated page-frame metadata, the per-node page allocator, the
// shared zero page and the content store.
// Linux analogue: pglist_data and its zonelists, memory sections, struct
// page, the buddy allocator (mm/page_alloc.c) as far as observable.
//
// Thread safety: not thread-safe; owned by one machine and used under its
// lock.
#ifndef MEMNODE_SERVER_CORE_MEM_PHYS_MEM_H_
#define MEMNODE_SERVER_CORE_MEM_PHYS_MEM_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "server/core/mem/content.h"
#include "server/core/mem/page_frame.h"
#include "server/core/state_digest.h"
#include "server/core/types.h"

namespace memnode {

class SnapshotReader;
class SnapshotWriter;

class PhysMem {
 public:
  PhysMem(uint32_t nodes, uint32_t blocks_per_node, uint64_t pages_per_block);
  PhysMem(const PhysMem&) = delete;
  PhysMem& operator=(const PhysMem&) = delete;

  uint32_t nodes() const { return nodes_; }
  uint64_t pages_per_block() const { return pages_per_block_; }
  ContentStore& contents() { return contents_; }
  Pfn zero_pfn() const { return zero_pfn_; }
  // FreePage calls ever (Exit reports the pages an exit freed).
  uint64_t pages_freed() const { return pages_freed_; }

  // --- Blocks and frames --------------------------------------------------
  std::vector<MemoryBlock>& blocks() { return blocks_; }
  const std::vector<MemoryBlock>& blocks() const { return blocks_; }
  MemoryBlock& BlockOf(Pfn pfn) { return blocks_[pfn / pages_per_block_]; }
  NodeId NodeOf(Pfn pfn) { return BlockOf(pfn).node; }
  // One past the highest pfn (hot-added blocks extend the range).
  uint64_t PfnLimit() const { return blocks_.size() * pages_per_block_; }
  PageFrame& Frame(Pfn pfn) {
    MemoryBlock& b = BlockOf(pfn);
    if (!b.frames) EnsureFrames(b);
    return b.frames[pfn - b.start];
  }
  // Frame if its block's metadata exists, else null (never allocates).
  PageFrame* FrameIfPopulated(Pfn pfn);
  void EnsureFrames(MemoryBlock& b);

  // --- The allocator ------------------------------------------------------
  // Takes a free frame of `node` (lowest block with free pages, LIFO reuse).
  Pfn AllocOnNode(NodeId node);
  // Allocates from the first node of `order` that has a free page, in state
  // `state` holding `content` (one reference taken). kNoPfn when none has.
  Pfn AllocFromOrder(const std::vector<NodeId>& order, PageState state, Content* content);
  // The local zonelist: `first`, then the other nodes in id order.
  std::vector<NodeId> FallbackOrder(NodeId first) const;
  void FreePage(Pfn pfn);
  // Drops one reference; frees the frame when none is left.
  void PutPage(Pfn pfn);
  void SetState(Pfn pfn, PageFrame& f, PageState s);
  // Replaces a frame's content; the caller passes a reference it owns.
  void SetContent(PageFrame& f, Content* c);
  bool NodeHasMemory(NodeId n) const;
  // Mask of nodes with an online block (N_HIGH_MEMORY).
  uint64_t MemoryNodes() const;

  // --- Blocks as hotplug changes them -------------------------------------
  // Takes the block's free pages out of (or back into) the allocator.
  void Isolate(MemoryBlock& b);
  void Unisolate(MemoryBlock& b);
  // Offline: the block's frames leave the machine.
  void DropFrames(MemoryBlock& b);
  // Online: every page of the block becomes free.
  void ResetOnline(MemoryBlock& b);
  // Hot-add: a new OFFLINE block at the end of the pfn range.
  BlockId AddBlock(NodeId node);
  // Kernel allocations in a block (reserved pages; unmovable ones make
  // isolation fail). Precondition: `count` <= the block's free pages.
  void AllocKernelPages(MemoryBlock& b, uint64_t count, bool unmovable);
  uint64_t FreeKernelPages(MemoryBlock& b, uint64_t count);

  // --- Self-check, digest, host memory, snapshots -------------------------
  // `maps` / `pins`: the mappings and pins the page tables hold per frame.
  void Check(const absl::btree_map<Pfn, int32_t>& maps, const absl::btree_map<Pfn, int32_t>& pins,
             std::vector<std::string>* out);
  // `node_id` names a frame's stable node (0 = none).
  void AddToDigest(Digester& d, const std::function<uint64_t(const StableNode*)>& node_id) const;
  struct HostBytes {
    uint64_t frame_bytes = 0, block_bytes = 0, content_bytes = 0, populated_frames = 0;
  };
  HostBytes HostMemoryUsage() const;
  void Save(SnapshotWriter& w, const std::function<uint64_t(const StableNode*)>& node_id);
  // Rebuilds contents and blocks; *ksm_refs receives (frame, stable node id)
  // pairs for the KSM state to resolve. False on malformed input.
  bool Load(SnapshotReader& r, uint64_t min_blocks, std::vector<std::pair<Pfn, uint64_t>>* ksm_refs,
            std::string* why);
  void set_pages_freed(uint64_t n) { pages_freed_ = n; }

 private:
  const uint32_t nodes_;
  const uint64_t pages_per_block_;
  ContentStore contents_;
  std::vector<MemoryBlock> blocks_;
  // Per node: blocks (by id) that are online and have free pages.
  std::vector<absl::btree_set<BlockId>> free_blocks_;
  Pfn zero_pfn_ = 0;  // the shared zero page (first pfn of node 0)
  uint64_t pages_freed_ = 0;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MEM_PHYS_MEM_H_
