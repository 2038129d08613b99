// memnoded: wiring only - flags, the default machine, the gRPC server with
// health checking and reflection, the event stream, the Prometheus metrics
// endpoint, graceful shutdown on SIGTERM/SIGINT.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/exposer.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/metrics/server_metrics.h"
#include "server/service/events_service.h"
#include "server/service/registry.h"
#include "server/service/services.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC listen address (host:port; port 0 = any free port)");
ABSL_FLAG(std::string, config, "", "optional file of key=value lines for the flags below (flags given on the command line win)");
ABSL_FLAG(std::string, state_dir, "",
          "directory for machine snapshots: restored at start, every machine saved there at "
          "graceful shutdown (empty: no persistence)");
ABSL_FLAG(bool, default_machine, true, "create machines/default at start");
ABSL_FLAG(uint32_t, nodes, 2, "default machine: NUMA nodes");
ABSL_FLAG(uint32_t, blocks_per_node, 8, "default machine: memory blocks per node");
ABSL_FLAG(uint64_t, pages_per_block, 32768, "default machine: 4 KiB pages per block");
ABSL_FLAG(std::string, clock, "realtime", "default machine clock: realtime or manual");
ABSL_FLAG(uint32_t, max_machines, 16, "limit: machines per server");
ABSL_FLAG(uint64_t, max_machine_bytes, uint64_t{1} << 40, "limit: emulated bytes per machine");
ABSL_FLAG(uint64_t, max_total_bytes, uint64_t{4} << 40, "limit: emulated bytes per server");
ABSL_FLAG(uint64_t, max_request_bytes, 4 << 20, "limit: bytes per WriteMemory/ReadMemory call");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1:9464",
          "Prometheus metrics endpoint (host:port, served at /metrics; port 0 = any free port; "
          "empty disables metrics; if the default address is taken, metrics are disabled "
          "with a warning)");
ABSL_FLAG(uint32_t, event_buffer, 4096, "events buffered per WatchEvents stream before a slow client loses some");
ABSL_FLAG(uint32_t, max_streams, 16, "limit: concurrent WatchEvents streams");

