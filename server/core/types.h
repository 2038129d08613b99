// Basic types of the emulated machine: page size, ids, errno values.
// Linux analogue: the vocabulary of mm/ (PAGE_SIZE, pfn, nid, pid, errno).
// Thread safety: plain values, no shared state.
#ifndef MEMNODE_SERVER_CORE_TYPES_H_
#define MEMNODE_SERVER_CORE_TYPES_H_

#include <cstdint>

namespace memnode {

inline constexpr uint64_t kPageShift = 12;
inline constexpr uint64_t kPageSize = uint64_t{1} << kPageShift;  // bytes
inline constexpr uint64_t kPageMask = ~(kPageSize - 1);

using Pfn = uint64_t;      // page frame number
using NodeId = uint32_t;   // NUMA node id
using BlockId = uint32_t;  // memory block index, machine-wide
using Pid = int32_t;       // process id
using Vaddr = uint64_t;    // user virtual address, bytes

inline constexpr Pfn kNoPfn = ~Pfn{0};

// Emulated errno (Linux x86_64 numbers). kOk means the emulated call
// succeeded. Returned as data inside OK results, never as absl::Status.
enum class Errno : int {
  kOk = 0,
  kEPERM = 1,
  kENOENT = 2,
  kESRCH = 3,
  kEINTR = 4,
  kEIO = 5,
  kEAGAIN = 11,
  kENOMEM = 12,
  kEACCES = 13,
  kEFAULT = 14,
  kEBUSY = 16,
  kENODEV = 19,
  kEINVAL = 22,
};

const char* ErrnoName(Errno e);

// Protection bits of a VMA (PROT_*).
inline constexpr uint32_t kProtRead = 1;
inline constexpr uint32_t kProtWrite = 2;

enum class ClockMode { kManual, kRealtime };

// State of a page frame (what struct page's flags and mapping say).
enum class PageState : uint8_t {
  kFree = 0,  // in the node's free lists (or never used)
  kAnon,      // PageAnon, not KSM
  kKsm,       // PageKsm
  kShmem,     // page of a shared anonymous object
  kZero,      // the shared zero page (reserved)
  kReserved,  // unmovable kernel page (reserved)
  kOffline,   // in an offline block
};

const char* PageStateName(PageState s);

enum class Advice { kDontNeed = 4, kMergeable = 12, kUnmergeable = 13 };

inline constexpr uint64_t PageAlignDown(uint64_t a) { return a & kPageMask; }
inline constexpr bool PageAligned(uint64_t a) { return (a & ~kPageMask) == 0; }

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_TYPES_H_
