// The machine's KSM entry points: sysfs writes through the profile's file
// table, scanner steps on the emulated clock, and ksmd's batches.
#include "absl/strings/str_cat.h"
#include "server/core/kernel.h"
#include "server/core/status.h"

namespace memnode::internal {

absl::Status Kernel::KsmLockedError() const {
  return MakeError(absl::StatusCode::kFailedPrecondition, Reason::kKsmLocked,
                   "an offline in progress holds KSM's lock (ksm_thread_mutex)");
}

absl::StatusOr<Errno> Kernel::KsmWriteSysfs(absl::string_view file, absl::string_view text) {
  const KsmSysfsFile* f = profile.FindKsmFile(file);
  if (!f)
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kUnknownSysfsFile,
                     absl::StrCat("no file \"", file, "\" under /sys/kernel/mm/ksm in profile ",
                                  profile.name()));
  if (!f->writable) return Errno::kEACCES;  // 0444: open for writing fails
  uint64_t v = 0;
  Errno e = f->parse(text, &v);  // parsed and checked before any lock
  if (e != Errno::kOk) return e;
  if (f->waits_for_offline && ksm.locked()) return KsmLockedError();
  return f->apply(ksm, v);
}

absl::StatusOr<Errno> Kernel::KsmWriteMany(
    const std::vector<std::pair<std::string, uint64_t>>& writes) {
  std::vector<std::pair<const KsmSysfsFile*, uint64_t>> parsed;
  bool waits = false;
  for (const auto& [name, value] : writes) {
    const KsmSysfsFile* f = profile.FindKsmFile(name);
    if (!f || !f->writable)
      return MakeError(absl::StatusCode::kInvalidArgument, Reason::kUnknownSysfsFile,
                       absl::StrCat("no writable file \"", name, "\" in profile ", profile.name()));
    uint64_t v = 0;
    Errno e = f->parse(absl::StrCat(value), &v);
    if (e != Errno::kOk) return e;
    parsed.emplace_back(f, v);
    waits = waits || f->waits_for_offline;
  }
  if (waits && ksm.locked()) return KsmLockedError();
  // Files that wait for an offline (run) are stored last, as a script
  // writing the others first would.
  for (int last = 0; last < 2; ++last)
    for (const auto& [f, v] : parsed)
      if (f->waits_for_offline == (last == 1)) {
        Errno e = f->apply(ksm, v);
        if (e != Errno::kOk) return e;
      }
  return Errno::kOk;
}

absl::StatusOr<KsmStepResult> Kernel::KsmStepVisits(uint64_t visits) {
  if (ksm.locked()) return KsmLockedError();
  KsmStepResult r = ksm.StepVisits(visits);
  uint64_t per = ksm.pages_to_scan() ? ksm.pages_to_scan() : 1;
  clock.Advance((r.visits + per - 1) / per * uint64_t{ksm.sleep_millisecs()} * 1000000);
  return r;
}

absl::StatusOr<KsmStepResult> Kernel::KsmStepPasses(uint64_t passes, uint64_t max_visits) {
  if (ksm.locked()) return KsmLockedError();
  KsmStepResult r = ksm.StepPasses(passes, max_visits);
  uint64_t per = ksm.pages_to_scan() ? ksm.pages_to_scan() : 1;
  clock.Advance(((r.visits + per - 1) / per + r.passes) * uint64_t{ksm.sleep_millisecs()} *
                1000000);
  return r;
}

KsmdTick Kernel::KsmdBatch() {
  KsmdTick t;
  if ((ksm.run() & 1) && ksm.HasSlots()) {
    if (ksm.locked()) {
      events.Emit(Event{EventKind::kKsmdHeld});  // ksmd waits on ksm_thread_mutex
    } else {
      ksm.DoScan(ksm.pages_to_scan());
    }
  }
  return KsmdState();
}

KsmdTick Kernel::KsmdState() {
  KsmdTick t;
  t.should_run = (ksm.run() & 1) && ksm.HasSlots();
  t.sleep_millisecs = ksm.sleep_millisecs();
  return t;
}

}  // namespace memnode::internal
