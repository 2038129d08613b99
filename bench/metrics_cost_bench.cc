// memnode_metrics_cost_bench: what Prometheus metrics and the event stream
// cost, as a ratio "on / off" of two throughputs (target: on >= 0.95 x off).
//
// Part 1, KSM scan (in process, core only): one MANUAL machine with --pages
// pages (default 2^18) in a mergeable mix: 1/2 in 512 contents of 256 copies
// (64-page runs), 1/4 in identical pairs, 1/4 distinct (random). Each round
// is one KsmStepPasses(1) followed by churn on a rotating 1/16 slice: the
// slice's pairs get new contents (COW breaks, their old KSM pages freed, the
// stable nodes pruned, the new pairs merged two passes later) and the first
// page of each 64-page run of the slice flips between a private and its run's
// content (COW breaks and re-merges into existing nodes). The churn repeats
// every 32 rounds; rounds go in blocks of 32, alternately with no observer
// ("off") and with what memnoded attaches ("on"): the MachineMetrics observer
// of a metrics::ServerMetrics (Attach, as memnoded's registry listener does)
// with a scrape (ServerMetrics::Scrape) every --scrape_ms from another
// thread, plus a host::EventHub with one subscribed EventQueue (a
// WatchEvents stream's queue, --event_buffer events) drained by another
// thread (--attach=metrics or events: only one of the two). Blocks go off,on,on,off,... so a drift
// hits both. Figure: visits per CPU-second of the scanning thread (CLOCK_THREAD_CPUTIME_ID around
// KsmStepPasses only); the churn (Fill calls, also emitting events) is shown
// apart, and the process CPU (the drainer and scraper included) too.
//
// Part 2, RPC (memnoded child processes): memnode_loadgen (bench/loadgen.cc)
// against a fresh memnoded per run: "on" = --metrics_address=127.0.0.1:0 with
// /metrics fetched every --scrape_ms and a WatchEvents stream open and drained
// on each machine the load generator creates (found by polling ListMachines);
// "off" = --metrics_address= and no stream. --rpc_rounds rounds of off,on /
// on,off (alternating) of --rpc_seconds mixed calls and --rpc_small_seconds
// GetKsm-only calls each; calls/s summed over the rounds of each side.
//
// Figures only: nothing here asserts a timing. Exit status 0, or 1 when a
// child failed (memnoded did not start, memnode_loadgen exited non-zero).
//
// Flags: --pages, --blocks (part 1, even), --attach, --scrape_ms, --event_buffer,
// --rpc_rounds (0 skips part 2), --rpc_seconds, --rpc_small_seconds,
// --rpc_clients, --memnoded, --loadgen, --part (all, ksm or rpc).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "memnode/v1/events.grpc.pb.h"
#include "memnode/v1/machine.grpc.pb.h"
#include "server/core/machine.h"
#include "server/core/names.h"
#include "server/host/event_hub.h"
#include "server/metrics/server_metrics.h"
#include "tests/testing/server_process.h"

ABSL_FLAG(std::string, part, "all", "all, ksm (part 1) or rpc (part 2)");
ABSL_FLAG(uint64_t, pages, uint64_t{1} << 18,
          "part 1: pages of the mergeable region (multiple of 1024)");
ABSL_FLAG(std::string, attach, "all", "part 1: what \"on\" attaches: all, metrics or events");
ABSL_FLAG(int, blocks, 4, "part 1: blocks of 32 rounds, half off and half on (even)");
ABSL_FLAG(int, scrape_ms, 1000, "interval of the metrics scrape while metrics are on (0: none)");
ABSL_FLAG(uint32_t, event_buffer, 4096,
          "part 1: events queued for the stream (memnoded --event_buffer)");
ABSL_FLAG(int, rpc_rounds, 2, "part 2: rounds of (off, on) runs; 0 skips part 2");
ABSL_FLAG(double, rpc_seconds, 5, "part 2: memnode_loadgen --seconds (mixed calls) per run");
ABSL_FLAG(double, rpc_small_seconds, 2,
          "part 2: memnode_loadgen --small_seconds (GetKsm only) per run");
ABSL_FLAG(int, rpc_clients, 4, "part 2: memnode_loadgen --clients");
ABSL_FLAG(std::string, memnoded, "",
          "memnoded binary (default: ../server/memnoded next to this binary)");
