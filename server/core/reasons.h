// The stable error reasons of memnode's API: one enum, one string table
// (reasons.cc). A reason is attached to an absl::Status by MakeError and
// becomes google.rpc.ErrorInfo.reason in the service layer. Once shipped a
// reason's string never changes (docs/API.md lists them all).
// Thread safety: stateless.
#ifndef MEMNODE_SERVER_CORE_REASONS_H_
#define MEMNODE_SERVER_CORE_REASONS_H_

#include <optional>

#include "absl/strings/string_view.h"

namespace memnode {

enum class Reason {
  kInternal,  // fallback: an internal error without a reason
  // Names and fields.
  kInvalidName,
  kInvalidField,
  kInvalidPageToken,
  kInvalidTopology,
  kUnknownProfile,
  kUnknownSysfsFile,
  // Lookups.
  kMachineNotFound,
  kProcessNotFound,
  kBlockNotFound,
  kMachineExists,
  // Limits.
  kMachineLimit,
  kMemoryLimit,
  kRequestTooLarge,
  kTooManyPages,
  kRangeTooLarge,
  kVisitsLimit,
  kProcessLimit,
  kBlockLimit,
  kNoFreePages,
  kStreamLimit,
  kNodeOutOfRange,
  kPfnOutOfRange,
  // Authentication.
  kUnauthenticated,
  kPermissionDenied,
  kInvalidTokenFile,
  // State.
  kKsmLocked,
  kCancelled,
  kBlockNotOnline,
  kOfflineInProgress,
  kNoPausedOffline,
  kNoStateDir,
  kSnapshotNotFound,
  kSnapshotCorrupt,
  kSnapshotVersion,
  kSnapshotIo,
  kShuttingDown,
  kDeadlineExceeded,
  // The HTTP gateway's own (server/http).
  kUnknownMethod,
  kInvalidBody,
  kInvalidHeader,
  kUnsupportedEncoding,
  kHostNotAllowed,
};

// "KSM_LOCKED" etc. (UPPER_SNAKE_CASE, stable).
const char* ReasonName(Reason r);
// The reason of a name, or nullopt.
std::optional<Reason> ReasonFromName(absl::string_view name);

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_REASONS_H_
