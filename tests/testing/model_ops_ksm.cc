// ModelDriver's KSM operations (model_driver.h): ksmd steps (visits,
// passes, a ksmd batch) and the knobs (run, pages_to_scan, sleep_millisecs),
// refused with KSM_LOCKED while a paused offline holds KSM's lock.
#include "tests/testing/model_driver.h"

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "server/core/machine.h"
#include "server/core/status.h"
#include "server/core/types.h"
#include "tests/testing/model_driver_check.h"

namespace memnode::testing {

void ModelDriver::DoKsmStep() {
  absl::StatusOr<KsmStepResult> s;
  uint64_t kind = Rand(10);
  uint64_t n = 1 + Rand(40);
  if (kind == 0) {
    s = m_->KsmStepPasses(1 + Rand(2), 2000);
  } else if (kind == 1) {
    // ksmd's batch (REALTIME machines' thread, called by hand here): waits
    // (does nothing) while an offline holds KSM's lock.
    KsmdTick t = m_->KsmdBatch();
    absl::StrAppend(&op_, " ksmd batch -> run ", t.should_run);
    return;
  } else {
    s = m_->KsmStepVisits(n);
  }
  if (Locked()) {
    MD_EXPECT(s.status().code() == absl::StatusCode::kFailedPrecondition) << s.status();
    MD_EXPECT(ErrorReason(s.status()) == "KSM_LOCKED") << s.status();
    cov_->locked_refusals++;
    absl::StrAppend(&op_, " step refused (locked)");
    return;
  }
  MD_ASSERT(s.ok()) << s.status();
  absl::StrAppend(&op_, kind == 0 ? " step passes" : " step visits ", n, " -> ", s->visits);
}

void ModelDriver::DoRun() {
  if (Chance(25)) {
    // Knobs that the kernel writes without ksm_thread_mutex.
    uint64_t pages = 1 + Rand(200), sleep = Rand(50);
    auto r = m_->KsmUpdate(std::nullopt, pages, sleep);
    MD_ASSERT(r.ok() || ErrorReason(r.status()) == "KSM_LOCKED") << r.status();
    if (r.ok()) {
      MD_EXPECT(*r == Errno::kOk) << *r;
    }
    absl::StrAppend(&op_, " pages_to_scan=", pages, " sleep_millisecs=", sleep);
    return;
  }
  uint64_t v = Rand(3);
  const uint32_t old_run = m_->GetKsm().run;
  auto r = Chance(50) ? m_->KsmUpdate(v, std::nullopt, std::nullopt)
                      : m_->KsmWriteSysfs("run", absl::StrCat(v, "\n"));
  if (Locked()) {
    MD_EXPECT(r.status().code() == absl::StatusCode::kFailedPrecondition) << r.status();
    MD_EXPECT(ErrorReason(r.status()) == "KSM_LOCKED") << r.status();
    cov_->locked_refusals++;
    absl::StrAppend(&op_, " run=", v, " refused (locked)");
    return;
  }
  MD_ASSERT(r.ok()) << r.status();
  MD_ASSERT(*r == Errno::kOk) << *r;
  if (v == 2 && old_run != 2) {  // writing the current value is a no-op
    KsmInfo k = m_->GetKsm();    // SEMANTICS SC-14
    MD_EXPECT(k.pages_shared == 0u) << k.pages_shared;
    MD_EXPECT(k.pages_sharing == 0u) << k.pages_sharing;
    MD_EXPECT(k.pages_unshared == 0u) << k.pages_unshared;
    MD_EXPECT(k.rmap_items == 0u) << k.rmap_items;
    MD_EXPECT(k.full_scans == 0u) << k.full_scans;
  }
  absl::StrAppend(&op_, " run=", v);
}

}  // namespace memnode::testing
