// Overview: machine snapshots. Layout (all integers varint unless "raw"):
//   "MNSNAP\0\0" raw | version (raw u32 LE) | payload length (raw u64 LE) |
//   SHA-256 of the payload (raw 32 bytes) | payload
// The payload (versions 1 and 2; see snapshot_io.h) lists, in order: config, clocks and counters;
// the distinct contents and every block with its frames (mem/phys_mem.cc); shared objects and
// processes (mm/mm.cc); the notifier chain (hotplug/notifier.cc); KSM (ksm/ksm_snapshot.cc).
// Restore checks the header, the checksum, every count against the input
// left, every reference (pfn, content, node, pid) against what was read,
// and finally runs Check(): a snapshot that decodes into a machine with a
// broken invariant is refused.
#include "server/core/snapshot/snapshot.h"

#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "server/core/kernel.h"
#include "server/core/mem/sha256.h"
#include "server/core/snapshot/snapshot_io.h"
#include "server/core/status.h"

namespace memnode {
namespace {

constexpr char kMagic[8] = {'M', 'N', 'S', 'N', 'A', 'P', 0, 0};
constexpr size_t kHeader = 8 + 4 + 8 + 32;

absl::Status Corrupt(absl::string_view why) {
  return MakeError(absl::StatusCode::kInvalidArgument, Reason::kSnapshotCorrupt,
                   absl::StrCat("snapshot refused: ", why));
}

}  // namespace

std::string WrapSnapshot(const std::string& payload, uint32_t version) {
  std::string out(kMagic, sizeof(kMagic));
  uint64_t len = payload.size();
  out.append(reinterpret_cast<const char*>(&version), 4);
  out.append(reinterpret_cast<const char*>(&len), 8);
  Sha256::Digest d = Sha256::Of(payload.data(), payload.size());
  out.append(reinterpret_cast<const char*>(d.data()), d.size());
  out += payload;
  return out;
}

absl::StatusOr<SnapshotHeader> UnwrapSnapshot(absl::string_view bytes) {
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kMagic, 8) != 0)
    return Corrupt("not a memnode snapshot (bad magic)");
  SnapshotHeader h;
  uint64_t len;
  std::memcpy(&h.version, bytes.data() + 8, 4);
  std::memcpy(&len, bytes.data() + 12, 8);
  if (h.version < 1 || h.version > kSnapshotVersion)
    return MakeError(
        absl::StatusCode::kInvalidArgument, Reason::kSnapshotVersion,
        absl::StrCat("snapshot version ", h.version, " is not supported (this server reads 1..",
                     kSnapshotVersion, ")"));
  if (len != bytes.size() - kHeader) return Corrupt("truncated or padded (length mismatch)");
  h.payload = bytes.substr(kHeader);
  Sha256::Digest d = Sha256::Of(h.payload.data(), h.payload.size());
  if (std::memcmp(d.data(), bytes.data() + 20, 32) != 0) return Corrupt("checksum mismatch");
  return h;
}

absl::StatusOr<MachineConfig> ReadSnapshotConfig(absl::string_view payload) {
  SnapshotReader r(payload);
  MachineConfig c;
  c.nodes = static_cast<uint32_t>(r.U64());
  c.blocks_per_node = static_cast<uint32_t>(r.U64());
  c.pages_per_block = r.U64();
  c.clock = r.U64() ? ClockMode::kRealtime : ClockMode::kManual;
  c.profile = r.Str();
  if (!r.ok()) return Corrupt("header fields");
  MEMNODE_RETURN_IF_ERROR(c.Validate());
  return c;
}

namespace internal {

absl::StatusOr<std::string> Kernel::Snapshot() {
  if (hotplug.offline_pending())
    return MakeError(absl::StatusCode::kFailedPrecondition, Reason::kOfflineInProgress,
                     "a paused offline cannot be saved; resume or cancel it first");
  SnapshotWriter w;
  w.U64(config.nodes);
  w.U64(config.blocks_per_node);
  w.U64(config.pages_per_block);
  w.U64(config.clock == ClockMode::kRealtime);
  w.Str(config.profile);
  w.U64(clock.now_ns());
  w.U64(static_cast<uint64_t>(mm.next_pid()));
  w.U64(mem.pages_freed());
  w.U64(migration.migrated_total());
  w.U64(migration.migrated_ksm());
  mem.Save(w, [](const StableNode* n) { return n->id; });
  MEMNODE_RETURN_IF_ERROR(mm.Save(w));
  notifiers.Save(w);
  ksm.Save(w);
  return WrapSnapshot(w.buffer(), kSnapshotVersion);
}

absl::Status Kernel::Load(absl::string_view payload, uint32_t version) {
  SnapshotReader r(payload, version);
  for (int i = 0; i < 4; ++i) r.U64();  // the config, read by ReadSnapshotConfig
  r.Str();
  clock.Set(r.U64());
  mm.set_next_pid(static_cast<Pid>(r.U64()));
  mem.set_pages_freed(r.U64());
  uint64_t total = r.U64();
  uint64_t ksm_moved = r.U64();
  migration.set_counters(total, ksm_moved);
  std::string why;
  std::vector<std::pair<Pfn, uint64_t>> ksm_refs;  // frame -> stable node id
  if (!mem.Load(r, uint64_t{config.nodes} * config.blocks_per_node, &ksm_refs, &why))
    return Corrupt(why);
  std::map<Pid, Process*> procs;
  if (!mm.Load(r, &procs, &why)) return Corrupt(why);
  if (!notifiers.Load(r, {&ksm_notifier})) return Corrupt("notifier");
  // Every pid must be below the next one handed out, or a later create or
  // fork would reuse a live pid.
  if (!mm.processes().empty() && mm.next_pid() <= mm.processes().rbegin()->first)
    return Corrupt("next pid not above every process");
  std::map<uint64_t, StableNode*> by_id;
  if (!ksm.Load(r, procs, &by_id) || !r.ok() || !r.done())
    return Corrupt("KSM state");  // the kernel frees KSM before the processes
  for (const auto& [pfn, id] : ksm_refs) {
    auto it = by_id.find(id);
    if (it == by_id.end()) return Corrupt("stable node reference");
    mem.Frame(pfn).ksm_node = it->second;
  }
  CheckResult check = Check();
  if (!check.ok()) return Corrupt(absl::StrCat("invariants: ", check.violations[0]));
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace memnode
