// Machine's KSM entry points: locking, knob parsing and validation as in
// 2.6.33's sysfs stores (kernel-semantics 9.1), stepping, inspection.
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/core/ksm/ksm.h"
#include "server/core/machine.h"
#include "server/core/status.h"

namespace memnode {
namespace {

absl::Status KsmLockedError() {
  return MakeError(absl::StatusCode::kFailedPrecondition, "KSM_LOCKED",
                   "an offline in progress holds KSM's lock (ksm_thread_mutex)");
}

// strict_strtoul(buf, 10): digits only, one optional trailing newline; the
// value wraps on overflow like simple_strtoul (the > UINT_MAX checks of the
// stores catch most large values). nullopt means EINVAL.
std::optional<uint64_t> ParseStrictUl(absl::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

void Machine::SetPruneByRescanForTesting(bool on) {
  absl::MutexLock lock(&mu_);
  prune_by_rescan_ = on;
}

void Machine::SetKsmLookupCacheForTesting(bool on) {
  absl::MutexLock lock(&mu_);
  ksm_->set_use_lookup_cache(on);
}

KsmInfo Machine::GetKsm() {
  absl::MutexLock lock(&mu_);
  return ksm_->Info();
}

absl::StatusOr<Errno> Machine::KsmUpdate(std::optional<uint64_t> run,
                                         std::optional<uint64_t> pages_to_scan,
                                         std::optional<uint64_t> sleep_millisecs) {
  absl::MutexLock lock(&mu_);
  if (run && (!Ksm::ValidKnob(*run) || *run > 2)) return Errno::kEINVAL;
  if (pages_to_scan && !Ksm::ValidKnob(*pages_to_scan)) return Errno::kEINVAL;
  if (sleep_millisecs && !Ksm::ValidKnob(*sleep_millisecs)) return Errno::kEINVAL;
  // 8.2: a run write takes ksm_thread_mutex and waits for the offline.
  if (run && ksm_->locked()) return KsmLockedError();
  if (pages_to_scan) ksm_->set_pages_to_scan(static_cast<uint32_t>(*pages_to_scan));
  if (sleep_millisecs) ksm_->set_sleep_millisecs(static_cast<uint32_t>(*sleep_millisecs));
  if (run) return ksm_->WriteRun(*run);
  return Errno::kOk;
}

absl::StatusOr<Errno> Machine::KsmWriteSysfs(absl::string_view file, absl::string_view text) {
  absl::MutexLock lock(&mu_);
  const bool read_only = file == "pages_shared" || file == "pages_sharing" ||
                         file == "pages_unshared" || file == "pages_volatile" ||
                         file == "full_scans";
  if (read_only) return Errno::kEACCES;  // 0444: open for writing fails
  if (file != "run" && file != "pages_to_scan" && file != "sleep_millisecs")
    return MakeError(
        absl::StatusCode::kInvalidArgument, "UNKNOWN_SYSFS_FILE",
        absl::StrCat("no file \"", file, "\" under /sys/kernel/mm/ksm in profile linux-2.6.33"));
  std::optional<uint64_t> v = ParseStrictUl(text);
  if (!v || !Ksm::ValidKnob(*v)) return Errno::kEINVAL;
  if (file == "run") {
    if (*v > 2) return Errno::kEINVAL;  // parsed and checked before the mutex
    if (ksm_->locked()) return KsmLockedError();
    return ksm_->WriteRun(*v);
  }
  if (file == "pages_to_scan")
    ksm_->set_pages_to_scan(static_cast<uint32_t>(*v));
  else
    ksm_->set_sleep_millisecs(static_cast<uint32_t>(*v));
  return Errno::kOk;
}

absl::StatusOr<KsmStepResult> Machine::KsmStepVisits(uint64_t visits) {
  absl::MutexLock lock(&mu_);
  if (ksm_->locked()) return KsmLockedError();
  KsmStepResult r = ksm_->StepVisits(visits);
  uint64_t per = ksm_->pages_to_scan() ? ksm_->pages_to_scan() : 1;
  emulated_time_ns_ += (r.visits + per - 1) / per * uint64_t{ksm_->sleep_millisecs()} * 1000000;
  return r;
}

absl::StatusOr<KsmStepResult> Machine::KsmStepPasses(uint64_t passes, uint64_t max_visits) {
  absl::MutexLock lock(&mu_);
  if (ksm_->locked()) return KsmLockedError();
  KsmStepResult r = ksm_->StepPasses(passes, max_visits);
  uint64_t per = ksm_->pages_to_scan() ? ksm_->pages_to_scan() : 1;
  emulated_time_ns_ +=
      ((r.visits + per - 1) / per + r.passes) * uint64_t{ksm_->sleep_millisecs()} * 1000000;
  return r;
}

std::vector<StableNodeInfo> Machine::KsmStableNodes() {
  absl::MutexLock lock(&mu_);
  return ksm_->StableNodes();
}

std::vector<RmapItemInfo> Machine::KsmUnstableItems() {
  absl::MutexLock lock(&mu_);
  return ksm_->UnstableItems();
}

absl::StatusOr<std::vector<RmapItemInfo>> Machine::KsmRmapItems(Pid pid) {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(pid);
  if (it == processes_.end())
    return MakeError(absl::StatusCode::kNotFound, "PROCESS_NOT_FOUND",
                     absl::StrCat("no process ", pid));
  return ksm_->RmapItems(*it->second);
}

Machine::KsmdTick Machine::KsmdBatch() {
  absl::MutexLock lock(&mu_);
  KsmdTick t;
  if ((ksm_->run() & 1) && ksm_->HasSlots()) {
    if (ksm_->locked()) {
      Emit(Event{EventKind::kKsmdHeld});  // ksmd waits on ksm_thread_mutex
    } else {
      ksm_->DoScan(ksm_->pages_to_scan());
    }
  }
  t.should_run = (ksm_->run() & 1) && ksm_->HasSlots();
  t.sleep_millisecs = ksm_->sleep_millisecs();
  return t;
}

Machine::KsmdTick Machine::KsmdState() {
  absl::MutexLock lock(&mu_);
  KsmdTick t;
  t.should_run = (ksm_->run() & 1) && ksm_->HasSlots();
  t.sleep_millisecs = ksm_->sleep_millisecs();
  return t;
}

}  // namespace memnode
