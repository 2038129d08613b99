// The only place that builds grpc::Status: canonical code + message + a
// google.rpc.Status in the `grpc-status-details-bin` trailer carrying one
// google.rpc.ErrorInfo{reason, domain "memnode.dev"}.
// Reasons are stable once shipped; the full list is in docs/API.md.
// Thread safety: stateless.
#ifndef MEMNODE_SERVER_SERVICE_STATUS_MAPPING_H_
#define MEMNODE_SERVER_SERVICE_STATUS_MAPPING_H_

#include <map>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/core/reasons.h"

namespace memnode::service {

inline constexpr char kErrorDomain[] = "memnode.dev";

// Converts a core status (with its reason payload) to a grpc::Status.
grpc::Status ToGrpc(const absl::Status& status);

// Builds an error directly.
grpc::Status Error(grpc::StatusCode code, Reason reason, absl::string_view message,
                   const std::map<std::string, std::string>& metadata = {});

// Shorthand for INVALID_ARGUMENT / INVALID_FIELD naming the field.
grpc::Status InvalidField(absl::string_view field, absl::string_view message);

// RESOURCE_EXHAUSTED with `reason` and metadata {field, limit}: a request
// above one of the server's limits (docs/SECURITY.md).
grpc::Status OverLimit(Reason reason, absl::string_view field, uint64_t value, uint64_t limit,
                       absl::string_view what);

}  // namespace memnode::service

#endif  // MEMNODE_SERVER_SERVICE_STATUS_MAPPING_H_
