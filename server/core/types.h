// The vocabulary of the emulated machine: page size, ids, errno values and
// every enum that crosses a component boundary (namespace scope, one name
// table each in names.cc).
// Linux analogue: PAGE_SIZE, pfn, nid, pid, errno, the states of struct page,
// memory block states, memory notifier events (include/linux/mm*.h, memory.h).
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
  kERANGE = 34,
};

// The kernel's "-errno" in an int (per-page statuses of move_pages).
inline constexpr int32_t NegErrno(Errno e) { return -static_cast<int32_t>(e); }

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
inline constexpr int kPageStates = 8;  // size of per-state count arrays

enum class Advice { kDontNeed = 4, kMergeable = 12, kUnmergeable = 13 };

// A memory block's state (drivers/base/memory.c `state`).
enum class BlockState { kOnline, kGoingOffline, kOffline, kRemoved };

// Memory notifier events (include/linux/memory.h MEM_*).
enum class MemEvent {
  kGoingOnline,
  kCancelOnline,
  kOnline,
  kGoingOffline,
  kCancelOffline,
  kOffline
};

inline constexpr MemEvent kAllMemEvents[] = {MemEvent::kGoingOnline,   MemEvent::kCancelOnline,
                                             MemEvent::kOnline,        MemEvent::kGoingOffline,
                                             MemEvent::kCancelOffline, MemEvent::kOffline};

// The phases of an offline a client may pause after (SPEC Decisions 4).
enum class OfflinePhase { kNone, kIsolated, kGoingOffline, kMigrated, kDone };

// Who asked for a migration (docs/SEMANTICS.md, migration).
enum class MigrateReason { kOffline, kMbind, kMigratePages, kMovePages };

inline constexpr MigrateReason kAllMigrateReasons[] = {
    MigrateReason::kOffline, MigrateReason::kMbind, MigrateReason::kMigratePages,
    MigrateReason::kMovePages};

// Why a stable node left the stable tree.
enum class PruneReason {
  kStale,    // get_ksm_page found the KSM page gone (lazy pruning)
  kOffline,  // MEM_OFFLINE pruned a node whose kpfn lies in the block
  kUnmerge,  // run=2 unmerge freed the node's page
};

inline constexpr PruneReason kAllPruneReasons[] = {PruneReason::kStale, PruneReason::kOffline,
                                                   PruneReason::kUnmerge};

// NUMA memory policy modes (MPOL_*), 2.6.33's set.
enum class MpolMode { kDefault = 0, kPreferred = 1, kBind = 2, kInterleave = 3 };

// A NUMA memory policy (struct mempolicy).
struct MemPolicy {
  using Mode = MpolMode;
  static constexpr MpolMode kDefault = MpolMode::kDefault;
  static constexpr MpolMode kPreferred = MpolMode::kPreferred;
  static constexpr MpolMode kBind = MpolMode::kBind;
  static constexpr MpolMode kInterleave = MpolMode::kInterleave;
  MpolMode mode = MpolMode::kDefault;
  uint64_t nodes = 0;  // node mask (bit n = node n); PREFERRED: one bit or none (local)
};

inline constexpr bool PageAligned(uint64_t a) { return (a & ~kPageMask) == 0; }
inline constexpr uint64_t PageAlignDown(uint64_t a) { return a & kPageMask; }

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_TYPES_H_
