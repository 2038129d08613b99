#include "server/service/auth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "server/core/mem/sha256.h"
#include "server/core/status.h"
#include "server/service/status_mapping.h"

namespace memnode::service {
namespace {

constexpr absl::string_view kV1Prefix = "/memnode.v1.";
constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxTokenLength = 4096;

// THE table: every memnode.v1 method that observes without changing any
// state (machine, server or host). Everything else in memnode.v1 needs an
// admin token. Notes on the borderline ones:
//  - ReadMemory / DigestMemory are observations (untouched pages are not
//    faulted in, SEMANTICS 14); TouchMemory is a read fault and maps pages,
//    so it mutates.
//  - MovePages with empty `nodes` is a query, but the same method moves pages:
//    classified by method, it mutates (read tokens use TranslateAddresses,
//    which reports each page's node).
//  - SaveMachineSnapshot leaves the machine alone but writes a file on the
//    server's disk: mutating.
//  - WatchEvents only observes (bounded by --max_streams).
const char* const kReadOnly[] = {
    "MachineService/GetMachine",
    "MachineService/ListMachines",
    "MachineService/CheckMachine",
    "MachineService/GetPageFrame",
    "MachineService/ListPageFrames",
    "ProcessService/GetProcess",
    "ProcessService/ListProcesses",
    "ProcessService/ReadMemory",
    "ProcessService/DigestMemory",
    "ProcessService/TranslateAddresses",
    "KsmService/GetKsm",
    "KsmService/ListStableNodes",
    "KsmService/ListUnstableItems",
    "KsmService/ListRmapItems",
    "NumaService/GetMempolicy",
    "MemoryBlockService/ListMemoryBlocks",
    "MemoryBlockService/GetMemoryBlock",
    "EventService/WatchEvents",
};

// Per-call verdicts of the interceptor, read by Admit().
class Verdicts {
 public:
  void Put(const grpc::ServerContextBase* ctx, grpc::Status s) {
    absl::MutexLock lock(&mu_);
    map_[ctx] = std::move(s);
  }
  void Erase(const grpc::ServerContextBase* ctx) {
    absl::MutexLock lock(&mu_);
    map_.erase(ctx);
  }
  bool Get(const grpc::ServerContextBase* ctx, grpc::Status* out) {
    absl::MutexLock lock(&mu_);
    auto it = map_.find(ctx);
    if (it == map_.end()) return false;
    *out = it->second;
    return true;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<const grpc::ServerContextBase*, grpc::Status> map_ ABSL_GUARDED_BY(mu_);
};

Verdicts& GlobalVerdicts() {
  static Verdicts* const v = new Verdicts;
  return *v;
}

std::atomic<bool> g_auth_enabled{false};

bool ValidToken(absl::string_view t) {
  if (t.size() < kMinTokenLength || t.size() > kMaxTokenLength) return false;
  for (char c : t)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

grpc::Status Unauthenticated(absl::string_view why) {
  return Error(grpc::StatusCode::UNAUTHENTICATED, Reason::kUnauthenticated,
               absl::StrCat(why, " (send metadata 'authorization: Bearer <token>')"));
}

class AuthInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuthInterceptor(const Authenticator& auth, grpc::experimental::ServerRpcInfo* info)
      : auth_(auth), info_(info) {}
  ~AuthInterceptor() override {
    if (recorded_) GlobalVerdicts().Erase(info_->server_context());
  }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      const auto* md = methods->GetRecvInitialMetadata();
      static const std::multimap<grpc::string_ref, grpc::string_ref> kEmpty;
      GlobalVerdicts().Put(info_->server_context(),
                           auth_.Check(info_->method() ? info_->method() : "", md ? *md : kEmpty));
      recorded_ = true;
    }
    methods->Proceed();
  }

 private:
  const Authenticator& auth_;
  grpc::experimental::ServerRpcInfo* const info_;
  bool recorded_ = false;
};

class AuthInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AuthInterceptorFactory(const Authenticator& a) : auth_(a) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new AuthInterceptor(auth_, info);
  }

 private:
  const Authenticator& auth_;
};

}  // namespace

const std::vector<std::string>& ReadOnlyMethods() {
  static const auto* const v =
      new std::vector<std::string>(std::begin(kReadOnly), std::end(kReadOnly));
  return *v;
}

Access MethodAccess(absl::string_view method) {
  if (absl::StartsWith(method, "/grpc.health.v1.Health/") ||
      absl::StartsWith(method, "/grpc.reflection.v1alpha.ServerReflection/") ||
      absl::StartsWith(method, "/grpc.reflection.v1.ServerReflection/"))
    return Access::kOpen;
  if (absl::StartsWith(method, kV1Prefix)) {
    absl::string_view rest = method.substr(kV1Prefix.size());
    for (const char* m : kReadOnly)
      if (rest == m) return Access::kRead;
  }
  return Access::kMutate;
}

absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(absl::string_view contents) {
  std::vector<TokenEntry> out;
  int lineno = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++lineno;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() > 2)
      return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidTokenFile,
                       absl::StrCat("line ", lineno, ": expected 'token [admin|read]'"));
    TokenEntry e;
    if (!ValidToken(f[0]))
      return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidTokenFile,
                       absl::StrCat("line ", lineno, ": a token is ", kMinTokenLength, "..",
                                    kMaxTokenLength, " printable ASCII characters without spaces"));
    e.token = std::string(f[0]);
    if (f.size() == 2) {
      if (f[1] == "admin")
        e.role = Role::kAdmin;
      else if (f[1] == "read")
        e.role = Role::kRead;
      else
        return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidTokenFile,
                         absl::StrCat("line ", lineno, ": role must be admin or read"));
    }
    out.push_back(std::move(e));
  }
  if (out.empty())
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidTokenFile,
                     "no token in the file");
  return out;
}

absl::StatusOr<std::vector<TokenEntry>> LoadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return MakeError(absl::StatusCode::kNotFound, Reason::kInvalidTokenFile,
                     absl::StrCat("cannot read token file ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  auto r = ParseTokenFile(ss.str());
  if (!r.ok())
    return MakeError(r.status().code(), Reason::kInvalidTokenFile,
                     absl::StrCat(path, ": ", r.status().message()));
  return r;
}

Authenticator::Authenticator(const std::vector<TokenEntry>& tokens) {
  for (const TokenEntry& t : tokens)
    entries_.push_back(Entry{Sha256::Of(t.token.data(), t.token.size()), t.role});
}

Authenticator::~Authenticator() = default;

grpc::Status Authenticator::Check(
    absl::string_view method,
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  const Access access = MethodAccess(method);
  if (access == Access::kOpen) return grpc::Status::OK;
  auto range = metadata.equal_range("authorization");
  if (range.first == range.second) return Unauthenticated("missing bearer token");
  if (std::next(range.first) != range.second)
    return Unauthenticated("more than one authorization header");
  absl::string_view value(range.first->second.data(), range.first->second.size());
  // "Bearer <token>", the scheme case-insensitive (RFC 6750 section 2.1).
  if (value.size() < 7 || !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer "))
    return Unauthenticated("the authorization header is not 'Bearer <token>'");
  absl::string_view token = absl::StripLeadingAsciiWhitespace(value.substr(7));
  if (token.empty() || token.size() > kMaxTokenLength) return Unauthenticated("unknown token");
  // Constant time: compare SHA-256 digests (fixed length, so the presented
  // token's length tells nothing) with every entry, without early exit.
  const Sha256::Digest d = Sha256::Of(token.data(), token.size());
  int found = -1;
  for (size_t i = 0; i < entries_.size(); ++i) {
    uint8_t diff = 0;
    for (size_t j = 0; j < d.size(); ++j) diff |= d[j] ^ entries_[i].digest[j];
    // Branch-free select of the first match.
    const int match = static_cast<int>((static_cast<uint32_t>(diff) - 1) >> 8) & 1;
    const int take = match & (found < 0);
    found = take ? static_cast<int>(i) : found;
  }
  if (found < 0) return Unauthenticated("unknown token");
  if (access == Access::kMutate && entries_[found].role != Role::kAdmin)
    return Error(grpc::StatusCode::PERMISSION_DENIED, Reason::kPermissionDenied,
                 absl::StrCat(method.empty() ? "this method" : method,
                              " changes state and needs an admin token; this token is read-only"),
                 {{"method", std::string(method)}, {"role", "read"}});
  return grpc::Status::OK;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
Authenticator::InterceptorFactory() {
  g_auth_enabled.store(true);
  return std::make_unique<AuthInterceptorFactory>(*this);
}

bool SecretEquals(absl::string_view a, absl::string_view b) {
  const Sha256::Digest da = Sha256::Of(a.data(), a.size());
  const Sha256::Digest db = Sha256::Of(b.data(), b.size());
  uint8_t diff = 0;
  for (size_t i = 0; i < da.size(); ++i) diff |= da[i] ^ db[i];
  return diff == 0;
}

grpc::Status Admit(grpc::ServerContextBase* ctx) {
  if (!g_auth_enabled.load(std::memory_order_relaxed)) return grpc::Status::OK;
  grpc::Status v;
  if (!GlobalVerdicts().Get(ctx, &v))
    return Unauthenticated("the call was not authenticated");  // fail closed
  return v;
}

grpc::Status CheckAlive(grpc::ServerContextBase* ctx) {
  if (ctx->IsCancelled())
    return Error(grpc::StatusCode::CANCELLED, Reason::kCancelled, "the client cancelled the call");
  if (std::chrono::system_clock::now() >= ctx->deadline())
    return Error(grpc::StatusCode::DEADLINE_EXCEEDED, Reason::kDeadlineExceeded,
                 "the call's deadline passed before the work started");
  return grpc::Status::OK;
}

}  // namespace memnode::service
