#include "server/core/names.h"

namespace memnode {

const char* ErrnoName(Errno e) {
  switch (e) {
    case Errno::kOk: return "OK";
    case Errno::kEPERM: return "EPERM";
    case Errno::kENOENT: return "ENOENT";
    case Errno::kESRCH: return "ESRCH";
    case Errno::kEINTR: return "EINTR";
    case Errno::kEIO: return "EIO";
    case Errno::kEAGAIN: return "EAGAIN";
    case Errno::kENOMEM: return "ENOMEM";
    case Errno::kEACCES: return "EACCES";
    case Errno::kEFAULT: return "EFAULT";
    case Errno::kEBUSY: return "EBUSY";
    case Errno::kENODEV: return "ENODEV";
    case Errno::kEINVAL: return "EINVAL";
    case Errno::kERANGE: return "ERANGE";
  }
  return "E?";
}

const char* PageStateName(PageState s) {
  switch (s) {
    case PageState::kFree: return "free";
    case PageState::kAnon: return "anon";
    case PageState::kKsm: return "ksm";
    case PageState::kShmem: return "shmem";
    case PageState::kZero: return "zero";
    case PageState::kReserved: return "reserved";
    case PageState::kOffline: return "offline";
  }
  return "?";
}

const char* BlockStateName(BlockState s) {
  switch (s) {
    case BlockState::kOnline: return "online";
    case BlockState::kGoingOffline: return "going-offline";
    case BlockState::kOffline: return "offline";
    case BlockState::kRemoved: return "removed";
  }
  return "?";
}

const char* MemEventName(MemEvent e) {
  switch (e) {
    case MemEvent::kGoingOnline: return "MEM_GOING_ONLINE";
    case MemEvent::kCancelOnline: return "MEM_CANCEL_ONLINE";
    case MemEvent::kOnline: return "MEM_ONLINE";
    case MemEvent::kGoingOffline: return "MEM_GOING_OFFLINE";
    case MemEvent::kCancelOffline: return "MEM_CANCEL_OFFLINE";
    case MemEvent::kOffline: return "MEM_OFFLINE";
  }
  return "?";
}

const char* OfflinePhaseName(OfflinePhase p) {
  switch (p) {
    case OfflinePhase::kNone: return "none";
    case OfflinePhase::kIsolated: return "isolated";
    case OfflinePhase::kGoingOffline: return "going_offline";
    case OfflinePhase::kMigrated: return "migrated";
    case OfflinePhase::kDone: return "done";
  }
  return "?";
}

const char* MigrateReasonName(MigrateReason r) {
  switch (r) {
    case MigrateReason::kOffline: return "offline";
    case MigrateReason::kMbind: return "mbind";
    case MigrateReason::kMigratePages: return "migrate_pages";
    case MigrateReason::kMovePages: return "move_pages";
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
    case EventKind::kKsmStartScan: return "ksm_start_scan";
    case EventKind::kKsmStopScan: return "ksm_stop_scan";
    case EventKind::kKsmEnter: return "ksm_enter";
    case EventKind::kKsmExit: return "ksm_exit";
    case EventKind::kKsmMergeOnePage: return "ksm_merge_one_page";
    case EventKind::kKsmMergeWithKsmPage: return "ksm_merge_with_ksm_page";
    case EventKind::kKsmRemoveKsmPage: return "ksm_remove_ksm_page";
    case EventKind::kKsmRemoveRmapItem: return "ksm_remove_rmap_item";
    case EventKind::kKsmAdvisor: return "ksm_advisor";
  }
  return "?";
}

}  // namespace memnode
