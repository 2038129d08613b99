// Status helpers for the core: errors carry a stable reason (reasons.h; the
// service turns it into google.rpc.ErrorInfo), plus return/assign macros and
// MEMNODE_CHECK. Abseil 20220623 has no status macros, so they live here.
// Thread safety: stateless.
#ifndef MEMNODE_SERVER_CORE_STATUS_H_
#define MEMNODE_SERVER_CORE_STATUS_H_

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/reasons.h"

namespace memnode {

// Payload key under which a Status carries its stable reason.
inline constexpr char kReasonPayloadKey[] = "memnode.dev/reason";

// Builds a status with a stable reason.
absl::Status MakeError(absl::StatusCode code, Reason reason, absl::string_view message);

// The reason attached by MakeError, or nullopt when there is none.
std::optional<Reason> ReasonOf(const absl::Status& status);
// Its string ("KSM_LOCKED"), or "" when there is none.
std::string ErrorReason(const absl::Status& status);

[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace memnode

#define MEMNODE_CHECK(cond, msg)                                           \
  do {                                                                     \
    if (!(cond)) ::memnode::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

#define MEMNODE_RETURN_IF_ERROR(expr)          \
  do {                                         \
    ::absl::Status memnode_st_ = (expr);       \
    if (!memnode_st_.ok()) return memnode_st_; \
  } while (0)

#define MEMNODE_CONCAT_INNER_(a, b) a##b
#define MEMNODE_CONCAT_(a, b) MEMNODE_CONCAT_INNER_(a, b)
#define MEMNODE_ASSIGN_OR_RETURN(lhs, expr)                 \
  auto MEMNODE_CONCAT_(memnode_so_, __LINE__) = (expr);     \
  if (!MEMNODE_CONCAT_(memnode_so_, __LINE__).ok())         \
    return MEMNODE_CONCAT_(memnode_so_, __LINE__).status(); \
  lhs = std::move(*MEMNODE_CONCAT_(memnode_so_, __LINE__))

#endif  // MEMNODE_SERVER_CORE_STATUS_H_