namespace {

std::atomic<int> g_signal{0};
void OnSignal(int sig) { g_signal.store(sig); }

// Applies key=value lines of a config file to flags not set on the command line.
bool ApplyConfig(const std::string& path, const std::vector<char*>& argv) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "memnoded: cannot read config file " << path << "\n";
    return false;
  }
  auto on_cmdline = [&argv](const std::string& key) {
    for (char* a : argv)
      if (absl::StartsWith(a, "--" + key + "=") || std::string(a) == "--" + key) return true;
    return false;
  };
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    std::vector<std::string> kv = absl::StrSplit(l, absl::MaxSplits('=', 1));
    if (kv.size() != 2) {
      std::cerr << path << ":" << lineno << ": expected key=value\n";
      return false;
    }
    std::string key(absl::StripAsciiWhitespace(kv[0]));
    std::string val(absl::StripAsciiWhitespace(kv[1]));
    if (on_cmdline(key)) continue;
    bool ok = true;
    uint64_t u;
    if (key == "listen") absl::SetFlag(&FLAGS_listen, val);
    else if (key == "metrics_address") absl::SetFlag(&FLAGS_metrics_address, val);
    else if (key == "clock") absl::SetFlag(&FLAGS_clock, val);
    else if (key == "state_dir") absl::SetFlag(&FLAGS_state_dir, val);
    else if (key == "default_machine") absl::SetFlag(&FLAGS_default_machine, val == "true" || val == "1");
    else if (!absl::SimpleAtoi(val, &u)) ok = false;
    else if (key == "nodes") absl::SetFlag(&FLAGS_nodes, static_cast<uint32_t>(u));
    else if (key == "blocks_per_node") absl::SetFlag(&FLAGS_blocks_per_node, static_cast<uint32_t>(u));
    else if (key == "pages_per_block") absl::SetFlag(&FLAGS_pages_per_block, u);
    else if (key == "max_machines") absl::SetFlag(&FLAGS_max_machines, static_cast<uint32_t>(u));
    else if (key == "max_machine_bytes") absl::SetFlag(&FLAGS_max_machine_bytes, u);
    else if (key == "max_total_bytes") absl::SetFlag(&FLAGS_max_total_bytes, u);
    else if (key == "max_request_bytes") absl::SetFlag(&FLAGS_max_request_bytes, u);
    else if (key == "event_buffer") absl::SetFlag(&FLAGS_event_buffer, static_cast<uint32_t>(u));
    else if (key == "max_streams") absl::SetFlag(&FLAGS_max_streams, static_cast<uint32_t>(u));
    else ok = false;
    if (!ok) {
      std::cerr << path << ":" << lineno << ": unknown key or bad value: " << line << "\n";
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Installed first: a SIGTERM at any point after start-up means a graceful
  // shutdown (saving machines with --state_dir), never an abrupt kill.
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  absl::SetProgramUsageMessage("memnoded: emulated NUMA machines with KSM and memory hotplug, over gRPC");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() > 1) {
    std::cerr << "memnoded: unexpected argument " << args[1] << " (see --help)\n";
    return 2;
  }
  if (!absl::GetFlag(FLAGS_config).empty() &&
      !ApplyConfig(absl::GetFlag(FLAGS_config), std::vector<char*>(argv, argv + argc)))
    return 2;

  memnode::service::Limits limits;
  limits.max_machines = absl::GetFlag(FLAGS_max_machines);
  limits.max_machine_bytes = absl::GetFlag(FLAGS_max_machine_bytes);
  limits.max_total_bytes = absl::GetFlag(FLAGS_max_total_bytes);
  limits.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  memnode::service::Registry registry(limits, absl::GetFlag(FLAGS_state_dir));
  bool default_restored = false;
  if (!registry.state_dir().empty()) {
    std::vector<std::string> errors;
    for (const std::string& id : registry.RestoreAll(&errors)) {
      std::cout << "memnoded: restored machines/" << id << " from " << registry.state_dir() << std::endl;
      if (id == "default") default_restored = true;
    }
    for (const std::string& e : errors) std::cerr << "memnoded: snapshot refused: " << e << std::endl;
  }

  if (absl::GetFlag(FLAGS_default_machine) && !default_restored) {
    memnode::MachineConfig c;
    c.nodes = absl::GetFlag(FLAGS_nodes);
    c.blocks_per_node = absl::GetFlag(FLAGS_blocks_per_node);
    c.pages_per_block = absl::GetFlag(FLAGS_pages_per_block);
    std::string clock = absl::GetFlag(FLAGS_clock);
    if (clock != "realtime" && clock != "manual") {
      std::cerr << "memnoded: --clock must be realtime or manual\n";
      return 2;
    }
    c.clock = clock == "manual" ? memnode::ClockMode::kManual : memnode::ClockMode::kRealtime;
    auto h = registry.Create("default", c);
    if (!h.ok()) {
      std::cerr << "memnoded: default machine: " << h.status().message() << "\n";
      return 2;
    }
  }

  memnode::service::MachineServiceImpl machine_service(registry);
  memnode::service::ProcessServiceImpl process_service(registry);
  memnode::service::KsmServiceImpl ksm_service(registry);
  memnode::service::NumaServiceImpl numa_service(registry);
  memnode::service::MemoryBlockServiceImpl block_service(registry);
  memnode::service::EventServiceImpl::Options event_options;
  event_options.buffer_events = std::max<uint32_t>(absl::GetFlag(FLAGS_event_buffer), 1);
  event_options.max_streams = static_cast<int>(absl::GetFlag(FLAGS_max_streams));
  memnode::service::EventServiceImpl event_service(registry, event_options);

  // Metrics: every family registered now; machines attached through the
  // registry's listener; RPCs counted by a server interceptor.
  std::unique_ptr<memnode::metrics::ServerMetrics> metrics;
  std::unique_ptr<prometheus::Exposer> exposer;
  const std::string metrics_address = absl::GetFlag(FLAGS_metrics_address);
  if (!metrics_address.empty()) {
    metrics = std::make_unique<memnode::metrics::ServerMetrics>(
        std::vector<std::string>{"memnode.v1.MachineService", "memnode.v1.ProcessService",
                                 "memnode.v1.KsmService", "memnode.v1.EventService",
                                 "memnode.v1.NumaService", "memnode.v1.MemoryBlockService",
                                 "grpc.health.v1.Health",
                                 "grpc.reflection.v1alpha.ServerReflection"},
        &registry);
    try {
      exposer = std::make_unique<prometheus::Exposer>(metrics_address);
    } catch (const std::exception& e) {
      // An address given explicitly must work; the default one may be taken
      // by another memnoded on this host (tests, `make run`): warn and go on.
      const bool is_default = metrics_address == "127.0.0.1:9464";
      std::cerr << "memnoded: cannot serve metrics on " << metrics_address << ": " << e.what()
                << (is_default ? " (metrics disabled)" : "") << "\n";
      if (!is_default) return 1;
    }
    if (exposer)
      for (const auto& c : metrics->Collectables()) exposer->RegisterCollectable(c);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(limits.max_request_bytes + (1 << 20)));
  builder.SetMaxSendMessageSize(static_cast<int>(limits.max_request_bytes + (1 << 20)));
  builder.RegisterService(&machine_service);
  builder.RegisterService(&process_service);
  builder.RegisterService(&ksm_service);
  builder.RegisterService(&numa_service);
  builder.RegisterService(&block_service);
  builder.RegisterService(&event_service);
  if (metrics) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(metrics->rpc().InterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "memnoded: cannot listen on " << absl::GetFlag(FLAGS_listen) << "\n";
    return 1;
  }
  std::string listen = absl::GetFlag(FLAGS_listen);
  std::string host = listen.substr(0, listen.rfind(':'));
  if (exposer) {
    std::string mhost = metrics_address.substr(0, metrics_address.rfind(':'));
    std::vector<int> ports = exposer->GetListeningPorts();
    std::cout << "METRICS " << mhost << ":" << (ports.empty() ? 0 : ports[0]) << std::endl;
  }
  std::cout << "LISTENING " << host << ":" << port << std::endl;

  std::thread waiter([&server, &event_service] {
    while (g_signal.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    event_service.Shutdown();  // event streams end now instead of at the deadline
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  });
  server->Wait();
  waiter.join();
  for (const std::string& e : registry.SaveAll())
    std::cerr << "memnoded: could not save " << e << std::endl;
  if (!registry.state_dir().empty())
    std::cout << "memnoded: machines saved to " << registry.state_dir() << std::endl;
  registry.Shutdown();
  std::cout << "memnoded: shut down (signal " << g_signal.load() << ")" << std::endl;
  return 0;
}
