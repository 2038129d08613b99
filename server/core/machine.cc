// The façade: every public method takes the machine's lock and makes one call
// into the wired components (kernel.h). No emulation logic lives here.
#include "server/core/machine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/core/kernel.h"
#include "server/core/profile/profiles.h"
#include "server/core/snapshot/snapshot.h"
#include "server/core/status.h"

namespace memnode {

absl::Status MachineConfig::Validate() const {
  auto bad = [](const std::string& m) {
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidTopology, m);
  };
  if (nodes < 1 || nodes > 64) return bad("nodes must be 1..64");
  if (blocks_per_node < 1 || blocks_per_node > 65536)
    return bad("blocks_per_node must be 1..65536");
  if (pages_per_block < 64 || pages_per_block > (uint64_t{1} << 22) || pages_per_block % 64 != 0)
    return bad("pages_per_block must be a multiple of 64 in 64..4194304");
  if (!FindProfile(profile) || profile.empty()) {
    std::vector<std::string> names;
    for (const KernelProfile* p : AllProfiles())
      names.push_back(absl::StrCat("\"", p->name(), "\""));
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kUnknownProfile,
                     absl::StrCat("profile must be one of ", absl::StrJoin(names, ", ")));
  }
  return absl::OkStatus();
}

Machine::Machine(const MachineConfig& config, std::unique_ptr<internal::Kernel> kernel)
    : config_(config), k_(std::move(kernel)) {}

Machine::~Machine() {
  absl::MutexLock lock(&mu_);
  k_.reset();
}

absl::StatusOr<std::unique_ptr<Machine>> Machine::Create(const MachineConfig& config) {
  MEMNODE_RETURN_IF_ERROR(config.Validate());
  auto k = std::make_unique<internal::Kernel>(config, *FindProfile(config.profile));
  return std::unique_ptr<Machine>(new Machine(config, std::move(k)));
}

absl::StatusOr<std::unique_ptr<Machine>> Machine::Restore(absl::string_view bytes) {
  MEMNODE_ASSIGN_OR_RETURN(SnapshotHeader h, UnwrapSnapshot(bytes));
  MEMNODE_ASSIGN_OR_RETURN(MachineConfig c, ReadSnapshotConfig(h.payload));
  auto k = std::make_unique<internal::Kernel>(c, *FindProfile(c.profile));
  MEMNODE_RETURN_IF_ERROR(k->Load(h.payload, h.version));
  return std::unique_ptr<Machine>(new Machine(c, std::move(k)));
}

void Machine::AddObserver(Observer* o) {
  absl::MutexLock lock(&mu_);
  k_->events.Add(o);
}

void Machine::RemoveObserver(Observer* o) {
  absl::MutexLock lock(&mu_);
  k_->events.Remove(o);
}

// ---------------------------------------------------------------------------
// Machine and frames

MachineInfo Machine::Info() {
  absl::MutexLock lock(&mu_);
  return k_->Info();
}

absl::StatusOr<FrameInfo> Machine::GetFrame(Pfn pfn) {
  absl::MutexLock lock(&mu_);
  if (pfn >= k_->mem.PfnLimit())
    return MakeError(
        absl::StatusCode::kOutOfRange, Reason::kPfnOutOfRange,
        absl::StrCat("pfn ", pfn, " beyond the machine's ", k_->mem.PfnLimit(), " pages"));
  return k_->DescribeFrame(pfn);
}

absl::StatusOr<std::vector<FrameInfo>> Machine::ListFrames(Pfn start, uint64_t count,
                                                           bool skip_free) {
  absl::MutexLock lock(&mu_);
  PhysMem& mem = k_->mem;
  const uint64_t total = mem.PfnLimit();
  if (start >= total)
    return MakeError(absl::StatusCode::kOutOfRange, Reason::kPfnOutOfRange,
                     absl::StrCat("start_pfn ", start, " beyond the machine"));
  uint64_t end = std::min(total, start + count);
  std::vector<FrameInfo> out;
  for (Pfn pfn = start; pfn < end; ++pfn) {
    MemoryBlock& b = mem.BlockOf(pfn);
    if (skip_free && (!b.frames || b.frames[pfn - b.start].state == PageState::kFree) &&
        b.state != BlockState::kOffline && b.state != BlockState::kRemoved) {
      if (!b.frames) pfn = b.start + b.pages - 1;  // skip the untouched block
      continue;
    }
    out.push_back(k_->DescribeFrame(pfn));
  }
  return out;
}

CheckResult Machine::Check() {
  absl::MutexLock lock(&mu_);
  return k_->Check();
}

HostMemory Machine::HostMemoryUsage() {
  absl::MutexLock lock(&mu_);
  return k_->HostMemoryUsage();
}

