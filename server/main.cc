// memnoded: wiring only - flags, the default machine, the gRPC server with
// health checking and reflection, the event stream, the Prometheus metrics
// endpoint, the optional HTTP port (server/http), graceful shutdown on
// SIGTERM/SIGINT.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <prometheus/exposer.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/host/event_hub.h"
#include "server/host/registry.h"
#include "server/http/http_gateway.h"
#include "server/metrics/server_metrics.h"
#include "server/service/auth.h"
#include "server/service/events_service.h"
#include "server/service/services.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC listen address (host:port; port 0 = any free port)");
ABSL_FLAG(
    std::string, config, "",
    "optional file of key=value lines, keys being the flags below (types, booleans and ranges "
    "as on the command line; an unknown key or bad value stops memnoded); flags given on the "
    "command line win");
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
ABSL_FLAG(uint32_t, event_buffer, 4096,
          "events buffered per WatchEvents stream before a slow client loses some");
ABSL_FLAG(uint32_t, max_streams, 16, "limit: concurrent WatchEvents streams");
// Security and the remaining limits (docs/SECURITY.md).
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the gRPC port (with --tls_key: TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(
    std::string, tls_client_ca, "",
    "PEM CA bundle: clients must present a certificate it signed (mutual TLS; needs --tls_cert)");
ABSL_FLAG(std::string, token_file, "",
          "bearer tokens, one per line as 'token [admin|read]' ('#' comments): every RPC but "
          "health and reflection then needs 'authorization: Bearer <token>'");
ABSL_FLAG(bool, allow_insecure_remote, false,
          "allow a non-loopback --listen without TLS and without tokens");
ABSL_FLAG(bool, enable_reflection, true, "serve gRPC server reflection (never needs a token)");
ABSL_FLAG(std::string, metrics_basic_auth_file, "",
          "file with a line 'user:password': the metrics endpoint then requires HTTP basic auth");
ABSL_FLAG(uint64_t, max_request_pages, 65536,
          "limit: pages per TranslateAddresses / ListPageFrames / MovePages call");
ABSL_FLAG(uint64_t, max_ksm_visits, uint64_t{1} << 24, "limit: visits per StepKsm call");
ABSL_FLAG(uint32_t, max_processes, 4096, "limit: running processes per machine");
ABSL_FLAG(uint32_t, max_threads, 256, "limit: gRPC server threads (concurrent calls)");
ABSL_FLAG(std::string, http_address, "",
          "serve JSON over HTTP (the Connect protocol) and the web view on this host:port "
          "(IPv4 or localhost; port 0 = any free port; empty = off). Same TLS, tokens and limits "
          "as the gRPC port (docs/API.md section 6)");

namespace {

std::atomic<int> g_signal{0};
void OnSignal(int sig) { g_signal.store(sig); }

// The config file (--config, docs/DEPLOY.md). Each `key=value` line sets the
// flag named `key` through Abseil's own parser (CommandLineFlag::ParseFrom),
// so types, overflow and booleans (true/false, yes/no, 1/0, t/f, y/n) follow
// the flag definitions exactly as on the command line. Keys are memnoded's
// flags (those defined under server/); `config` itself and Abseil's
// built-in flags (--flagfile, --help ...) are not keys.
//
// Order: the file is applied before absl::ParseCommandLine, so that every
// flag given on the command line then replaces the file's value. That needs
// the path before the command line is parsed: ConfigPathFromArgs() finds
// --config in argv with Abseil's syntax (--config=PATH or --config PATH, one
// or two dashes, the last one wins, nothing after "--").
std::string ConfigPathFromArgs(int argc, char** argv) {
  std::string path;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "--") break;
    if (!absl::ConsumePrefix(&a, "--") && !absl::ConsumePrefix(&a, "-")) continue;
    absl::string_view name = a.substr(0, a.find('='));
    const bool has_value = name.size() < a.size();
    if (name == "config") {
      if (has_value) {
        path = std::string(a.substr(name.size() + 1));
      } else if (i + 1 < argc) {
        path = argv[++i];
      }
      continue;
    }
    // `--flag VALUE` (a non-boolean flag without '='): VALUE is no flag.
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (!has_value && flag != nullptr && !flag->IsOfType<bool>()) ++i;
  }
  return path;
}

bool IsConfigKey(const absl::CommandLineFlag& flag) {
  return flag.Name() != "config" && !flag.IsRetired() &&
         absl::StrContains(flag.Filename(), "server/");
}

