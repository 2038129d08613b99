// Waiting for KSM's lock: a sysfs write that would block in the kernel while
// an offline holds KSM's lock (2.6.33: `run`, which takes ksm_thread_mutex)
// is retried here until the offline ends, the caller's deadline passes or the
// caller goes away. The core never blocks; the host layer owns waiting.
// Thread safety: thread-safe (the machine is).
#ifndef MEMNODE_SERVER_HOST_KSM_WAIT_H_
#define MEMNODE_SERVER_HOST_KSM_WAIT_H_

#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/types.h"

namespace memnode::host {

// What a waiting call is bound by.
struct CallBounds {
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> cancelled = [] { return false; };
};

// Runs `write` until it no longer fails with KSM_LOCKED. DEADLINE_EXCEEDED
// KSM_LOCKED at the deadline, CANCELLED CANCELLED when the caller went away.
absl::StatusOr<Errno> WaitWhileKsmLocked(const CallBounds& bounds,
                                         const std::function<absl::StatusOr<Errno>()>& write);

}  // namespace memnode::host

#endif  // MEMNODE_SERVER_HOST_KSM_WAIT_H_