// ---------------------------------------------------------------------------
// Processes and memory

absl::StatusOr<Pid> Machine::CreateProcess(const ProcessParams& params) {
  absl::MutexLock lock(&mu_);
  return k_->mm.CreateProcess(params);
}
absl::StatusOr<Pid> Machine::Fork(Pid pid) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Fork(pid);
}
absl::StatusOr<uint64_t> Machine::Exit(Pid pid) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Exit(pid);
}
absl::StatusOr<ProcessInfo> Machine::GetProcess(Pid pid) {
  absl::MutexLock lock(&mu_);
  return k_->mm.GetProcess(pid);
}
std::vector<ProcessInfo> Machine::ListProcesses(bool show_exited) {
  absl::MutexLock lock(&mu_);
  return k_->mm.ListProcesses(show_exited);
}
absl::StatusOr<MmapResult> Machine::Mmap(Pid pid, Vaddr addr, uint64_t length, uint32_t prot,
                                         bool shared, bool fixed) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Mmap(pid, addr, length, prot, shared, fixed);
}
absl::StatusOr<Errno> Machine::Munmap(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Munmap(pid, addr, length);
}
absl::StatusOr<Errno> Machine::Mprotect(Pid pid, Vaddr addr, uint64_t length, uint32_t prot) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Mprotect(pid, addr, length, prot);
}
absl::StatusOr<Errno> Machine::Madvise(Pid pid, Vaddr addr, uint64_t length, Advice advice) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Madvise(pid, addr, length, advice);
}
absl::StatusOr<AccessResult> Machine::Write(Pid pid, Vaddr addr, const uint8_t* data,
                                            uint64_t length) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Write(pid, addr, data, length);
}
absl::StatusOr<AccessResult> Machine::Fill(Pid pid, Vaddr addr, uint64_t length,
                                           const FillPattern& pattern) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Fill(pid, addr, length, pattern);
}
absl::StatusOr<ReadResult> Machine::Read(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Read(pid, addr, length);
}
absl::StatusOr<DigestResult> Machine::Digest(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Digest(pid, addr, length);
}
absl::StatusOr<AccessResult> Machine::Touch(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Touch(pid, addr, length);
}
absl::StatusOr<PinResult> Machine::Pin(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Pin(pid, addr, length);
}
absl::StatusOr<PinResult> Machine::Unpin(Pid pid, Vaddr addr, uint64_t length) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Unpin(pid, addr, length);
}
absl::StatusOr<std::vector<Translation>> Machine::Translate(Pid pid, Vaddr addr, uint64_t pages) {
  absl::MutexLock lock(&mu_);
  return k_->mm.Translate(pid, addr, pages);
}

// ---------------------------------------------------------------------------
// KSM

KsmInfo Machine::GetKsm() {
  absl::MutexLock lock(&mu_);
  return k_->ksm.Info();
}

absl::StatusOr<Errno> Machine::KsmUpdate(std::optional<uint64_t> run,
                                         std::optional<uint64_t> pages_to_scan,
                                         std::optional<uint64_t> sleep_millisecs) {
  std::vector<std::pair<std::string, uint64_t>> writes;
  if (run) writes.emplace_back("run", *run);
  if (pages_to_scan) writes.emplace_back("pages_to_scan", *pages_to_scan);
  if (sleep_millisecs) writes.emplace_back("sleep_millisecs", *sleep_millisecs);
  absl::MutexLock lock(&mu_);
  return k_->KsmWriteMany(writes);
}

absl::StatusOr<Errno> Machine::KsmWriteSysfs(absl::string_view file, absl::string_view text) {
  absl::MutexLock lock(&mu_);
  return k_->KsmWriteSysfs(file, text);
}

absl::StatusOr<KsmStepResult> Machine::KsmStepVisits(uint64_t visits) {
  absl::MutexLock lock(&mu_);
  return k_->KsmStepVisits(visits);
}

absl::StatusOr<KsmStepResult> Machine::KsmStepPasses(uint64_t passes, uint64_t max_visits) {
  absl::MutexLock lock(&mu_);
  return k_->KsmStepPasses(passes, max_visits);
}

std::vector<StableNodeInfo> Machine::KsmStableNodes() {
  absl::MutexLock lock(&mu_);
  return k_->ksm.StableNodes();
}

std::vector<RmapItemInfo> Machine::KsmUnstableItems() {
  absl::MutexLock lock(&mu_);
  return k_->ksm.UnstableItems();
}

absl::StatusOr<std::vector<RmapItemInfo>> Machine::KsmRmapItems(Pid pid) {
  absl::MutexLock lock(&mu_);
  Process* p = k_->mm.FindProcess(pid);
  if (!p)
    return MakeError(absl::StatusCode::kNotFound, Reason::kProcessNotFound,
                     absl::StrCat("no process ", pid));
  return k_->ksm.RmapItems(*p);
}