// Applies the file's lines; false and a message naming the file and line on
// the first unknown key or bad value.
bool ApplyConfig(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = absl::StrCat("cannot read config file ", path);
    return false;
  }
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    const std::string where = absl::StrCat(path, ":", lineno, ": ");
    const size_t eq = l.find('=');
    if (eq == absl::string_view::npos) {
      *error = absl::StrCat(where, "expected key=value, got \"", l, "\"");
      return false;
    }
    const absl::string_view key = absl::StripAsciiWhitespace(l.substr(0, eq));
    const absl::string_view value = absl::StripAsciiWhitespace(l.substr(eq + 1));
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(key);
    if (flag == nullptr || !IsConfigKey(*flag)) {
      *error = absl::StrCat(where, "unknown key \"", key, "\"",
                            key == "config" ? " (a config file cannot name another)"
                                            : " (keys are memnoded's flag names: memnoded --help)");
      return false;
    }
    std::string why;
    if (!flag->ParseFrom(value, &why)) {
      *error = absl::StrCat(where, "bad value for ", key, ": ", why);
      return false;
    }
  }
  return true;
}

// Ranges that the flags' types cannot express, checked at start whether a
// value came from the command line, the config file or the default (exit 2
// with the message). The default machine's topology is checked by the
// core's own rule (MachineConfig::Validate) even when no default machine is
// created, so that a wrong value never waits for a later start to surface.
bool ValidateFlags(std::string* error) {
  if (absl::GetFlag(FLAGS_listen).empty()) {
    *error = "--listen must not be empty";
    return false;
  }
  const std::string clock = absl::GetFlag(FLAGS_clock);
  if (clock != "realtime" && clock != "manual") {
    *error = absl::StrCat("--clock must be realtime or manual, not \"", clock, "\"");
    return false;
  }
  memnode::MachineConfig c;
  c.nodes = absl::GetFlag(FLAGS_nodes);
  c.blocks_per_node = absl::GetFlag(FLAGS_blocks_per_node);
  c.pages_per_block = absl::GetFlag(FLAGS_pages_per_block);
  if (absl::Status s = c.Validate(); !s.ok()) {
    *error = absl::StrCat("default machine (--nodes, --blocks_per_node, --pages_per_block): ",
                          s.message());
    return false;
  }
  struct Range {
    const char* flag;
    uint64_t value, min, max;
  };
  constexpr uint64_t kIntMax = std::numeric_limits<int>::max();
  const Range ranges[] = {
      {"max_request_bytes", absl::GetFlag(FLAGS_max_request_bytes), 1, uint64_t{1} << 30},
      {"event_buffer", absl::GetFlag(FLAGS_event_buffer), 1, kIntMax},
      {"max_streams", absl::GetFlag(FLAGS_max_streams), 0, kIntMax},
      {"max_threads", absl::GetFlag(FLAGS_max_threads), 4, kIntMax},
  };
  for (const Range& r : ranges) {
    if (r.value < r.min || r.value > r.max) {
      *error = absl::StrCat("--", r.flag, "=", r.value, " is out of range ", r.min, "..", r.max);
      return false;
    }
  }
  return true;
}

