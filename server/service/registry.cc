#include "server/service/registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/core/status.h"

namespace memnode::service {

bool ValidMachineId(absl::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  if (id[0] < 'a' || id[0] > 'z') return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

MachineHandle::MachineHandle(std::string id, std::unique_ptr<Machine> machine)
    : id_(std::move(id)), machine_(std::move(machine)) {
  ksmd_ = std::thread([this] { KsmdLoop(); });
}

MachineHandle::~MachineHandle() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (ksmd_.joinable()) ksmd_.join();
}

void MachineHandle::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void MachineHandle::KsmdLoop() {
  // REALTIME machines: ksm_scan_thread. Every machine: a paused offline whose
  // client went away is cancelled after its pause_ttl (SPEC Decisions 4).
  const bool realtime = machine_->config().clock == ClockMode::kRealtime;
  absl::Time next_expiry_check = absl::Now();
  for (;;) {
    if (absl::Now() >= next_expiry_check) {
      machine_->ExpirePausedOffline(absl::Now());
      next_expiry_check = absl::Now() + absl::Seconds(1);
    }
    Machine::KsmdTick t = realtime ? machine_->KsmdBatch() : Machine::KsmdTick{};
    // Sleep sleep_millisecs when there is work, else until woken (polling at
    // a coarse interval also catches registrations that did not wake us).
    absl::Duration d = t.should_run ? absl::Milliseconds(t.sleep_millisecs)
                                    : absl::Milliseconds(realtime ? 50 : 500);
    absl::MutexLock lock(&mu_);
    auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || woken_; };
    if (t.should_run)
      mu_.AwaitWithTimeout(absl::Condition(&stop_), d);
    else
      mu_.AwaitWithTimeout(absl::Condition(&cond), d);
    woken_ = false;
    if (stop_) return;
  }
}

Registry::~Registry() { Shutdown(); }

absl::StatusOr<std::shared_ptr<MachineHandle>> Registry::Create(const std::string& id,
                                                                 const MachineConfig& config) {
  if (!ValidMachineId(id))
    return MakeError(absl::StatusCode::kInvalidArgument, "INVALID_NAME",
                     absl::StrCat("machine id \"", id, "\" must match [a-z][a-z0-9-]{0,62}"));
  MEMNODE_RETURN_IF_ERROR(config.Validate());
  const uint64_t bytes = config.total_pages() * kPageSize;
  if (bytes > limits_.max_machine_bytes)
    return MakeError(absl::StatusCode::kResourceExhausted, "MEMORY_LIMIT",
                     absl::StrCat("machine of ", bytes, " bytes exceeds max_machine_bytes ",
                                  limits_.max_machine_bytes));
  absl::MutexLock lock(&mu_);
  if (machines_.count(id))
    return MakeError(absl::StatusCode::kAlreadyExists, "MACHINE_EXISTS",
                     absl::StrCat("machines/", id, " already exists"));
  if (machines_.size() >= limits_.max_machines)
    return MakeError(absl::StatusCode::kResourceExhausted, "MACHINE_LIMIT",
                     absl::StrCat("at most ", limits_.max_machines, " machines"));
  uint64_t total = bytes;
  for (const auto& [n, h] : machines_) total += h->machine().config().total_pages() * kPageSize;
  if (total > limits_.max_total_bytes)
    return MakeError(absl::StatusCode::kResourceExhausted, "MEMORY_LIMIT",
                     absl::StrCat("server total of ", total, " emulated bytes exceeds ",
                                  limits_.max_total_bytes));
  MEMNODE_ASSIGN_OR_RETURN(std::unique_ptr<Machine> m, Machine::Create(config));
  auto h = std::make_shared<MachineHandle>(id, std::move(m));
  machines_[id] = h;
  for (RegistryListener* l : listeners_) l->OnMachineAdded(h);
  return h;
}

absl::StatusOr<std::shared_ptr<MachineHandle>> Registry::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = machines_.find(id);
  if (it == machines_.end())
    return MakeError(absl::StatusCode::kNotFound, "MACHINE_NOT_FOUND",
                     absl::StrCat("machines/", id, " not found"));
  return it->second;
}

absl::Status Registry::Delete(const std::string& id) {
  std::shared_ptr<MachineHandle> h;
  {
    absl::MutexLock lock(&mu_);
    auto it = machines_.find(id);
    if (it == machines_.end())
      return MakeError(absl::StatusCode::kNotFound, "MACHINE_NOT_FOUND",
                       absl::StrCat("machines/", id, " not found"));
    h = std::move(it->second);
    machines_.erase(it);
    for (RegistryListener* l : listeners_) l->OnMachineRemoved(h);
  }
  // The handle (and its ksmd) goes when the last in-flight call drops it.
  return absl::OkStatus();
}

std::vector<std::shared_ptr<MachineHandle>> Registry::List() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<MachineHandle>> out;
  for (const auto& [n, h] : machines_) out.push_back(h);
  return out;
}

void Registry::Shutdown() {
  std::map<std::string, std::shared_ptr<MachineHandle>> gone;
  {
    absl::MutexLock lock(&mu_);
    gone.swap(machines_);
    for (const auto& [n, h] : gone)
      for (RegistryListener* l : listeners_) l->OnMachineRemoved(h);
  }
  gone.clear();
}

void Registry::AddListener(RegistryListener* listener) {
  absl::MutexLock lock(&mu_);
  listeners_.push_back(listener);
  for (const auto& [n, h] : machines_) listener->OnMachineAdded(h);
}

void Registry::RemoveListener(RegistryListener* listener) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

}  // namespace memnode::service
