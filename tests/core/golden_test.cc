// Golden tests: behaviour recorded at a known commit must not change when the
// code is restructured.
//
//  - ModelGolden: the model driver's random runs (tests/testing/model_driver)
//    for a fixed set of seeds; after every step the machine's state digest is
//    folded into a trail hash. The recorded trails (testdata/model_digests.txt)
//    were taken at commit 4b295c6, before the architecture change.
//  - SnapshotGolden: a machine snapshot written at that commit
//    (testdata/machine_v1.snap) restores with the recorded state digest and
//    behaves identically afterwards (the same further calls give the same
//    recorded digest).
//
// A change that alters behaviour on purpose (a kernel rule fixed) re-records
// the trails with MEMNODE_GOLDEN_RECORD=1 and says why in its commit message
// and in testdata/model_digests.txt's history below; a refactoring never does.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "server/core/machine.h"
#include "server/core/status.h"
#include "tests/testing/machine_fixture.h"
#include "tests/testing/model_driver.h"

namespace memnode {
namespace {

using testing::SmallMachine;
using testing::Unwrap;

constexpr int kSeeds = 16;
constexpr int kSteps = 300;

std::string TestdataPath(const std::string& name) {
  return std::string(MEMNODE_SOURCE_DIR) + "/tests/core/testdata/" + name;
}

// MEMNODE_GOLDEN_RECORD=1 re-records the model trails (a change of behaviour
// on purpose); =snapshot rewrites the v1 snapshot, which is a historical
// artifact (written before the component split) and should never be needed.
bool Recording(const char* what = "1") {
  const char* r = std::getenv("MEMNODE_GOLDEN_RECORD");
  return r && std::string(r) == what;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// FNV-1a over the digests, in order.
uint64_t Fold(const std::vector<std::string>& digests) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::string& d : digests) {
    for (char c : d) {
      h ^= static_cast<uint8_t>(c);
      h *= 0x100000001b3ULL;
    }
    h ^= '|';
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::map<std::string, std::string> ReadKeyValues(const std::string& path) {
  std::map<std::string, std::string> kv;
  for (absl::string_view line : absl::StrSplit(ReadFile(path), '\n')) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    if (parts.size() == 2) kv[parts[0]] = parts[1];
  }
  return kv;
}

TEST(ModelGolden, RecordedDigestTrailsAreReproduced) {
  std::string out = "# seed steps-verified trail-hash final-digest (tests/core/golden_test.cc)\n";
  std::map<std::string, std::string> want;
  if (!Recording()) {
    want = ReadKeyValues(TestdataPath("model_digests.txt"));
    ASSERT_EQ(want.size(), size_t{kSeeds}) << "testdata/model_digests.txt is incomplete";
  }
  testing::Coverage cov;
  testing::DriverOptions opts;
  opts.steps = kSteps;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    const uint64_t s = static_cast<uint64_t>(seed) * 104729;
    testing::PrngSource src(s);
    testing::ModelDriver d(&src, &cov, opts);
    ASSERT_TRUE(d.Run()) << "seed " << seed << ": " << d.Report();
    const std::string got = absl::StrFormat("%d/%016x/%s", d.digests().size(), Fold(d.digests()),
                                            d.digests().empty() ? "-" : d.digests().back());
    if (Recording()) {
      out += absl::StrFormat("%d %s\n", s, got);
    } else {
      EXPECT_EQ(got, want[absl::StrCat(s)]) << "seed " << s;
    }
  }
  if (Recording()) WriteFile(TestdataPath("model_digests.txt"), out);
}

constexpr Vaddr kBase = Machine::kMmapBase;

// A deterministic workload over every part of the state (processes, forks,
// exits, shared memory, pins, partial KSM passes, stale stable nodes,
// policies, an offline and a notifier injector).
void Workload(Machine& m, uint64_t seed, int steps) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < steps; ++i) {
    std::vector<Pid> live;
    for (const auto& p : m.ListProcesses(false)) live.push_back(p.pid);
    if (live.size() < 2 || rng() % 12 == 0) {
      ProcessParams pp;
      pp.home_node = rng() % 2;
      Pid p = Unwrap(m.CreateProcess(pp));
      Unwrap(m.Mmap(p, kBase, 8 * kPageSize, kProtRead | kProtWrite, false, true));
      Unwrap(m.Mmap(p, kBase + 16 * kPageSize, 2 * kPageSize, kProtRead | kProtWrite, true, true));
      Unwrap(m.Madvise(p, kBase, 8 * kPageSize, Advice::kMergeable));
      continue;
    }
    Pid pid = live[rng() % live.size()];
    switch (rng() % 11) {
      case 0:
        if (live.size() < 6) Unwrap(m.Fork(pid));
        break;
      case 1:
        if (live.size() > 2) Unwrap(m.Exit(pid));
        break;
      case 2:
      case 3: Unwrap(m.KsmStepVisits(1 + rng() % 9)); break;
      case 4: Unwrap(m.Pin(pid, kBase + (rng() % 8) * kPageSize, kPageSize)); break;
      case 5: {
        std::string s(1 + rng() % 64, static_cast<char>('a' + rng() % 3));
        Unwrap(m.Write(pid, kBase + 16 * kPageSize + rng() % 4000,
                       reinterpret_cast<const uint8_t*>(s.data()), s.size()));
        break;
      }
      case 6: Unwrap(m.SetMempolicy(pid, MemPolicy::kInterleave, 3)); break;
      default: {
        std::string s(kPageSize, static_cast<char>('A' + rng() % 3));
        Unwrap(m.Write(pid, kBase + (rng() % 8) * kPageSize,
                       reinterpret_cast<const uint8_t*>(s.data()), s.size()));
        break;
      }
    }
  }
}

