#include "client/cpp/context.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "client/cpp/command.h"
#include "client/cpp/format.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace memnode {
namespace cli {

namespace {

// Reads a whole file; false when it cannot be read.
bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// A token as the server accepts it: printable ASCII without spaces.
bool ValidToken(const std::string& token) {
  return !token.empty() &&
         std::all_of(token.begin(), token.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

// The first google.rpc.ErrorInfo of a status' details, if any.
bool ErrorInfoOf(const grpc::Status& status, google::rpc::ErrorInfo* info) {
  if (status.error_details().empty()) return false;
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return false;
  for (const auto& any : details.details()) {
    if (any.UnpackTo(info)) return true;
  }
  return false;
}

}  // namespace

int Context::Connect() {
  if (channel_ != nullptr) return kExitOk;
  const GlobalFlags& f = flags_;
  if (f.tls_cert.empty() != f.tls_key.empty()) {
    return UsageError("--tls-cert and --tls-key go together");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!f.tls_ca.empty() || !f.tls_cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    const std::pair<const char*, const std::string*> files[] = {
        {"--tls-ca", &f.tls_ca}, {"--tls-cert", &f.tls_cert}, {"--tls-key", &f.tls_key}};
    std::string* outs[] = {&ssl.pem_root_certs, &ssl.pem_cert_chain, &ssl.pem_private_key};
    for (size_t i = 0; i < 3; ++i) {
      if (files[i].second->empty()) continue;  // no --tls-ca: the system's roots
      if (!ReadFile(*files[i].second, outs[i]) || outs[i]->empty()) {
        return UsageError(absl::StrCat(files[i].first, ": cannot read \"", *files[i].second, "\""));
      }
    }
    credentials = grpc::SslCredentials(ssl);
  }
  if (!f.token_file.empty()) {
    std::string text;
    if (!ReadFile(f.token_file, &text)) {
      return UsageError(absl::StrCat("--token-file: cannot read \"", f.token_file, "\""));
    }
    token_ = std::string(absl::StripAsciiWhitespace(text));
    if (!ValidToken(token_)) {
      return UsageError(absl::StrCat("--token-file: \"", f.token_file,
                                     "\" must hold one token (printable ASCII, no spaces)"));
    }
  } else if (const char* env = std::getenv(kTokenEnv); env != nullptr && env[0] != '\0') {
    token_ = std::string(absl::StripAsciiWhitespace(env));
    if (!ValidToken(token_)) {
      return UsageError(absl::StrCat("$", kTokenEnv,
                                     " must be one token (printable ASCII, no "
                                     "spaces)"));
    }
  }
  channel_ = grpc::CreateChannel(f.server, credentials);
  machines_ = v1::MachineService::NewStub(channel_);
  processes_ = v1::ProcessService::NewStub(channel_);
  ksm_ = v1::KsmService::NewStub(channel_);
  numa_ = v1::NumaService::NewStub(channel_);
  blocks_ = v1::MemoryBlockService::NewStub(channel_);
  events_ = v1::EventService::NewStub(channel_);
  return kExitOk;
}

bool Context::Given(const std::string& name) const { return command_.Given(name); }

bool Context::TimeoutGiven() const { return commands_.root().Given("--timeout"); }

std::string Context::MachineName() const {
  if (absl::StartsWith(flags_.machine, "machines/")) return flags_.machine;
  return absl::StrCat("machines/", flags_.machine);
}

void Context::Prepare(grpc::ClientContext* context, bool deadline) const {
  if (!token_.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  if (deadline && flags_.timeout_seconds > 0) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(
                              std::chrono::duration<double>(flags_.timeout_seconds)));
  }
}

std::string Context::Reason(const grpc::Status& status) {
  google::rpc::ErrorInfo info;
  return ErrorInfoOf(status, &info) ? info.reason() : "";
}

int Context::ReportRpcError(const grpc::Status& status) {
  google::rpc::ErrorInfo info;
  const bool has_info = ErrorInfoOf(status, &info);
  std::cerr << "error: " << CodeName(status.error_code()) << ": " << status.error_message();
  if (has_info && !info.reason().empty()) {
    std::cerr << " [reason=" << info.reason() << "]";
  }
  std::cerr << "\n";
  if (has_info && !info.metadata().empty()) {
    std::vector<std::pair<std::string, std::string>> sorted(info.metadata().begin(),
                                                            info.metadata().end());
    std::sort(sorted.begin(), sorted.end());
    std::cerr << "  " << absl::StrJoin(sorted, " ", absl::PairFormatter("=")) << "\n";
  }
  // Without an ErrorInfo, UNAVAILABLE comes from the transport (nothing
  // listening, connection refused, a failed TLS handshake); a deadline is
  // the client's own limit.
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      (status.error_code() == grpc::StatusCode::UNAVAILABLE && !has_info)) {
    return kExitUnreachable;
  }
  return kExitRpc;
}

std::string Context::ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    std::cerr << "error: cannot print JSON: " << status.ToString() << "\n";
    return "{}";
  }
  return json;
}

void Context::PrintJson(const google::protobuf::Message& message) const {
  std::cout << ToJson(message) << "\n";
}

int Context::ErrnoExit(v1::Errno errnum, const std::string& detail) const {
  if (errnum == v1::ERRNO_OK) return kExitOk;
  if (!flags_.json) std::cerr << ErrnoLine(errnum, detail) << "\n";
  return kExitErrno;
}

int Context::SyscallDone(const v1::SyscallResult& result) const {
  if (flags_.json) {
    PrintJson(result);
  } else if (result.errnum() == v1::ERRNO_OK) {
    std::cout << "ok\n";
  }
  return ErrnoExit(result.errnum(), "");
}

int Context::UsageError(const std::string& message) const {
  return commands_.UsageError(&command_, message);
}

}  // namespace cli
}  // namespace memnode