bool ReadWholeFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// Whether a --listen address only accepts local connections.
bool IsLoopback(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:") || absl::StartsWith(listen, "unix-abstract:")) return true;
  std::string host = listen.substr(0, listen.rfind(':'));
  if (absl::StartsWith(host, "ipv4:")) host = host.substr(5);
  if (absl::StartsWith(host, "ipv6:")) host = host.substr(5);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

// The credentials of the gRPC port from the TLS flags; nullptr and a message
// in *error when they are inconsistent or unreadable.
std::shared_ptr<grpc::ServerCredentials> ListenCredentials(std::string* error, bool* tls) {
  const std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key),
                    ca = absl::GetFlag(FLAGS_tls_client_ca);
  *tls = false;
  if (cert.empty() != key.empty()) {
    *error = "--tls_cert and --tls_key go together";
    return nullptr;
  }
  if (cert.empty()) {
    if (!ca.empty()) {
      *error = "--tls_client_ca needs --tls_cert and --tls_key";
      return nullptr;
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions opts(
      ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                 : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (!ReadWholeFile(cert, &pair.cert_chain) || pair.cert_chain.empty()) {
    *error = absl::StrCat("cannot read --tls_cert ", cert);
    return nullptr;
  }
  if (!ReadWholeFile(key, &pair.private_key) || pair.private_key.empty()) {
    *error = absl::StrCat("cannot read --tls_key ", key);
    return nullptr;
  }
  if (!ca.empty() && (!ReadWholeFile(ca, &opts.pem_root_certs) || opts.pem_root_certs.empty())) {
    *error = absl::StrCat("cannot read --tls_client_ca ", ca);
    return nullptr;
  }
  opts.pem_key_cert_pairs.push_back(std::move(pair));
  *tls = true;
  return grpc::SslServerCredentials(opts);
}

}  // namespace

int main(int argc, char** argv) {
  // Installed first: a SIGTERM at any point after start-up means a graceful
  // shutdown (saving machines with --state_dir), never an abrupt kill.
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  absl::SetProgramUsageMessage(
      "memnoded: emulated NUMA machines with KSM and memory hotplug, over gRPC");
  // The config file first, then the command line over it (see ApplyConfig).
  std::string config_error;
  const std::string config = ConfigPathFromArgs(argc, argv);
  const bool config_ok = config.empty() || ApplyConfig(config, &config_error);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() > 1) {
    std::cerr << "memnoded: unexpected argument " << args[1] << " (see --help)\n";
    return 2;
  }
  if (!config_ok) {
    std::cerr << "memnoded: " << config_error << "\n";
    return 2;
  }
  if (std::string error; !ValidateFlags(&error)) {
    std::cerr << "memnoded: " << error << "\n";
    return 2;
  }

  // Security configuration first: a server that would be exposed without
  // protection refuses to start (exit 2).
  std::string cred_error;
  bool tls = false;
  std::shared_ptr<grpc::ServerCredentials> creds = ListenCredentials(&cred_error, &tls);
  if (!creds) {
    std::cerr << "memnoded: " << cred_error << "\n";
    return 2;
  }
  std::unique_ptr<memnode::service::Authenticator> authenticator;
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    auto tokens = memnode::service::LoadTokenFile(absl::GetFlag(FLAGS_token_file));
    if (!tokens.ok()) {
      std::cerr << "memnoded: --token_file: " << tokens.status().message() << "\n";
      return 2;
    }
    authenticator = std::make_unique<memnode::service::Authenticator>(*tokens);
  }
  if (!IsLoopback(absl::GetFlag(FLAGS_listen)) && !tls && !authenticator &&
      !absl::GetFlag(FLAGS_allow_insecure_remote)) {
    std::cerr << "memnoded: refusing to listen on " << absl::GetFlag(FLAGS_listen)
              << " (not a loopback address) without TLS (--tls_cert/--tls_key) or tokens "
                 "(--token_file); pass --allow_insecure_remote to do it anyway\n";
    return 2;
  }
  std::string metrics_user, metrics_password;
  if (!absl::GetFlag(FLAGS_metrics_basic_auth_file).empty()) {
    std::string data, line;
    if (!ReadWholeFile(absl::GetFlag(FLAGS_metrics_basic_auth_file), &data)) {
      std::cerr << "memnoded: cannot read --metrics_basic_auth_file\n";
      return 2;
    }
    for (absl::string_view l : absl::StrSplit(data, '\n')) {
      l = absl::StripAsciiWhitespace(l);
      if (l.empty() || l[0] == '#') continue;
      line = std::string(l);
      break;
    }
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == line.size()) {
      std::cerr << "memnoded: --metrics_basic_auth_file needs a line 'user:password'\n";
      return 2;
    }
    metrics_user = line.substr(0, colon);
    metrics_password = line.substr(colon + 1);
  }

  memnode::host::Limits limits;
  limits.max_machines = absl::GetFlag(FLAGS_max_machines);
  limits.max_machine_bytes = absl::GetFlag(FLAGS_max_machine_bytes);
  limits.max_total_bytes = absl::GetFlag(FLAGS_max_total_bytes);
  limits.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  limits.max_request_pages = absl::GetFlag(FLAGS_max_request_pages);
  limits.max_ksm_visits = absl::GetFlag(FLAGS_max_ksm_visits);
  limits.max_processes = absl::GetFlag(FLAGS_max_processes);
  memnode::host::Registry registry(limits, absl::GetFlag(FLAGS_state_dir));
  bool default_restored = false;
  if (!registry.state_dir().empty()) {
    std::vector<std::string> errors;
    for (const std::string& id : registry.RestoreAll(&errors)) {
      std::cout << "memnoded: restored machines/" << id << " from " << registry.state_dir()
                << std::endl;
      if (id == "default") default_restored = true;
    }
    for (const std::string& e : errors)
      std::cerr << "memnoded: snapshot refused: " << e << std::endl;
  }

  if (absl::GetFlag(FLAGS_default_machine) && !default_restored) {
    memnode::MachineConfig c;
    c.nodes = absl::GetFlag(FLAGS_nodes);
    c.blocks_per_node = absl::GetFlag(FLAGS_blocks_per_node);
    c.pages_per_block = absl::GetFlag(FLAGS_pages_per_block);
    c.clock = absl::GetFlag(FLAGS_clock) == "manual" ? memnode::ClockMode::kManual
                                                     : memnode::ClockMode::kRealtime;
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
  event_options.buffer_events = absl::GetFlag(FLAGS_event_buffer);
  event_options.max_streams = static_cast<int>(absl::GetFlag(FLAGS_max_streams));
  memnode::host::EventHubs event_hubs(registry);
  memnode::service::EventServiceImpl event_service(registry, event_hubs, event_options);

  // Metrics: every family registered now; machines attached through the
  // registry's listener; RPCs counted by a server interceptor.
  std::unique_ptr<memnode::metrics::ServerMetrics> metrics;
  std::unique_ptr<prometheus::Exposer> exposer;
  const std::string metrics_address = absl::GetFlag(FLAGS_metrics_address);
  if (!metrics_address.empty()) {
    metrics = std::make_unique<memnode::metrics::ServerMetrics>(
        std::vector<std::string>{
            "memnode.v1.MachineService", "memnode.v1.ProcessService", "memnode.v1.KsmService",
            "memnode.v1.EventService", "memnode.v1.NumaService", "memnode.v1.MemoryBlockService",
            "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"},
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
    if (exposer && !metrics_user.empty())
      exposer->RegisterAuth(
          [metrics_user, metrics_password](const std::string& user, const std::string& password) {
            // Both compared, in constant time, whatever the first says.
            const bool u = memnode::service::SecretEquals(user, metrics_user);
            const bool p = memnode::service::SecretEquals(password, metrics_password);
            return u & p;
          },
          "memnode metrics");
    if (exposer)
      for (const auto& c : metrics->Collectables()) exposer->RegisterCollectable(c);
  }

  grpc::EnableDefaultHealthCheckService(true);
  if (absl::GetFlag(FLAGS_enable_reflection))
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), creds, &port);
  grpc::ResourceQuota quota("memnoded");
  quota.SetMaxThreads(static_cast<int>(absl::GetFlag(FLAGS_max_threads)));
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(static_cast<int>(limits.max_request_bytes + (1 << 20)));
  builder.SetMaxSendMessageSize(static_cast<int>(limits.max_request_bytes + (1 << 20)));
  builder.RegisterService(&machine_service);
  builder.RegisterService(&process_service);
  builder.RegisterService(&ksm_service);
  builder.RegisterService(&numa_service);
  builder.RegisterService(&block_service);
  builder.RegisterService(&event_service);
  {
    // The auth interceptor records each call's verdict for Admit() (see
    // server/service/auth.h for why an interceptor and not an
    // AuthMetadataProcessor); the metrics interceptor counts every call.
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    if (authenticator) creators.push_back(authenticator->InterceptorFactory());
    if (metrics) creators.push_back(metrics->rpc().InterceptorFactory());
    if (!creators.empty()) builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "memnoded: cannot listen on " << absl::GetFlag(FLAGS_listen) << "\n";
    return 1;
  }
  // The HTTP port (off unless --http_address): Connect gateway + web view,
  // calling the services above through the server's in-process channel.
  std::unique_ptr<memnode::http::HttpGateway> http;
  if (!absl::GetFlag(FLAGS_http_address).empty()) {
    memnode::http::HttpGatewayOptions o;
    o.address = absl::GetFlag(FLAGS_http_address);
    o.tls_cert = absl::GetFlag(FLAGS_tls_cert);
    o.tls_key = absl::GetFlag(FLAGS_tls_key);
    o.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
    o.tokens = authenticator != nullptr;
    o.allow_insecure_remote = absl::GetFlag(FLAGS_allow_insecure_remote);
    o.max_request_bytes = limits.max_request_bytes;
    o.max_streams = event_options.max_streams;
    auto started = memnode::http::StartHttpGateway(*server, o);
    if (!started.ok()) {
      std::cerr << "memnoded: " << started.status().message() << "\n";
      return started.status().code() == absl::StatusCode::kUnavailable ? 1 : 2;
    }
    http = std::move(*started);
    std::cout << "HTTP " << (http->tls() ? "https://" : "http://") << http->address() << "/"
              << std::endl;
  }
  std::string listen = absl::GetFlag(FLAGS_listen);
  std::string host = listen.substr(0, listen.rfind(':'));
  if (exposer) {
    std::string mhost = metrics_address.substr(0, metrics_address.rfind(':'));
    std::vector<int> ports = exposer->GetListeningPorts();
    std::cout << "METRICS " << mhost << ":" << (ports.empty() ? 0 : ports[0]) << std::endl;
  }
  std::cout << "LISTENING " << host << ":" << port << std::endl;

  std::thread waiter([&server, &event_hubs, &http] {
    while (g_signal.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    event_hubs.Shutdown();   // event streams end now instead of at the deadline
    if (http) http->Stop();  // after the streams: waits for HTTP requests in progress
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
