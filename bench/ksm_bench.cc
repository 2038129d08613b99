// memnode_ksm_bench: throughput of the ksmd emulation, in visits (rmap items
// scanned) per second of host CPU, for four page patterns over 2^20 pages in
// one process, next to the host kernel's own ksmd scanning the same pages in
// this process when /sys/kernel/mm/ksm is writable.
//
// memnode: KsmStepPasses(1) until two consecutive passes (at least 3 in all)
// leave pages_shared/pages_sharing/pages_unshared unchanged; CPU time is this
// process's (CLOCK_PROCESS_CPUTIME_ID) around the scanning calls only.
// kernel: an anonymous mapping of the same size and contents, MADV_MERGEABLE,
// ksmd at pages_to_scan=100000, sleep_millisecs=0 (and smart_scan=0 where the
// kernel has it, so every page is visited every pass as in 2.6.33), polled
// until full_scans advanced by 3 or more and the counters sampled at the last
// two pass ends agree; CPU time is ksmd's utime+stime from /proc/PID/stat.
// Every knob changed is saved (also to a file, so a killed run is repaired by
// the next one) and restored on exit, error, timeout or SIGINT/SIGTERM.
//
// Figures only: nothing here asserts a timing.
//
// Flags:
//   --pages=N        pages per pattern (default 1048576)
//   --patterns=LIST  comma-separated subset of identical,distinct16,random,zero
//   --no-kernel      skip the host ksmd comparison
//   --timeout=SEC    per-pattern bound on the host ksmd run (default 75 s; on
//                    timeout the figures of the last completed pass are kept)
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "server/core/machine.h"
#include "server/core/names.h"

namespace memnode {
namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

[[noreturn]] void Die(const std::string& what);

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(std::string(what) + ": " + v.status().ToString());
  return std::move(*v);
}

