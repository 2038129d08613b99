// The kernel-profile seam: everything that differs between the kernels
// memnode emulates sits behind this interface, chosen when a machine is
// created (MachineConfig::profile) and fixed for its life.
//   - the KSM sysfs files: which exist, how each parses a write, what a
//     write does, how each reads;
//   - the KSM scan and merge rules (KsmRules);
//   - whether KSM pages migrate;
//   - the offline's retry policy and the `removable` rule of a block.
// Implementations: linux_2_6_33.cc (the default). profiles.h lists them.
// Thread safety: profiles are immutable singletons.
#ifndef MEMNODE_SERVER_CORE_PROFILE_PROFILE_H_
#define MEMNODE_SERVER_CORE_PROFILE_PROFILE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/mem/page_frame.h"
#include "server/core/types.h"

namespace memnode {

class Ksm;

// One file of /sys/kernel/mm/ksm.
struct KsmSysfsFile {
  std::string name;
  bool writable = false;
  // A write waits while an offline holds KSM's lock (2.6.33: `run`, which
  // takes ksm_thread_mutex); memnode refuses it with KSM_LOCKED instead and
  // the host layer retries until the offline ends or the call's deadline.
  bool waits_for_offline = false;
  std::string default_value;  // as read right after boot (writable files)
  std::string description;    // one line, for `ListProfiles`
  // Reads the file (without the trailing newline).
  std::function<std::string(const Ksm&)> read;
  // Parses the written text as the kernel's store function does: kOk and
  // *value, or the store's errno (nothing changed).
  std::function<Errno(absl::string_view text, uint64_t* value)> parse;
  // Applies a parsed value; returns the emulated errno.
  std::function<Errno(Ksm&, uint64_t value)> apply;
};

// How an offline retries (offline_pages's loop).
struct OfflinePolicy {
  // Emulated time after which a migration loop that makes no progress gives
  // up with EAGAIN (2.6.33: 120 s); nullopt: retries until cancelled.
  std::optional<uint64_t> timeout_ns;
  // Retries of a round that failed with EBUSY/ENOMEM before giving up.
  int retry_max = 5;
};

class KernelProfile {
 public:
  virtual ~KernelProfile() = default;
  // "linux-2.6.33".
  virtual absl::string_view name() const = 0;
  virtual absl::string_view description() const = 0;

  // --- KSM ----------------------------------------------------------------
  // The files of /sys/kernel/mm/ksm, in `ls` order.
  virtual const std::vector<KsmSysfsFile>& ksm_files() const = 0;
  // The file named `name`, or null (reading it is ENOENT).
  const KsmSysfsFile* FindKsmFile(absl::string_view name) const;

  // --- Migration ----------------------------------------------------------
  // Whether migrate_pages() may move a KSM page (2.6.33: only when the
  // caller is hot-remove, the seed's `offlining`).
  virtual bool KsmPageMigratable(bool offlining) const = 0;

  // --- Hotplug ------------------------------------------------------------
  virtual OfflinePolicy offline_policy(uint64_t requested_timeout_ns) const = 0;
  // The sysfs `removable` hint of an online block.
  virtual bool Removable(const MemoryBlock& b) const = 0;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_PROFILE_PROFILE_H_
