#include "server/host/ksm_wait.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "server/core/status.h"

namespace memnode::host {

absl::StatusOr<Errno> WaitWhileKsmLocked(const CallBounds& bounds,
                                         const std::function<absl::StatusOr<Errno>()>& write) {
  absl::Duration pause = absl::Milliseconds(1);
  for (;;) {
    absl::StatusOr<Errno> e = write();
    if (e.ok() || ReasonOf(e.status()) != Reason::kKsmLocked) return e;
    if (bounds.cancelled())
      return MakeError(absl::StatusCode::kCancelled, Reason::kCancelled, "the client went away");
    const absl::Time now = absl::Now();
    if (now >= bounds.deadline)
      return MakeError(absl::StatusCode::kDeadlineExceeded, Reason::kKsmLocked,
                       "the write waited for an offline until the call's deadline");
    // The offline ends by another call (resume, cancel, expiry): poll with a
    // short backoff, never past the deadline.
    absl::SleepFor(std::min(pause, bounds.deadline - now));
    pause = std::min(pause * 2, absl::Milliseconds(10));
  }
}

}  // namespace memnode::host