double CpuNow() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double WallNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void SleepMs(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

// ---------------------------------------------------------------------------
// Patterns: the same bytes in memnode and in the host mapping.

enum class Pattern { kIdentical, kDistinct16, kRandom, kZero };

const char* PatternName(Pattern p) {
  switch (p) {
    case Pattern::kIdentical: return "identical";
    case Pattern::kDistinct16: return "distinct16";
    case Pattern::kRandom: return "random";
    case Pattern::kZero: return "zero";
  }
  return "?";
}

const char* PatternDescription(Pattern p) {
  switch (p) {
    case Pattern::kIdentical: return "all pages identical (64-bit pattern)";
    case Pattern::kDistinct16: return "16 distinct contents, page i gets content i % 16";
    case Pattern::kRandom: return "all pages distinct (seeded random fill)";
    case Pattern::kZero: return "all pages written with byte 0 (anonymous, not the zero page)";
  }
  return "?";
}

constexpr uint64_t kIdenticalWord = 0x0123456789abcdefULL;
constexpr uint64_t kRandomSeed = 20240601;

uint64_t Distinct16Word(uint64_t page) { return 0x1111111111111111ULL * ((page % 16) + 1); }

// memnode's seeded random fill (FillPattern::kRandom): splitmix64 output for
// each 64-bit word index of the range, little-endian.
uint64_t SplitmixOutput(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Writes page `page` of the pattern into host memory at dst.
void HostPage(Pattern p, uint64_t page, uint8_t* dst) {
  uint64_t* w = reinterpret_cast<uint64_t*>(dst);
  constexpr uint64_t kWords = kPageSize / 8;
  switch (p) {
    case Pattern::kIdentical:
      for (uint64_t i = 0; i < kWords; ++i) w[i] = kIdenticalWord;
      break;
    case Pattern::kDistinct16: {
      const uint64_t v = Distinct16Word(page);
      for (uint64_t i = 0; i < kWords; ++i) w[i] = v;
      break;
    }
    case Pattern::kRandom:
      for (uint64_t i = 0; i < kWords; ++i) w[i] = SplitmixOutput(kRandomSeed, page * kWords + i);
      break;
    case Pattern::kZero: std::memset(dst, 0, kPageSize); break;
  }
}

struct Counters {
  uint64_t shared = 0, sharing = 0, unshared = 0, volatile_ = 0;
  bool operator==(const Counters& o) const {
    return shared == o.shared && sharing == o.sharing && unshared == o.unshared;
  }
};

struct RunResult {
  bool done = false;  // reached stable counters
  std::string note;   // why not, or remarks
  uint64_t passes = 0;
  uint64_t visits = 0;
  double cpu_s = 0;
  double wall_s = 0;
  Counters final;
  std::string extra;  // kernel-only counters
  // Cumulative (visits, CPU seconds) at the end of pass 1, 2, ...
  std::vector<std::pair<uint64_t, double>> at_pass;
  double rate() const { return cpu_s > 0 ? static_cast<double>(visits) / cpu_s : 0; }
  // Visits per CPU-second over the first `n` passes (0 when unknown).
  double RateAt(size_t n) const {
    if (n == 0 || n > at_pass.size() || at_pass[n - 1].second <= 0) return 0;
    return static_cast<double>(at_pass[n - 1].first) / at_pass[n - 1].second;
  }
};

// ---------------------------------------------------------------------------
// memnode

void MustFill(Machine& m, Pid pid, Vaddr a, uint64_t len, FillPattern fp) {
  AccessResult r = Must(m.Fill(pid, a, len, fp), "Fill");
  if (r.err != Errno::kOk) Die(std::string("Fill: ") + ErrnoName(r.err));
}

RunResult RunMemnode(Pattern pat, uint64_t pages) {
  RunResult res;
  MachineConfig c;
  c.nodes = 2;
  c.pages_per_block = 32768;
  // Room for `pages` plus the zero page, split over two nodes.
  c.blocks_per_node =
      static_cast<uint32_t>((pages + 1 + 2 * c.pages_per_block - 1) / (2 * c.pages_per_block));
  if (c.blocks_per_node < 1) c.blocks_per_node = 1;
  std::unique_ptr<Machine> m = Must(Machine::Create(c), "Machine::Create");
  const Pid pid = Must(m->CreateProcess(ProcessParams{}), "CreateProcess");
  const uint64_t len = pages * kPageSize;
  MmapResult mr = Must(m->Mmap(pid, 0, len, kProtRead | kProtWrite, false, false), "Mmap");
  if (mr.err != Errno::kOk) Die(std::string("Mmap: ") + ErrnoName(mr.err));
  const Vaddr a = mr.address;
  switch (pat) {
    case Pattern::kIdentical:
      MustFill(*m, pid, a, len, FillPattern{FillPattern::kPattern64, kIdenticalWord});
      break;
    case Pattern::kDistinct16:
      for (uint64_t i = 0; i < pages && !g_stop; ++i)
        MustFill(*m, pid, a + i * kPageSize, kPageSize,
                 FillPattern{FillPattern::kPattern64, Distinct16Word(i)});
      break;
    case Pattern::kRandom:
      MustFill(*m, pid, a, len, FillPattern{FillPattern::kRandom, kRandomSeed});
      break;
    case Pattern::kZero: MustFill(*m, pid, a, len, FillPattern{FillPattern::kByte, 0}); break;
  }
  Errno e = Must(m->Madvise(pid, a, len, Advice::kMergeable), "Madvise");
  if (e != Errno::kOk) Die(std::string("Madvise: ") + ErrnoName(e));

  const double cpu0 = CpuNow(), wall0 = WallNow();
  Counters prev;
  constexpr uint64_t kMaxPasses = 20;
  while (!g_stop && res.passes < kMaxPasses) {
    KsmStepResult r = Must(m->KsmStepPasses(1, ~uint64_t{0}), "KsmStepPasses");
    res.visits += r.visits;
    res.passes += r.passes;
    if (r.passes == 1) res.at_pass.emplace_back(res.visits, CpuNow() - cpu0);
    if (r.passes == 0) {
      res.note = "scanner stopped early";
      break;
    }
    KsmInfo k = m->GetKsm();
    Counters cur{k.pages_shared, k.pages_sharing, k.pages_unshared, k.pages_volatile};
    const bool stable = res.passes >= 3 && cur == prev;
    prev = cur;
    if (stable) {
      res.done = true;
      break;
    }
  }
  res.cpu_s = CpuNow() - cpu0;
  res.wall_s = WallNow() - wall0;
  res.final = prev;
  if (!res.done && res.note.empty()) res.note = g_stop ? "interrupted" : "not stable";
  {
    KsmInfo k = m->GetKsm();
    char buf[160];
    std::snprintf(buf, sizeof buf, "stable_nodes=%" PRIu64 " rmap_items=%" PRIu64, k.stable_nodes,
                  k.rmap_items);
    res.extra = buf;
  }
  return res;
}

// ---------------------------------------------------------------------------
// The host kernel's ksmd

const char* const kKsmDir = "/sys/kernel/mm/ksm/";
const char* const kStateFile = "/var/tmp/memnode_ksm_bench.saved_knobs";
const char* const kLockFile = "/var/tmp/memnode_ksm_bench.lock";

bool KsmFileExists(const std::string& name) { return access((kKsmDir + name).c_str(), F_OK) == 0; }

std::optional<uint64_t> ReadKsm(const std::string& name) {
  std::ifstream f(kKsmDir + name);
  uint64_t v;
  if (!(f >> v)) return std::nullopt;
  return v;
}

uint64_t ReadKsmOr0(const std::string& name) { return ReadKsm(name).value_or(0); }

bool WriteKsm(const std::string& name, uint64_t value) {
  int fd = open((kKsmDir + name).c_str(), O_WRONLY);
  if (fd < 0) return false;
  std::string s = std::to_string(value) + "\n";
  ssize_t n = write(fd, s.data(), s.size());
  close(fd);
  return n == static_cast<ssize_t>(s.size());
}

// Pid of the ksmd kernel thread, or -1.
long FindKsmd() {
  // ksmd is a kthread (a child of kthreadd, pid 2): scan /proc/*/comm.
  for (long pid = 2; pid < 4096; ++pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    if (f >> comm && comm == "ksmd") return pid;
  }
  // Fall back to a full scan for very large pid numbers.
  FILE* p = popen("grep -lx ksmd /proc/[0-9]*/comm 2>/dev/null", "r");
  long found = -1;
  if (p) {
    char line[256];
    if (fgets(line, sizeof line, p)) found = std::strtol(line + 6, nullptr, 10);
    pclose(p);
  }
  return found;
}

// utime+stime of `pid` in clock ticks, or -1.
long long ThreadTicks(long pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream in(s.substr(rp + 2));
  // Fields from 3 (state) on; utime and stime are fields 14 and 15.
  std::string tok;
  long long utime = -1, stime = -1;
  for (int field = 3; field <= 15 && (in >> tok); ++field) {
    if (field == 14) utime = std::atoll(tok.c_str());
    if (field == 15) stime = std::atoll(tok.c_str());
  }
  if (utime < 0 || stime < 0) return -1;
  return utime + stime;
}

// Saves and restores the host KSM knobs this benchmark changes. Restore() is
// idempotent and runs from the destructor, from Die() and at exit.
class KnobGuard {
 public:
  static KnobGuard* active;

  // Knobs changed, in restore order (run last).
  static std::vector<std::string> Knobs() {
    std::vector<std::string> k = {"pages_to_scan", "sleep_millisecs"};
    if (KsmFileExists("smart_scan")) k.push_back("smart_scan");
    k.push_back("run");
    return k;
  }

  // Takes the lock and repairs knobs left by a killed run. Returns "" on
  // success, else why the comparison cannot run.
  std::string Acquire() {
    lock_fd_ = open(kLockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) return std::string("cannot open ") + kLockFile + ": " + strerror(errno);
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
      return "another memnode_ksm_bench is using the host KSM";
    std::ifstream stale(kStateFile);
    if (stale) {
      std::string name;
      uint64_t v;
      std::map<std::string, uint64_t> old;
      while (stale >> name >> v) old[name] = v;
      std::printf("note: restoring host KSM knobs left by an interrupted run (%s)\n", kStateFile);
      if (old.count("run")) WriteKsm("run", 2);  // unmerge whatever it left
      for (const std::string& k : Knobs())
        if (old.count(k)) WriteKsm(k, old[k]);
      unlink(kStateFile);
    }
    for (const std::string& k : Knobs()) {
      std::optional<uint64_t> v = ReadKsm(k);
      if (!v) return "cannot read " + std::string(kKsmDir) + k;
      saved_[k] = *v;
    }
    std::ofstream out(kStateFile, std::ios::trunc);
    for (const auto& [k, v] : saved_) out << k << " " << v << "\n";
    out.close();
    if (!out) return std::string("cannot write ") + kStateFile;
    active = this;
    armed_ = true;
    return "";
  }

  void Restore() {
    if (!armed_) return;
    armed_ = false;
    // Unmerge everything this run merged, then put the knobs back.
    WriteKsm("run", 2);
    const double t0 = WallNow();
    while (WallNow() - t0 < 60 && (ReadKsmOr0("pages_shared") || ReadKsmOr0("pages_sharing")))
      SleepMs(20);
    bool ok = true;
    for (const std::string& k : Knobs()) ok &= WriteKsm(k, saved_[k]);
    if (ok) unlink(kStateFile);
    std::printf("host KSM knobs restored:");
    for (const std::string& k : Knobs()) std::printf(" %s=%" PRIu64, k.c_str(), ReadKsmOr0(k));
    std::printf("%s\n", ok ? "" : " (SOME WRITES FAILED)");
    std::fflush(stdout);
    active = nullptr;
  }

  ~KnobGuard() {
    Restore();
    if (lock_fd_ >= 0) close(lock_fd_);
  }

 private:
  std::map<std::string, uint64_t> saved_;
  int lock_fd_ = -1;
  bool armed_ = false;
};
KnobGuard* KnobGuard::active = nullptr;

void RestoreAtExit() {
  if (KnobGuard::active) KnobGuard::active->Restore();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "memnode_ksm_bench: %s\n", what.c_str());
  RestoreAtExit();
  std::exit(2);
}

// Why the host comparison cannot run, or "".
std::string KernelUnavailable() {
  if (access(kKsmDir, F_OK) != 0) return "no /sys/kernel/mm/ksm (kernel without CONFIG_KSM)";
  if (access((std::string(kKsmDir) + "run").c_str(), W_OK) != 0)
    return std::string("/sys/kernel/mm/ksm/run is not writable (") + strerror(errno) +
           "; run as root)";
  int fd = open((std::string(kKsmDir) + "run").c_str(), O_WRONLY);
  if (fd < 0)
    return std::string("cannot open /sys/kernel/mm/ksm/run for writing: ") + strerror(errno);
  close(fd);
  return "";
}

struct KernelSample {
  uint64_t full_scans = 0, scanned = 0;
  long long ticks = 0;
  double wall = 0;
  Counters c;
};

KernelSample SampleKernel(long ksmd) {
  KernelSample s;
  s.ticks = ThreadTicks(ksmd);
  s.wall = WallNow();
  s.scanned = ReadKsmOr0("pages_scanned");
  s.c = Counters{ReadKsmOr0("pages_shared"), ReadKsmOr0("pages_sharing"),
                 ReadKsmOr0("pages_unshared"), ReadKsmOr0("pages_volatile")};
  s.full_scans = ReadKsmOr0("full_scans");  // last: the pass count bounds the rest
  return s;
}

RunResult RunKernel(Pattern pat, uint64_t pages, long ksmd, double timeout_s) {
  RunResult res;
  const uint64_t len = pages * kPageSize;
  void* mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    res.note = std::string("mmap failed: ") + strerror(errno);
    return res;
  }
  uint8_t* base = static_cast<uint8_t*>(mem);
  madvise(base, len, MADV_NOHUGEPAGE);  // 4 KiB pages, as in 2.6.33 and memnode
  for (uint64_t i = 0; i < pages && !g_stop; ++i) HostPage(pat, i, base + i * kPageSize);
  if (madvise(base, len, MADV_MERGEABLE) != 0) {
    res.note = std::string("madvise(MADV_MERGEABLE) failed: ") + strerror(errno);
    munmap(mem, len);
    return res;
  }
  const bool have_scanned = KsmFileExists("pages_scanned");
  WriteKsm("pages_to_scan", 100000);
  WriteKsm("sleep_millisecs", 0);
  if (KsmFileExists("smart_scan")) WriteKsm("smart_scan", 0);
  const KernelSample s0 = SampleKernel(ksmd);
  WriteKsm("run", 1);

  std::vector<KernelSample> ends;  // a sample just after each pass end
  uint64_t last_fs = s0.full_scans;
  KernelSample fin = s0;
  while (!g_stop) {
    SleepMs(10);
    KernelSample s = SampleKernel(ksmd);
    if (s.wall - s0.wall > timeout_s) {
      fin = s;
      res.note = "timeout";
      break;
    }
    if (s.full_scans == last_fs) continue;
    last_fs = s.full_scans;
    ends.push_back(s);
    const uint64_t passes = s.full_scans - s0.full_scans;
    if (passes == res.at_pass.size() + 1)
      res.at_pass.emplace_back(
          have_scanned ? s.scanned - s0.scanned : pages * passes,
          static_cast<double>(s.ticks - s0.ticks) / static_cast<double>(sysconf(_SC_CLK_TCK)));
    if (passes >= 3 && ends.size() >= 2 && ends[ends.size() - 2].c == s.c) {
      fin = s;
      res.done = true;
      break;
    }
  }
  if (g_stop && res.note.empty()) res.note = "interrupted";
  if (!res.done && ends.empty())
    fin = SampleKernel(ksmd);
  else if (!res.done)
    fin = ends.back();
  // Chains/dups as ksmd left them, before unmerging.
  const uint64_t chains = ReadKsmOr0("stable_node_chains"), dups = ReadKsmOr0("stable_node_dups");
  // Stop scanning (unmerge) before anything else competes for the CPU.
  WriteKsm("run", 2);
  res.passes = fin.full_scans - s0.full_scans;
  res.visits = have_scanned ? fin.scanned - s0.scanned : pages * res.passes;
  const double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  res.cpu_s = static_cast<double>(fin.ticks - s0.ticks) / tck;
  res.wall_s = fin.wall - s0.wall;
  res.final = fin.c;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "visits from %s; stable_node_chains=%" PRIu64 " stable_node_dups=%" PRIu64,
                have_scanned ? "pages_scanned" : "pages x full_scans", chains, dups);
  res.extra = buf;
  const double t0 = WallNow();
  while (WallNow() - t0 < 60 && (ReadKsmOr0("pages_shared") || ReadKsmOr0("pages_sharing")))
    SleepMs(20);
  munmap(mem, len);
  return res;
}

