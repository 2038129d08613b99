// What a memnodectl command runs with: the global flags, the channel to
// memnoded (plaintext, TLS or mutual TLS; a bearer token on every call) and
// its service stubs, the RPC helpers (deadline, errors, pagination) and the
// output conventions (JSON, errno lines, exit codes).
//
// Exit codes (docs/CLI.md):
//   0  success
//   1  the emulated call returned a non-OK errno (or `machine check` failed)
//   2  usage error
//   3  the server returned a non-OK gRPC status
//   4  the server could not be reached, or the deadline expired
//
// Thread safety: one Context per invocation, used by the main thread; the
// stubs may be used from other threads (watch and top read a stream on one).

#ifndef MEMNODE_CLIENT_CPP_CONTEXT_H_
#define MEMNODE_CLIENT_CPP_CONTEXT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/message.h"
#include "memnode/v1/common.pb.h"
#include "memnode/v1/events.grpc.pb.h"
#include "memnode/v1/hotplug.grpc.pb.h"
#include "memnode/v1/ksm.grpc.pb.h"
#include "memnode/v1/machine.grpc.pb.h"
#include "memnode/v1/numa.grpc.pb.h"
#include "memnode/v1/process.grpc.pb.h"

namespace memnode {
namespace cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitErrno = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitRpc = 3;
inline constexpr int kExitUnreachable = 4;

// Page sizes asked of the list RPCs (the server caps them anyway).
inline constexpr int32_t kListPageSize = 1000;
inline constexpr int32_t kFramePageSize = 4096;
inline constexpr int32_t kBlockPageSize = 4096;

class Command;
class CommandSet;

// The global flags, as parsed.
struct GlobalFlags {
  std::string server = "127.0.0.1:50051";
  std::string machine = "default";
  bool json = false;
  double timeout_seconds = 30;
  std::string tls_ca;      // PEM roots to verify the server; TLS when set
  std::string tls_cert;    // PEM client certificate chain (mutual TLS)
  std::string tls_key;     // PEM private key of tls_cert
  std::string token_file;  // file holding the bearer token
};

// Environment variable holding the bearer token (when no --token-file).
inline constexpr char kTokenEnv[] = "MEMNODE_TOKEN";

class Context {
 public:
  Context(const GlobalFlags& flags, const Command& command, const CommandSet& commands)
      : flags_(flags), command_(command), commands_(commands) {}

  // Reads the TLS files and the token, creates the channel and the stubs.
  // Returns 0, or prints a usage error and returns 2.
  int Connect();

  bool json() const { return flags_.json; }
  const GlobalFlags& flags() const { return flags_; }
  const Command& command() const { return command_; }
  const CommandSet& commands() const { return commands_; }
  // Whether the argument or flag of the running command was given.
  bool Given(const std::string& name) const;
  // Whether --timeout was given explicitly.
  bool TimeoutGiven() const;

  // Resource names of the machine chosen with --machine.
  std::string MachineName() const;
  std::string KsmName() const { return MachineName() + "/ksm"; }
  std::string ProcessName(int32_t pid) const {
    return absl::StrCat(MachineName(), "/processes/", pid);
  }
  std::string BlockName(uint64_t block) const {
    return absl::StrCat(MachineName(), "/memoryBlocks/", block);
  }

  // The channel (after Connect), for calls outside memnode.v1 (health).
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  v1::MachineService::Stub* machines() { return machines_.get(); }
  v1::ProcessService::Stub* processes() { return processes_.get(); }
  v1::KsmService::Stub* ksm() { return ksm_.get(); }
  v1::NumaService::Stub* numa() { return numa_.get(); }
  v1::MemoryBlockService::Stub* blocks() { return blocks_.get(); }
  v1::EventService::Stub* events() { return events_.get(); }

  // Adds the bearer token and, when `deadline`, the --timeout deadline.
  void Prepare(grpc::ClientContext* context, bool deadline) const;

  // One unary RPC. Returns 0, or prints the error and returns its exit code.
  template <typename Stub, typename Request, typename Response>
  int Call(Stub* stub,
           grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
           const Request& request, Response* response) {
    grpc::ClientContext context;
    Prepare(&context, /*deadline=*/true);
    grpc::Status status = (stub->*method)(&context, request, response);
    if (status.ok()) return kExitOk;
    return ReportRpcError(status);
  }

  // Follows next_page_token: fetch(token, page) performs one call. The pages
  // are merged into *all, whose next_page_token ends empty.
  template <typename Response, typename Fetch>
  int FetchAll(Response* all, Fetch fetch) {
    std::string token;
    for (;;) {
      Response page;
      if (int rc = fetch(token, &page)) return rc;
      std::string next = page.next_page_token();
      all->MergeFrom(page);
      if (next.empty()) break;
      if (next == token) {
        std::cerr << "error: server repeated page token \"" << token << "\"\n";
        return kExitRpc;
      }
      token = next;
    }
    all->clear_next_page_token();
    return kExitOk;
  }

  // Prints "error: CODE: message [reason=...]" and returns 3, or 4 for a
  // transport failure or an expired deadline.
  static int ReportRpcError(const grpc::Status& status);
  // The ErrorInfo reason of a status ("" when none).
  static std::string Reason(const grpc::Status& status);

  // One JSON object (proto field names, primitive fields always printed).
  static std::string ToJson(const google::protobuf::Message& message);
  void PrintJson(const google::protobuf::Message& message) const;

  // Prints "EFAULT (14): ..." to stderr (human mode) and returns 1 when
  // errnum is not OK; returns 0 otherwise.
  int ErrnoExit(v1::Errno errnum, const std::string& detail) const;
  // Prints `ok` (human) or the result (JSON); the errno exit of ErrnoExit.
  int SyscallDone(const v1::SyscallResult& result) const;

  // A usage error of the running command found after parsing (exit 2).
  int UsageError(const std::string& message) const;

 private:
  GlobalFlags flags_;
  const Command& command_;
  const CommandSet& commands_;
  std::string token_;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::MachineService::Stub> machines_;
  std::unique_ptr<v1::ProcessService::Stub> processes_;
  std::unique_ptr<v1::KsmService::Stub> ksm_;
  std::unique_ptr<v1::NumaService::Stub> numa_;
  std::unique_ptr<v1::MemoryBlockService::Stub> blocks_;
  std::unique_ptr<v1::EventService::Stub> events_;
};

}  // namespace cli
}  // namespace memnode

#endif  // MEMNODE_CLIENT_CPP_CONTEXT_H_
