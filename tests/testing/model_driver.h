// A model-based driver of the core: applies random operations (every public
// memory, KSM, NUMA, hotplug and snapshot operation of Machine) to a small
// MANUAL machine and checks, after every operation, that each live process
// reads back exactly its shadow copy, that Machine::Check() holds and that a
// set of cross-cutting KSM / hotplug invariants hold (see Verify()).
//
// The choices come from a ChoiceSource: a seeded PRNG (model_random_test,
// golden_test, the soak tool) or the bytes of a fuzzer input (fuzz_ops). The
// driver has no gtest dependency: a failed check records a message and stops
// the run; callers turn it into a test failure, a soak report or an abort().
//
// The operations live in one file per area (library memnode_testing):
//   model_driver.cc       Run, the step dispatch, Verify, shared helpers
//   model_ops_memory.cc   processes (create, fork, exit), mmap, writes,
//                         madvise, munmap, mprotect, pins
//   model_ops_ksm.cc      ksmd steps and KSM knobs
//   model_ops_numa.cc     migrate_pages, mbind, move_pages, mempolicies
//   model_ops_hotplug.cc  offline (pause, resume, cancel, expiry), online,
//                         add/remove blocks, notifier failures
//   model_ops_misc.cc     snapshot + restore, API misuse
// The sequence of choices is part of the behaviour: golden_test replays
// recorded digest trails, so a change to what an operation draws (or in what
// order) is a change of the recorded runs.
//
// Linux analogue: none (an oracle, like the kernel's selftests/vm checks).
// Thread safety: a driver and its machine belong to one thread; sources are
// not thread-safe either.
#ifndef MEMNODE_TESTS_TESTING_MODEL_DRIVER_H_
#define MEMNODE_TESTS_TESTING_MODEL_DRIVER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/core/machine.h"
#include "server/core/types.h"

namespace memnode::testing {

// Where the driver's choices come from.
class ChoiceSource {
 public:
  virtual ~ChoiceSource() = default;
  // A value in [0, n) (n >= 1).
  virtual uint64_t Rand(uint64_t n) = 0;
  // True when no more choices are available (bytes input consumed).
  virtual bool Exhausted() const { return false; }
};

// Choices from a seeded mt19937_64 (uniform_int_distribution over [0, n)).
class PrngSource final : public ChoiceSource {
 public:
  explicit PrngSource(uint64_t seed) : rng_(seed) {}
  uint64_t Rand(uint64_t n) override;

 private:
  std::mt19937_64 rng_;
};

// Decodes choices from bytes (little-endian, as few bytes as `n` needs);
// once the bytes are consumed every choice is 0 and Exhausted() is true.
class BytesSource final : public ChoiceSource {
 public:
  BytesSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t Rand(uint64_t n) override;
  bool Exhausted() const override { return exhausted_ || pos_ >= size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  bool exhausted_ = false;
};

// What the runs exercised, so that a quiet run cannot pass silently.
struct Coverage {
  uint64_t offlines_ok = 0, offlines_failed = 0, pauses = 0, resumes = 0, cancels = 0, expiries = 0,
           ksm_migrated = 0, pruned = 0, steps_with_sharing = 0, locked_refusals = 0,
           pages_migrated = 0, move_pages_ksm = 0, blocks_added = 0, blocks_removed = 0,
           onlines = 0, online_vetoed = 0, munmaps = 0, mprotects = 0, readonly_refusals = 0,
           shared_maps = 0, snapshots = 0, mempolicies = 0, misuses = 0, ops = 0,
           // KSM pages left without a stable node (seen by Verify), forks
           // followed by a write of a KSM-mapped address, migrate_pages to a
           // full node, move_pages with a repeated address.
      ksm_without_node = 0, fork_writes = 0, full_node_migrations = 0, move_pages_dups = 0;
  std::string ToString() const;
};

struct DriverOptions {
  int steps = 300;   // operations per run (a bytes source may end earlier)
  int history = 12;  // recent operations kept for failure reports
};

class ModelDriver {
 public:
  static constexpr size_t kMaxProcesses = 6;
  static constexpr uint64_t kMaxMappingPages = 6;
  static constexpr uint64_t kMaxPagesPerProcess = 12;
  static constexpr size_t kMaxBlocks = 11;
  static constexpr uint64_t kPagesPerBlock = 64;

  // `src` and `cov` are not owned and must outlive the driver.
  ModelDriver(ChoiceSource* src, Coverage* cov, DriverOptions options = {})
      : src_(src), cov_(cov), options_(options) {}

  // Runs up to options.steps operations; false at the first failed check.
  bool Run();

  bool failed() const { return failed_; }
  int step() const { return step_; }
  // The failed check, the step and the recent operations.
  std::string Report() const;
  Machine* machine() { return m_.get(); }
  // The machine's state digest after every verified step (golden tests).
  const std::vector<std::string>& digests() const { return digests_; }