// ---------------------------------------------------------------------------
// Report

std::string Human(double v) {
  char buf[32];
  if (v >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

void PrintRow(const char* who, const RunResult& r) {
  std::printf("  %-8s %6" PRIu64 " %10" PRIu64 " %8.3f %8.3f %13s %8" PRIu64 " %9" PRIu64
              " %9" PRIu64 " %9" PRIu64 "%s%s\n",
              who, r.passes, r.visits, r.cpu_s, r.wall_s, Human(r.rate()).c_str(), r.final.shared,
              r.final.sharing, r.final.unshared, r.final.volatile_, r.done ? "" : "  ",
              r.done ? "" : r.note.c_str());
}

struct Options {
  uint64_t pages = uint64_t{1} << 20;
  std::vector<Pattern> patterns = {Pattern::kIdentical, Pattern::kDistinct16, Pattern::kRandom,
                                   Pattern::kZero};
  bool kernel = true;
  double timeout_s = 75;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--pages=", 0) == 0) {
      o.pages = std::strtoull(a.c_str() + 8, nullptr, 10);
    } else if (a.rfind("--timeout=", 0) == 0) {
      o.timeout_s = std::strtod(a.c_str() + 10, nullptr);
    } else if (a == "--no-kernel") {
      o.kernel = false;
    } else if (a.rfind("--patterns=", 0) == 0) {
      o.patterns.clear();
      std::stringstream ss(a.substr(11));
      std::string p;
      while (std::getline(ss, p, ',')) {
        bool found = false;
        for (Pattern q :
             {Pattern::kIdentical, Pattern::kDistinct16, Pattern::kRandom, Pattern::kZero})
          if (p == PatternName(q)) {
            o.patterns.push_back(q);
            found = true;
          }
        if (!found) Die("unknown pattern " + p);
      }
    } else {
      Die("unknown flag " + a +
          " (flags: --pages=N --patterns=identical,distinct16,random,zero --no-kernel "
          "--timeout=SEC)");
    }
  }
  if (o.pages == 0) Die("--pages must be positive");
  return o;
}

