// memnode_core_bench: throughput of the core's bulk operations (Fill with a
// byte, a 64-bit pattern and seeded random data; Read; Digest) over 1 GiB of
// emulated memory, each printed as GiB/s of emulated memory and as a ratio to
// a plain memcpy of a 256 MiB host buffer measured in the same run; then the
// host memory the core spends per populated emulated page and on an untouched
// 1 TiB machine.
//
// Times are process CPU time (Google Benchmark's default), which is less
// disturbed than wall time on a shared 2-core host. Figures only: nothing
// here asserts a timing.
//
// Flags: the usual --benchmark_* flags (e.g. --benchmark_filter=fill), plus
//   --skip_memory   skip the host-memory tables
// Colour is used only when stdout is a terminal (or --benchmark_color=true).
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "server/core/machine.h"
#include "server/core/names.h"

namespace memnode {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kRegion = kGiB;  // emulated bytes per operation
constexpr uint64_t kBaselineBytes = 256 * kMiB;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "memnode_core_bench: %s\n", what.c_str());
  std::exit(2);
}

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(std::string(what) + ": " + v.status().ToString());
  return std::move(*v);
}

void MustOk(absl::StatusOr<AccessResult> r, const char* what) {
  AccessResult a = Must(std::move(r), what);
  if (a.err != Errno::kOk) Die(std::string(what) + ": errno " + ErrnoName(a.err));
}

// The benchmark machine: 2 nodes x 8 blocks x 32768 pages (2 GiB emulated).
MachineConfig BenchConfig() {
  MachineConfig c;
  c.nodes = 2;
  c.blocks_per_node = 8;
  c.pages_per_block = 32768;
  return c;
}

// A process with a private read-write mapping of `bytes`.
struct Region {
  Pid pid = 0;
  Vaddr addr = 0;
};

Region MapRegion(Machine& m, uint64_t bytes) {
  Region r;
  r.pid = Must(m.CreateProcess(ProcessParams{}), "CreateProcess");
  MmapResult mr = Must(m.Mmap(r.pid, 0, bytes, kProtRead | kProtWrite, false, false), "Mmap");
  if (mr.err != Errno::kOk) Die(std::string("Mmap: ") + ErrnoName(mr.err));
  r.addr = mr.address;
  return r;
}

void ExitRegion(Machine& m, const Region& r) { Must(m.Exit(r.pid), "Exit"); }

FillPattern ByteFill(uint8_t b) { return FillPattern{FillPattern::kByte, b}; }
FillPattern Pattern64Fill(uint64_t v) { return FillPattern{FillPattern::kPattern64, v}; }
FillPattern RandomFill(uint64_t seed) { return FillPattern{FillPattern::kRandom, seed}; }

// The single machine shared by the throughput benchmarks (each benchmark
// creates its own process and exits it at the end, so the machine is empty
// between benchmarks).
Machine& SharedMachine() {
  static std::unique_ptr<Machine> m = Must(Machine::Create(BenchConfig()), "Machine::Create");
  return *m;
}

// ---------------------------------------------------------------------------
// Throughput benchmarks

void BM_MemcpyBaseline(benchmark::State& state) {
  std::vector<char> src(kBaselineBytes), dst(kBaselineBytes);
  std::memset(src.data(), 0x5a, src.size());  // fault both buffers in first
  std::memset(dst.data(), 0, dst.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), kBaselineBytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBaselineBytes));
}

enum class FillKind { kByte, kPattern64, kRandom };

FillPattern PatternFor(FillKind k, uint64_t i) {
  switch (k) {
    case FillKind::kByte: return ByteFill(static_cast<uint8_t>(0x11 + i % 200));
    case FillKind::kPattern64: return Pattern64Fill(0x0123456789abcdefULL + i);
    case FillKind::kRandom: return RandomFill(1000 + i);
  }
  return ByteFill(1);
}

