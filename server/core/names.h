// Display names of the core's enums: one table per enum, nothing else
// (the service maps enums to proto values in server/service/convert.cc).
// Thread safety: stateless.
#ifndef MEMNODE_SERVER_CORE_NAMES_H_
#define MEMNODE_SERVER_CORE_NAMES_H_

#include "server/core/events.h"
#include "server/core/types.h"

namespace memnode {

const char* ErrnoName(Errno e);                  // "EBUSY"
const char* PageStateName(PageState s);          // "ksm"
const char* BlockStateName(BlockState s);        // "going-offline"
const char* MemEventName(MemEvent e);            // "MEM_GOING_OFFLINE"
const char* OfflinePhaseName(OfflinePhase p);    // "going_offline"
const char* MigrateReasonName(MigrateReason r);  // "move_pages"
const char* PruneReasonName(PruneReason r);      // "stale"
const char* EventKindName(EventKind k);          // "merge"

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_NAMES_H_
