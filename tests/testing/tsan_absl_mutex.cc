// TSan annotations for Debian's absl::Mutex (linked into TSan builds of the
// core's concurrency test only).
//
// Debian's libabsl_synchronization.so is not built with -fsanitize=thread,
// so its lock/unlock (atomics and futex syscalls) are invisible to TSan and
// every access under a Machine's mutex would be reported as a race (817
// reports on concurrency_test without this file). This file interposes the
// Mutex entry points used by the core and MachineHandle: each calls the real
// function (dlsym(RTLD_NEXT)) and tells TSan about the acquire/release with
// the __tsan_mutex_* interface, as Abseil itself does when built with TSan.
// Await* releases and re-acquires the mutex inside, so it is annotated as an
// unlock before and a lock after.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"

extern "C" {
void __tsan_mutex_pre_lock(void* addr, unsigned flags);
void __tsan_mutex_post_lock(void* addr, unsigned flags, int recursion);
int __tsan_mutex_pre_unlock(void* addr, unsigned flags);
void __tsan_mutex_post_unlock(void* addr, unsigned flags);
}

namespace {

constexpr unsigned kReadLock = 1 << 3;       // __tsan_mutex_read_lock
constexpr unsigned kTryLock = 1 << 4;        // __tsan_mutex_try_lock
constexpr unsigned kTryLockFailed = 1 << 5;  // __tsan_mutex_try_lock_failed

template <typename Fn>
Fn Real(const char* name) {
  void* p = dlsym(RTLD_NEXT, name);
  if (!p) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found\n", name);
    std::abort();
  }
  return reinterpret_cast<Fn>(p);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex4LockEv");
  __tsan_mutex_pre_lock(this, 0);
  real(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::Unlock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

bool Mutex::TryLock() {
  static auto real = Real<bool (*)(Mutex*)>("_ZN4absl7debian35Mutex7TryLockEv");
  __tsan_mutex_pre_lock(this, kTryLock);
  bool ok = real(this);
  __tsan_mutex_post_lock(this, ok ? kTryLock : kTryLock | kTryLockFailed, 0);
  return ok;
}

void Mutex::ReaderLock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex10ReaderLockEv");
  __tsan_mutex_pre_lock(this, kReadLock);
  real(this);
  __tsan_mutex_post_lock(this, kReadLock, 0);
}

void Mutex::ReaderUnlock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_mutex_pre_unlock(this, kReadLock);
  real(this);
  __tsan_mutex_post_unlock(this, kReadLock);
}

void Mutex::Await(const Condition& cond) {
  static auto real =
      Real<void (*)(Mutex*, const Condition&)>("_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  __tsan_mutex_pre_unlock(this, 0);
  __tsan_mutex_post_unlock(this, 0);
  real(this, cond);
  __tsan_mutex_pre_lock(this, 0);
  __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  __tsan_mutex_pre_unlock(this, 0);
  __tsan_mutex_post_unlock(this, 0);
  bool r = real(this, cond, timeout);
  __tsan_mutex_pre_lock(this, 0);
  __tsan_mutex_post_lock(this, 0, 0);
  return r;
}

ABSL_NAMESPACE_END
}  // namespace absl

// A Condition is evaluated inside the uninstrumented library, under the
// mutex but at a point where the annotations above already say "released"
// (by the waiter in AwaitWithDeadline, or by the releasing thread in
// Unlock): those reads of the guarded fields are not races.
extern "C" const char* __tsan_default_suppressions() {
  return "race:CastAndCallMethod\n"
         "race:AwaitWithDeadline\n"
         "race:absl::debian3::Condition::Eval\n";
}
