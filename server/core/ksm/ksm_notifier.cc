#include "server/core/ksm/ksm_notifier.h"

namespace memnode {

Errno KsmMemoryNotifier::Notify(MemEvent event, MemoryNotify& arg) {
  switch (event) {
    case MemEvent::kGoingOffline: ksm_.Lock(); break;
    case MemEvent::kOffline: {
      const Pfn end = arg.start_pfn + arg.nr_pages;
      arg.stable_nodes_pruned = prune_by_rescan_ ? ksm_.PruneRangeByRescan(arg.start_pfn, end)
                                                 : ksm_.PruneRange(arg.start_pfn, end);
      ksm_.Unlock();
      break;
    }
    case MemEvent::kCancelOffline:
      ksm_.Unlock();  // only if held: a no-op otherwise
      break;
    default: break;
  }
  return Errno::kOk;
}

}  // namespace memnode
