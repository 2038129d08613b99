// Snapshots restore a machine bit for bit: same state digest, and the same
// future (pfns, trees, counters) under the same further calls.
#include <fstream>
#include <random>
#include <sstream>

#include "gtest/gtest.h"
#include "server/core/machine.h"
#include "server/core/snapshot/snapshot.h"
#include "server/core/snapshot/snapshot_io.h"
#include "server/core/status.h"
#include "tests/testing/machine_fixture.h"

namespace memnode {
namespace {

using testing::SmallMachine;
using testing::Unwrap;

constexpr Vaddr kBase = Machine::kMmapBase;

// A deterministic workload touching every part of the state: processes,
// forks, exits, shared memory, pins, KSM passes (partial ones too, so the
// cursor is mid-pass), writes that leave stale stable nodes, policies,
// offlines and injected notifier failures.
class Workload {
 public:
  explicit Workload(uint64_t seed) : rng_(seed) {}
  void Run(Machine& m, int steps) {
    for (int i = 0; i < steps; ++i) Step(m);
  }

 private:
  void Step(Machine& m) {
    std::vector<Pid> live;
    for (const auto& p : m.ListProcesses(false)) live.push_back(p.pid);
    if (live.size() < 2 || rng_() % 12 == 0) {
      ProcessParams pp;
      pp.home_node = rng_() % 2;
      Pid p = Unwrap(m.CreateProcess(pp));
      Unwrap(m.Mmap(p, kBase, 8 * kPageSize, kProtRead | kProtWrite, false, true));
      Unwrap(m.Mmap(p, kBase + 16 * kPageSize, 2 * kPageSize, kProtRead | kProtWrite, true, true));
      Unwrap(m.Madvise(p, kBase, 8 * kPageSize, Advice::kMergeable));
      return;
    }
    Pid pid = live[rng_() % live.size()];
    switch (rng_() % 10) {
      case 0:
        if (live.size() < 6) Unwrap(m.Fork(pid));
        break;
      case 1:
        if (live.size() > 2) Unwrap(m.Exit(pid));
        break;
      case 2: Unwrap(m.KsmStepVisits(1 + rng_() % 7)); break;
      case 3: Unwrap(m.Pin(pid, kBase + (rng_() % 8) * kPageSize, kPageSize)); break;
      case 4: {
        std::string s(1 + rng_() % 64, static_cast<char>('a' + rng_() % 3));
        Unwrap(m.Write(pid, kBase + 16 * kPageSize + rng_() % 4000,
                       reinterpret_cast<const uint8_t*>(s.data()), s.size()));
        break;
      }
      case 5: Unwrap(m.SetMempolicy(pid, MemPolicy::kInterleave, 3)); break;
      default: {
        std::string s(kPageSize, static_cast<char>('A' + rng_() % 3));
        Unwrap(m.Write(pid, kBase + (rng_() % 8) * kPageSize,
                       reinterpret_cast<const uint8_t*>(s.data()), s.size()));
        break;
      }
    }
  }
  std::mt19937_64 rng_;
};

TEST(SnapshotTest, RoundTripKeepsStateAndFuture) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    auto a = SmallMachine(2, 4, 64);
    Workload(seed).Run(*a, 120);
    ASSERT_TRUE(a->InjectNotifierFailure(MemEvent::kGoingOnline, 5, Errno::kEBUSY, 1).ok());
    KsmInfo before = a->GetKsm();
    std::string snap = Unwrap(a->Snapshot());
    auto b = Machine::Restore(snap);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ((*b)->Check().state_digest, a->Check().state_digest) << "seed " << seed;
    EXPECT_INVARIANTS(**b);
    KsmInfo after = (*b)->GetKsm();
    EXPECT_EQ(after.pages_shared, before.pages_shared);
    EXPECT_EQ(after.pages_sharing, before.pages_sharing);
    EXPECT_EQ(after.pages_unshared, before.pages_unshared);
    EXPECT_EQ(after.pages_volatile, before.pages_volatile);
    EXPECT_EQ(after.full_scans, before.full_scans);
    EXPECT_EQ(after.cursor_pid, before.cursor_pid);
    EXPECT_EQ(after.cursor_address, before.cursor_address);
    // The same further calls give the same machine.
    Workload(seed + 100).Run(*a, 80);
    Workload(seed + 100).Run(**b, 80);
    EXPECT_EQ((*b)->Check().state_digest, a->Check().state_digest) << "seed " << seed;
    // A snapshot of the restored machine is byte-identical.
    std::string sa = Unwrap(a->Snapshot()), sb = Unwrap((*b)->Snapshot());
    EXPECT_TRUE(sa == sb) << "snapshots differ: " << sa.size() << " vs " << sb.size() << " bytes";
  }
}

TEST(SnapshotTest, CorruptTruncatedAndFutureSnapshotsAreRefused) {
  auto a = SmallMachine();
  Workload(9).Run(*a, 60);
  std::string snap = Unwrap(a->Snapshot());
  auto reason = [](absl::string_view bytes) {
    auto r = Machine::Restore(bytes);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : ErrorReason(r.status());
  };
  EXPECT_EQ(reason(snap.substr(0, snap.size() - 1)), "SNAPSHOT_CORRUPT");
  EXPECT_EQ(reason(snap.substr(0, 10)), "SNAPSHOT_CORRUPT");
  EXPECT_EQ(reason("hello"), "SNAPSHOT_CORRUPT");
  std::string flipped = snap;
  flipped[snap.size() / 2] ^= 0x40;
  EXPECT_EQ(reason(flipped), "SNAPSHOT_CORRUPT");
  std::string future = snap;
  future[8] = static_cast<char>(kSnapshotVersion + 1);  // a version from the future
  EXPECT_EQ(reason(future), "SNAPSHOT_VERSION");
}

// Found by fuzz_snapshot (input in tests/fuzz/corpus/fuzz_snapshot/crash-1b32fc8a...):
// a payload whose shared object no VMA references used to restore, and the
// restored machine could then not be snapshotted ("an unreferenced shared
// object"). Check() now verifies every shared object's references, so Restore
// refuses it.
TEST(SnapshotTest, UnreferencedSharedObjectIsRefused) {
  std::ifstream in(
      std::string(MEMNODE_SOURCE_DIR) + "/tests/core/testdata/fuzz_snapshot_unreferenced_shm.bin",
      std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string input = ss.str();
  ASSERT_GT(input.size(), 1u);
  ASSERT_EQ(input[0] & 1, 1) << "framed payload (fuzz_snapshot's odd first byte)";
  const std::string bytes = WrapSnapshot(input.substr(1), /*version=*/1);
  auto m = Machine::Restore(bytes);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(ErrorReason(m.status()), "SNAPSHOT_CORRUPT");
  EXPECT_NE(m.status().message().find("shared object"), std::string::npos) << m.status();
}

TEST(SnapshotTest, PausedOfflineCannotBeSaved) {
  auto a = SmallMachine();
  OfflineOptions opt;
  opt.pause_after = OfflinePhase::kGoingOffline;
  auto r = Unwrap(a->OfflineBlock(1, opt, absl::Now()));
  ASSERT_TRUE(r.paused);
  EXPECT_EQ(ErrorReason(a->Snapshot().status()), "OFFLINE_IN_PROGRESS");
  Unwrap(a->CancelOffline(1));
  EXPECT_TRUE(a->Snapshot().ok());
}

}  // namespace
}  // namespace memnode