ABSL_FLAG(std::string, loadgen, "", "memnode_loadgen binary (default: next to this binary)");

namespace memnode {
namespace {

using ::memnode::testing::ExecutableDir;
using ::memnode::testing::RunCapture;
using ::memnode::testing::ServerProcess;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "memnode_metrics_cost_bench: %s\n", what.c_str());
  std::exit(2);
}

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(std::string(what) + ": " + v.status().ToString());
  return std::move(*v);
}

double ClockNow(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
double ThreadCpu() { return ClockNow(CLOCK_THREAD_CPUTIME_ID); }
double ProcessCpu() { return ClockNow(CLOCK_PROCESS_CPUTIME_ID); }
double WallNow() { return ClockNow(CLOCK_MONOTONIC); }

std::string Human(double v) {
  char b[32];
  if (v >= 1e6)
    std::snprintf(b, sizeof b, "%.2f M", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(b, sizeof b, "%.1f k", v / 1e3);
  else
    std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

// ---------------------------------------------------------------------------
// Part 1: KSM scan with and without observers.

constexpr uint64_t kRun = 64;        // pages per run of the grouped half
constexpr uint64_t kContents = 512;  // distinct contents of the grouped half
constexpr uint64_t kSlices = 16;     // churn touches 1/16 of the region per round
constexpr int kRoundsPerBlock = 32;  // 2 x kSlices: the churn's period

uint64_t GroupWord(uint64_t run) { return 0x0100000000000000ULL + (run % kContents); }
uint64_t PairWord(uint64_t pair, uint64_t epoch) {
  return 0x0200000000000000ULL + pair * 2 + (epoch & 1);
}
uint64_t PrivateWord(uint64_t page) { return 0x0300000000000000ULL + page; }

void MustFill(Machine& m, Pid pid, Vaddr a, uint64_t len, FillPattern fp) {
  AccessResult r = Must(m.Fill(pid, a, len, fp), "Fill");
  if (r.err != Errno::kOk) Die(std::string("Fill: ") + ErrnoName(r.err));
}

class Source final : public metrics::MachineSource {
 public:
  Source(std::string id, Machine* m) : id_(std::move(id)), m_(m) {}
  const std::string& machine_id() const override { return id_; }
  Machine& machine() override { return *m_; }

 private:
  std::string id_;
  Machine* m_;
};

struct Side {
  uint64_t visits = 0, passes = 0, rounds = 0;
  double scan_cpu = 0, churn_cpu = 0, process_cpu = 0, wall = 0;
  double rate() const { return scan_cpu > 0 ? static_cast<double>(visits) / scan_cpu : 0; }
};

struct KsmPartResult {
  Side off, on;
  uint64_t by_kind[32] = {};
  uint64_t delivered = 0, dropped = 0, scrapes = 0, scrape_bytes = 0;
};

KsmPartResult RunKsmPart() {
  const uint64_t pages = absl::GetFlag(FLAGS_pages);
  int blocks = absl::GetFlag(FLAGS_blocks);
  if (pages < 1024 || pages % 1024) Die("--pages must be a multiple of 1024");
  if (blocks < 2) blocks = 2;
  blocks += blocks % 2;
  const int scrape_ms = absl::GetFlag(FLAGS_scrape_ms);
  const std::string attach = absl::GetFlag(FLAGS_attach);
  if (attach != "all" && attach != "metrics" && attach != "events")
    Die("--attach must be all, metrics or events");
  const bool with_metrics = attach != "events", with_events = attach != "metrics";

  MachineConfig c;
  c.nodes = 2;
  c.pages_per_block = 32768;
  // The region, the zero page and room for the COW copies: one spare block per node.
  c.blocks_per_node =
      static_cast<uint32_t>((pages + 1 + 2 * c.pages_per_block - 1) / (2 * c.pages_per_block)) + 1;
  std::unique_ptr<Machine> m = Must(Machine::Create(c), "Machine::Create");
  const Pid pid = Must(m->CreateProcess(ProcessParams{}), "CreateProcess");
  const uint64_t len = pages * kPageSize;
  MmapResult mr = Must(m->Mmap(pid, 0, len, kProtRead | kProtWrite, false, false), "Mmap");
  if (mr.err != Errno::kOk) Die(std::string("Mmap: ") + ErrnoName(mr.err));
  const Vaddr a = mr.address;
  const uint64_t grouped = pages / 2, pair_first = pages / 2, pairs = pages / 8;
  const uint64_t runs = grouped / kRun;

  // Layout: everything distinct, then the grouped half and the pairs.
  MustFill(*m, pid, a, len, FillPattern{FillPattern::kRandom, 20240601});
  for (uint64_t r = 0; r < runs; ++r)
    MustFill(*m, pid, a + r * kRun * kPageSize, kRun * kPageSize,
             FillPattern{FillPattern::kPattern64, GroupWord(r)});
  for (uint64_t p = 0; p < pairs; ++p)
    MustFill(*m, pid, a + (pair_first + 2 * p) * kPageSize, 2 * kPageSize,
             FillPattern{FillPattern::kPattern64, PairWord(p, 0)});
  Errno e = Must(m->Madvise(pid, a, len, Advice::kMergeable), "Madvise");
  if (e != Errno::kOk) Die(std::string("Madvise: ") + ErrnoName(e));

  // Round `round`: churn of slice round % 16, epoch round / 16.
  auto churn = [&](uint64_t round) {
    const uint64_t s = round % kSlices, epoch = round / kSlices + 1;
    for (uint64_t p = s; p < pairs; p += kSlices)
      MustFill(*m, pid, a + (pair_first + 2 * p) * kPageSize, 2 * kPageSize,
               FillPattern{FillPattern::kPattern64, PairWord(p, epoch)});
    for (uint64_t r = s; r < runs; r += kSlices) {
      const uint64_t page = r * kRun;
      MustFill(*m, pid, a + page * kPageSize, kPageSize,
               FillPattern{FillPattern::kPattern64, epoch & 1 ? PrivateWord(page) : GroupWord(r)});
    }
  };

  // Warm-up: merge the initial layout, then one full churn period.
  uint64_t round = 0;
  for (int i = 0; i < 3; ++i) Must(m->KsmStepPasses(1, ~uint64_t{0}), "KsmStepPasses");
  for (int i = 0; i < kRoundsPerBlock; ++i) {
    Must(m->KsmStepPasses(1, ~uint64_t{0}), "KsmStepPasses");
    churn(round++);
  }

  // What memnoded attaches: metrics observer (+ scrapes), event hub + one stream.
  metrics::ServerMetrics server_metrics(std::vector<std::string>{});
  server_metrics.Attach(std::make_shared<Source>("bench", m.get()));
  metrics::MachineMetrics* observer = server_metrics.ForMachine("bench");
  if (!observer) Die("ServerMetrics::Attach did not attach");
  m->RemoveObserver(observer);  // attached only during "on" blocks
  host::EventHub hub;
  host::EventQueue queue(std::max<uint32_t>(absl::GetFlag(FLAGS_event_buffer), 1), 0);
  hub.Subscribe(&queue);

  KsmPartResult res;
  std::atomic<bool> stop{false}, scraping{false};
  std::thread drainer([&] {
    std::vector<host::QueuedEvent> batch;
    for (;;) {
      uint64_t dropped = 0;
      const host::EventQueue::End end = queue.Drain(absl::Milliseconds(50), &batch, &dropped);
      for (const host::QueuedEvent& q : batch) {
        const size_t k = static_cast<size_t>(q.event.kind);
        if (k < 32) res.by_kind[k]++;
      }
      res.delivered += batch.size();
      res.dropped += dropped;
      if (end != host::EventQueue::End::kOpen && batch.empty() && dropped == 0) break;
    }
  });
  std::thread scraper([&] {
    if (scrape_ms <= 0) return;
    double next = WallNow();
    while (!stop.load()) {
      if (scraping.load() && WallNow() >= next) {
        res.scrape_bytes += server_metrics.Scrape().size();
        res.scrapes++;
        next = WallNow() + scrape_ms / 1000.0;
      }
      usleep(5000);
    }
  });

  for (int b = 0; b < blocks; ++b) {
    // off, on, on, off, off, on, ...
    const bool on = ((b + 1) / 2) % 2 == 1;
    Side& side = on ? res.on : res.off;
    if (on) {
      if (with_metrics) m->AddObserver(observer);
      if (with_events) m->AddObserver(&hub);
      scraping.store(with_metrics);
    }
    const double p0 = ProcessCpu(), w0 = WallNow();
    for (int i = 0; i < kRoundsPerBlock; ++i) {
      const double t0 = ThreadCpu();
      KsmStepResult r = Must(m->KsmStepPasses(1, ~uint64_t{0}), "KsmStepPasses");
      const double t1 = ThreadCpu();
      churn(round++);
      const double t2 = ThreadCpu();
      side.visits += r.visits;
      side.passes += r.passes;
      side.rounds++;
      side.scan_cpu += t1 - t0;
      side.churn_cpu += t2 - t1;
    }
    side.process_cpu += ProcessCpu() - p0;
    side.wall += WallNow() - w0;
    if (on) {
      scraping.store(false);
      if (with_events) m->RemoveObserver(&hub);
      if (with_metrics) m->RemoveObserver(observer);
    }
  }
  stop.store(true);
  hub.CloseAll(host::EventQueue::End::kShutdown);
  drainer.join();
  scraper.join();
  hub.Unsubscribe(&queue);
  m->AddObserver(observer);  // ServerMetrics detaches it
  CheckResult check = m->Check();
  if (!check.ok()) Die("Machine::Check failed after the run: " + check.violations[0]);
  return res;
}

void PrintSide(const char* name, const Side& s) {
  std::printf("  %-4s %6" PRIu64 " %7" PRIu64 " %11" PRIu64 " %9.3f %12s %9.3f %9.3f %9.3f\n", name,
              s.rounds, s.passes, s.visits, s.scan_cpu, Human(s.rate()).c_str(), s.churn_cpu,
              s.process_cpu, s.wall);
}

// ---------------------------------------------------------------------------
// Part 2: RPC throughput of memnoded with and without metrics and a stream.

// GET /metrics over HTTP/1.0; bytes of the response, 0 on failure.
size_t Scrape(const std::string& hostport) {
  const size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) return 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::atoi(hostport.c_str() + colon + 1)));
  if (inet_pton(AF_INET, hostport.substr(0, colon).c_str(), &sa.sin_addr) != 1) return 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  size_t total = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: " + hostport + "\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) total += static_cast<size_t>(n);
    }
  }
  close(fd);
  return total;
}

