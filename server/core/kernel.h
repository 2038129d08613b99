// The emulated kernel of one machine: its components wired together. Each
// component reaches another only through the narrow hooks it declares
// (KsmHost, MmKsmHooks, MigrateKsmHooks, MemoryNotifier); this class
// implements those hooks and owns the components in dependency order.
//
//   profile   the KernelProfile chosen at creation (profile/)
//   clock     emulated time (clock.h)
//   events    passive observers (events.h)
//   mem       nodes, blocks, frames, allocator, contents (mem/)
//   mm        processes, VMAs, page tables, faults (mm/)
//   ksm       the KSM engine (ksm/) and its memory notifier
//   migration mempolicy, mbind, migrate_pages, move_pages (migrate/)
//   notifiers the memory notifier chain (hotplug/notifier.h)
//   hotplug   blocks, offline/online (hotplug/)
//
// Machine (machine.h) is the façade: it holds the lock and calls in here.
// Thread safety: not thread-safe; every use is under Machine's lock.
#ifndef MEMNODE_SERVER_CORE_KERNEL_H_
#define MEMNODE_SERVER_CORE_KERNEL_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/api.h"
#include "server/core/clock.h"
#include "server/core/events.h"
#include "server/core/hotplug/hotplug.h"
#include "server/core/hotplug/notifier.h"
#include "server/core/ksm/ksm.h"
#include "server/core/ksm/ksm_host.h"
#include "server/core/ksm/ksm_notifier.h"
#include "server/core/mem/phys_mem.h"
#include "server/core/migrate/migrate.h"
#include "server/core/mm/mm.h"
#include "server/core/profile/profile.h"

namespace memnode::internal {

class Kernel final : public KsmHost, public MmKsmHooks, public MigrateKsmHooks {
 public:
  Kernel(const MachineConfig& config, const KernelProfile& profile);
  ~Kernel() override;
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  const MachineConfig config;
  const KernelProfile& profile;
  EmulatedClock clock;
  EventSink events;
  PhysMem mem;
  Mm mm;
  Ksm ksm;
  KsmMemoryNotifier ksm_notifier;
  Migration migration;
  NotifierChain notifiers;
  Hotplug hotplug;

  // --- Machine-wide views -----------------------------------------------------
  MachineInfo Info();
  FrameInfo DescribeFrame(Pfn pfn);
  CheckResult Check();
  HostMemory HostMemoryUsage();

  // --- KSM entry points (ksm_api.cc) -------------------------------------------
  // A sysfs write of `file`; UNKNOWN_SYSFS_FILE for a file the profile lacks,
  // KSM_LOCKED when the file waits for an offline that holds KSM's lock.
  absl::StatusOr<Errno> KsmWriteSysfs(absl::string_view file, absl::string_view text);
  // Typed writes of several files: all parsed before any applies.
  absl::StatusOr<Errno> KsmWriteMany(const std::vector<std::pair<std::string, uint64_t>>& writes);
  absl::StatusOr<KsmStepResult> KsmStepVisits(uint64_t visits);
  absl::StatusOr<KsmStepResult> KsmStepPasses(uint64_t passes, uint64_t max_visits);
  KsmdTick KsmdBatch();
  KsmdTick KsmdState();

  // --- Snapshots (snapshot/snapshot.cc) ----------------------------------------
  absl::StatusOr<std::string> Snapshot();
  // Fills this fresh kernel from a snapshot payload of format `version`.
  absl::Status Load(absl::string_view payload, uint32_t version);

  // --- KsmHost ---------------------------------------------------------------
  Pfn MergeablePage(Process& mm, Vaddr addr) override;
  Pfn MappedPage(Process& mm, Vaddr addr) override;
  uint64_t AnonVmaOf(Process& mm, Vaddr addr) override;
  bool InMergeableVma(Process& mm, Vaddr addr) override;
  bool WriteProtectPage(Process& mm, Vaddr addr, Pfn page) override;
  void ReplacePage(Process& mm, Vaddr addr, Pfn page, Pfn kpage) override;
  void BreakCow(Process& mm, Vaddr addr) override;
  Errno UnmergeMm(Process& mm) override;
  NextPage NextMergeablePage(Process& mm, Vaddr* cursor) override;
  void DropMm(Process& mm) override;

  // --- MmKsmHooks ------------------------------------------------------------
  void KsmEnter(Process& mm) override { ksm.Enter(mm); }
  void KsmExit(Process& mm) override { ksm.Exit(mm); }

  // --- MigrateKsmHooks -------------------------------------------------------
  void KsmPageMigrated(StableNode* node, Pfn new_kpfn) override {
    ksm.MigratedNode(node, new_kpfn);
  }
  void KsmRmapWalk(const StableNode* node,
                   std::vector<std::pair<Process*, uint64_t>>* out) override;

 private:
  absl::Status KsmLockedError() const;
};

}  // namespace memnode::internal

#endif  // MEMNODE_SERVER_CORE_KERNEL_H_