// Fill of never-touched memory: every page is a write fault that allocates a
// frame (the process is created and exited outside the timed part).
void BM_FillFirstTouch(benchmark::State& state, FillKind kind) {
  Machine& m = SharedMachine();
  uint64_t i = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Region r = MapRegion(m, kRegion);
    state.ResumeTiming();
    MustOk(m.Fill(r.pid, r.addr, kRegion, PatternFor(kind, i++)), "Fill");
    state.PauseTiming();
    ExitRegion(m, r);
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRegion));
}

// Fill of memory already written by this process (sole mapping: the content of
// each frame is replaced in place). Each iteration uses a new value/seed.
void BM_FillOverwrite(benchmark::State& state, FillKind kind) {
  Machine& m = SharedMachine();
  Region r = MapRegion(m, kRegion);
  MustOk(m.Fill(r.pid, r.addr, kRegion, ByteFill(0x42)), "Fill");
  uint64_t i = 0;
  for (auto _ : state) {
    MustOk(m.Fill(r.pid, r.addr, kRegion, PatternFor(kind, i++)), "Fill");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRegion));
  ExitRegion(m, r);
}

// Read of 1 GiB into a host buffer (the returned std::string).
void BM_Read(benchmark::State& state, FillKind kind) {
  Machine& m = SharedMachine();
  Region r = MapRegion(m, kRegion);
  MustOk(m.Fill(r.pid, r.addr, kRegion, PatternFor(kind, 7)), "Fill");
  for (auto _ : state) {
    ReadResult rr = Must(m.Read(r.pid, r.addr, kRegion), "Read");
    if (rr.err != Errno::kOk || rr.data.size() != kRegion) Die("Read failed");
    benchmark::DoNotOptimize(rr.data.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRegion));
  ExitRegion(m, r);
}

// Digest of 1 GiB. `cold`: the contents are new in every iteration (refilled
// outside the timed part with a new seed), so every page's SHA-256 is
// computed; otherwise the per-content digests are cached by the first call.
void BM_Digest(benchmark::State& state, FillKind kind, bool cold) {
  Machine& m = SharedMachine();
  Region r = MapRegion(m, kRegion);
  MustOk(m.Fill(r.pid, r.addr, kRegion, PatternFor(kind, 7)), "Fill");
  if (!cold) Must(m.Digest(r.pid, r.addr, kRegion), "Digest");  // warm the cache
  uint64_t i = 8;
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      MustOk(m.Fill(r.pid, r.addr, kRegion, PatternFor(kind, i++)), "Fill");
      state.ResumeTiming();
    }
    DigestResult d = Must(m.Digest(r.pid, r.addr, kRegion), "Digest");
    if (d.err != Errno::kOk) Die("Digest failed");
    benchmark::DoNotOptimize(d.digest.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRegion));
  ExitRegion(m, r);
}

// Collects the median bytes_per_second of every benchmark while printing the
// usual console output.
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  explicit CollectingReporter(bool color) : ConsoleReporter(color ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      auto it = run.counters.find("bytes_per_second");
      if (it == run.counters.end()) continue;
      const std::string name = run.run_name.function_name;
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") {
        median_[name] = it->second.value;
      } else if (run.run_type == Run::RT_Iteration) {
        single_[name] = it->second.value;  // used when there are no repetitions
      }
      if (std::find(order_.begin(), order_.end(), name) == order_.end()) order_.push_back(name);
    }
    ConsoleReporter::ReportRuns(runs);
  }
  bool Has(const std::string& name) const { return median_.count(name) || single_.count(name); }
  double BytesPerSecond(const std::string& name) const {
    auto it = median_.find(name);
    if (it != median_.end()) return it->second;
    it = single_.find(name);
    return it != single_.end() ? it->second : 0;
  }
  const std::vector<std::string>& order() const { return order_; }

 private:
  std::map<std::string, double> median_, single_;
  std::vector<std::string> order_;
};

// ---------------------------------------------------------------------------
// Host memory

uint64_t RssBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

