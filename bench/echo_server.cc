// memnode_echo_server: a bare gRPC server with one unary method, the baseline
// of memnode_loadgen. Built like memnoded (synchronous service, the same
// thread quota, the same message size limits) so that the ratio between the
// two measures memnode's own cost per call.
//
//   memnode_echo_server [--listen=127.0.0.1:0] [--max_threads=256]
//
// Prints "LISTENING host:port" once serving; SIGTERM/SIGINT shut it down.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>

#include "echo.grpc.pb.h"

namespace {

std::atomic<int> g_signal{0};
void OnSignal(int sig) { g_signal.store(sig); }

class EchoServiceImpl final : public memnode_bench::echo::v1::EchoService::Service {
  grpc::Status Echo(grpc::ServerContext*, const memnode_bench::echo::v1::EchoRequest* req,
                    memnode_bench::echo::v1::EchoResponse* resp) override {
    resp->set_payload(req->payload());
    return grpc::Status::OK;
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::string listen = "127.0.0.1:0";
  int max_threads = 256;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--listen=", 0) == 0) {
      listen = a.substr(9);
    } else if (a.rfind("--max_threads=", 0) == 0) {
      max_threads = std::atoi(a.c_str() + 14);
    } else {
      std::cerr << "usage: memnode_echo_server [--listen=host:port] [--max_threads=N]\n";
      return 2;
    }
  }
  EchoServiceImpl service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  grpc::ResourceQuota quota("memnode_echo_server");
  quota.SetMaxThreads(max_threads < 4 ? 4 : max_threads);
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(5 << 20);
  builder.SetMaxSendMessageSize(5 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "memnode_echo_server: cannot listen on " << listen << "\n";
    return 1;
  }
  std::cout << "LISTENING " << listen.substr(0, listen.rfind(':')) << ":" << port << std::endl;
  std::thread waiter([&server] {
    while (g_signal.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  });
  server->Wait();
  waiter.join();
  return 0;
}
