// Bearer-token authentication and read/admin authorization of gRPC calls.
// Linux analogue: none (an access check in front of the syscall entry points,
// like capable() before a privileged operation).
//
// Design. gRPC 1.51 offers two hooks; only one works for both transports:
//  - grpc::AuthMetadataProcessor runs only with secure credentials:
//    InsecureServerCredentials() asserts in SetAuthMetadataProcessor, and a
//    rejection carries only a code and a message (no trailing metadata, so no
//    google.rpc.ErrorInfo in `grpc-status-details-bin`).
//  - A server interceptor (grpc::experimental::ServerInterceptorFactoryInterface)
//    sees every call on every port, insecure or TLS, with its method name and
//    client metadata. Its limit in 1.51: it cannot end a call by itself (no
//    server-side hijacking), the handler runs after it whatever it decides.
// So the work is split: the interceptor (installed only when tokens are
// configured) authenticates and authorizes at POST_RECV_INITIAL_METADATA and
// records its verdict for the call; every memnode.v1 handler starts with
// Admit(ctx), which returns that verdict before the handler touches anything.
// A rejected call therefore changes nothing and fails with a status built by
// status_mapping.h's Error() (UNAUTHENTICATED / PERMISSION_DENIED with reason).
// Admit() fails closed: with authentication on, a call without a verdict is
// refused. grpc.health.v1.Health and the reflection service are not ours and
// never call Admit(): they stay open (reflection can be switched off with
// --enable_reflection=false). tests/integration/test_security.py and
// test_bad_input.py call every RPC of every service without a token, so a
// handler that forgets Admit() fails the tests.
//
// Thread safety: thread-safe (the token table is immutable after construction;
// verdicts are kept under a mutex).
#ifndef MEMNODE_SERVER_SERVICE_AUTH_H_
#define MEMNODE_SERVER_SERVICE_AUTH_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace memnode::service {

enum class Role { kRead, kAdmin };

// What a method needs: kOpen (no token), kRead (any valid token) or kMutate
// (an admin token).
enum class Access { kOpen, kRead, kMutate };

// The classification of a full method name ("/memnode.v1.KsmService/GetKsm").
// memnode.v1 methods not in the table are kMutate (fail closed); methods of
// grpc.health.v1.Health and grpc.reflection.* are kOpen; anything else kMutate.
Access MethodAccess(absl::string_view method);

// The read-only methods of memnode.v1 ("Service/Method"), for docs and tests.
const std::vector<std::string>& ReadOnlyMethods();

struct TokenEntry {
  std::string token;
  Role role = Role::kAdmin;
};

// Parses a token file: one token per line, optionally followed by whitespace
// and a role (`admin` or `read`; default admin); blank lines and lines
// starting with '#' are ignored. Tokens are printable ASCII without spaces,
// at least 16 characters. An empty file (no token) is an error.
absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(absl::string_view contents);
absl::StatusOr<std::vector<TokenEntry>> LoadTokenFile(const std::string& path);

class Authenticator {
 public:
  explicit Authenticator(const std::vector<TokenEntry>& tokens);
  ~Authenticator();

  // OK, or UNAUTHENTICATED (missing / malformed / unknown bearer token) or
  // PERMISSION_DENIED (a read token on a mutating method), with ErrorInfo.
  grpc::Status Check(absl::string_view method,
                     const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

  // The interceptor that records Check()'s verdict for each call. Creating it
  // turns authentication on for Admit().
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

 private:
  struct Entry {
    std::array<uint8_t, 32> digest;  // SHA-256 of the token
    Role role;
  };
  std::vector<Entry> entries_;
};

// Compares two secrets in time independent of their contents and lengths
// (SHA-256 digests compared without early exit).
bool SecretEquals(absl::string_view a, absl::string_view b);

// The verdict of the authenticator for this call (OK when authentication is
// off). Every memnode.v1 handler calls this first.
grpc::Status Admit(grpc::ServerContextBase* ctx);

// OK, or CANCELLED / DEADLINE_EXCEEDED when the client went away or the call's
// deadline passed: checked before starting work that may take long.
grpc::Status CheckAlive(grpc::ServerContextBase* ctx);

}  // namespace memnode::service

#endif  // MEMNODE_SERVER_SERVICE_AUTH_H_
