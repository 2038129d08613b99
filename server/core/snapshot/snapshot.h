// The envelope of machine snapshots: magic, format version, payload length
// and SHA-256 of the payload (snapshot.cc documents the layout). The
// payload's sections are written and read by the components themselves.
// Thread safety: stateless functions.
#ifndef MEMNODE_SERVER_CORE_SNAPSHOT_SNAPSHOT_H_
#define MEMNODE_SERVER_CORE_SNAPSHOT_SNAPSHOT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/api.h"

namespace memnode {

struct SnapshotHeader {
  uint32_t version = 0;
  absl::string_view payload;  // points into the input
};

// Header + checksum around a payload written in format `version`.
std::string WrapSnapshot(const std::string& payload, uint32_t version);
// Checks magic, version, length and checksum: SNAPSHOT_CORRUPT or
// SNAPSHOT_VERSION (INVALID_ARGUMENT) otherwise.
absl::StatusOr<SnapshotHeader> UnwrapSnapshot(absl::string_view bytes);
// The machine configuration at the head of a payload, validated.
absl::StatusOr<MachineConfig> ReadSnapshotConfig(absl::string_view payload);

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_SNAPSHOT_SNAPSHOT_H_