double Per(uint64_t bytes, uint64_t pages) {
  return pages ? static_cast<double>(bytes) / static_cast<double>(pages) : 0;
}

std::string Bytes(uint64_t b) {
  char buf[64];
  if (b >= kGiB)
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(b) / kGiB);
  else if (b >= kMiB)
    std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(b) / kMiB);
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%" PRIu64 " B", b);
  return buf;
}

void PrintHostMemory() {
  std::printf("\n== Host memory ==\n");
  // 1. An untouched 1 TiB machine (measured first, on a fresh heap).
  {
    MachineConfig c;
    c.nodes = 2;
    c.blocks_per_node = 4096;
    c.pages_per_block = 32768;
    malloc_trim(0);
    const uint64_t rss0 = RssBytes();
    std::unique_ptr<Machine> m = Must(Machine::Create(c), "Machine::Create(1 TiB)");
    const uint64_t rss1 = RssBytes();
    HostMemory hm = m->HostMemoryUsage();
    std::printf("Untouched machine, %u nodes x %u blocks x %" PRIu64
                " pages = %s emulated:\n"
                "  frame_bytes %s (block 0 holds the zero page), block_bytes %s,\n"
                "  frame+block %s; process RSS delta %s (%.4f%% of emulated size)\n",
                c.nodes, c.blocks_per_node, c.pages_per_block,
                Bytes(c.total_pages() * kPageSize).c_str(), Bytes(hm.frame_bytes).c_str(),
                Bytes(hm.block_bytes).c_str(), Bytes(hm.frame_bytes + hm.block_bytes).c_str(),
                Bytes(rss1 > rss0 ? rss1 - rss0 : 0).c_str(),
                100.0 * static_cast<double>(rss1 > rss0 ? rss1 - rss0 : 0) /
                    static_cast<double>(c.total_pages() * kPageSize));
  }
  malloc_trim(0);

  // 2. Populated pages: 1 GiB written in one process, per fill kind.
  std::printf(
      "\n1 GiB populated in one process on the 2 x 8 x 32768 machine (target: frame bytes\n"
      "per populated page <= 64, the kernel's struct page):\n");
  std::printf("  %-20s %10s %12s %12s %12s %14s %12s\n", "fill", "populated", "frame B/pg",
              "contents", "content B/pg", "RSS delta", "RSS B/pg");
  struct Case {
    const char* name;
    FillPattern p;
  } cases[] = {{"byte 0x5a", ByteFill(0x5a)},
               {"pattern64", Pattern64Fill(0x0123456789abcdefULL)},
               {"random (seeded)", RandomFill(99)}};
  for (const Case& cs : cases) {
    malloc_trim(0);
    const uint64_t rss0 = RssBytes();
    std::unique_ptr<Machine> m = Must(Machine::Create(BenchConfig()), "Machine::Create");
    Region r = MapRegion(*m, kRegion);
    MustOk(m->Fill(r.pid, r.addr, kRegion, cs.p), "Fill");
    const uint64_t rss1 = RssBytes();
    HostMemory hm = m->HostMemoryUsage();
    MachineInfo info = m->Info();
    const uint64_t pages = kRegion / kPageSize;
    const uint64_t drss = rss1 > rss0 ? rss1 - rss0 : 0;
    std::printf("  %-20s %10" PRIu64 " %12.1f %12" PRIu64 " %12.1f %14s %12.1f\n", cs.name,
                hm.populated_frames, Per(hm.frame_bytes, hm.populated_frames),
                static_cast<uint64_t>(info.distinct_contents),
                Per(hm.content_bytes, hm.populated_frames), Bytes(drss).c_str(), Per(drss, pages));
  }
  malloc_trim(0);
  std::printf(
      "  frame B/pg = HostMemoryUsage frame_bytes / populated frames (frame arrays are\n"
      "  allocated per touched block, so a partly used block costs its whole array);\n"
      "  content B/pg = content_bytes / populated frames (each distinct content once);\n"
      "  RSS B/pg = whole-process RSS growth / pages written (frames, contents, page\n"
      "  tables, allocator slack).\n");
}

