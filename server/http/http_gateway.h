// memnoded's HTTP port: the Connect gateway (connect_gateway.h) at
// /memnode.v1.<Service>/<Method> and the web view (static assets compiled
// into the binary, server/http/assets.h) at every other path, served by
// civetweb (Debian's libcivetweb).
// Linux analogue: none.
//
// Security is the gRPC port's: the same TLS certificate, key and client CA
// (civetweb speaks TLS through OpenSSL); bearer tokens are forwarded to the
// gRPC services, whose interceptor and Admit() decide. A non-loopback
// address needs TLS or tokens (or allow_insecure_remote), like --listen. On a
// loopback address without tokens, requests must name a loopback Host
// (localhost, 127.x.y.z, [::1]) so that a web page from elsewhere cannot
// reach the API through DNS rebinding. No CORS headers are sent: only pages
// served by memnoded itself may call it from a browser.
//
// Thread safety: Stop() and the destructor from one thread; requests are
// served on civetweb's worker threads.
#ifndef MEMNODE_SERVER_HTTP_HTTP_GATEWAY_H_
#define MEMNODE_SERVER_HTTP_HTTP_GATEWAY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/http/connect_gateway.h"

struct mg_context;
struct mg_connection;

namespace memnode::http {

struct HttpGatewayOptions {
  // host:port to serve (port 0 = any free port). IPv4 or "localhost".
  std::string address;
  // TLS: PEM certificate chain and key (both or neither); client CA bundle
  // for mutual TLS (needs the certificate).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Bearer tokens are configured on the gRPC services (--token_file).
  bool tokens = false;
  bool allow_insecure_remote = false;
  // --max_request_bytes: the gRPC message limit is this + 1 MiB.
  uint64_t max_request_bytes = 4 << 20;
  // --max_streams: concurrent WatchEvents streams (each holds a worker thread).
  int max_streams = 16;
};

class HttpGateway {
 public:
  ~HttpGateway();
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  // "host:port" actually served (the port chosen when 0 was asked for).
  const std::string& address() const { return address_; }
  bool tls() const { return tls_; }
  // Stops serving: waits (up to 5 s) for the requests in progress to finish
  // (streams end when the event service shuts down: call that first), then
  // cancels what remains and stops civetweb. Idempotent.
  void Stop();

 private:
  friend absl::StatusOr<std::unique_ptr<HttpGateway>> StartHttpGateway(
      grpc::Server& server, const HttpGatewayOptions& options);
  HttpGateway() = default;

  std::unique_ptr<ConnectGateway> connect_;
  mg_context* ctx_ = nullptr;
  std::string address_;
  bool tls_ = false;
  bool check_host_ = false;
  bool library_initialized_ = false;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;  // requests being answered
  std::string tls_cert_, tls_key_, tls_client_ca_;

  static int HandleRequest(mg_connection* conn, void* self);
  static int InitSsl(void* ssl_ctx, void* self);
};

// Validates the options (INVALID_ARGUMENT for inconsistent TLS flags,
// FAILED_PRECONDITION for a remote address without protection), then serves
// the HTTP port, forwarding RPCs to `server` through its in-process channel
// (UNAVAILABLE when the address cannot be served).
absl::StatusOr<std::unique_ptr<HttpGateway>> StartHttpGateway(grpc::Server& server,
                                                              const HttpGatewayOptions& options);

}  // namespace memnode::http

#endif  // MEMNODE_SERVER_HTTP_HTTP_GATEWAY_H_
