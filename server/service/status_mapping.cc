#include "server/service/status_mapping.h"

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/core/status.h"

namespace memnode::service {

namespace {

grpc::Status ErrorWithReason(grpc::StatusCode code, absl::string_view reason,
                             absl::string_view message,
                             const std::map<std::string, std::string>& metadata) {
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain(kErrorDomain);
  for (const auto& [k, v] : metadata) (*info.mutable_metadata())[k] = v;
  google::rpc::Status st;
  st.set_code(static_cast<int>(code));
  st.set_message(std::string(message));
  st.add_details()->PackFrom(info);
  return grpc::Status(code, std::string(message), st.SerializeAsString());
}

}  // namespace

grpc::Status Error(grpc::StatusCode code, Reason reason, absl::string_view message,
                   const std::map<std::string, std::string>& metadata) {
  return ErrorWithReason(code, ReasonName(reason), message, metadata);
}

grpc::Status InvalidField(absl::string_view field, absl::string_view message) {
  return Error(grpc::StatusCode::INVALID_ARGUMENT, Reason::kInvalidField, message,
               {{"field", std::string(field)}});
}

grpc::Status OverLimit(Reason reason, absl::string_view field, uint64_t value, uint64_t limit,
                       absl::string_view what) {
  return Error(grpc::StatusCode::RESOURCE_EXHAUSTED, reason,
               absl::StrCat(field, " of ", value, " ", what, " exceeds the limit of ", limit),
               {{"field", std::string(field)}, {"limit", absl::StrCat(limit)}});
}

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::optional<Reason> reason = ReasonOf(status);
  return Error(static_cast<grpc::StatusCode>(status.code()), reason.value_or(Reason::kInternal),
               status.message());
}

}  // namespace memnode::service
