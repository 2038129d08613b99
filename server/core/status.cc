#include "server/core/status.h"

#include "absl/strings/cord.h"

namespace memnode {

absl::Status MakeError(absl::StatusCode code, Reason reason, absl::string_view message) {
  absl::Status s(code, message);
  s.SetPayload(kReasonPayloadKey, absl::Cord(ReasonName(reason)));
  return s;
}

std::optional<Reason> ReasonOf(const absl::Status& status) {
  auto p = status.GetPayload(kReasonPayloadKey);
  if (!p.has_value()) return std::nullopt;
  return ReasonFromName(std::string(*p));
}

std::string ErrorReason(const absl::Status& status) {
  auto p = status.GetPayload(kReasonPayloadKey);
  return p.has_value() ? std::string(*p) : std::string();
}

void CheckFailed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "memnode: check failed at %s:%d: %s: %s\n", file, line, cond, msg.c_str());
  std::abort();
}

}  // namespace memnode