 private:
  using Phase = OfflinePhase;
  static constexpr uint8_t kPatterns[] = {0x5a, 0x6b, 0x7c, 0x8d};

  // One virtual page of a process as the model sees it.
  struct ShadowPage {
    std::shared_ptr<std::vector<uint8_t>> data;  // kPageSize bytes; MAP_SHARED pages
                                                 // share it across fork
    uint32_t prot = kProtRead | kProtWrite;
    bool shared = false;
  };
  using Space = std::map<uint64_t, ShadowPage>;  // vpn -> page

  // The offline paused at a phase boundary, if any (at most one at a time).
  struct Paused {
    BlockId block = 0;
    Phase phase = Phase::kNone;
    absl::Time paused_at;
    absl::Duration ttl;
  };

  uint64_t Rand(uint64_t n) { return src_->Rand(n); }
  bool Chance(int percent) { return Rand(100) < static_cast<uint64_t>(percent); }
  // KSM's lock is held by the paused offline (GOING_OFFLINE sent).
  bool Locked() const { return paused_ && paused_->phase >= Phase::kGoingOffline; }

  // model_driver.cc: one step, the checks after it, shared helpers.
  void Step();
  void Verify();
  static std::shared_ptr<std::vector<uint8_t>> ZeroPage();
  Pid AnyPid();
  // Runs of contiguous virtual pages of `pid`: (first vpn, pages).
  std::vector<std::pair<uint64_t, uint64_t>> Runs(Pid pid, bool readable_only = false);
  // A random range of mapped pages of `pid` (contiguous, at most 6 pages).
  bool PickRange(Pid pid, Vaddr* start, uint64_t* count);

  // model_ops_memory.cc
  void NewMapping(Pid pid);
  void NewProcess();
  void DoFork();
  // Forks a process mapping a KSM page, then writes that address in the
  // parent: the child's mapping is then reachable only through the parent's
  // rmap item until ksmd visits the child.
  void DoForkAndWriteKsm();
  // Builds a KSM page left without a stable node: two equal pages of one
  // process, the process forked, the lower page rewritten and pinned, then
  // ksmd passes (the forked page is promoted, the pinned tree page refuses,
  // the child keeps the promoted page).
  void DoKsmNodelessScenario();
  void DoExit();
  // Byte k of a fill stream (docs/API.md FillMemory: byte / 64-bit pattern / seeded SplitMix64).
  static uint8_t FillByte(const FillPattern& fp, uint64_t k);
  bool Writable(Pid pid, Vaddr start, uint64_t count);
  void DoWrite();
  void DoMadvise(Advice advice);
  void DoMunmap();
  void DoMprotect();
  void DoPin();

  // model_ops_ksm.cc
  void DoKsmStep();
  void DoRun();

  // model_ops_numa.cc
  // Nodes whose memory is online (N_HIGH_MEMORY).
  std::vector<NodeId> MemoryNodes();
  // (pid, address) -> pfn of every KSM-mapped page.
  std::map<std::pair<Pid, Vaddr>, Pfn> KsmPages();
  void ExpectKsmPagesUnmoved(const std::map<std::pair<Pid, Vaddr>, Pfn>& before);
  void DoMigratePages();
  // Fills every online block of a node with kernel pages, migrates another
  // process's pages to it (they fall back), then frees the fill.
  void DoMigrateToFullNode();
  void DoMbind();
  void DoMovePages();
  void DoMempolicy();

  // model_ops_hotplug.cc
  void CheckOfflineResult(const OfflineReport& r);
  void DoOffline();
  void DoPausedAction();
  void DoBlocks();
  void DoInject();

  // model_ops_misc.cc
  void DoSnapshot();
  // API misuse that must change nothing: unknown pids and blocks, unaligned
  // or overflowing ranges, invalid knob values.
  void DoMisuse();

  ChoiceSource* src_;
  Coverage* cov_;
  DriverOptions options_;
  std::unique_ptr<Machine> m_;
  std::map<Pid, Space> shadow_;
  std::map<Pid, bool> privileged_;
  std::vector<std::pair<Pid, Vaddr>> pins_;
  std::vector<BlockId> kernel_pages_;
  std::optional<Paused> paused_;
  int online_vetoes_ = 0;  // injected GOING_ONLINE failures not yet spent
  absl::Duration ttl_ = absl::Seconds(10);
  absl::Time now_ = absl::FromUnixSeconds(1000000);
  int step_ = 0;
  std::string op_;
  std::vector<std::string> history_;
  std::vector<std::string> digests_;
  bool failed_ = false;  // set by the MD_* checks (model_driver_check.h)
  std::string failure_;
};

}  // namespace memnode::testing

#endif  // MEMNODE_TESTS_TESTING_MODEL_DRIVER_H_