KsmdTick Machine::KsmdBatch() {
  absl::MutexLock lock(&mu_);
  return k_->KsmdBatch();
}

KsmdTick Machine::KsmdState() {
  absl::MutexLock lock(&mu_);
  return k_->KsmdState();
}

bool Machine::KsmLocked() {
  absl::MutexLock lock(&mu_);
  return k_->ksm.locked();
}

void Machine::SetKsmLookupCacheForTesting(bool on) {
  absl::MutexLock lock(&mu_);
  k_->ksm.set_use_lookup_cache(on);
}

void Machine::SetPruneByRescanForTesting(bool on) {
  absl::MutexLock lock(&mu_);
  k_->ksm_notifier.set_prune_by_rescan(on);
}

// ---------------------------------------------------------------------------
// NUMA policy and migration

absl::StatusOr<Errno> Machine::SetMempolicy(Pid pid, MpolMode mode, uint64_t nodes) {
  absl::MutexLock lock(&mu_);
  return k_->migration.SetMempolicy(pid, mode, nodes);
}
absl::StatusOr<MempolicyResult> Machine::GetMempolicy(Pid pid, std::optional<Vaddr> address,
                                                      bool node_of_address) {
  absl::MutexLock lock(&mu_);
  return k_->migration.GetMempolicy(pid, address, node_of_address);
}
absl::StatusOr<Errno> Machine::Mbind(Pid pid, Vaddr addr, uint64_t length, MpolMode mode,
                                     uint64_t nodes, uint32_t flags) {
  absl::MutexLock lock(&mu_);
  return k_->migration.Mbind(pid, addr, length, mode, nodes, flags);
}
absl::StatusOr<MigratePagesResult> Machine::MigratePages(Pid caller, Pid target, uint64_t old_nodes,
                                                         uint64_t new_nodes) {
  absl::MutexLock lock(&mu_);
  return k_->migration.MigratePages(caller, target, old_nodes, new_nodes);
}
absl::StatusOr<MovePagesResult> Machine::MovePages(Pid caller, Pid target,
                                                   const std::vector<Vaddr>& addresses,
                                                   const std::vector<int32_t>& nodes,
                                                   uint32_t flags) {
  absl::MutexLock lock(&mu_);
  return k_->migration.MovePages(caller, target, addresses, nodes, flags);
}

// ---------------------------------------------------------------------------
// Snapshots

absl::StatusOr<std::string> Machine::Snapshot() {
  absl::MutexLock lock(&mu_);
  return k_->Snapshot();
}

// ---------------------------------------------------------------------------
// Memory blocks and hotplug

std::vector<BlockInfo> Machine::ListBlocks() {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.ListBlocks();
}
absl::StatusOr<BlockInfo> Machine::GetBlock(BlockId id) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.GetBlock(id);
}
absl::StatusOr<uint64_t> Machine::AllocKernelPages(BlockId id, uint64_t count, bool unmovable) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.AllocKernelPages(id, count, unmovable);
}
absl::StatusOr<uint64_t> Machine::FreeKernelPages(BlockId id, uint64_t count) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.FreeKernelPages(id, count);
}
absl::StatusOr<OfflineReport> Machine::OfflineBlock(BlockId id, const OfflineOptions& options,
                                                    absl::Time now) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.OfflineBlock(id, options, now);
}
absl::StatusOr<OfflineReport> Machine::ResumeOffline(BlockId id,
                                                     std::optional<OfflinePhase> pause_after,
                                                     absl::Time now) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.ResumeOffline(id, pause_after, now);
}
absl::StatusOr<OfflineReport> Machine::CancelOffline(BlockId id) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.CancelOffline(id);
}
bool Machine::ExpirePausedOffline(absl::Time now) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.ExpirePausedOffline(now);
}
absl::StatusOr<Errno> Machine::OnlineBlock(BlockId id) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.OnlineBlock(id);
}
absl::StatusOr<BlockId> Machine::AddBlock(NodeId node) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.AddBlock(node);
}
absl::StatusOr<Errno> Machine::RemoveBlock(BlockId id) {
  absl::MutexLock lock(&mu_);
  return k_->hotplug.RemoveBlock(id);
}
absl::Status Machine::InjectNotifierFailure(MemEvent event, int priority, Errno err,
                                            uint32_t count) {
  absl::MutexLock lock(&mu_);
  return k_->notifiers.Inject(event, priority, err, count);
}
void Machine::ClearNotifierFailures() {
  absl::MutexLock lock(&mu_);
  k_->notifiers.ClearInjected();
}

}  // namespace memnode
