// KSM's memory notifier callback: MEM_GOING_OFFLINE takes KSM's lock
// (ksm_thread_mutex at the seed), MEM_OFFLINE prunes every stable node whose
// kpfn lies in the block and releases it, MEM_CANCEL_OFFLINE releases it.
// Linux analogue: ksm_memory_callback in mm/ksm.c, registered at priority 100.
// Thread safety: called under the machine's lock.
#ifndef MEMNODE_SERVER_CORE_KSM_KSM_NOTIFIER_H_
#define MEMNODE_SERVER_CORE_KSM_KSM_NOTIFIER_H_

#include "server/core/hotplug/notifier.h"
#include "server/core/ksm/ksm.h"

namespace memnode {

class KsmMemoryNotifier final : public MemoryNotifier {
 public:
  static constexpr int kPriority = 100;  // hotplug_memory_notifier(ksm_memory_callback, 100)
  explicit KsmMemoryNotifier(Ksm& ksm) : ksm_(ksm) {}
  int priority() const override { return kPriority; }
  const char* name() const override { return "ksm"; }
  Errno Notify(MemEvent event, MemoryNotify& arg) override;
  // Prune with the seed's quadratic rescan instead of the kpfn index
  // (benchmarks and differential tests; the results are identical).
  void set_prune_by_rescan(bool on) { prune_by_rescan_ = on; }

 private:
  Ksm& ksm_;
  bool prune_by_rescan_ = false;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_KSM_KSM_NOTIFIER_H_
