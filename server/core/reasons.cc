#include "server/core/reasons.h"

namespace memnode {

namespace {

struct Entry {
  Reason reason;
  const char* name;
};

constexpr Entry kTable[] = {
    {Reason::kInternal, "INTERNAL"},
    {Reason::kInvalidName, "INVALID_NAME"},
    {Reason::kInvalidField, "INVALID_FIELD"},
    {Reason::kInvalidPageToken, "INVALID_PAGE_TOKEN"},
    {Reason::kInvalidTopology, "INVALID_TOPOLOGY"},
    {Reason::kUnknownProfile, "UNKNOWN_PROFILE"},
    {Reason::kUnknownSysfsFile, "UNKNOWN_SYSFS_FILE"},
    {Reason::kMachineNotFound, "MACHINE_NOT_FOUND"},
    {Reason::kProcessNotFound, "PROCESS_NOT_FOUND"},
    {Reason::kBlockNotFound, "BLOCK_NOT_FOUND"},
    {Reason::kMachineExists, "MACHINE_EXISTS"},
    {Reason::kMachineLimit, "MACHINE_LIMIT"},
    {Reason::kMemoryLimit, "MEMORY_LIMIT"},
    {Reason::kRequestTooLarge, "REQUEST_TOO_LARGE"},
    {Reason::kTooManyPages, "TOO_MANY_PAGES"},
    {Reason::kRangeTooLarge, "RANGE_TOO_LARGE"},
    {Reason::kVisitsLimit, "VISITS_LIMIT"},
    {Reason::kProcessLimit, "PROCESS_LIMIT"},
    {Reason::kBlockLimit, "BLOCK_LIMIT"},
    {Reason::kNoFreePages, "NO_FREE_PAGES"},
    {Reason::kStreamLimit, "STREAM_LIMIT"},
    {Reason::kNodeOutOfRange, "NODE_OUT_OF_RANGE"},
    {Reason::kPfnOutOfRange, "PFN_OUT_OF_RANGE"},
    {Reason::kUnauthenticated, "UNAUTHENTICATED"},
    {Reason::kPermissionDenied, "PERMISSION_DENIED"},
    {Reason::kInvalidTokenFile, "INVALID_TOKEN_FILE"},
    {Reason::kKsmLocked, "KSM_LOCKED"},
    {Reason::kCancelled, "CANCELLED"},
    {Reason::kBlockNotOnline, "BLOCK_NOT_ONLINE"},
    {Reason::kOfflineInProgress, "OFFLINE_IN_PROGRESS"},
    {Reason::kNoPausedOffline, "NO_PAUSED_OFFLINE"},
    {Reason::kNoStateDir, "NO_STATE_DIR"},
    {Reason::kSnapshotNotFound, "SNAPSHOT_NOT_FOUND"},
    {Reason::kSnapshotCorrupt, "SNAPSHOT_CORRUPT"},
    {Reason::kSnapshotVersion, "SNAPSHOT_VERSION"},
    {Reason::kSnapshotIo, "SNAPSHOT_IO"},
    {Reason::kShuttingDown, "SHUTTING_DOWN"},
    {Reason::kDeadlineExceeded, "DEADLINE_EXCEEDED"},
    {Reason::kUnknownMethod, "UNKNOWN_METHOD"},
    {Reason::kInvalidBody, "INVALID_BODY"},
    {Reason::kInvalidHeader, "INVALID_HEADER"},
    {Reason::kUnsupportedEncoding, "UNSUPPORTED_ENCODING"},
    {Reason::kHostNotAllowed, "HOST_NOT_ALLOWED"},
};

}  // namespace

const char* ReasonName(Reason r) {
  for (const Entry& e : kTable)
    if (e.reason == r) return e.name;
  return "INTERNAL";
}

std::optional<Reason> ReasonFromName(absl::string_view name) {
  for (const Entry& e : kTable)
    if (name == e.name) return e.reason;
  return std::nullopt;
}

}  // namespace memnode