// ---------------------------------------------------------------------------

void RegisterAll() {
  auto reg = [](const char* name, auto fn) {
    return benchmark::RegisterBenchmark(name, fn)
        ->Unit(benchmark::kMillisecond)
        ->Repetitions(3)
        ->ReportAggregatesOnly(true);
  };
  reg("memcpy_256MiB_baseline", BM_MemcpyBaseline);
  reg("fill_byte/first_touch", [](benchmark::State& s) { BM_FillFirstTouch(s, FillKind::kByte); });
  reg("fill_byte/overwrite", [](benchmark::State& s) { BM_FillOverwrite(s, FillKind::kByte); });
  reg("fill_pattern64/first_touch",
      [](benchmark::State& s) { BM_FillFirstTouch(s, FillKind::kPattern64); });
  reg("fill_pattern64/overwrite",
      [](benchmark::State& s) { BM_FillOverwrite(s, FillKind::kPattern64); });
  reg("fill_random/first_touch",
      [](benchmark::State& s) { BM_FillFirstTouch(s, FillKind::kRandom); });
  reg("fill_random/overwrite", [](benchmark::State& s) { BM_FillOverwrite(s, FillKind::kRandom); });
  reg("read/byte_filled", [](benchmark::State& s) { BM_Read(s, FillKind::kByte); });
  reg("read/random_filled", [](benchmark::State& s) { BM_Read(s, FillKind::kRandom); });
  reg("digest/byte_filled", [](benchmark::State& s) { BM_Digest(s, FillKind::kByte, false); });
  reg("digest/random_cached", [](benchmark::State& s) { BM_Digest(s, FillKind::kRandom, false); });
  reg("digest/random_cold", [](benchmark::State& s) { BM_Digest(s, FillKind::kRandom, true); });
}

void PrintSummary(const CollectingReporter& rep) {
  const std::string base = "memcpy_256MiB_baseline";
  const double base_bps = rep.BytesPerSecond(base);
  std::printf("\n== Throughput (GiB/s of emulated memory, median of 3, process CPU time) ==\n");
  std::printf("  %-28s %10s %14s\n", "operation (1 GiB)", "GiB/s", "x memcpy");
  for (const std::string& name : rep.order()) {
    const double bps = rep.BytesPerSecond(name);
    if (base_bps > 0)
      std::printf("  %-28s %10.2f %14.2f\n", name.c_str(), bps / kGiB, bps / base_bps);
    else
      std::printf("  %-28s %10.2f %14s\n", name.c_str(), bps / kGiB, "n/a");
  }
  std::printf(
      "  x memcpy = throughput / memcpy of a 256 MiB host buffer in this run; above 1\n"
      "  means faster than copying the bytes (a whole-page fill stores one shared\n"
      "  content per page instead of the bytes).\n");
}

}  // namespace
}  // namespace memnode

int main(int argc, char** argv) {
  bool skip_memory = false;
  bool color = isatty(STDOUT_FILENO) != 0;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--skip_memory") == 0) {
      skip_memory = true;
    } else {
      if (std::strncmp(argv[i], "--benchmark_color=", 18) == 0)
        color = std::strcmp(argv[i] + 18, "false") != 0 && std::strcmp(argv[i] + 18, "no") != 0;
      args.push_back(argv[i]);
    }
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);  // keep stdout and stderr in order
  int n = static_cast<int>(args.size());
  // Host memory first: RSS deltas are only meaningful on a fresh heap.
  if (!skip_memory) memnode::PrintHostMemory();
  std::printf("\n== Google Benchmark runs ==\n");
  std::fflush(stdout);
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  memnode::RegisterAll();
  memnode::CollectingReporter rep(color);
  benchmark::RunSpecifiedBenchmarks(&rep);
  benchmark::Shutdown();
  memnode::PrintSummary(rep);
  return 0;
}
