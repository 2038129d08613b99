#include "server/service/convert.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/service/status_mapping.h"

namespace memnode::service {
namespace {

grpc::Status BadName(const std::string& name, absl::string_view want) {
  return Error(grpc::StatusCode::INVALID_ARGUMENT, Reason::kInvalidName,
               absl::StrCat("resource name \"", name, "\" is not of the form ", want));
}

}  // namespace

grpc::Status ParseMachineName(const std::string& name, std::string* id) {
  std::vector<std::string> parts = absl::StrSplit(name, '/');
  if (parts.size() != 2 || parts[0] != "machines" || !ValidMachineId(parts[1]))
    return BadName(name, "machines/{machine}");
  *id = parts[1];
  return grpc::Status::OK;
}

grpc::Status ParseProcessName(const std::string& name, std::string* id, Pid* pid) {
  std::vector<std::string> parts = absl::StrSplit(name, '/');
  int32_t p = 0;
  if (parts.size() != 4 || parts[0] != "machines" || !ValidMachineId(parts[1]) ||
      parts[2] != "processes" || !absl::SimpleAtoi(parts[3], &p) || p <= 0 ||
      parts[3] != absl::StrCat(p))
    return BadName(name, "machines/{machine}/processes/{pid}");
  *id = parts[1];
  *pid = p;
  return grpc::Status::OK;
}

grpc::Status ParseKsmName(const std::string& name, std::string* id) {
  std::vector<std::string> parts = absl::StrSplit(name, '/');
  if (parts.size() != 3 || parts[0] != "machines" || !ValidMachineId(parts[1]) || parts[2] != "ksm")
    return BadName(name, "machines/{machine}/ksm");
  *id = parts[1];
  return grpc::Status::OK;
}

grpc::Status ParseBlockName(const std::string& name, std::string* id, BlockId* block) {
  std::vector<std::string> parts = absl::StrSplit(name, '/');
  uint32_t b = 0;
  if (parts.size() != 4 || parts[0] != "machines" || !ValidMachineId(parts[1]) ||
      parts[2] != "memoryBlocks" || !absl::SimpleAtoi(parts[3], &b) || parts[3] != absl::StrCat(b))
    return BadName(name, "machines/{machine}/memoryBlocks/{block}");
  *id = parts[1];
  *block = b;
  return grpc::Status::OK;
}

grpc::Status Lookup(Registry& reg, const std::string& id, std::shared_ptr<MachineHandle>* out) {
  auto h = reg.Get(id);
  if (!h.ok()) return ToGrpc(h.status());
  *out = *h;
  return grpc::Status::OK;
}

grpc::Status PageWindow(int32_t page_size, const std::string& token, size_t total, int32_t def,
                        int32_t max, size_t* begin, size_t* end, std::string* next_token) {
  if (page_size < 0) return InvalidField("page_size", "page_size must not be negative");
  size_t size = page_size == 0 ? def : std::min(page_size, max);
  size_t off = 0;
  if (!token.empty()) {
    uint64_t v;
    if (token[0] != 'o' || !absl::SimpleAtoi(token.substr(1), &v) || v > total)
      return Error(grpc::StatusCode::INVALID_ARGUMENT, Reason::kInvalidPageToken,
                   "page_token is not one this server issued for this list");
    off = v;
  }
  *begin = off;
  *end = std::min(total, off + size);
  next_token->clear();
  if (*end < total) *next_token = absl::StrCat("o", *end);
  return grpc::Status::OK;
}

// --- Enums: one table per enum, read both ways -------------------------------

namespace {

template <typename Core, typename Proto>
struct Pair {
  Core core;
  Proto proto;
};

template <typename Core, typename Proto, size_t N>
Proto Find(const Pair<Core, Proto> (&table)[N], Core c, Proto unknown) {
  for (const auto& p : table)
    if (p.core == c) return p.proto;
  return unknown;
}

template <typename Core, typename Proto, size_t N>
std::optional<Core> Find(const Pair<Core, Proto> (&table)[N], Proto p) {
  for (const auto& e : table)
    if (e.proto == p) return e.core;
  return std::nullopt;
}

constexpr Pair<Errno, v1::Errno> kErrnos[] = {
    {Errno::kOk, v1::ERRNO_OK},         {Errno::kEPERM, v1::ERRNO_EPERM},
    {Errno::kENOENT, v1::ERRNO_ENOENT}, {Errno::kESRCH, v1::ERRNO_ESRCH},
    {Errno::kEINTR, v1::ERRNO_EINTR},   {Errno::kEIO, v1::ERRNO_EIO},
    {Errno::kEAGAIN, v1::ERRNO_EAGAIN}, {Errno::kENOMEM, v1::ERRNO_ENOMEM},
    {Errno::kEACCES, v1::ERRNO_EACCES}, {Errno::kEFAULT, v1::ERRNO_EFAULT},
    {Errno::kEBUSY, v1::ERRNO_EBUSY},   {Errno::kENODEV, v1::ERRNO_ENODEV},
    {Errno::kEINVAL, v1::ERRNO_EINVAL}, {Errno::kERANGE, v1::ERRNO_ERANGE},
};
constexpr Pair<PageState, v1::PageState> kPageStates[] = {
    {PageState::kFree, v1::PAGE_STATE_FREE},       {PageState::kAnon, v1::PAGE_STATE_ANON},
    {PageState::kKsm, v1::PAGE_STATE_KSM},         {PageState::kShmem, v1::PAGE_STATE_SHMEM},
    {PageState::kZero, v1::PAGE_STATE_ZERO},       {PageState::kReserved, v1::PAGE_STATE_RESERVED},
    {PageState::kOffline, v1::PAGE_STATE_OFFLINE},
};
constexpr Pair<RmapState, v1::RmapState> kRmapStates[] = {
    {RmapState::kNone, v1::RMAP_STATE_NONE},
    {RmapState::kUnstable, v1::RMAP_STATE_UNSTABLE},
    {RmapState::kStable, v1::RMAP_STATE_STABLE},
};
constexpr Pair<BlockState, v1::MemoryBlockState> kBlockStates[] = {
    {BlockState::kOnline, v1::MEMORY_BLOCK_STATE_ONLINE},
    {BlockState::kGoingOffline, v1::MEMORY_BLOCK_STATE_GOING_OFFLINE},
    {BlockState::kOffline, v1::MEMORY_BLOCK_STATE_OFFLINE},
    {BlockState::kRemoved, v1::MEMORY_BLOCK_STATE_REMOVED},
};
constexpr Pair<OfflinePhase, v1::OfflinePhase> kPhases[] = {
    {OfflinePhase::kNone, v1::OFFLINE_PHASE_NONE},
    {OfflinePhase::kIsolated, v1::OFFLINE_PHASE_ISOLATED},
    {OfflinePhase::kGoingOffline, v1::OFFLINE_PHASE_GOING_OFFLINE},
    {OfflinePhase::kMigrated, v1::OFFLINE_PHASE_MIGRATED},
    {OfflinePhase::kDone, v1::OFFLINE_PHASE_DONE},
};
constexpr Pair<MemEvent, v1::MemoryNotifierEvent> kMemEvents[] = {
    {MemEvent::kGoingOnline, v1::MEM_GOING_ONLINE},
    {MemEvent::kCancelOnline, v1::MEM_CANCEL_ONLINE},
    {MemEvent::kOnline, v1::MEM_ONLINE},
    {MemEvent::kGoingOffline, v1::MEM_GOING_OFFLINE},
    {MemEvent::kCancelOffline, v1::MEM_CANCEL_OFFLINE},
    {MemEvent::kOffline, v1::MEM_OFFLINE},
};
constexpr Pair<PruneReason, v1::PruneReason> kPruneReasons[] = {
    {PruneReason::kStale, v1::PRUNE_REASON_STALE},
    {PruneReason::kOffline, v1::PRUNE_REASON_OFFLINE},
    {PruneReason::kUnmerge, v1::PRUNE_REASON_UNMERGE},
};
constexpr Pair<MigrateReason, v1::MigrateReason> kMigrateReasons[] = {
    {MigrateReason::kOffline, v1::MIGRATE_REASON_MEMORY_OFFLINE},
    {MigrateReason::kMbind, v1::MIGRATE_REASON_MBIND},
    {MigrateReason::kMigratePages, v1::MIGRATE_REASON_MIGRATE_PAGES},
    {MigrateReason::kMovePages, v1::MIGRATE_REASON_MOVE_PAGES},
};
constexpr Pair<EventKind, v1::EventKind> kEventKinds[] = {
    {EventKind::kMerge, v1::EVENT_KIND_MERGE},
    {EventKind::kCowBreak, v1::EVENT_KIND_COW_BREAK},
    {EventKind::kPrune, v1::EVENT_KIND_PRUNE},
    {EventKind::kPassEnd, v1::EVENT_KIND_PASS_END},
    {EventKind::kProcessExit, v1::EVENT_KIND_PROCESS_EXIT},
    {EventKind::kMigrate, v1::EVENT_KIND_MIGRATE},
    {EventKind::kNotifier, v1::EVENT_KIND_MEMORY_NOTIFY},
    {EventKind::kOfflinePhase, v1::EVENT_KIND_OFFLINE_PHASE},
    {EventKind::kOfflineResult, v1::EVENT_KIND_OFFLINE_RESULT},
    {EventKind::kKsmdHeld, v1::EVENT_KIND_KSM_BATCH_HELD},
};
constexpr Pair<MpolMode, v1::MempolicyMode> kMpolModes[] = {
    {MpolMode::kDefault, v1::MPOL_DEFAULT},
    {MpolMode::kPreferred, v1::MPOL_PREFERRED},
    {MpolMode::kBind, v1::MPOL_BIND},
    {MpolMode::kInterleave, v1::MPOL_INTERLEAVE},
};
constexpr Pair<Advice, v1::Advice> kAdvices[] = {
    {Advice::kDontNeed, v1::ADVICE_DONTNEED},
    {Advice::kMergeable, v1::ADVICE_MERGEABLE},
    {Advice::kUnmergeable, v1::ADVICE_UNMERGEABLE},
};
constexpr Pair<ClockMode, v1::ClockMode> kClockModes[] = {
    {ClockMode::kManual, v1::CLOCK_MODE_MANUAL},
    {ClockMode::kRealtime, v1::CLOCK_MODE_REALTIME},
};

}  // namespace

// An errno without a name of its own (a notifier veto may choose any) keeps
// its number: proto3 enums are open.
v1::Errno ToProto(Errno e) { return Find(kErrnos, e, static_cast<v1::Errno>(static_cast<int>(e))); }
v1::PageState ToProto(PageState s) { return Find(kPageStates, s, v1::PAGE_STATE_UNSPECIFIED); }
v1::RmapState ToProto(RmapState s) { return Find(kRmapStates, s, v1::RMAP_STATE_UNSPECIFIED); }
v1::MemoryBlockState ToProto(BlockState s) {
  return Find(kBlockStates, s, v1::MEMORY_BLOCK_STATE_UNSPECIFIED);
}
v1::OfflinePhase ToProto(OfflinePhase p) { return Find(kPhases, p, v1::OFFLINE_PHASE_NONE); }
v1::MemoryNotifierEvent ToProto(MemEvent e) {
  return Find(kMemEvents, e, v1::MEMORY_NOTIFIER_EVENT_UNSPECIFIED);
}
v1::PruneReason ToProto(PruneReason r) {
  return Find(kPruneReasons, r, v1::PRUNE_REASON_UNSPECIFIED);
}
v1::MigrateReason ToProto(MigrateReason r) {
  return Find(kMigrateReasons, r, v1::MIGRATE_REASON_UNSPECIFIED);
}
v1::EventKind ToProto(EventKind k) { return Find(kEventKinds, k, v1::EVENT_KIND_UNSPECIFIED); }
v1::MempolicyMode ToProto(MpolMode m) { return Find(kMpolModes, m, v1::MPOL_DEFAULT); }
v1::ClockMode ToProto(ClockMode m) { return Find(kClockModes, m, v1::CLOCK_MODE_UNSPECIFIED); }

std::optional<Errno> FromProto(v1::Errno e) { return Find(kErrnos, e); }
std::optional<OfflinePhase> FromProto(v1::OfflinePhase p) { return Find(kPhases, p); }
std::optional<MemEvent> FromProto(v1::MemoryNotifierEvent e) { return Find(kMemEvents, e); }
std::optional<EventKind> FromProto(v1::EventKind k) { return Find(kEventKinds, k); }
std::optional<MpolMode> FromProto(v1::MempolicyMode m) { return Find(kMpolModes, m); }
std::optional<Advice> FromProto(v1::Advice a) { return Find(kAdvices, a); }
std::optional<ClockMode> FromProto(v1::ClockMode m) { return Find(kClockModes, m); }

MachineConfig ConfigFromProto(const v1::Machine& m) {
  MachineConfig c;
  if (m.topology().nodes()) c.nodes = m.topology().nodes();
  if (m.topology().blocks_per_node()) c.blocks_per_node = m.topology().blocks_per_node();
  if (m.topology().pages_per_block()) c.pages_per_block = m.topology().pages_per_block();
  c.clock = FromProto(m.clock_mode()).value_or(ClockMode::kManual);
  if (!m.profile().empty()) c.profile = m.profile();
  return c;
}

void ToProto(const MachineInfo& mi, const std::string& id, v1::Machine* out) {
  out->set_name(absl::StrCat("machines/", id));
  auto* t = out->mutable_topology();
  t->set_nodes(mi.config.nodes);
  t->set_blocks_per_node(mi.config.blocks_per_node);
  t->set_pages_per_block(mi.config.pages_per_block);
  out->set_clock_mode(ToProto(mi.config.clock));
  out->set_profile(mi.config.profile);
  for (const NodeStats& ns : mi.nodes) {
    auto* n = out->add_nodes();
    n->set_node(ns.node);
    n->set_blocks(ns.blocks);
    n->set_present_pages(ns.present_pages);
    n->set_free_pages(ns.free_pages);
    n->set_anon_pages(ns.anon_pages);
    n->set_ksm_pages(ns.ksm_pages);
    n->set_shmem_pages(ns.shmem_pages);
    n->set_reserved_pages(ns.reserved_pages);
  }
  out->set_total_pages(mi.total_pages);
  out->set_process_count(mi.process_count);
  out->set_distinct_contents(mi.distinct_contents);
  out->set_emulated_time_ns(mi.emulated_time_ns);
}

void ToProto(const std::string& machine_id, const ProcessInfo& pi, v1::Process* out) {
  out->set_name(absl::StrCat("machines/", machine_id, "/processes/", pi.pid));
  out->set_pid(pi.pid);
  out->set_uid(pi.uid);
  out->set_privileged(pi.privileged);
  out->set_home_node(pi.home_node);
  out->set_parent_pid(pi.ppid);
  out->set_state(pi.exited ? v1::PROCESS_STATE_EXITED : v1::PROCESS_STATE_RUNNING);
  for (const VmaInfo& vi : pi.vmas) {
    auto* v = out->add_vmas();
    v->set_start(vi.start);
    v->set_end(vi.end);
    v->set_prot(vi.prot);
    v->set_shared(vi.shared);
    v->set_mergeable(vi.mergeable);
    v->set_has_anon_vma(vi.anon_vma);
    v->set_resident_pages(vi.resident_pages);
  }
  out->set_ksm_registered(pi.ksm_registered);
  out->set_anon_pages(pi.anon_pages);
  out->set_ksm_pages(pi.ksm_pages);
  out->set_zero_pages(pi.zero_pages);
  out->set_shmem_pages(pi.shmem_pages);
  out->set_pinned_pages(pi.pinned_pages);
}

void ToProto(const FrameInfo& fi, v1::PageFrame* out) {
  out->set_pfn(fi.pfn);
  out->set_node(fi.node);
  out->set_block(fi.block);
  out->set_state(ToProto(fi.state));
  out->set_refcount(fi.refcount);
  out->set_mapcount(fi.mapcount);
  out->set_pins(fi.pins);
  out->set_content_digest(fi.content_digest);
  out->set_stable_node_id(fi.stable_node_id);
}

void ToProto(const std::string& machine_id, const KsmInfo& ki, v1::Ksm* out) {
  out->set_name(absl::StrCat("machines/", machine_id, "/ksm"));
  out->set_run(ki.run);
  out->set_pages_to_scan(ki.pages_to_scan);
  out->set_sleep_millisecs(ki.sleep_millisecs);
  out->set_pages_shared(ki.pages_shared);
  out->set_pages_sharing(ki.pages_sharing);
  out->set_pages_unshared(ki.pages_unshared);
  out->set_pages_volatile(ki.pages_volatile);
  out->set_full_scans(ki.full_scans);
  out->set_rmap_items(ki.rmap_items);
  out->set_stable_nodes(ki.stable_nodes);
  out->set_mm_slots(ki.mm_slots);
  out->set_cursor_pid(ki.cursor_pid);
  out->set_cursor_address(ki.cursor_address);
  out->set_visits_total(ki.visits_total);
  out->set_locked_by_offline(ki.locked_by_offline);
}

void ToProto(const StableNodeInfo& si, v1::StableNode* out) {
  out->set_id(si.id);
  out->set_kpfn(si.kpfn);
  out->set_node(si.node);
  out->set_content_digest(si.content_digest);
  for (const auto& [pid, addr] : si.mappings) {
    auto* m = out->add_mappings();
    m->set_pid(pid);
    m->set_address(addr);
  }
  out->set_stale(si.stale);
  out->set_mapcount(si.mapcount);
  out->set_depth(si.depth);
}

void ToProto(const RmapItemInfo& ri, v1::RmapItem* out) {
  out->set_pid(ri.pid);
  out->set_address(ri.address);
  out->set_state(ToProto(ri.state));
  out->set_oldchecksum(ri.oldchecksum);
  out->set_seqnr(ri.seqnr);
  out->set_stable_node_id(ri.stable_node_id);
  out->set_content_digest(ri.content_digest);
  out->set_depth(ri.depth);
  out->set_previous_pass(ri.previous_pass);
}

void ToProto(const AccessResult& r, v1::MemoryAccessResult* out) {
  out->set_errnum(ToProto(r.err));
  out->set_bytes_done(r.bytes_done);
  out->set_fault_address(r.fault_address);
}

}  // namespace memnode::service

