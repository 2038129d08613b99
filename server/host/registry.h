// The server's machines: creation and deletion under limits, name lookup,
// and one ksmd thread per REALTIME machine (the core spawns no threads).
// Linux analogue: none; ksmd's thread loop is ksm_scan_thread (kernel-semantics
// 2.1 rule 1): a batch of pages_to_scan visits, then sleep_millisecs.
// Thread safety: thread-safe. Lock order: Registry::mu_, then Machine::mu_
// (never the reverse: ksmd threads hold no registry lock while scanning).
#ifndef MEMNODE_SERVER_HOST_REGISTRY_H_
#define MEMNODE_SERVER_HOST_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/core/machine.h"

namespace memnode::host {

struct Limits {
  uint32_t max_machines = 16;
  uint64_t max_machine_bytes = uint64_t{1} << 40;  // emulated bytes per machine
  uint64_t max_total_bytes = uint64_t{4} << 40;    // emulated bytes per server
  uint64_t max_request_bytes = 4 << 20;            // bytes per read/write call
  uint64_t max_request_pages = 65536;              // pages per Translate/ListPageFrames/MovePages
  uint64_t max_ksm_visits = uint64_t{1} << 24;     // visits per StepKsm call
  uint32_t max_processes = 4096;                   // running processes per machine
};

// A machine and its thread: ksmd for REALTIME machines, and for every machine
// the expiry of abandoned paused offlines.
class MachineHandle {
 public:
  MachineHandle(std::string id, std::unique_ptr<Machine> machine);
  ~MachineHandle();  // stops ksmd
  const std::string& id() const { return id_; }
  Machine& machine() { return *machine_; }
  // Wakes ksmd (after a run write or a registration), like wake_up_interruptible.
  void Wake();

 private:
  void KsmdLoop();
  const std::string id_;
  std::unique_ptr<Machine> machine_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::thread ksmd_;
};

// Told when a machine enters or leaves the registry (metrics, event streams).
// Called under the registry's lock, so calls arrive in order (added before
// removed); an implementation must be quick and must not call the Registry.
// Lock order: Registry::mu_, then the listener's own locks, then Machine::mu_.
class RegistryListener {
 public:
  virtual ~RegistryListener() = default;
  virtual void OnMachineAdded(const std::shared_ptr<MachineHandle>& handle) = 0;
  // The machine is no longer reachable by name (deleted, or server shutdown);
  // in-flight calls may still hold the handle.
  virtual void OnMachineRemoved(const std::shared_ptr<MachineHandle>& handle) = 0;
};

class Registry {
 public:
  // `state_dir`: where snapshot files live (empty: snapshots disabled).
  explicit Registry(const Limits& limits, std::string state_dir = "")
      : limits_(limits), state_dir_(std::move(state_dir)) {}
  ~Registry();
  const Limits& limits() const { return limits_; }

  absl::StatusOr<std::shared_ptr<MachineHandle>> Create(const std::string& id,
                                                        const MachineConfig& config)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Registers an existing machine (a restored snapshot) under the limits.
  absl::StatusOr<std::shared_ptr<MachineHandle>> Adopt(const std::string& id,
                                                       std::unique_ptr<Machine> machine)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<MachineHandle>> Get(const std::string& id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Snapshots in state_dir (see machine.proto SaveMachineSnapshot).
  struct SavedSnapshot {
    std::string path;
    uint64_t bytes = 0;
    std::string state_digest;
  };
  absl::StatusOr<SavedSnapshot> SaveSnapshot(const std::string& id, const std::string& file)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<MachineHandle>> LoadSnapshot(const std::string& file,
                                                              const std::string& id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Graceful shutdown with a state_dir: saves every machine as
  // "{id}.mnsnap"; returns one message per machine that could not be saved.
  std::vector<std::string> SaveAll() ABSL_LOCKS_EXCLUDED(mu_);
  // Start-up with a state_dir: restores every "{id}.mnsnap" found (a corrupt
  // one is reported and left in place, nothing of it loaded). Returns the
  // ids restored and, in *errors, one message per refused file.
  std::vector<std::string> RestoreAll(std::vector<std::string>* errors) ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& state_dir() const { return state_dir_; }
  absl::Status Delete(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::shared_ptr<MachineHandle>> List() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops every ksmd and drops every machine (graceful shutdown).
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Adds a listener (not owned; must outlive its registration) and reports
  // the machines already present to it as added.
  void AddListener(RegistryListener* listener) ABSL_LOCKS_EXCLUDED(mu_);
  // After this returns the listener is never called again.
  void RemoveListener(RegistryListener* listener) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // MACHINE_EXISTS / MACHINE_LIMIT / MEMORY_LIMIT for a machine of `bytes`.
  absl::Status CheckRoom(const std::string& id, uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  const Limits limits_;
  const std::string state_dir_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<MachineHandle>> machines_ ABSL_GUARDED_BY(mu_);
  std::vector<RegistryListener*> listeners_ ABSL_GUARDED_BY(mu_);
};

// Valid machine ids: [a-z][a-z0-9-]{0,62}.
bool ValidMachineId(absl::string_view id);

}  // namespace memnode::host

#endif  // MEMNODE_SERVER_HOST_REGISTRY_H_