TEST(SnapshotGolden, SnapshotWrittenBeforeTheRefactorRestores) {
  const std::string snap_path = TestdataPath("machine_v1.snap");
  const std::string digest_path = TestdataPath("machine_v1.digest");
  if (Recording("snapshot")) {
    auto m = SmallMachine(2, 4, 64);
    Workload(*m, 7, 150);
    OfflineOptions opt;
    auto r = Unwrap(m->OfflineBlock(4, opt, absl::FromUnixSeconds(1000)));
    std::printf("offline of block 4: err %d, %d pages migrated, %d nodes pruned\n",
                static_cast<int>(r.err), static_cast<int>(r.pages_migrated),
                static_cast<int>(r.stable_nodes_pruned));
    ASSERT_TRUE(m->InjectNotifierFailure(MemEvent::kGoingOnline, 5, Errno::kEBUSY, 1).ok());
    Workload(*m, 8, 30);
    KsmInfo k = m->GetKsm();
    std::printf("snapshot: shared %d sharing %d unshared %d stable nodes %d rmap items %d\n",
                static_cast<int>(k.pages_shared), static_cast<int>(k.pages_sharing),
                static_cast<int>(k.pages_unshared), static_cast<int>(k.stable_nodes),
                static_cast<int>(k.rmap_items));
    const std::string before = m->Check().state_digest;
    WriteFile(snap_path, Unwrap(m->Snapshot()));
    Workload(*m, 9, 80);
    WriteFile(digest_path,
              absl::StrCat("restored ", before, "\nafter ", m->Check().state_digest, "\n"));
    return;
  }
  const std::string bytes = ReadFile(snap_path);
  ASSERT_FALSE(bytes.empty()) << snap_path;
  auto want = ReadKeyValues(digest_path);
  auto m = Machine::Restore(bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_INVARIANTS(**m);
  EXPECT_EQ((*m)->Check().state_digest, want["restored"]);
  Workload(**m, 9, 80);
  EXPECT_INVARIANTS(**m);
  EXPECT_EQ((*m)->Check().state_digest, want["after"]);
}

}  // namespace
}  // namespace memnode
