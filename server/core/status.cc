#include "server/core/status.h"

#include "absl/strings/cord.h"
#include "server/core/types.h"

namespace memnode {

absl::Status MakeError(absl::StatusCode code, absl::string_view reason, absl::string_view message) {
  absl::Status s(code, message);
  s.SetPayload(kReasonPayloadKey, absl::Cord(reason));
  return s;
}

std::string ErrorReason(const absl::Status& status) {
  auto p = status.GetPayload(kReasonPayloadKey);
  return p.has_value() ? std::string(*p) : std::string();
}

void CheckFailed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "memnode: check failed at %s:%d: %s: %s\n", file, line, cond, msg.c_str());
  std::abort();
}

const char* ErrnoName(Errno e) {
  switch (e) {
    case Errno::kOk: return "OK";
    case Errno::kEPERM: return "EPERM";
    case Errno::kENOENT: return "ENOENT";
    case Errno::kESRCH: return "ESRCH";
    case Errno::kEINTR: return "EINTR";
    case Errno::kEIO: return "EIO";
    case Errno::kEAGAIN: return "EAGAIN";
    case Errno::kENOMEM: return "ENOMEM";
    case Errno::kEACCES: return "EACCES";
    case Errno::kEFAULT: return "EFAULT";
    case Errno::kEBUSY: return "EBUSY";
    case Errno::kENODEV: return "ENODEV";
    case Errno::kEINVAL: return "EINVAL";
  }
  return "E?";
}

const char* PageStateName(PageState s) {
  switch (s) {
    case PageState::kFree: return "free";
    case PageState::kAnon: return "anon";
    case PageState::kKsm: return "ksm";
    case PageState::kShmem: return "shmem";
    case PageState::kZero: return "zero";
    case PageState::kReserved: return "reserved";
    case PageState::kOffline: return "offline";
  }
  return "?";
}

}  // namespace memnode