int Main(int argc, char** argv) {
  Options opt = ParseArgs(argc, argv);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  std::atexit(RestoreAtExit);
  setvbuf(stdout, nullptr, _IOLBF, 0);

  std::printf("== ksmd emulation: %" PRIu64 " pages (%.2f GiB) in one process, MADV_MERGEABLE ==\n",
              opt.pages, static_cast<double>(opt.pages * kPageSize) / (1 << 30));

  std::string skip = opt.kernel ? KernelUnavailable() : "disabled by --no-kernel";
  long ksmd = -1;
  if (skip.empty()) {
    ksmd = FindKsmd();
    if (ksmd < 0)
      skip = "no ksmd thread found in /proc/*/comm";
    else if (ThreadTicks(ksmd) < 0)
      skip = "cannot read /proc/<ksmd>/stat";
  }
  std::unique_ptr<KnobGuard> guard;
  if (skip.empty()) {
    guard = std::make_unique<KnobGuard>();
    skip = guard->Acquire();
    if (!skip.empty()) guard.reset();
  }
  if (skip.empty()) {
    const uint64_t busy =
        ReadKsmOr0("pages_shared") + ReadKsmOr0("pages_sharing") + ReadKsmOr0("pages_unshared");
    std::printf("host ksmd: pid %ld, kernel counters before: shared+sharing+unshared=%" PRIu64
                "%s\n",
                ksmd, busy, busy ? " (other KSM users on this host: counters include them)" : "");
    if (KsmFileExists("max_page_sharing"))
      std::printf("host max_page_sharing=%" PRIu64 " (left unchanged)\n",
                  ReadKsmOr0("max_page_sharing"));
  } else {
    std::printf("host ksmd comparison SKIPPED: %s\n", skip.c_str());
  }

  struct Row {
    Pattern p;
    RunResult mem, ker;
    bool have_ker = false;
  };
  std::vector<Row> rows;
  for (Pattern p : opt.patterns) {
    if (g_stop) break;
    Row row;
    row.p = p;
    std::printf("[%s] memnode...\n", PatternName(p));
    row.mem = RunMemnode(p, opt.pages);
    if (skip.empty() && !g_stop) {
      std::printf("[%s] host ksmd...\n", PatternName(p));
      row.ker = RunKernel(p, opt.pages, ksmd, opt.timeout_s);
      row.have_ker = true;
    }
    rows.push_back(row);
  }
  if (guard) guard->Restore();

  std::printf("\n  %-8s %6s %10s %8s %8s %13s %8s %9s %9s %9s\n", "", "passes", "visits", "CPU s",
              "wall s", "visits/CPU-s", "shared", "sharing", "unshared", "volatile");
  std::vector<double> ratios;
  for (const Row& r : rows) {
    std::printf("%s: %s\n", PatternName(r.p), PatternDescription(r.p));
    PrintRow("memnode", r.mem);
    std::printf("  %-8s %s\n", "", r.mem.extra.c_str());
    if (r.have_ker) {
      PrintRow("kernel", r.ker);
      std::printf("  %-8s %s\n", "", r.ker.extra.c_str());
      // Compare the same passes: the first one only records checksums and
      // is much cheaper than the later ones.
      const size_t n = std::min(r.mem.at_pass.size(), r.ker.at_pass.size());
      const double mem_rate = n ? r.mem.RateAt(n) : r.mem.rate();
      const double ker_rate = n ? r.ker.RateAt(n) : r.ker.rate();
      if (ker_rate > 0) {
        const double ratio = mem_rate / ker_rate;
        ratios.push_back(ratio);
        std::printf(
            "  ratio memnode/kernel visits per CPU-second over the first %zu passes: "
            "%.1fx (%s vs %s; target >= 10x)%s\n",
            n, ratio, Human(mem_rate).c_str(), Human(ker_rate).c_str(),
            r.mem.final == r.ker.final ? "; counters equal" : "; counters differ (see note)");
      } else {
        std::printf("  ratio: n/a (kernel CPU time not measurable)\n");
      }
    }
  }
  if (!ratios.empty()) {
    double lo = ratios[0];
    for (double x : ratios) lo = std::min(lo, x);
    std::printf("\nlowest ratio memnode/kernel: %.1fx (target >= 10x)\n", lo);
  }
  std::printf(
      "\nnotes: visits = rmap items scanned (kernel: pages_scanned delta); CPU = this\n"
      "process (memnode) or ksmd's utime+stime (kernel, %ld ticks/s). memnode follows\n"
      "2.6.33: one stable node holds any number of sharers. The host kernel caps a\n"
      "KSM page at max_page_sharing sharers (a 4.x+/6.x feature) and chains duplicates,\n"
      "so with more than 256 identical pages its pages_shared/pages_sharing differ\n"
      "by design.\n",
      sysconf(_SC_CLK_TCK));
  if (g_stop) {
    std::printf("interrupted\n");
    return 130;
  }
  return 0;
}

}  // namespace
}  // namespace memnode

int main(int argc, char** argv) { return memnode::Main(argc, argv); }
