// The Connect protocol (https://connectrpc.com/docs/protocol) in front of
// memnode's gRPC services: JSON (or binary protobuf) over plain HTTP for
// curl, browsers and Connect clients.
// Linux analogue: none (a second entry point to the same syscalls, like the
// compat syscall table dispatching to the same kernel functions).
//
// Design. The gateway has no handler of its own: every request is forwarded
// to the real gRPC services through a channel (in memnoded the server's
// in-process channel), with a generic stub and byte buffers. The method is
// looked up by its URL path (`/memnode.v1.<Service>/<Method>`) in the
// generated descriptor pool, which gives the request and response types:
//   JSON body -> protobuf message (canonical JSON mapping) -> serialized ->
//   gRPC call (with `authorization` forwarded as metadata, so the token
//   interceptor and Admit() apply) -> reply parsed -> JSON.
// gRPC errors become Connect error objects: the code's Connect name, the
// HTTP status of the protocol's code table, and the `google.rpc.Status`
// details of the `grpc-status-details-bin` trailer (memnode's ErrorInfo with
// its reason) as `details` entries {type, value (unpadded base64), debug}.
// Server-streaming methods (WatchEvents) answer with `application/connect+json`
// (or +proto): enveloped messages, then an end-stream message (flag 0x02)
// carrying the error, if any, and the trailers.
//
// This file knows no HTTP server: it takes an HttpRequest and answers
// through a Responder (server/http/http_gateway.cc adapts civetweb).
//
// Thread safety: thread-safe; Serve() may run on many threads at once.
#ifndef MEMNODE_SERVER_HTTP_CONNECT_GATEWAY_H_
#define MEMNODE_SERVER_HTTP_CONNECT_GATEWAY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace memnode::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

// One HTTP request as the gateway needs it (header values "" when absent).
struct HttpRequest {
  std::string method;                    // "POST"
  std::string path;                      // "/memnode.v1.KsmService/GetKsm"
  std::string content_type;              // Content-Type
  std::string content_encoding;          // Content-Encoding (unary)
  std::string connect_content_encoding;  // Connect-Content-Encoding (streaming)
  std::string authorization;             // Authorization, forwarded as gRPC metadata
  std::string timeout_ms;                // Connect-Timeout-Ms
  std::string protocol_version;          // Connect-Protocol-Version
  std::string body;
};

// A complete (non-streaming) HTTP response.
struct HttpResponse {
  int status = 200;
  Headers headers;  // Content-Type included
  std::string body;
};

// Where the gateway sends its answer. Implemented by the HTTP server.
class Responder {
 public:
  virtual ~Responder() = default;
  // A complete response (unary calls, and every error found before a stream
  // starts).
  virtual void Send(const HttpResponse& response) = 0;
  // Starts a streaming response (status 200, `headers`); then Write() each
  // body part and End(). Write() returns false once the client is gone.
  virtual void StartStream(const Headers& headers) = 0;
  virtual bool Write(absl::string_view bytes) = 0;
  virtual void End() = 0;
  // Polled while a stream waits for the next message: true once the client
  // has closed its connection (the call is then cancelled).
  virtual bool ClientGone() = 0;
};

// Connect's name of a gRPC code ("invalid_argument", "canceled", ...).
absl::string_view ConnectCodeName(grpc::StatusCode code);
// The HTTP status of a code (Connect protocol, "Error Codes" table).
int HttpStatusOfCode(grpc::StatusCode code);
// The Connect Error object of a non-OK status: {"code", "message",
// "details": [{"type", "value", "debug"}]} from status.error_details().
// The HTTP layer's own errors (UNKNOWN_METHOD, INVALID_BODY, INVALID_HEADER,
// UNSUPPORTED_ENCODING, HOST_NOT_ALLOWED) are built by service::Error() with
// reasons of server/core/reasons.h, like every other error.
std::string ErrorJson(const grpc::Status& status);
// One enveloped message: flags byte, 4-byte big-endian length, payload.
std::string Envelope(uint8_t flags, absl::string_view payload);
inline constexpr uint8_t kFlagCompressed = 0x01;
inline constexpr uint8_t kFlagEndStream = 0x02;

class ConnectGateway {
 public:
  struct Options {
    // Largest request body accepted (bytes). memnoded: room for a JSON
    // request whose binary form reaches --max_request_bytes + 1 MiB (base64
    // grows bytes by 4/3).
    uint64_t max_body_bytes = 16 << 20;
    // How often an idle stream checks whether its client went away.
    absl::Duration poll_interval = absl::Milliseconds(200);
  };

  ConnectGateway(std::shared_ptr<grpc::ChannelInterface> channel, Options options);

  // Whether `path` is an RPC path (`/memnode.v1.` prefix), known or not.
  static bool IsRpcPath(absl::string_view path);
  // The method of an RPC path, or nullptr.
  static const google::protobuf::MethodDescriptor* FindMethod(absl::string_view path);

  uint64_t max_body_bytes() const { return options_.max_body_bytes; }

  // Answers one request for an RPC path through `out`. Blocks until the call
  // (or the stream) is over.
  void Serve(const HttpRequest& request, Responder* out);

  // The response for an error found by the HTTP layer (body too large, host
  // not allowed): Connect error JSON with the status's HTTP status.
  static HttpResponse ErrorResponse(const grpc::Status& status);

 private:
  void ServeUnary(const HttpRequest& req, const google::protobuf::MethodDescriptor* method,
                  bool json, Responder* out);
  void ServeServerStream(const HttpRequest& req, const google::protobuf::MethodDescriptor* method,
                         bool json, Responder* out);

  std::shared_ptr<grpc::ChannelInterface> channel_;
  grpc::GenericStub stub_;
  const Options options_;
};

}  // namespace memnode::http

#endif  // MEMNODE_SERVER_HTTP_CONNECT_GATEWAY_H_