// "## <title>...: N calls in X s = ..." -> N, X.
bool ParsePhase(const std::string& out, const std::string& title, double* calls, double* secs) {
  const size_t at = out.find("## " + title);
  if (at == std::string::npos) return false;
  const size_t colon = out.find("): ", at);
  if (colon == std::string::npos) return false;
  return std::sscanf(out.c_str() + colon + 3, "%lf calls in %lf s", calls, secs) == 2;
}

struct RpcSide {
  double mixed_calls = 0, mixed_s = 0, small_calls = 0, small_s = 0;
  uint64_t events = 0, streams = 0, scrapes = 0, scrape_bytes = 0;
  double mixed() const { return mixed_s > 0 ? mixed_calls / mixed_s : 0; }
  double small() const { return small_s > 0 ? small_calls / small_s : 0; }
};

// One loadgen run against a fresh memnoded; false on failure.
bool RpcRun(bool on, RpcSide* side, std::string* error) {
  std::string memnoded = absl::GetFlag(FLAGS_memnoded);
  if (memnoded.empty()) memnoded = ExecutableDir() + "/../server/memnoded";
  std::string loadgen = absl::GetFlag(FLAGS_loadgen);
  if (loadgen.empty()) loadgen = ExecutableDir() + "/memnode_loadgen";
  const int clients = absl::GetFlag(FLAGS_rpc_clients);
  ServerProcess server;
  std::vector<std::string> args = {"--listen=127.0.0.1:0", "--default_machine=false",
                                   absl::StrCat("--max_machines=", std::max(16, clients)),
                                   absl::StrCat("--max_streams=", std::max(16, clients)),
                                   on ? "--metrics_address=127.0.0.1:0" : "--metrics_address="};
  if (!server.Start(memnoded, args, error)) return false;
  if (on && server.metrics_address().empty()) {
    server.Stop();
    *error = "memnoded printed no METRICS line";
    return false;
  }

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> events{0}, streams{0}, scrapes{0}, scrape_bytes{0};
  std::mutex mu;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> watchers;
  std::thread finder, scraper;
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  if (on) {
    // A stream on every machine memnode_loadgen creates, opened as soon as
    // ListMachines shows it (loadgen sets machines up before its first phase).
    finder = std::thread([&] {
      auto machines = v1::MachineService::NewStub(channel);
      std::shared_ptr<v1::EventService::Stub> events_stub = v1::EventService::NewStub(channel);
      std::set<std::string> seen;
      while (!stop.load()) {
        grpc::ClientContext ctx;
        v1::ListMachinesRequest req;
        req.set_page_size(1000);
        v1::ListMachinesResponse resp;
        if (machines->ListMachines(&ctx, req, &resp).ok()) {
          for (const v1::Machine& mach : resp.machines()) {
            if (!seen.insert(mach.name()).second) continue;
            auto ctx_ptr = std::make_unique<grpc::ClientContext>();
            grpc::ClientContext* wctx = ctx_ptr.get();
            std::lock_guard<std::mutex> l(mu);
            contexts.push_back(std::move(ctx_ptr));
            streams++;
            watchers.emplace_back([&events, events_stub, wctx, name = mach.name()] {
              v1::WatchEventsRequest wreq;
              wreq.set_name(name);
              auto reader = events_stub->WatchEvents(wctx, wreq);
              v1::MachineEvent ev;
              while (reader->Read(&ev)) events++;
              reader->Finish();
            });
          }
        }
        usleep(10000);
      }
    });
    scraper = std::thread([&] {
      const int ms = absl::GetFlag(FLAGS_scrape_ms);
      if (ms <= 0) return;
      while (!stop.load()) {
        const size_t n = Scrape(server.metrics_address());
        if (n) {
          scrapes++;
          scrape_bytes += n;
        }
        for (int i = 0; i < ms / 10 && !stop.load(); ++i) usleep(10000);
      }
    });
  }

  std::string out;
  const int st =
      RunCapture(loadgen,
                 {"--server=" + server.address(), absl::StrCat("--server_pid=", server.pid()),
                  "--echo=false", absl::StrCat("--clients=", clients),
                  absl::StrCat("--seconds=", absl::GetFlag(FLAGS_rpc_seconds)),
                  absl::StrCat("--small_seconds=", absl::GetFlag(FLAGS_rpc_small_seconds))},
                 &out);
  stop.store(true);
  if (finder.joinable()) finder.join();
  if (scraper.joinable()) scraper.join();
  {
    std::lock_guard<std::mutex> l(mu);
    for (auto& c : contexts) c->TryCancel();
  }
  for (std::thread& t : watchers) t.join();
  server.Stop();

  double mc = 0, ms = 0, sc = 0, ss = 0;
  const bool parsed =
      ParsePhase(out, "mixed load", &mc, &ms) && ParsePhase(out, "small calls", &sc, &ss);
  if (st != 0 || !parsed) {
    *error = absl::StrCat("memnode_loadgen exited ", st, parsed ? "" : " (output not understood)",
                          "; its output:\n", out);
    return false;
  }
  side->mixed_calls += mc;
  side->mixed_s += ms;
  side->small_calls += sc;
  side->small_s += ss;
  side->events += events.load();
  side->streams += streams.load();
  side->scrapes += scrapes.load();
  side->scrape_bytes += scrape_bytes.load();
  std::printf("  %-3s mixed %8.0f calls/s, small %8.0f calls/s", on ? "on" : "off", mc / ms,
              sc / ss);
  if (on)
    std::printf("; %" PRIu64 " streams, %" PRIu64 " events read, %" PRIu64 " scrapes",
                streams.load(), events.load(), scrapes.load());
  std::printf("\n");
  std::fflush(stdout);
  return true;
}