namespace memnode::service {

void ToProto(const std::string& machine_id, const BlockInfo& bi, v1::MemoryBlock* out) {
  out->set_name(absl::StrCat("machines/", machine_id, "/memoryBlocks/", bi.id));
  out->set_block(bi.id);
  out->set_node(bi.node);
  out->set_start_pfn(bi.start_pfn);
  out->set_pages(bi.pages);
  out->set_state(ToProto(bi.state));
  out->set_removable(bi.removable);
  out->set_free_pages(bi.free_pages);
  out->set_anon_pages(bi.count[static_cast<int>(PageState::kAnon)]);
  out->set_ksm_pages(bi.count[static_cast<int>(PageState::kKsm)]);
  out->set_shmem_pages(bi.count[static_cast<int>(PageState::kShmem)]);
  out->set_reserved_pages(bi.count[static_cast<int>(PageState::kReserved)] +
                          bi.count[static_cast<int>(PageState::kZero)]);
  out->set_unmovable_pages(bi.unmovable_pages);
}

void ToProto(const std::string& machine_id, const OfflineReport& r, v1::OfflineReport* out) {
  out->set_name(absl::StrCat("machines/", machine_id, "/memoryBlocks/", r.block));
  out->set_errnum(ToProto(r.err));
  out->set_paused(r.paused);
  out->set_phase(ToProto(r.phase));
  for (const auto& c : r.notifier_calls) out->add_notifier_calls(c);
  out->set_pages_migrated(r.pages_migrated);
  out->set_ksm_pages_migrated(r.ksm_pages_migrated);
  out->set_stable_nodes_pruned(r.stable_nodes_pruned);
  out->set_rounds(r.rounds);
  out->set_emulated_ns(r.emulated_ns);
  out->set_failure(r.failure);
}

}  // namespace memnode::service
