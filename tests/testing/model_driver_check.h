// The model driver's checks (private to tests/testing/model_*.cc): MD_ASSERT
// and MD_EXPECT record the first failed check in the driver's `failure_` and
// set `failed_`, gtest-style but without gtest (the driver also runs in the
// soak tool and the fuzzers). Used inside ModelDriver members only.
//
// Thread safety: none needed (a driver belongs to one thread).
#ifndef MEMNODE_TESTS_TESTING_MODEL_DRIVER_CHECK_H_
#define MEMNODE_TESTS_TESTING_MODEL_DRIVER_CHECK_H_

#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>

#include "server/core/names.h"
#include "server/core/types.h"

namespace memnode::testing {

namespace internal {
// Collects a failure message; on destruction hands it to the driver.
class FailureStream {
 public:
  FailureStream(std::string* sink, bool* failed, const char* file, int line, const char* cond)
      : sink_(sink), failed_(failed) {
    os_ << file << ":" << line << ": check failed: " << cond << " ";
  }
  ~FailureStream() {
    if (!*failed_) *sink_ = os_.str();  // the first failure wins
    *failed_ = true;
  }
  template <typename T>
  FailureStream& operator<<(const T& v) {
    if constexpr (std::is_enum_v<T>)
      os_ << static_cast<int64_t>(v);
    else
      os_ << v;
    return *this;
  }
  FailureStream& operator<<(Errno e) {
    os_ << ErrnoName(e);
    return *this;
  }

 private:
  std::ostringstream os_;
  std::string* sink_;
  bool* failed_;
};
struct Voidify {
  void operator&(const FailureStream&) {}
};
}  // namespace internal

// MD_ASSERT: on failure record and return from the (void) function.
// MD_EXPECT: on failure record and go on (the run stops after the step).
#define MD_ASSERT(cond)                                                                           \
  switch (0)                                                                                      \
  case 0:                                                                                         \
  default:                                                                                        \
    if (cond) {                                                                                   \
    } else /* NOLINT */                                                                           \
      return ::memnode::testing::internal::Voidify() &                                            \
             ::memnode::testing::internal::FailureStream(&failure_, &failed_, __FILE__, __LINE__, \
                                                         #cond)
#define MD_EXPECT(cond)                                                                        \
  switch (0)                                                                                   \
  case 0:                                                                                      \
  default:                                                                                     \
    if (cond) {                                                                                \
    } else /* NOLINT */                                                                        \
      ::memnode::testing::internal::Voidify() &                                                \
          ::memnode::testing::internal::FailureStream(&failure_, &failed_, __FILE__, __LINE__, \
                                                      #cond)
#define MD_RETURN_IF_FAILED() \
  do {                        \
    if (failed_) return;      \
  } while (0)

}  // namespace memnode::testing

#endif  // MEMNODE_TESTS_TESTING_MODEL_DRIVER_CHECK_H_