std::string Cost(double on, double off) {
  if (off <= 0) return "n/a";
  char b[96];
  const double ratio = on / off;
  std::snprintf(b, sizeof b, "ratio on/off %.3f (%+.1f%%; target: cost under 5%%) %s", ratio,
                (ratio - 1) * 100, ratio >= 0.95 ? "ok" : "OVER TARGET");
  return b;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage("memnode_metrics_cost_bench: cost of metrics and event streams");
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const std::string part = absl::GetFlag(FLAGS_part);
  if (part != "all" && part != "ksm" && part != "rpc") Die("--part must be all, ksm or rpc");
  int status = 0;
  std::string summary;

  if (part != "rpc") {
    std::printf("== part 1: KSM scan, %" PRIu64
                " pages (1/2 in 512 contents x 256, 1/4 pairs, "
                "1/4 distinct), churn 1/16 per round\n",
                absl::GetFlag(FLAGS_pages));
    std::printf(
        "   on (--attach=%s) = MachineMetrics observer + scrape every %d ms + EventHub "
        "with one drained stream queue (%u events)\n\n",
        absl::GetFlag(FLAGS_attach).c_str(), absl::GetFlag(FLAGS_scrape_ms),
        absl::GetFlag(FLAGS_event_buffer));
    std::fflush(stdout);
    KsmPartResult r = RunKsmPart();
    std::printf("  %-4s %6s %7s %11s %9s %12s %9s %9s %9s\n", "", "rounds", "passes", "visits",
                "scan CPU", "visits/CPU-s", "churn CPU", "proc CPU", "wall s");
    PrintSide("off", r.off);
    PrintSide("on", r.on);
    std::printf("  events while on: %" PRIu64 " delivered, %" PRIu64
                " dropped (queue full); "
                "merges %" PRIu64 ", COW breaks %" PRIu64 ", prunes %" PRIu64 ", pass ends %" PRIu64
                "; %" PRIu64 " scrapes (%" PRIu64 " bytes each)\n",
                r.delivered, r.dropped, r.by_kind[size_t(EventKind::kMerge)],
                r.by_kind[size_t(EventKind::kCowBreak)], r.by_kind[size_t(EventKind::kPrune)],
                r.by_kind[size_t(EventKind::kPassEnd)], r.scrapes,
                r.scrapes ? r.scrape_bytes / r.scrapes : 0);
    const double churn_off = r.off.churn_cpu, churn_on = r.on.churn_cpu;
    summary += absl::StrCat("KSM scan visits/CPU-s: on ", Human(r.on.rate()), " vs off ",
                            Human(r.off.rate()), ": ", Cost(r.on.rate(), r.off.rate()), "\n");
    summary += absl::StrCat("KSM churn (Fill, COW breaks) CPU: on ", churn_on, " s vs off ",
                            churn_off, " s: ", Cost(churn_off, churn_on), "\n");
    std::printf("\n");
  }

  const int rounds = absl::GetFlag(FLAGS_rpc_rounds);
  if (part != "ksm" && rounds > 0) {
    std::printf(
        "== part 2: RPC, memnode_loadgen --clients=%d, %.0f s mixed + %.0f s GetKsm per run, "
        "%d round(s) of off/on\n",
        absl::GetFlag(FLAGS_rpc_clients), absl::GetFlag(FLAGS_rpc_seconds),
        absl::GetFlag(FLAGS_rpc_small_seconds), rounds);
    std::printf(
        "   on = --metrics_address=127.0.0.1:0, /metrics every %d ms, a WatchEvents stream "
        "per machine; off = --metrics_address= and no stream\n\n",
        absl::GetFlag(FLAGS_scrape_ms));
    std::fflush(stdout);
    RpcSide off, on;
    std::string error;
    for (int i = 0; i < rounds && status == 0; ++i) {
      const bool first_on = i % 2 == 1;  // off,on then on,off
      for (int j = 0; j < 2 && status == 0; ++j) {
        const bool is_on = (j == 0) == first_on;
        if (!RpcRun(is_on, is_on ? &on : &off, &error)) {
          std::fprintf(stderr, "memnode_metrics_cost_bench: %s\n", error.c_str());
          status = 1;
        }
      }
    }
    if (status == 0) {
      summary += absl::StrCat("RPC mixed calls/s: on ", Human(on.mixed()), " vs off ",
                              Human(off.mixed()), ": ", Cost(on.mixed(), off.mixed()), "\n");
      summary += absl::StrCat("RPC GetKsm calls/s: on ", Human(on.small()), " vs off ",
                              Human(off.small()), ": ", Cost(on.small(), off.small()), "\n");
      summary +=
          absl::StrCat("  (on: ", on.events, " events streamed, ", on.scrapes, " scrapes)\n");
    }
    std::printf("\n");
  }

  std::printf("== summary\n%s", summary.c_str());
  return status;
}

}  // namespace
}  // namespace memnode

int main(int argc, char** argv) { return memnode::Main(argc, argv); }
