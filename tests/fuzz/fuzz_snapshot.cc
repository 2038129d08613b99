// fuzz_snapshot: bytes fed to Machine::Restore. It must never crash; a
// machine it accepts must pass Check(), snapshot back to the same bytes and
// survive a few operations.
// Input: byte 0 selects the framing: even = the bytes as they are (header
// included); odd = the rest is a payload that gets a valid header (magic,
// version, length, SHA-256), so that mutations reach the decoder instead
// of failing the checksum.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "server/core/machine.h"
#include "server/core/mem/sha256.h"
#include "server/core/snapshot/snapshot.h"
#include "server/core/snapshot/snapshot_io.h"
#include "tests/fuzz/corpus_util.h"
#include "tests/testing/model_driver.h"

namespace {

constexpr size_t kHeader = 8 + 4 + 8 + 32;

// Byte 0 odd: bit 1 picks the payload's format version (0: v1, 1: the
// current one), so v1 inputs of the corpus keep reaching the v1 decoder.
std::string Frame(const std::string& payload, uint8_t selector) {
  return memnode::WrapSnapshot(payload, (selector & 2) ? memnode::kSnapshotVersion : 1);
}

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "fuzz_snapshot: %s\n", why.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  std::string dir = memnode::fuzz::WriteCorpusDir(argc, argv);
  if (!dir.empty()) {
    // Snapshots of driver runs (seeded PRNG) of several lengths: framed
    // payloads (odd first byte) and two raw snapshots.
    std::vector<std::string> seeds;
    for (int steps : {0, 5, 20, 60, 150}) {
      memnode::testing::PrngSource src(1000 + steps);
      memnode::testing::Coverage cov;
      memnode::testing::DriverOptions o;
      o.steps = steps;
      memnode::testing::ModelDriver d(&src, &cov, o);
      if (!d.Run()) Fail(d.Report());
      auto s = d.machine()->Snapshot();
      if (!s.ok()) continue;  // paused offline at the end: none (Run cancels)
      seeds.push_back(std::string(1, '\x03') + s->substr(kHeader));
      if (steps == 0 || steps == 60) seeds.push_back(std::string(1, '\x00') + *s);
    }
    memnode::fuzz::WriteCorpus(dir, seeds);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string bytes = (data[0] & 1) ? Frame(rest, data[0]) : rest;
  auto m = memnode::Machine::Restore(bytes);
  if (!m.ok()) return 0;
  memnode::Machine& machine = **m;
  memnode::CheckResult c = machine.Check();
  if (!c.ok())
    Fail("Restore accepted a machine that fails Check():\n" + absl::StrJoin(c.violations, "\n"));
  auto again = machine.Snapshot();
  if (!again.ok()) Fail("Snapshot of a restored machine failed: " + again.status().ToString());
  if (*again != bytes) {
    // Not bit for bit: the restored machine must at least be the same state.
    auto m2 = memnode::Machine::Restore(*again);
    if (!m2.ok()) Fail("re-snapshot refused: " + m2.status().ToString());
    if ((*m2)->Check().state_digest != c.state_digest) Fail("re-snapshot changed the state");
  }
  // A few operations on whatever was restored.
  for (const auto& p : machine.ListProcesses(false)) {
    for (const auto& v : p.vmas) {
      uint64_t len = std::min<uint64_t>(v.end - v.start, 16 * memnode::kPageSize);
      (void)machine.Read(p.pid, v.start, len);
      if (v.prot & memnode::kProtWrite) {
        memnode::FillPattern fp;
        fp.value = 0x5a;
        (void)machine.Fill(p.pid, v.start, len, fp);
      }
    }
    (void)machine.Fork(p.pid);
  }
  (void)machine.KsmStepVisits(200);
  for (const auto& b : machine.ListBlocks()) {
    if (b.id == 0 || b.state != memnode::BlockState::kOnline) continue;
    memnode::OfflineOptions o;
    o.timeout_ns = 1000000;
    (void)machine.OfflineBlock(b.id, o, absl::FromUnixSeconds(1000));
    break;
  }
  c = machine.Check();
  if (!c.ok())
    Fail("operations on a restored machine broke an invariant:\n" +
         absl::StrJoin(c.violations, "\n"));
  return 0;
}
