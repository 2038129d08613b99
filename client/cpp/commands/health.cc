// memnodectl health: the standard gRPC health service (grpc.health.v1), the
// check a container's HEALTHCHECK runs (deploy/docker/Dockerfile).
//
// Thread safety: single-threaded, like every command.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "client/cpp/commands/commands.h"
#include "client/cpp/context.h"

namespace memnode {
namespace cli {
namespace {

struct HealthArgs {
  std::string service;
};

// grpc.health.v1.Health/Check through a generic stub (the health proto is not
// among memnode's; its two messages are one field each, encoded here):
// HealthCheckRequest{service = 1: string}, HealthCheckResponse{status = 1:
// enum, SERVING = 1}. The call carries no token (health needs none).
int Health(Context& ctx, const HealthArgs& a) {
  if (a.service.size() > 127) return ctx.UsageError("SERVICE is too long");
  std::string request;
  if (!a.service.empty()) {
    request.push_back('\x0a');
    request.push_back(static_cast<char>(a.service.size()));
    request += a.service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ClientContext context;
  if (ctx.flags().timeout_seconds > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::duration<double>(ctx.flags().timeout_seconds)));
  }
  grpc::GenericStub stub(ctx.channel());
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request_buffer, &cq);
  call->StartCall();
  grpc::ByteBuffer response_buffer;
  grpc::Status status;
  call->Finish(&response_buffer, &status, nullptr);
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return Context::ReportRpcError(status);
  std::vector<grpc::Slice> slices;
  std::string response;
  if (response_buffer.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      response.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  // Field 1, varint; absent means 0 (UNKNOWN).
  int value = 0;
  if (response.size() >= 2 && response[0] == '\x08')
    value = static_cast<unsigned char>(response[1]);
  static const char* const kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  const char* name = value >= 0 && value < 4 ? kNames[value] : "UNKNOWN";
  if (ctx.json()) {
    std::cout << "{\"status\":\"" << name << "\"}\n";
  } else {
    std::cout << name << "\n";
  }
  return value == 1 ? kExitOk : kExitErrno;
}

}  // namespace

void AddHealthCommand(CommandSet& set) {
  auto& args = set.Store<HealthArgs>();
  set.Add("health",
          "Ask the server's gRPC health service (grpc.health.v1; no token needed). Prints "
          "SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN; exits 0 only for SERVING.")
      .OptionalArg("SERVICE", &args.service)
      .Run([&args](Context& ctx) { return Health(ctx, args); });
}

}  // namespace cli
}  // namespace memnode
