// Page frames and memory blocks: the physical side of the machine.
// Linux analogue: struct page (32 bytes here, the kernel's is 64) and the
// memory sections / memory blocks of drivers/base/memory.c.
// Thread safety: plain data, used under the machine's lock.
#ifndef MEMNODE_SERVER_CORE_MEM_PAGE_FRAME_H_
#define MEMNODE_SERVER_CORE_MEM_PAGE_FRAME_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "server/core/types.h"

namespace memnode {

struct Content;
struct StableNode;

// struct page, 32 bytes.
struct PageFrame {
  Content* content = nullptr;      // bytes; null when free
  StableNode* ksm_node = nullptr;  // page->mapping of a KSM page (may be null
                                   // transiently during a merge)
  int32_t refcount = 0;            // page_count: mapcount + pins (+1 shm owner)
  int32_t mapcount = 0;            // ptes mapping the frame
  int32_t pins = 0;                // extra references (get_user_pages)
  PageState state = PageState::kFree;
  bool shm_owned = false;  // a shared-anonymous object holds a ref
  bool unmovable = false;  // kReserved: in an unmovable pageblock
                           // (false: a non-LRU page in a movable one)
};

// A memory block (sysfs memoryN; one sparsemem section in 2.6.33).
struct MemoryBlock {
  BlockId id = 0;
  NodeId node = 0;
  Pfn start = 0;
  uint64_t pages = 0;
  BlockState state = BlockState::kOnline;
  // Frame metadata, allocated when a page of the block is first used.
  std::unique_ptr<PageFrame[]> frames;
  std::vector<uint32_t> free_stack;  // offsets freed, reused LIFO
  uint64_t next_untouched = 0;       // offsets >= this were never allocated
  uint64_t free_pages = 0;
  uint64_t count[kPageStates] = {};  // frames per PageState (index = state)
  uint64_t unmovable_pages = 0;      // kReserved frames with `unmovable`

  uint64_t Count(PageState s) const { return count[static_cast<int>(s)]; }
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MEM_PAGE_FRAME_H_
