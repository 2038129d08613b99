// memnode_hotplug_bench: the cost of memory hot-remove (Machine::OfflineBlock)
// in the core, in two parts.
//
// 1. Offline of a fully populated 128 MiB block (32768 pages) of node 1 on a
//    2 nodes x 4 blocks x 32768 pages machine, holding anonymous pages and
//    KSM pages: wall and CPU time of the OfflineBlock call, pages migrated per
//    CPU-second, KSM pages migrated, migration rounds and the emulated
//    duration, next to a memcpy of 128 MiB between two pre-faulted host
//    buffers measured in the same run. Two mixes: half of the process's pages
//    merged into 16 KSM pages (1024 sharers each), or into 8192 KSM pages
//    (2 sharers each); the frames freed by the merges are then refilled with
//    distinct anonymous pages by a second process, so the block is full when
//    it is offlined. Block 0 is not used: pfn 0 is the zero page.
//
// 2. The MEM_OFFLINE prune (kernel-semantics 7.3 rule 16) against the size of
//    the stable tree: machines whose stable trees hold N nodes, K of them
//    stale (both sharers unmapped the KSM page, ksmd has not revisited:
//    kernel-semantics 10.9) with their kpfn in the block offlined; the
//    offline's time with the kpfn index (the default) and, on a second
//    machine built the same way, with SetPruneByRescanForTesting(true) (the
//    seed's rescan from the tree's first node for every node pruned). Both
//    must report the same stable_nodes_pruned and the same GetKsm counters
//    afterwards; a difference is printed as MISMATCH. Rescan cases estimated
//    to take longer than --rescan-limit seconds are skipped.
//
// Times: wall (CLOCK_MONOTONIC) and CPU of the calling thread
// (CLOCK_THREAD_CPUTIME_ID) around the OfflineBlock call only; machine
// building is not timed (it is printed, for the record). Offlining is
// destructive, so every repetition builds a fresh machine. Figures only:
// nothing here asserts a timing.
//
// Flags:
//   --section=offline|prune|all   what to run (default all)
//   --max-n=N                     largest stable tree in part 2 (default 1000000)
//   --reps=R                      repetitions of part 1 (default 5)
//   --rescan-limit=SEC            skip rescan cases estimated above (default 20)
//   --quick                       --max-n=100000 --reps=3 (a smoke run)
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "server/core/machine.h"
#include "server/core/names.h"

namespace memnode {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "memnode_hotplug_bench: %s\n", what.c_str());
  std::exit(2);
}

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(std::string(what) + ": " + v.status().ToString());
  return std::move(*v);
}

void MustErrno(absl::StatusOr<Errno> r, const char* what) {
  Errno e = Must(std::move(r), what);
  if (e != Errno::kOk) Die(std::string(what) + ": errno " + ErrnoName(e));
}

void MustFill(Machine& m, Pid pid, Vaddr a, uint64_t pages, FillPattern fp) {
  if (pages == 0) return;
  AccessResult r = Must(m.Fill(pid, a, pages * kPageSize, fp), "Fill");
  if (r.err != Errno::kOk) Die(std::string("Fill: errno ") + ErrnoName(r.err));
}

Vaddr MustMmap(Machine& m, Pid pid, uint64_t pages) {
  MmapResult r =
      Must(m.Mmap(pid, 0, pages * kPageSize, kProtRead | kProtWrite, false, false), "Mmap");
  if (r.err != Errno::kOk) Die(std::string("Mmap: errno ") + ErrnoName(r.err));
  return r.address;
}

double WallNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double ThreadCpuNow() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// 1234567 -> "1.23M".
std::string Human(double x) {
  char buf[32];
  if (x >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fG", x / 1e9);
  else if (x >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", x / 1e6);
  else if (x >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", x / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", x);
  return buf;
}

// "10^5" for powers of ten, the number otherwise.
std::string Pow10(uint64_t x) {
  if (x == 0) return "0";
  int e = 0;
  uint64_t y = x;
  while (y % 10 == 0) {
    y /= 10;
    ++e;
  }
  if (y == 1 && e >= 3) return "10^" + std::to_string(e);
  return std::to_string(x);
}

uint64_t MemAvailableBytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

struct Options {
  bool offline = true;
  bool prune = true;
  uint64_t max_n = 1000000;
  int reps = 5;
  double rescan_limit_s = 20;
};

// ===========================================================================
// Part 1: offline of a fully populated block

constexpr uint64_t kBlockPages = 32768;  // 128 MiB
constexpr BlockId kTargetBlock = 4;      // the first block of node 1

enum class Mix { kFewKsm, kManyKsm };

const char* MixName(Mix m) { return m == Mix::kFewKsm ? "16 KSM pages" : "8192 KSM pages"; }

struct OfflineRun {
  OfflineReport report;
  double wall_s = 0, cpu_s = 0, build_s = 0;
  uint64_t anon = 0, ksm = 0, free = 0;  // the block's frames before the offline
  uint64_t ksm_sharing = 0;              // pages_sharing before the offline
  bool check_ok = true;
};

OfflineRun RunOfflineOnce(Mix mix, int rep) {
  OfflineRun out;
  const double b0 = WallNow();
  MachineConfig c;
  c.nodes = 2;
  c.blocks_per_node = 4;
  c.pages_per_block = kBlockPages;
  std::unique_ptr<Machine> m = Must(Machine::Create(c), "Machine::Create");
  // Process 1 on node 1 fills the block in order: the first half of its
  // pages will merge, the second half is distinct anonymous data.
  ProcessParams pp;
  pp.home_node = 1;
  const Pid p1 = Must(m->CreateProcess(pp), "CreateProcess");
  const Vaddr a1 = MustMmap(*m, p1, kBlockPages);
  const uint64_t half = kBlockPages / 2;
  if (mix == Mix::kFewKsm) {
    // 16 runs of 1024 identical pages: 16 contents.
    for (uint64_t j = 0; j < 16; ++j)
      MustFill(*m, p1, a1 + j * 1024 * kPageSize, 1024,
               FillPattern{FillPattern::kPattern64, 0x0101010101010101ULL * (j + 1)});
  } else {
    // Pages i and i + 8192 identical: 8192 contents, two copies each.
    MustFill(*m, p1, a1, half / 2, FillPattern{FillPattern::kRandom, 1001});
    MustFill(*m, p1, a1 + half / 2 * kPageSize, half / 2, FillPattern{FillPattern::kRandom, 1001});
  }
  MustFill(*m, p1, a1 + half * kPageSize, half, FillPattern{FillPattern::kRandom, 2002});
  MustErrno(m->Madvise(p1, a1, kBlockPages * kPageSize, Advice::kMergeable), "Madvise");
  KsmInfo prev = m->GetKsm();
  for (int pass = 1; pass <= 10; ++pass) {
    Must(m->KsmStepPasses(1, ~uint64_t{0}), "KsmStepPasses");
    KsmInfo k = m->GetKsm();
    const bool same = k.pages_shared == prev.pages_shared &&
                      k.pages_sharing == prev.pages_sharing &&
                      k.pages_unshared == prev.pages_unshared;
    prev = k;
    if (pass >= 3 && same) break;
  }
  // Process 2 on node 1 refills the frames the merges freed.
  const uint64_t freed = Must(m->GetBlock(kTargetBlock), "GetBlock").free_pages;
  if (freed > 0) {
    const Pid p2 = Must(m->CreateProcess(pp), "CreateProcess");
    const Vaddr a2 = MustMmap(*m, p2, freed);
    MustFill(*m, p2, a2, freed,
             FillPattern{FillPattern::kRandom, 3003 + static_cast<uint64_t>(rep)});
  }
  BlockInfo bi = Must(m->GetBlock(kTargetBlock), "GetBlock");
  out.anon = bi.count[static_cast<int>(PageState::kAnon)];
  out.ksm = bi.count[static_cast<int>(PageState::kKsm)];
  out.free = bi.free_pages;
  out.ksm_sharing = m->GetKsm().pages_sharing;
  out.build_s = WallNow() - b0;

  const double w0 = WallNow(), c0 = ThreadCpuNow();
  out.report = Must(m->OfflineBlock(kTargetBlock, OfflineOptions{}, absl::Now()), "OfflineBlock");
  out.cpu_s = ThreadCpuNow() - c0;
  out.wall_s = WallNow() - w0;
  if (rep == 0) out.check_ok = m->Check().ok();  // once per mix, untimed
  return out;
}

// memcpy of `bytes` between two pre-faulted buffers: median wall and thread
// CPU seconds of `reps` copies.
std::pair<double, double> MemcpyBaseline(uint64_t bytes, int reps) {
  std::vector<uint8_t> src(bytes), dst(bytes);
  std::memset(src.data(), 0x5a, bytes);
  std::memset(dst.data(), 0xa5, bytes);
  std::vector<double> wall, cpu;
  for (int i = 0; i < reps; ++i) {
    src[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
    const double w0 = WallNow(), c0 = ThreadCpuNow();
    std::memcpy(dst.data(), src.data(), bytes);
    cpu.push_back(ThreadCpuNow() - c0);
    wall.push_back(WallNow() - w0);
    if (dst[static_cast<size_t>(i)] != static_cast<uint8_t>(i)) Die("memcpy baseline");
  }
  return {Median(wall), Median(cpu)};
}

void RunOfflineSection(const Options& opt) {
  std::printf("== 1. Offline of a fully populated 128 MiB block ==\n");
  std::printf("machine 2 nodes x 4 blocks x 32768 pages; block %u (node 1, pfns %" PRIu64
              "..%" PRIu64 ") filled in allocation order\n",
              kTargetBlock, kTargetBlock * kBlockPages, (kTargetBlock + 1) * kBlockPages - 1);
  std::printf(
      "by process 1 (half its pages merged by ksmd) and process 2 (refilling the\n"
      "frames the merges freed with distinct data); median of %d repetitions, each\n"
      "on a freshly built machine\n\n",
      opt.reps);
  const auto [mc_wall, mc_cpu] = MemcpyBaseline(kBlockPages * kPageSize, 2 * opt.reps + 1);
  const double mc_pages_per_s = mc_cpu > 0 ? static_cast<double>(kBlockPages) / mc_cpu : 0;
  std::printf(
      "baseline memcpy 128 MiB (pre-faulted host buffers): wall %.2f ms, CPU %.2f ms "
      "= %.2f GiB/s = %s pages/CPU-s\n\n",
      mc_wall * 1e3, mc_cpu * 1e3,
      mc_cpu > 0 ? static_cast<double>(kBlockPages * kPageSize) / mc_cpu / (1 << 30) : 0,
      Human(mc_pages_per_s).c_str());

  std::printf("  %-15s %6s %5s %8s | %8s %6s %6s %9s | %8s %8s %11s %9s %9s\n", "mix", "anon",
              "ksm", "sharing", "migrated", "ksm_mg", "rounds", "emul ms", "wall ms", "CPU ms",
              "pages/CPU-s", "x memcpy", "CPU/page");
  for (Mix mix : {Mix::kFewKsm, Mix::kManyKsm}) {
    std::vector<double> wall, cpu;
    OfflineRun first;
    bool varied = false, ok = true;
    for (int r = 0; r < opt.reps; ++r) {
      OfflineRun run = RunOfflineOnce(mix, r);
      if (run.report.err != Errno::kOk) {
        std::printf("  %-15s OFFLINE FAILED: %s (%s)\n", MixName(mix), ErrnoName(run.report.err),
                    run.report.failure.c_str());
        ok = false;
        break;
      }
      if (r == 0) {
        first = run;
      } else if (run.report.pages_migrated != first.report.pages_migrated ||
                 run.report.ksm_pages_migrated != first.report.ksm_pages_migrated ||
                 run.report.rounds != first.report.rounds) {
        varied = true;
      }
      wall.push_back(run.wall_s);
      cpu.push_back(run.cpu_s);
    }
    if (!ok) continue;
    const double w = Median(wall), cp = Median(cpu);
    const OfflineReport& rp = first.report;
    const double rate = cp > 0 ? static_cast<double>(rp.pages_migrated) / cp : 0;
    std::printf("  %-15s %6" PRIu64 " %5" PRIu64 " %8" PRIu64 " | %8" PRIu64 " %6" PRIu64
                " %6" PRIu64 " %9.1f | %8.2f %8.2f %11s %8.2fx %7.0f ns\n",
                MixName(mix), first.anon, first.ksm, first.ksm_sharing, rp.pages_migrated,
                rp.ksm_pages_migrated, rp.rounds, static_cast<double>(rp.emulated_ns) / 1e6,
                w * 1e3, cp * 1e3, Human(rate).c_str(), mc_cpu > 0 ? cp / mc_cpu : 0,
                rp.pages_migrated ? cp * 1e9 / static_cast<double>(rp.pages_migrated) : 0);
    std::printf("  %-15s free before %" PRIu64
                "; build %.2f s (untimed); CPU min/max %.2f/%.2f ms"
                "%s%s\n",
                "", first.free, first.build_s, *std::min_element(cpu.begin(), cpu.end()) * 1e3,
                *std::max_element(cpu.begin(), cpu.end()) * 1e3,
                varied ? "; REPORTS VARIED between repetitions" : "",
                first.check_ok ? "" : "; Check() FAILED after the offline");
  }
  std::printf(
      "\n  anon/ksm = frames of the block by state before the offline (free must be 0);\n"
      "  sharing = pages_sharing; migrated/ksm_mg/rounds/emul = the OfflineReport\n"
      "  (emulated time: 1 ms per migration round of up to 256 pages); x memcpy = CPU\n"
      "  time of the offline / CPU time of the 128 MiB memcpy (above 1: slower than\n"
      "  copying the block's bytes once); CPU/page = CPU per page migrated.\n\n");
}

// ===========================================================================
// Part 2: the MEM_OFFLINE prune against the stable tree's size

constexpr uint64_t kPrunePagesPerBlock = uint64_t{1} << 18;  // 1 GiB blocks

// The 64-bit pattern of pair i's two pages: distinct for every i, in random
// order (a splitmix64 finaliser of i + 1).
uint64_t PairPattern(uint64_t i) {
  uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

struct PruneMachine {
  std::unique_ptr<Machine> m;
  BlockId target = 0;
  KsmInfo before;
  double build_s = 0;
  std::string problem;  // a setup that did not come out as intended
};

// N stable nodes, each a KSM page mapped twice by one process (home node 1):
// pages 2i and 2i+1 of its mapping hold pair i's pattern, so ksmd's second
// pass merges each pair as soon as it meets the second page (the unstable
// tree never holds more than one item: building stays cheap at N = 10^6).
// The K stale pairs: pages [0, 2K), allocated on node 1 into its first block
// (the target), merged, then unmapped (both sharers gone, ksmd not back yet).
// The N - K live pairs: pages [2K, 2N), bound to node 0 (MPOL_BIND).
PruneMachine BuildPruneMachine(uint64_t n, uint64_t k) {
  PruneMachine pm;
  const double t0 = WallNow();
  MachineConfig c;
  c.nodes = 2;
  c.pages_per_block = kPrunePagesPerBlock;
  const uint64_t node0_pages = 2 * (n - k) + 1;  // + the zero page
  c.blocks_per_node = static_cast<uint32_t>(
      std::max<uint64_t>(1, (node0_pages + c.pages_per_block - 1) / c.pages_per_block));
  pm.target = c.blocks_per_node;  // node 1's first block
  pm.m = Must(Machine::Create(c), "Machine::Create");
  Machine& m = *pm.m;
  ProcessParams pp;
  pp.home_node = 1;
  const Pid pid = Must(m.CreateProcess(pp), "CreateProcess");
  // One page allocated in the target block and freed again, so that its frame
  // array exists for K = 0 too (the offline then scans it, as for K > 0).
  const Vaddr probe = MustMmap(m, pid, 1);
  MustFill(m, pid, probe, 1, FillPattern{FillPattern::kByte, 1});
  MustErrno(m.Munmap(pid, probe, kPageSize), "Munmap");
  const Vaddr a = MustMmap(m, pid, 2 * n);
  for (uint64_t i = 0; i < n; ++i) {
    if (i == k) MustErrno(m.SetMempolicy(pid, MemPolicy::kBind, uint64_t{1} << 0), "SetMempolicy");
    MustFill(m, pid, a + 2 * i * kPageSize, 2,
             FillPattern{FillPattern::kPattern64, PairPattern(i)});
  }
  MustErrno(m.Madvise(pid, a, 2 * n * kPageSize, Advice::kMergeable), "Madvise");
  // Pass 1 records checksums; pass 2 merges page 2i+1 with page 2i (the
  // later-visited page becomes the KSM page, so kpfn = page 2i+1's frame).
  Must(m.KsmStepPasses(2, ~uint64_t{0}), "KsmStepPasses");
  for (int extra = 0; extra < 2 && m.GetKsm().stable_nodes < n; ++extra)
    Must(m.KsmStepPasses(1, ~uint64_t{0}), "KsmStepPasses");
  if (k > 0) MustErrno(m.Munmap(pid, a, 2 * k * kPageSize), "Munmap");
  pm.before = m.GetKsm();
  BlockInfo bi = Must(m.GetBlock(pm.target), "GetBlock");
  const uint64_t in_use = bi.pages - bi.free_pages;
  if (pm.before.stable_nodes != n || pm.before.pages_shared != n || pm.before.pages_sharing != n)
    pm.problem = "stable_nodes=" + std::to_string(pm.before.stable_nodes) +
                 " shared=" + std::to_string(pm.before.pages_shared) +
                 " sharing=" + std::to_string(pm.before.pages_sharing) + ", wanted " +
                 std::to_string(n);
  else if (in_use != 0)
    pm.problem = std::to_string(in_use) + " frames in use in the target block";
  pm.build_s = WallNow() - t0;
  return pm;
}

struct PruneTiming {
  OfflineReport report;
  KsmInfo after;
  double wall_s = 0, cpu_s = 0;
};

PruneTiming OfflineTimed(PruneMachine& pm, bool rescan) {
  PruneTiming t;
  pm.m->SetPruneByRescanForTesting(rescan);
  const double w0 = WallNow(), c0 = ThreadCpuNow();
  t.report = Must(pm.m->OfflineBlock(pm.target, OfflineOptions{}, absl::Now()), "OfflineBlock");
  t.cpu_s = ThreadCpuNow() - c0;
  t.wall_s = WallNow() - w0;
  t.after = pm.m->GetKsm();
  return t;
}

// The rescan's work: for each stale node removed, the nodes it walks from the
// tree's first node (the live ones before the first stale node left, plus that
// one), then a last walk over the N - K live nodes that finds none. Stable-tree order is memcmp
// order of the contents, i.e. of each page's first 8 bytes read big-endian (no two of these random
// pages share them).
uint64_t RescanSteps(uint64_t n, uint64_t k) {
  std::vector<std::pair<uint64_t, bool>> keys;
  keys.reserve(n);
  for (uint64_t i = 0; i < n; ++i) keys.emplace_back(__builtin_bswap64(PairPattern(i)), i < k);
  std::sort(keys.begin(), keys.end());
  uint64_t steps = 0, live_before = 0;
  for (const auto& [key, stale] : keys) {
    if (stale)
      steps += live_before + 1;
    else
      live_before++;
  }
  return steps + (n - k);  // the last rescan walks every live node, finds none
}

bool SameCounters(const KsmInfo& a, const KsmInfo& b) {
  return a.pages_shared == b.pages_shared && a.pages_sharing == b.pages_sharing &&
         a.pages_unshared == b.pages_unshared && a.pages_volatile == b.pages_volatile &&
         a.rmap_items == b.rmap_items && a.stable_nodes == b.stable_nodes &&
         a.full_scans == b.full_scans && a.mm_slots == b.mm_slots;
}

std::string CountersText(const KsmInfo& k) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "shared=%" PRIu64 " sharing=%" PRIu64 " unshared=%" PRIu64 " volatile=%" PRIu64
                " rmap_items=%" PRIu64 " stable_nodes=%" PRIu64,
                k.pages_shared, k.pages_sharing, k.pages_unshared, k.pages_volatile, k.rmap_items,
                k.stable_nodes);
  return buf;
}

struct PruneCase {
  uint64_t n = 0, k = 0;
  int reps = 1;
  bool done = false;
  double idx_wall = 0, idx_cpu = 0;  // medians
  bool rescan_run = false;
  int rescan_reps = 0;
  std::string rescan_note;  // "skipped (estimated X s)" etc.
  double rs_wall = 0, rs_cpu = 0;
  uint64_t steps = 0;
  uint64_t pruned = 0;
  double build_s = 0;
  bool mismatch = false;
};

class PruneSection {
 public:
  explicit PruneSection(const Options& opt) : opt_(opt) {}

  void Run() {
    std::printf("== 2. MEM_OFFLINE prune against the stable tree's size ==\n");
    std::printf("machine 2 nodes x B blocks x %" PRIu64
                " pages (B = what node 0 needs); one process\n"
                "(home node 1) maps 2N pages, pages 2i and 2i+1 filled with pattern i (N distinct\n"
                "contents, random order); pairs [0,K) on node 1's first block, the others bound\n"
                "to node 0; 2 ksmd passes merge every pair (N stable nodes); the process unmaps\n"
                "pairs [0,K): K stale nodes with their kpfn in node 1's first block, which is\n"
                "then offlined (nothing left in it to migrate). indexed = default (kpfn index);\n"
                "rescan = SetPruneByRescanForTesting(true) on a second machine built the same\n"
                "way. Rescan cases estimated above %.0f s are skipped.\n\n",
                kPrunePagesPerBlock, opt_.rescan_limit_s);
    std::vector<PruneCase> cases;
    // Fixed K = 1000, N growing (N = 10^6 last: its estimate uses the others).
    // Fixed N = 10^5, K growing.
    const uint64_t kN = 100000;
    auto add = [&](uint64_t n, uint64_t k) {
      if (n > opt_.max_n || k > n) return;
      for (const PruneCase& c : cases)
        if (c.n == n && c.k == k) return;
      PruneCase c;
      c.n = n;
      c.k = k;
      c.reps = n <= 10000 ? 5 : (n <= 100000 ? 3 : 1);
      cases.push_back(c);
    };
    for (uint64_t n : {uint64_t{1000}, uint64_t{10000}, kN}) add(n, 1000);
    for (uint64_t k : {uint64_t{0}, uint64_t{10}, uint64_t{100}, uint64_t{10000}, kN}) add(kN, k);
    add(1000000, 1000);
    if (opt_.max_n < kN) {
      for (uint64_t k : {uint64_t{0}, uint64_t{10}, uint64_t{100}}) add(opt_.max_n, k);
    }

    std::printf("  %9s %9s %5s | %12s %12s | %12s %12s %14s | %8s %8s\n", "N", "K", "reps",
                "indexed wall", "indexed CPU", "rescan wall", "rescan CPU", "rescan steps",
                "pruned", "build s");
    for (PruneCase& c : cases) {
      RunCase(c);
      PrintCase(c);
    }
    std::printf(
        "\n  times in ms, medians of `reps` offlines (one machine each), around the\n"
        "  OfflineBlock call only (isolation, an empty migration loop, the frames of the\n"
        "  block released, MEM_OFFLINE with the prune); rescan steps = stable nodes the\n"
        "  rescan walks (sum over the nodes pruned of the live nodes before it in tree\n"
        "  order, plus one, then N - K for the last walk that finds none), computed\n"
        "  from the contents; pruned = stable_nodes_pruned\n"
        "  (the same for both, else MISMATCH). build s = wall time to build one machine\n"
        "  (untimed part: fills, 2 ksmd passes, munmaps).\n");
    if (c_per_step_ > 0)
      std::printf("  rescan cost per step (largest measured case, CPU): %.1f ns\n",
                  c_per_step_ * 1e9);
    Summary(cases);
  }

 private:
  void RunCase(PruneCase& c) {
    if (c.k * 2 > kPrunePagesPerBlock) {
      c.rescan_note = "K too large for the block";
      return;
    }
    c.steps = RescanSteps(c.n, c.k);
    // Estimate the rescan from the measured cost per step (the largest case
    // measured so far); with none yet, a conservative 50 ns per step.
    const double per_step = c_per_step_ > 0 ? c_per_step_ : 50e-9;
    const double est = per_step * static_cast<double>(c.steps);
    // Repeat the rescan only where that is cheap; never run one above the limit.
    const bool do_rescan = est <= opt_.rescan_limit_s;
    const int rescan_reps = est * c.reps <= opt_.rescan_limit_s / 4 ? c.reps : 1;
    if (!do_rescan) {
      char buf[80];
      std::snprintf(buf, sizeof buf, "skipped (estimated %.0f s)", est);
      c.rescan_note = buf;
    }
    // Host memory: ~4.2 KiB per distinct content and ~100 B per page besides.
    const double need = static_cast<double>(c.n) * (4300.0 + 2 * 200.0);
    const double avail = static_cast<double>(MemAvailableBytes());
    if (avail > 0 && need > 0.8 * avail) {
      c.rescan_note = "case skipped: needs ~" + std::to_string(static_cast<int>(need / 1e9)) +
                      " GB, host has " + std::to_string(static_cast<int>(avail / 1e9)) +
                      " GB available";
      return;
    }
    const bool parallel = do_rescan && 2 * need <= 0.8 * avail;

    std::vector<double> iw, ic, rw, rc;
    for (int r = 0; r < c.reps; ++r) {
      const bool with_rescan = do_rescan && r < rescan_reps;
      PruneMachine a, b;
      if (with_rescan && parallel) {
        std::thread t([&] { b = BuildPruneMachine(c.n, c.k); });
        a = BuildPruneMachine(c.n, c.k);
        t.join();
      } else {
        a = BuildPruneMachine(c.n, c.k);
      }
      c.build_s = a.build_s;
      if (!a.problem.empty()) {
        std::printf("  SETUP PROBLEM N=%" PRIu64 " K=%" PRIu64 ": %s\n", c.n, c.k,
                    a.problem.c_str());
      }
      PruneTiming ti = OfflineTimed(a, false);
      CheckReport(c, ti, "indexed");
      iw.push_back(ti.wall_s);
      ic.push_back(ti.cpu_s);
      c.pruned = ti.report.stable_nodes_pruned;
      if (ti.report.stable_nodes_pruned != c.k) {
        std::printf("  MISMATCH N=%" PRIu64 " K=%" PRIu64 ": indexed pruned %" PRIu64
                    ", expected K\n",
                    c.n, c.k, ti.report.stable_nodes_pruned);
        c.mismatch = true;
      }
      if (with_rescan) {
        if (!parallel) {
          a.m.reset();  // free the first machine before building the second
          b = BuildPruneMachine(c.n, c.k);
        }
        if (!b.problem.empty())
          std::printf("  SETUP PROBLEM (rescan machine) N=%" PRIu64 " K=%" PRIu64 ": %s\n", c.n,
                      c.k, b.problem.c_str());
        if (b.m && a.m && !SameCounters(a.before, b.before)) {
          std::printf("  MISMATCH N=%" PRIu64 " K=%" PRIu64
                      ": the two machines differ before the "
                      "offline\n",
                      c.n, c.k);
          c.mismatch = true;
        }
        PruneTiming tr = OfflineTimed(b, true);
        CheckReport(c, tr, "rescan");
        rw.push_back(tr.wall_s);
        rc.push_back(tr.cpu_s);
        if (tr.report.stable_nodes_pruned != ti.report.stable_nodes_pruned ||
            !SameCounters(tr.after, ti.after)) {
          std::printf("  MISMATCH N=%" PRIu64 " K=%" PRIu64 ":\n    indexed pruned %" PRIu64
                      ", %s\n    rescan  pruned %" PRIu64 ", %s\n",
                      c.n, c.k, ti.report.stable_nodes_pruned, CountersText(ti.after).c_str(),
                      tr.report.stable_nodes_pruned, CountersText(tr.after).c_str());
          c.mismatch = true;
        }
        if (r == 0) last_after_ = CountersText(ti.after);
      }
    }
    c.done = true;
    c.idx_wall = Median(iw);
    c.idx_cpu = Median(ic);
    if (!rc.empty()) {
      c.rescan_run = true;
      c.rs_wall = Median(rw);
      c.rs_cpu = Median(rc);
      if (c.steps >= 1000000 && c.steps > max_steps_measured_) {
        max_steps_measured_ = c.steps;
        c_per_step_ = std::max(0.0, c.rs_cpu - c.idx_cpu) / static_cast<double>(c.steps);
      }
      if (rescan_reps < c.reps) c.rescan_note = "1 repetition";
      c.rescan_reps = static_cast<int>(rc.size());
    }
  }

  void CheckReport(PruneCase& c, const PruneTiming& t, const char* which) {
    if (t.report.err == Errno::kOk) return;
    std::printf("  OFFLINE FAILED (%s) N=%" PRIu64 " K=%" PRIu64 ": %s (%s)\n", which, c.n, c.k,
                ErrnoName(t.report.err), t.report.failure.c_str());
    c.mismatch = true;
  }

  void PrintCase(const PruneCase& c) {
    if (!c.done) {
      std::printf("  %9s %9s %5s | %s\n", Pow10(c.n).c_str(), Pow10(c.k).c_str(), "-",
                  c.rescan_note.c_str());
      return;
    }
    char rs_w[32], rs_c[32];
    if (c.rescan_run) {
      std::snprintf(rs_w, sizeof rs_w, "%12.2f", c.rs_wall * 1e3);
      std::snprintf(rs_c, sizeof rs_c, "%12.2f", c.rs_cpu * 1e3);
    }
    std::printf("  %9s %9s %5d | %12.2f %12.2f | ", Pow10(c.n).c_str(), Pow10(c.k).c_str(), c.reps,
                c.idx_wall * 1e3, c.idx_cpu * 1e3);
    if (c.rescan_run)
      std::printf("%s %s %14s", rs_w, rs_c, Human(static_cast<double>(c.steps)).c_str());
    else
      std::printf("%-25s %14s", c.rescan_note.c_str(), Human(static_cast<double>(c.steps)).c_str());
    std::printf(" | %8" PRIu64 " %8.1f%s%s\n", c.pruned, c.build_s, c.mismatch ? "  MISMATCH" : "",
                c.rescan_run && !c.rescan_note.empty()
                    ? ("  (rescan: " + c.rescan_note + ")").c_str()
                    : "");
  }

  void Summary(const std::vector<PruneCase>& cases) {
    auto find = [&](uint64_t n, uint64_t k) -> const PruneCase* {
      for (const PruneCase& c : cases)
        if (c.n == n && c.k == k && c.done) return &c;
      return nullptr;
    };
    std::printf("\n  indexed CPU, K = 1000 fixed, N growing:");
    const PruneCase* base = find(1000, 1000);
    for (uint64_t n : {uint64_t{1000}, uint64_t{10000}, uint64_t{100000}, uint64_t{1000000}})
      if (const PruneCase* c = find(n, 1000))
        std::printf("  N=%s %.2f ms%s", Pow10(n).c_str(), c->idx_cpu * 1e3,
                    base && base->idx_cpu > 0 && c != base
                        ? (" (" + Ratio(c->idx_cpu / base->idx_cpu) + ")").c_str()
                        : "");
    std::printf("\n  indexed CPU, N = 10^5 fixed, K growing:");
    for (uint64_t k : {uint64_t{0}, uint64_t{10}, uint64_t{100}, uint64_t{1000}, uint64_t{10000},
                       uint64_t{100000}})
      if (const PruneCase* c = find(100000, k))
        std::printf("  K=%s %.2f ms", Pow10(k).c_str(), c->idx_cpu * 1e3);
    std::printf("\n");
    const PruneCase* k0 = find(100000, 0);
    const PruneCase* kbig = find(100000, 100000);
    const PruneCase* k4 = find(100000, 10000);
    if (k0 && k4 && k4->k > 0)
      std::printf("  indexed cost per node pruned (N=10^5, K=10^4 minus K=0): %.0f ns\n",
                  (k4->idx_cpu - k0->idx_cpu) * 1e9 / static_cast<double>(k4->k));
    if (k0 && kbig)
      std::printf("  indexed cost per node pruned (N=10^5, K=10^5 minus K=0): %.0f ns\n",
                  (kbig->idx_cpu - k0->idx_cpu) * 1e9 / static_cast<double>(kbig->k));
    if (!last_after_.empty())
      std::printf(
          "  counters after the offline agree in every case run with both (e.g. the last: "
          "%s)\n",
          last_after_.c_str());
    bool any_mismatch = false;
    for (const PruneCase& c : cases) any_mismatch |= c.mismatch;
    std::printf("  %s\n\n", any_mismatch ? "*** MISMATCH between indexed and rescan, see above ***"
                                         : "indexed and rescan: same stable_nodes_pruned and "
                                           "GetKsm counters in every case run with both");
  }

  static std::string Ratio(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fx", x);
    return buf;
  }

  const Options opt_;
  double c_per_step_ = 0;  // rescan CPU seconds per step
  uint64_t max_steps_measured_ = 0;
  std::string last_after_;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* prefix) -> std::optional<std::string> {
      const size_t n = std::strlen(prefix);
      if (a.compare(0, n, prefix) == 0) return a.substr(n);
      return std::nullopt;
    };
    if (auto v = value("--section=")) {
      o.offline = *v == "offline" || *v == "all";
      o.prune = *v == "prune" || *v == "all";
      if (!o.offline && !o.prune) Die("--section must be offline, prune or all");
    } else if (auto v = value("--max-n=")) {
      o.max_n = std::strtoull(v->c_str(), nullptr, 10);
    } else if (auto v = value("--reps=")) {
      o.reps = std::atoi(v->c_str());
    } else if (auto v = value("--rescan-limit=")) {
      o.rescan_limit_s = std::atof(v->c_str());
    } else if (a == "--quick") {
      o.max_n = 100000;
      o.reps = 3;
    } else {
      Die("unknown flag " + a +
          " (flags: --section=offline|prune|all --max-n=N --reps=R --rescan-limit=SEC --quick)");
    }
  }
  if (o.reps < 1) Die("--reps must be positive");
  if (o.max_n < 1000) Die("--max-n must be at least 1000");
  return o;
}

int Main(int argc, char** argv) {
  const Options opt = ParseArgs(argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const double t0 = WallNow();
  if (opt.offline) RunOfflineSection(opt);
  if (opt.prune) PruneSection(opt).Run();
  std::printf("memnode_hotplug_bench done in %.0f s\n", WallNow() - t0);
  return 0;
}

}  // namespace
}  // namespace memnode

int main(int argc, char** argv) { return memnode::Main(argc, argv); }
