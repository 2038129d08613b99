#include "server/host/registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/core/status.h"

namespace memnode::host {

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
    KsmdTick t = realtime ? machine_->KsmdBatch() : KsmdTick{};
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
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidName,
                     absl::StrCat("machine id \"", id, "\" must match [a-z][a-z0-9-]{0,62}"));
  MEMNODE_RETURN_IF_ERROR(config.Validate());
  // Check the limits before building anything.
  MEMNODE_RETURN_IF_ERROR(CheckRoom(id, config.total_pages() * kPageSize));
  MEMNODE_ASSIGN_OR_RETURN(std::unique_ptr<Machine> m, Machine::Create(config));
  return Adopt(id, std::move(m));
}

absl::Status Registry::CheckRoom(const std::string& id, uint64_t bytes) {
  if (bytes > limits_.max_machine_bytes)
    return MakeError(absl::StatusCode::kResourceExhausted, Reason::kMemoryLimit,
                     absl::StrCat("machine of ", bytes, " bytes exceeds max_machine_bytes ",
                                  limits_.max_machine_bytes));
  absl::MutexLock lock(&mu_);
  if (machines_.count(id))
    return MakeError(absl::StatusCode::kAlreadyExists, Reason::kMachineExists,
                     absl::StrCat("machines/", id, " already exists"));
  if (machines_.size() >= limits_.max_machines)
    return MakeError(absl::StatusCode::kResourceExhausted, Reason::kMachineLimit,
                     absl::StrCat("at most ", limits_.max_machines, " machines"));
  uint64_t total = bytes;
  for (const auto& [n, h] : machines_) total += h->machine().Info().total_pages * kPageSize;
  if (total > limits_.max_total_bytes)
    return MakeError(absl::StatusCode::kResourceExhausted, Reason::kMemoryLimit,
                     absl::StrCat("server total of ", total, " emulated bytes exceeds ",
                                  limits_.max_total_bytes));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<MachineHandle>> Registry::Adopt(const std::string& id,
                                                               std::unique_ptr<Machine> m) {
  if (!ValidMachineId(id))
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidName,
                     absl::StrCat("machine id \"", id, "\" must match [a-z][a-z0-9-]{0,62}"));
  MEMNODE_RETURN_IF_ERROR(CheckRoom(id, m->Info().total_pages * kPageSize));
  auto h = std::make_shared<MachineHandle>(id, std::move(m));
  absl::MutexLock lock(&mu_);
  if (machines_.count(id))  // lost a race with another create of the same id
    return MakeError(absl::StatusCode::kAlreadyExists, Reason::kMachineExists,
                     absl::StrCat("machines/", id, " already exists"));
  machines_[id] = h;
  for (RegistryListener* l : listeners_) l->OnMachineAdded(h);
  return h;
}

absl::StatusOr<std::shared_ptr<MachineHandle>> Registry::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = machines_.find(id);
  if (it == machines_.end())
    return MakeError(absl::StatusCode::kNotFound, Reason::kMachineNotFound,
                     absl::StrCat("machines/", id, " not found"));
  return it->second;
}

absl::Status Registry::Delete(const std::string& id) {
  std::shared_ptr<MachineHandle> h;
  {
    absl::MutexLock lock(&mu_);
    auto it = machines_.find(id);
    if (it == machines_.end())
      return MakeError(absl::StatusCode::kNotFound, Reason::kMachineNotFound,
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

}  // namespace memnode::host

namespace memnode::host {
namespace {

bool ValidFileName(const std::string& f) {
  if (f.empty() || f.size() > 128 || f[0] == '.') return false;
  for (char c : f)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& data) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return MakeError(absl::StatusCode::kInternal, Reason::kSnapshotIo,
                     absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return MakeError(absl::StatusCode::kInternal, Reason::kSnapshotIo,
                       absl::StrCat("cannot write ", tmp, ": ", std::strerror(e)));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return MakeError(absl::StatusCode::kInternal, Reason::kSnapshotIo,
                     absl::StrCat("cannot sync ", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return MakeError(absl::StatusCode::kInternal, Reason::kSnapshotIo,
                     absl::StrCat("cannot rename ", tmp, ": ", std::strerror(errno)));
  }
  // Make the rename durable.
  std::string dir = path.substr(0, path.rfind('/'));
  int dfd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return MakeError(absl::StatusCode::kNotFound, Reason::kSnapshotNotFound,
                     absl::StrCat("no snapshot file ", path));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return data;
}

}  // namespace

absl::StatusOr<Registry::SavedSnapshot> Registry::SaveSnapshot(const std::string& id,
                                                               const std::string& file) {
  if (state_dir_.empty())
    return MakeError(absl::StatusCode::kFailedPrecondition, Reason::kNoStateDir,
                     "the server was started without --state_dir");
  std::string name = file.empty() ? absl::StrCat(id, ".mnsnap") : file;
  if (!ValidFileName(name))
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidField,
                     "file must match [A-Za-z0-9._-]{1,128} and not start with '.'");
  MEMNODE_ASSIGN_OR_RETURN(std::shared_ptr<MachineHandle> h, Get(id));
  MEMNODE_ASSIGN_OR_RETURN(std::string bytes, h->machine().Snapshot());
  SavedSnapshot out;
  out.path = absl::StrCat(state_dir_, "/", name);
  out.bytes = bytes.size();
  MEMNODE_RETURN_IF_ERROR(WriteFileAtomically(out.path, bytes));
  out.state_digest = h->machine().Check().state_digest;
  return out;
}

absl::StatusOr<std::shared_ptr<MachineHandle>> Registry::LoadSnapshot(const std::string& file,
                                                                      const std::string& id) {
  if (state_dir_.empty())
    return MakeError(absl::StatusCode::kFailedPrecondition, Reason::kNoStateDir,
                     "the server was started without --state_dir");
  if (!ValidFileName(file))
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidField,
                     "file must match [A-Za-z0-9._-]{1,128} and not start with '.'");
  if (!ValidMachineId(id))
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidName,
                     absl::StrCat("machine id \"", id, "\" must match [a-z][a-z0-9-]{0,62}"));
  MEMNODE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(absl::StrCat(state_dir_, "/", file)));
  MEMNODE_ASSIGN_OR_RETURN(std::unique_ptr<Machine> m, Machine::Restore(bytes));
  return Adopt(id, std::move(m));
}

std::vector<std::string> Registry::SaveAll() {
  std::vector<std::string> errors;
  if (state_dir_.empty()) return errors;
  for (const auto& h : List()) {
    auto r = SaveSnapshot(h->id(), "");
    if (!r.ok()) errors.push_back(absl::StrCat("machines/", h->id(), ": ", r.status().message()));
  }
  return errors;
}

std::vector<std::string> Registry::RestoreAll(std::vector<std::string>* errors) {
  std::vector<std::string> restored;
  if (state_dir_.empty()) return restored;
  DIR* d = ::opendir(state_dir_.c_str());
  if (!d) {
    errors->push_back(
        absl::StrCat("cannot open state dir ", state_dir_, ": ", std::strerror(errno)));
    return restored;
  }
  std::vector<std::string> files;
  while (dirent* e = ::readdir(d)) {
    std::string f = e->d_name;
    if (f.size() > 7 && f.compare(f.size() - 7, 7, ".mnsnap") == 0) files.push_back(f);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    std::string id = f.substr(0, f.size() - 7);
    auto h = LoadSnapshot(f, id);
    if (h.ok())
      restored.push_back(id);
    else
      errors->push_back(absl::StrCat(state_dir_, "/", f, ": ", h.status().message()));
  }
  return restored;
}

}  // namespace memnode::host
