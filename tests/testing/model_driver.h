// A model-based driver of the core: applies random operations (every public
// memory, KSM, NUMA, hotplug and snapshot operation of Machine) to a small
// MANUAL machine and checks, after every operation, that each live process
// reads back exactly its shadow copy, that Machine::Check() holds and that a
// set of cross-cutting KSM / hotplug invariants hold (see Verify()).
//
// The choices come from a ChoiceSource: a seeded PRNG (model_random_test,
// the soak tool) or the bytes of a fuzzer input (fuzz_ops). The driver has
// no gtest dependency: a failed check records a message and stops the run;
// callers turn it into a test failure, a soak report or an abort().
//
// Linux analogue: none (an oracle, like the kernel's selftests/vm checks).
// Thread safety: a driver and its machine belong to one thread.
#ifndef MEMNODE_TESTS_TESTING_MODEL_DRIVER_H_
#define MEMNODE_TESTS_TESTING_MODEL_DRIVER_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "server/core/ksm/ksm_types.h"
#include "server/core/machine.h"
#include "server/core/names.h"
#include "server/core/status.h"
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

class PrngSource final : public ChoiceSource {
 public:
  explicit PrngSource(uint64_t seed) : rng_(seed) {}
  uint64_t Rand(uint64_t n) override {
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_);
  }

 private:
  std::mt19937_64 rng_;
};

// Decodes choices from bytes (little-endian, as few bytes as `n` needs);
// once the bytes are consumed every choice is 0 and Exhausted() is true.
class BytesSource final : public ChoiceSource {
 public:
  BytesSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t Rand(uint64_t n) override {
    if (n <= 1) return 0;
    uint64_t v = 0;
    int bytes = n <= 0x100 ? 1 : n <= 0x10000 ? 2 : n <= 0x100000000ull ? 4 : 8;
    for (int i = 0; i < bytes; ++i) {
      if (pos_ >= size_) {
        exhausted_ = true;
        break;
      }
      v |= uint64_t{data_[pos_++]} << (8 * i);
    }
    return v % n;
  }
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
           shared_maps = 0, snapshots = 0, mempolicies = 0, misuses = 0, ops = 0;
  std::string ToString() const {
    return absl::StrCat("offlines_ok=", offlines_ok, " failed=", offlines_failed,
                        " pauses=", pauses, " resumes=", resumes, " cancels=", cancels,
                        " expiries=", expiries, " ksm_migrated=", ksm_migrated, " pruned=", pruned,
                        " pages_migrated=", pages_migrated, " sharing_steps=", steps_with_sharing,
                        " locked_refusals=", locked_refusals, " move_pages_ksm=", move_pages_ksm,
                        " added=", blocks_added, " removed=", blocks_removed, " onlines=", onlines,
                        " online_vetoed=", online_vetoed, " munmaps=", munmaps,
                        " mprotects=", mprotects, " readonly_refusals=", readonly_refusals,
                        " shared_maps=", shared_maps, " snapshots=", snapshots,
                        " mempolicies=", mempolicies, " misuses=", misuses, " ops=", ops);
  }
};

struct DriverOptions {
  int steps = 300;   // operations per run (a bytes source may end earlier)
  int history = 12;  // recent operations kept for failure reports
};

namespace internal {
// Collects a failure message; on destruction hands it to the driver.
class FailureStream {
 public:
  FailureStream(std::string* sink, bool* failed, const char* file, int line, const char* cond)
      : sink_(sink), failed_(failed) {
    os_ << file << ":" << line << ": check failed: " << cond << " ";
  }
  ~FailureStream() {
    if (!*failed_) *sink_ = os_.str();  // the first failure wins
    *failed_ = true;
  }
  template <typename T>
  FailureStream& operator<<(const T& v) {
    if constexpr (std::is_enum_v<T>)
      os_ << static_cast<int64_t>(v);
    else
      os_ << v;
    return *this;
  }
  FailureStream& operator<<(Errno e) {
    os_ << ErrnoName(e);
    return *this;
  }

 private:
  std::ostringstream os_;
  std::string* sink_;
  bool* failed_;
};
struct Voidify {
  void operator&(const FailureStream&) {}
};
}  // namespace internal

// MD_ASSERT: on failure record and return from the (void) function.
// MD_EXPECT: on failure record and go on (the run stops after the step).
#define MD_ASSERT(cond)                                                                           \
  switch (0)                                                                                      \
  case 0:                                                                                         \
  default:                                                                                        \
    if (cond) {                                                                                   \
    } else /* NOLINT */                                                                           \
      return ::memnode::testing::internal::Voidify() &                                            \
             ::memnode::testing::internal::FailureStream(&failure_, &failed_, __FILE__, __LINE__, \
                                                         #cond)
#define MD_EXPECT(cond)                                                                        \
  switch (0)                                                                                   \
  case 0:                                                                                      \
  default:                                                                                     \
    if (cond) {                                                                                \
    } else /* NOLINT */                                                                        \
      ::memnode::testing::internal::Voidify() &                                                \
          ::memnode::testing::internal::FailureStream(&failure_, &failed_, __FILE__, __LINE__, \
                                                      #cond)
#define MD_RETURN_IF_FAILED() \
  do {                        \
    if (failed_) return;      \
  } while (0)

class ModelDriver {
 public:
  static constexpr size_t kMaxProcesses = 6;
  static constexpr uint64_t kMaxMappingPages = 6;
  static constexpr uint64_t kMaxPagesPerProcess = 12;
  static constexpr size_t kMaxBlocks = 11;
  static constexpr uint64_t kPagesPerBlock = 64;

  ModelDriver(ChoiceSource* src, Coverage* cov, DriverOptions options = {})
      : src_(src), cov_(cov), options_(options) {}

  // Runs up to options.steps operations; false at the first failed check.
  bool Run() {
    MachineConfig c;
    c.nodes = 2;
    c.blocks_per_node = 4;
    c.pages_per_block = kPagesPerBlock;
    c.clock = ClockMode::kManual;
    auto m = Machine::Create(c);
    MD_EXPECT(m.ok()) << m.status();
    if (failed_) return false;
    m_ = std::move(*m);
    auto run = m_->KsmUpdate(1, std::nullopt, std::nullopt);
    MD_EXPECT(run.ok() && *run == Errno::kOk);
    NewProcess();
    NewProcess();
    if (failed_) return false;
    for (step_ = 0; step_ < options_.steps && !src_->Exhausted(); ++step_) {
      op_.clear();
      now_ += absl::Seconds(1);
      Step();
      cov_->ops++;
      history_.push_back(absl::StrCat(step_, ":", op_));
      if (history_.size() > static_cast<size_t>(options_.history)) history_.erase(history_.begin());
      if (failed_) return false;
      Verify();
      if (failed_) return false;
    }
    // Leave nothing paused.
    if (paused_) {
      op_ = " final cancel";
      auto r = m_->CancelOffline(paused_->block);
      MD_EXPECT(r.ok()) << r.status();
      paused_.reset();
      if (!failed_) Verify();
    }
    return !failed_;
  }

  bool failed() const { return failed_; }
  int step() const { return step_; }
  // The failed check, the step and the recent operations.
  std::string Report() const {
    return absl::StrCat("step ", step_, ": ", failure_, "\n  recent steps:\n    ",
                        absl::StrJoin(history_, "\n    "));
  }
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

  struct Paused {
    BlockId block = 0;
    Phase phase = Phase::kNone;
    absl::Time paused_at;
    absl::Duration ttl;
  };

  uint64_t Rand(uint64_t n) { return src_->Rand(n); }
  bool Chance(int percent) { return Rand(100) < static_cast<uint64_t>(percent); }
  bool Locked() const { return paused_ && paused_->phase >= Phase::kGoingOffline; }

  static std::shared_ptr<std::vector<uint8_t>> ZeroPage() {
    return std::make_shared<std::vector<uint8_t>>(kPageSize, 0);
  }

  Pid AnyPid() {
    auto it = shadow_.begin();
    std::advance(it, Rand(shadow_.size()));
    return it->first;
  }

  // Runs of contiguous virtual pages of `pid`: (first vpn, pages).
  std::vector<std::pair<uint64_t, uint64_t>> Runs(Pid pid, bool readable_only = false) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    for (const auto& [vpn, pg] : shadow_[pid]) {
      if (readable_only && pg.prot == 0) continue;
      if (!out.empty() && out.back().first + out.back().second == vpn)
        out.back().second++;
      else
        out.emplace_back(vpn, 1);
    }
    return out;
  }

  // A random range of mapped pages of `pid` (contiguous, at most 6 pages).
  bool PickRange(Pid pid, Vaddr* start, uint64_t* count) {
    Space& s = shadow_[pid];
    if (s.empty()) return false;
    auto it = s.begin();
    std::advance(it, Rand(s.size()));
    uint64_t vpn = it->first, avail = 0;
    for (auto j = it; j != s.end() && j->first == vpn + avail && avail < kMaxMappingPages; ++j)
      avail++;
    *start = vpn << kPageShift;
    *count = 1 + Rand(avail);
    return true;
  }

  void NewMapping(Pid pid) {
    Space& s = shadow_[pid];
    if (s.size() >= kMaxPagesPerProcess) return;
    uint64_t pages = 1 + Rand(std::min(kMaxMappingPages, kMaxPagesPerProcess - s.size()));
    bool shared = Chance(15);
    uint32_t prot = Chance(10) ? kProtRead : kProtRead | kProtWrite;
    Vaddr hint = 0;
    bool fixed = false;
    if (!s.empty() && Chance(15)) {  // MAP_FIXED over (part of) a mapping
      auto it = s.begin();
      std::advance(it, Rand(s.size()));
      hint = it->first << kPageShift;
      fixed = true;
    }
    auto r = m_->Mmap(pid, hint, pages * kPageSize, prot, shared, fixed);
    MD_ASSERT(r.ok()) << r.status();
    MD_ASSERT(r->err == Errno::kOk) << r->err;
    if (fixed) {
      MD_EXPECT(r->address == hint) << r->address;
    }
    uint64_t first = r->address >> kPageShift;
    for (uint64_t i = 0; i < pages; ++i) s[first + i] = ShadowPage{ZeroPage(), prot, shared};
    if (shared) cov_->shared_maps++;
    absl::StrAppend(&op_, " mmap pid ", pid, " 0x", absl::Hex(r->address), " pages ", pages,
                    shared ? " shared" : "", fixed ? " fixed" : "", " prot ", prot);
  }

  void NewProcess() {
    ProcessParams pp;
    pp.home_node = static_cast<NodeId>(Rand(2));
    pp.privileged = Chance(30);
    auto p = m_->CreateProcess(pp);
    MD_ASSERT(p.ok()) << p.status();
    shadow_[*p];
    privileged_[*p] = pp.privileged;
    absl::StrAppend(&op_, " create pid ", *p, " home ", pp.home_node, " priv ", pp.privileged);
    NewMapping(*p);
  }

  // Byte k of a fill stream (SPEC: byte / 64-bit pattern / seeded SplitMix64).
  static uint8_t FillByte(const FillPattern& fp, uint64_t k) {
    switch (fp.kind) {
      case FillPattern::kByte: return static_cast<uint8_t>(fp.value);
      case FillPattern::kPattern64: return static_cast<uint8_t>(fp.value >> (8 * (k % 8)));
      case FillPattern::kRandom: {
        uint64_t z = fp.value + (k / 8 + 1) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        return static_cast<uint8_t>(z >> (8 * (k % 8)));
      }
    }
    return 0;
  }

  bool Writable(Pid pid, Vaddr start, uint64_t count) {
    Space& s = shadow_[pid];
    for (uint64_t i = 0; i < count; ++i)
      if (!(s[(start >> kPageShift) + i].prot & kProtWrite)) return false;
    return true;
  }

  void DoWrite() {
    Pid pid = AnyPid();
    Vaddr start;
    uint64_t count;
    if (!PickRange(pid, &start, &count)) return NewMapping(pid);
    Space& s = shadow_[pid];
    const uint64_t vpn0 = start >> kPageShift;
    if (!Writable(pid, start, count)) {
      // A write needs PROT_WRITE on every page; nothing is written.
      FillPattern fp;
      fp.value = kPatterns[Rand(sizeof(kPatterns))];
      auto r = m_->Fill(pid, start, count * kPageSize, fp);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(r->err == Errno::kEACCES) << r->err;
      MD_EXPECT(r->bytes_done == 0u) << r->bytes_done;
      cov_->readonly_refusals++;
      absl::StrAppend(&op_, " fill read-only pid ", pid, " 0x", absl::Hex(start), " -> ",
                      ErrnoName(r->err));
      return;
    }
    if (Chance(60)) {
      FillPattern fp;
      uint64_t kind = Rand(10);
      if (kind < 8) {
        fp.kind = FillPattern::kByte;
        fp.value = kPatterns[Rand(sizeof(kPatterns))];
      } else if (kind == 8) {
        fp.kind = FillPattern::kPattern64;
        fp.value = Chance(50) ? 0x0123456789abcdefULL : 0x5a5a5a5a5a5a5a5aULL;
      } else {
        fp.kind = FillPattern::kRandom;
        fp.value = 1 + Rand(3);
      }
      // Mostly whole pages, sometimes a partial range.
      uint64_t off = Chance(80) ? 0 : Rand(kPageSize);
      uint64_t len = count * kPageSize - off;
      if (Chance(20)) len = 1 + Rand(len);
      auto r = m_->Fill(pid, start + off, len, fp);
      MD_ASSERT(r.ok()) << r.status();
      MD_ASSERT(r->err == Errno::kOk) << r->err;
      MD_EXPECT(r->bytes_done == len) << r->bytes_done;
      for (uint64_t k = 0; k < len; ++k) {
        uint64_t a = off + k;
        (*s[vpn0 + a / kPageSize].data)[a % kPageSize] = FillByte(fp, k);
      }
      absl::StrAppend(&op_, " fill(", static_cast<int>(fp.kind), ") pid ", pid, " 0x",
                      absl::Hex(start + off), " len ", len, " value 0x", absl::Hex(fp.value));
      return;
    }
    uint64_t off = Rand(kPageSize);
    uint64_t len = 1 + Rand(std::min<uint64_t>(count * kPageSize - off, 32));
    std::vector<uint8_t> data(len);
    bool same = Chance(50);
    for (uint64_t k = 0; k < len; ++k) {
      uint64_t a = off + k;
      data[k] =
          same ? (*s[vpn0 + a / kPageSize].data)[a % kPageSize] : static_cast<uint8_t>(Rand(256));
    }
    auto r = m_->Write(pid, start + off, data.data(), len);
    MD_ASSERT(r.ok()) << r.status();
    MD_ASSERT(r->err == Errno::kOk) << r->err;
    for (uint64_t k = 0; k < len; ++k) {
      uint64_t a = off + k;
      (*s[vpn0 + a / kPageSize].data)[a % kPageSize] = data[k];
    }
    absl::StrAppend(&op_, " write pid ", pid, " 0x", absl::Hex(start + off), " len ", len,
                    same ? " same bytes" : "");
  }

  void DoMadvise(Advice advice) {
    Pid pid = AnyPid();
    Vaddr start;
    uint64_t count;
    if (!PickRange(pid, &start, &count)) return;
    auto r = m_->Madvise(pid, start, count * kPageSize, advice);
    MD_ASSERT(r.ok()) << r.status();
    // ks 8.3-8.4 / SPEC Decision 5: never blocked by an offline.
    MD_ASSERT(*r == Errno::kOk) << *r;
    if (advice == Advice::kDontNeed) {
      // Private pages read as zero again; shmem keeps its object's pages.
      Space& s = shadow_[pid];
      for (uint64_t i = 0; i < count; ++i) {
        ShadowPage& pg = s[(start >> kPageShift) + i];
        if (!pg.shared) pg.data = ZeroPage();
      }
    }
    absl::StrAppend(&op_, " madvise(", static_cast<int>(advice), ") pid ", pid, " 0x",
                    absl::Hex(start), " pages ", count);
  }

  void DoMunmap() {
    Pid pid = AnyPid();
    Vaddr start;
    uint64_t count;
    if (!PickRange(pid, &start, &count)) return;
    auto r = m_->Munmap(pid, start, count * kPageSize);
    MD_ASSERT(r.ok()) << r.status();
    MD_ASSERT(*r == Errno::kOk) << *r;
    Space& s = shadow_[pid];
    for (uint64_t i = 0; i < count; ++i) s.erase((start >> kPageShift) + i);
    cov_->munmaps++;
    absl::StrAppend(&op_, " munmap pid ", pid, " 0x", absl::Hex(start), " pages ", count);
  }

  void DoMprotect() {
    Pid pid = AnyPid();
    Vaddr start;
    uint64_t count;
    if (!PickRange(pid, &start, &count)) return;
    uint64_t k = Rand(10);
    uint32_t prot = k < 6 ? kProtRead | kProtWrite : k < 9 ? kProtRead : 0;
    auto r = m_->Mprotect(pid, start, count * kPageSize, prot);
    MD_ASSERT(r.ok()) << r.status();
    MD_ASSERT(*r == Errno::kOk) << *r;
    Space& s = shadow_[pid];
    for (uint64_t i = 0; i < count; ++i) s[(start >> kPageShift) + i].prot = prot;
    cov_->mprotects++;
    absl::StrAppend(&op_, " mprotect pid ", pid, " 0x", absl::Hex(start), " pages ", count,
                    " prot ", prot);
  }

  // Nodes whose memory is online (N_HIGH_MEMORY).
  std::vector<NodeId> MemoryNodes() {
    std::set<NodeId> s;
    for (const auto& b : m_->ListBlocks())
      if (b.state == BlockState::kOnline) s.insert(b.node);
    return std::vector<NodeId>(s.begin(), s.end());
  }

  // (pid, address) -> pfn of every KSM-mapped page.
  std::map<std::pair<Pid, Vaddr>, Pfn> KsmPages() {
    std::map<std::pair<Pid, Vaddr>, Pfn> out;
    for (const auto& [pid, space] : shadow_)
      for (const auto& [vpn, pages] : Runs(pid)) {
        auto t = m_->Translate(pid, vpn << kPageShift, pages);
        if (!t.ok()) continue;
        for (const Translation& x : *t)
          if (x.present && x.state == PageState::kKsm) out[{pid, x.address}] = x.pfn;
      }
    return out;
  }

  void ExpectKsmPagesUnmoved(const std::map<std::pair<Pid, Vaddr>, Pfn>& before) {
    for (const auto& [key, pfn] : before) {
      auto t = m_->Translate(key.first, key.second, 1);
      MD_ASSERT(t.ok()) << t.status();
      MD_EXPECT((*t)[0].pfn == pfn)
          << "KSM page of pid " << key.first << " at 0x" << std::hex << key.second << " moved";
    }
  }

  void DoMigratePages() {
    Pid target = AnyPid();
    Pid caller = target;
    if (Chance(30)) caller = AnyPid();  // maybe someone else: same uid 0 here
    std::vector<NodeId> mem = MemoryNodes();
    uint64_t from = 1 + Rand(3), to = uint64_t{1} << mem[Rand(mem.size())];
    auto before = KsmPages();
    auto r = m_->MigratePages(caller, target, from, to);
    MD_ASSERT(r.ok()) << r.status();
    MD_EXPECT(r->err == Errno::kOk) << r->err;
    ExpectKsmPagesUnmoved(before);
    absl::StrAppend(&op_, " migrate_pages ", caller, " -> ", target, " ", from, "->", to,
                    " not_migrated ", r->not_migrated);
  }

  void DoMbind() {
    Pid pid = AnyPid();
    Vaddr start;
    uint64_t count;
    if (!PickRange(pid, &start, &count)) return;
    std::vector<NodeId> mem = MemoryNodes();
    uint64_t nodes = uint64_t{1} << mem[Rand(mem.size())];
    if (Chance(30)) nodes = 3;
    MemPolicy::Mode mode = static_cast<MemPolicy::Mode>(1 + Rand(3));
    uint32_t flags = 2;  // MOVE
    if (privileged_[pid] && Chance(50)) flags = 4;
    bool strict = Chance(30);
    if (strict) flags |= 1;
    auto before = KsmPages();
    auto r = m_->Mbind(pid, start, count * kPageSize, mode, nodes, flags);
    MD_ASSERT(r.ok()) << r.status();
    // ks 6.3 r12: 0, or EIO with STRICT when a queued page did not migrate.
    if (strict) {
      MD_EXPECT(*r == Errno::kOk || *r == Errno::kEIO) << *r;
    } else {
      MD_EXPECT(*r == Errno::kOk) << *r;
    }
    ExpectKsmPagesUnmoved(before);
    absl::StrAppend(&op_, " mbind pid ", pid, " 0x", absl::Hex(start), " pages ", count, " mode ",
                    mode, " nodes ", nodes, " flags ", flags, " -> ", ErrnoName(*r));
  }

  void DoMovePages() {
    Pid target = AnyPid();
    Pid caller = Chance(70) ? target : AnyPid();
    if (shadow_[target].empty()) return;
    std::vector<Vaddr> addrs;
    std::vector<int32_t> nodes;
    std::vector<NodeId> mem = MemoryNodes();
    uint64_t n = 1 + Rand(6);
    for (uint64_t i = 0; i < n; ++i) {
      Vaddr start;
      uint64_t count;
      PickRange(target, &start, &count);
      addrs.push_back(start + Rand(count) * kPageSize);
      nodes.push_back(static_cast<int32_t>(mem[Rand(mem.size())]));
    }
    bool query = Chance(25);
    uint32_t flags = 2;
    if (privileged_[caller] && Chance(50)) flags = 4;
    std::vector<Translation> pre;
    for (Vaddr a : addrs) {
      auto t = m_->Translate(target, a, 1);
      MD_ASSERT(t.ok()) << t.status();
      pre.push_back((*t)[0]);
    }
    auto before = KsmPages();
    auto r = m_->MovePages(caller, target, addrs, query ? std::vector<int32_t>{} : nodes, flags);
    MD_ASSERT(r.ok()) << r.status();
    MD_ASSERT(r->err == Errno::kOk) << r->err;
    MD_ASSERT(r->status.size() == addrs.size()) << r->status.size();
    for (size_t i = 0; i < addrs.size(); ++i) {
      const Translation& t = pre[i];
      // ks 6.2 r7-8: KSM, zero page and unpopulated -> -ENOENT.
      if (!t.present || t.pfn == 0 || t.state == PageState::kKsm) {
        MD_EXPECT(r->status[i] == -2) << "entry " << i << " status " << r->status[i];
        if (t.state == PageState::kKsm) cov_->move_pages_ksm++;
        continue;
      }
      if (query) {
        MD_EXPECT(r->status[i] == static_cast<int32_t>(t.node)) << "entry " << i;
        continue;
      }
      int32_t s = r->status[i];
      MD_EXPECT(s == nodes[i] || s == -13 || s == -11 || s == -16) << "entry " << i << " " << s;
      // (A page listed twice may be reported "already there" for one entry
      // and moved elsewhere by another: check single entries only.)
      int same = 0;
      for (const Translation& o : pre) same += o.present && o.pfn == t.pfn;
      if (s == nodes[i] && same == 1) {
        auto now = (*m_->Translate(target, addrs[i], 1))[0];
        MD_EXPECT(static_cast<int32_t>(now.node) == nodes[i]) << "entry " << i;
      }
    }
    ExpectKsmPagesUnmoved(before);
    absl::StrAppend(&op_, " move_pages ", caller, " -> ", target, " n ", n, query ? " query" : "");
  }

  void DoMempolicy() {
    Pid pid = AnyPid();
    cov_->mempolicies++;
    if (Chance(50)) {
      auto mode = static_cast<MemPolicy::Mode>(Rand(4));
      uint64_t nodes = mode == MemPolicy::kDefault ? (Chance(90) ? 0 : 1) : Rand(4);
      auto r = m_->SetMempolicy(pid, mode, nodes);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(*r == Errno::kOk || *r == Errno::kEINVAL) << *r;
      if (*r == Errno::kOk) {
        auto g = m_->GetMempolicy(pid, std::nullopt, false);
        MD_ASSERT(g.ok()) << g.status();
        MD_EXPECT(g->err == Errno::kOk) << g->err;
        MD_EXPECT(g->policy.mode == mode) << g->policy.mode << " set " << mode;
      }
      absl::StrAppend(&op_, " set_mempolicy pid ", pid, " mode ", mode, " nodes ", nodes, " -> ",
                      ErrnoName(*r));
      return;
    }
    Vaddr start;
    uint64_t count;
    if (!PickRange(pid, &start, &count)) return;
    bool node_of = Chance(70);
    auto g = m_->GetMempolicy(pid, start, node_of);
    MD_ASSERT(g.ok()) << g.status();
    const ShadowPage& pg = shadow_[pid][start >> kPageShift];
    if (node_of && pg.prot == 0) {
      MD_EXPECT(g->err == Errno::kEFAULT) << g->err;
    } else {
      MD_EXPECT(g->err == Errno::kOk) << g->err;
      if (node_of && g->err == Errno::kOk) {
        // The page is now present (read-faulted) and g->node is its node.
        auto t = m_->Translate(pid, start, 1);
        MD_ASSERT(t.ok()) << t.status();
        MD_EXPECT((*t)[0].present) << "get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) did not fault in";
        MD_EXPECT(g->node == static_cast<int32_t>((*t)[0].node))
            << "node " << g->node << " page on " << (*t)[0].node;
      }
    }
    absl::StrAppend(&op_, " get_mempolicy pid ", pid, " 0x", absl::Hex(start),
                    node_of ? " node" : "", " -> ", ErrnoName(g->err));
  }

  void DoPin() {
    if (!pins_.empty() && Chance(50)) {
      size_t i = Rand(pins_.size());
      auto [pid, a] = pins_[i];
      pins_.erase(pins_.begin() + i);
      auto r = m_->Unpin(pid, a, kPageSize);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(r->err == Errno::kOk) << r->err;
      absl::StrAppend(&op_, " unpin pid ", pid, " 0x", absl::Hex(a));
      return;
    }
    if (pins_.size() >= 3) return;
    Pid pid = AnyPid();
    Vaddr start;
    uint64_t count;
    if (!PickRange(pid, &start, &count)) return;
    Vaddr a = start + Rand(count) * kPageSize;
    auto t = (*m_->Translate(pid, a, 1))[0];
    if (!t.present || t.pfn == 0) return;
    for (const auto& [p, x] : pins_)
      if (p == pid && x == a) return;
    auto r = m_->Pin(pid, a, kPageSize);
    MD_ASSERT(r.ok()) << r.status();
    MD_ASSERT(r->err == Errno::kOk) << r->err;
    pins_.emplace_back(pid, a);
    absl::StrAppend(&op_, " pin pid ", pid, " 0x", absl::Hex(a));
  }

  void CheckOfflineResult(const OfflineReport& r) {
    auto b = m_->GetBlock(r.block);
    MD_ASSERT(b.ok()) << b.status();
    cov_->pages_migrated += r.pages_migrated;
    cov_->ksm_migrated += r.ksm_pages_migrated;
    cov_->pruned += r.stable_nodes_pruned;
    if (r.paused) {
      MD_EXPECT(b->state == BlockState::kGoingOffline) << BlockStateName(b->state);
      cov_->pauses++;
      paused_ = Paused{r.block, r.phase, now_, ttl_};
      return;
    }
    paused_.reset();
    if (r.err == Errno::kOk) {
      MD_EXPECT(r.phase == Phase::kDone) << OfflinePhaseName(r.phase);
      MD_EXPECT(b->state == BlockState::kOffline) << BlockStateName(b->state);
      cov_->offlines_ok++;
    } else {
      // ks 7.2 r11: the isolation is undone.
      MD_EXPECT(b->state == BlockState::kOnline) << BlockStateName(b->state) << " " << r.failure;
      cov_->offlines_failed++;
    }
  }

  void DoOffline() {
    if (paused_) {
      OfflineOptions o;
      auto r = m_->OfflineBlock(1 + static_cast<BlockId>(Rand(7)), o, now_);
      MD_EXPECT(r.status().code() == absl::StatusCode::kFailedPrecondition) << r.status();
      MD_EXPECT(ErrorReason(r.status()) == "OFFLINE_IN_PROGRESS") << r.status();
      absl::StrAppend(&op_, " offline while paused -> refused");
      return;
    }
    auto blocks = m_->ListBlocks();
    std::vector<BlockId> cand;
    for (const auto& b : blocks) {
      if (b.id == 0 || b.state != BlockState::kOnline) continue;
      int others = 0;
      for (const auto& o : blocks)
        if (o.node == b.node && o.id != b.id && o.state == BlockState::kOnline) others++;
      if (others > 0) cand.push_back(b.id);
    }
    if (cand.empty()) return;
    // Prefer blocks holding KSM pages, then blocks in use (more migrations,
    // more chances of the seed's race: a freed KSM page with a live node).
    std::vector<BlockId> ksm, used;
    for (BlockId b : cand) {
      if (blocks[b].count[static_cast<int>(PageState::kKsm)] > 0) ksm.push_back(b);
      if (blocks[b].free_pages < blocks[b].pages) used.push_back(b);
    }
    std::vector<BlockId> stale;  // blocks named by a stale node's kpfn
    for (const StableNodeInfo& n : m_->KsmStableNodes())
      if (n.stale && std::count(cand.begin(), cand.end(), n.kpfn / kPagesPerBlock))
        stale.push_back(static_cast<BlockId>(n.kpfn / kPagesPerBlock));
    BlockId id = cand[Rand(cand.size())];
    if (!stale.empty() && Chance(80))
      id = stale[Rand(stale.size())];
    else if (!ksm.empty() && Chance(50))
      id = ksm[Rand(ksm.size())];
    else if (!used.empty() && Chance(70))
      id = used[Rand(used.size())];
    OfflineOptions o;
    static constexpr Phase kPauses[] = {Phase::kNone,         Phase::kNone,
                                        Phase::kIsolated,     Phase::kGoingOffline,
                                        Phase::kGoingOffline, Phase::kMigrated};
    o.pause_after = kPauses[Rand(6)];
    o.timeout_ns = 5 * 1000000ull;
    ttl_ = absl::Seconds(3 + static_cast<int64_t>(Rand(20)));
    o.pause_ttl = ttl_;
    if (Chance(10)) {
      // Sometimes an unmovable kernel page: isolation fails (ks 7.2 r7).
      auto k = m_->AllocKernelPages(id, 1, true);
      if (k.ok()) kernel_pages_.push_back(id);
    }
    auto r = m_->OfflineBlock(id, o, now_);
    MD_ASSERT(r.ok()) << r.status();
    absl::StrAppend(&op_, " offline ", id, " pause ", OfflinePhaseName(o.pause_after), " -> ",
                    ErrnoName(r->err), r->paused ? " paused" : "", " ", r->failure);
    CheckOfflineResult(*r);
    MD_RETURN_IF_FAILED();
    if (!kernel_pages_.empty() && kernel_pages_.back() == id && !r->paused) {
      MD_EXPECT(r->err == Errno::kEBUSY) << r->err;
      MD_EXPECT(r->notifier_calls.empty()) << "notifiers called";  // ks 7.2 r7
      MD_ASSERT(m_->FreeKernelPages(id, 1).ok());
      kernel_pages_.pop_back();
    }
  }

  void DoPausedAction() {
    uint64_t k = Rand(3);
    if (k == 0) {
      std::optional<Phase> next;
      if (Chance(30)) next = paused_->phase == Phase::kIsolated ? Phase::kMigrated : Phase::kNone;
      BlockId id = paused_->block;
      auto r = m_->ResumeOffline(id, next, now_);
      MD_ASSERT(r.ok()) << r.status();
      cov_->resumes++;
      absl::StrAppend(&op_, " resume ", id, " -> ", ErrnoName(r->err), r->paused ? " paused" : "",
                      " ", r->failure);
      CheckOfflineResult(*r);
    } else if (k == 1) {
      BlockId id = paused_->block;
      auto r = m_->CancelOffline(id);
      MD_ASSERT(r.ok()) << r.status();
      cov_->cancels++;
      absl::StrAppend(&op_, " cancel ", id);
      MD_EXPECT(r->err != Errno::kOk);
      CheckOfflineResult(*r);
    } else {
      bool expect = now_ - paused_->paused_at >= paused_->ttl;
      BlockId id = paused_->block;
      bool got = m_->ExpirePausedOffline(now_);
      MD_EXPECT(got == expect) << got;
      absl::StrAppend(&op_, " expire -> ", got);
      if (got) {
        cov_->expiries++;
        paused_.reset();
        MD_EXPECT(m_->GetBlock(id)->state == BlockState::kOnline);
      }
    }
  }

  void DoKsmStep() {
    absl::StatusOr<KsmStepResult> s;
    uint64_t kind = Rand(10);
    uint64_t n = 1 + Rand(40);
    if (kind == 0) {
      s = m_->KsmStepPasses(1 + Rand(2), 2000);
    } else if (kind == 1) {
      // ksmd's batch (REALTIME machines' thread, called by hand here): waits
      // (does nothing) while an offline holds KSM's lock.
      KsmdTick t = m_->KsmdBatch();
      absl::StrAppend(&op_, " ksmd batch -> run ", t.should_run);
      return;
    } else {
      s = m_->KsmStepVisits(n);
    }
    if (Locked()) {
      MD_EXPECT(s.status().code() == absl::StatusCode::kFailedPrecondition) << s.status();
      MD_EXPECT(ErrorReason(s.status()) == "KSM_LOCKED") << s.status();
      cov_->locked_refusals++;
      absl::StrAppend(&op_, " step refused (locked)");
      return;
    }
    MD_ASSERT(s.ok()) << s.status();
    absl::StrAppend(&op_, kind == 0 ? " step passes" : " step visits ", n, " -> ", s->visits);
  }

  void DoRun() {
    if (Chance(25)) {
      // Knobs that the kernel writes without ksm_thread_mutex.
      uint64_t pages = 1 + Rand(200), sleep = Rand(50);
      auto r = m_->KsmUpdate(std::nullopt, pages, sleep);
      MD_ASSERT(r.ok() || ErrorReason(r.status()) == "KSM_LOCKED") << r.status();
      if (r.ok()) {
        MD_EXPECT(*r == Errno::kOk) << *r;
      }
      absl::StrAppend(&op_, " pages_to_scan=", pages, " sleep_millisecs=", sleep);
      return;
    }
    uint64_t v = Rand(3);
    const uint32_t old_run = m_->GetKsm().run;
    auto r = Chance(50) ? m_->KsmUpdate(v, std::nullopt, std::nullopt)
                        : m_->KsmWriteSysfs("run", absl::StrCat(v, "\n"));
    if (Locked()) {
      MD_EXPECT(r.status().code() == absl::StatusCode::kFailedPrecondition) << r.status();
      MD_EXPECT(ErrorReason(r.status()) == "KSM_LOCKED") << r.status();
      cov_->locked_refusals++;
      absl::StrAppend(&op_, " run=", v, " refused (locked)");
      return;
    }
    MD_ASSERT(r.ok()) << r.status();
    MD_ASSERT(*r == Errno::kOk) << *r;
    if (v == 2 && old_run != 2) {  // writing the current value is a no-op
      KsmInfo k = m_->GetKsm();    // ks 10.14
      MD_EXPECT(k.pages_shared == 0u) << k.pages_shared;
      MD_EXPECT(k.pages_sharing == 0u) << k.pages_sharing;
      MD_EXPECT(k.pages_unshared == 0u) << k.pages_unshared;
      MD_EXPECT(k.rmap_items == 0u) << k.rmap_items;
      MD_EXPECT(k.full_scans == 0u) << k.full_scans;
    }
    absl::StrAppend(&op_, " run=", v);
  }

  void DoBlocks() {
    uint64_t k = Rand(4);
    auto blocks = m_->ListBlocks();
    std::vector<BlockId> offline;
    for (const auto& b : blocks)
      if (b.state == BlockState::kOffline) offline.push_back(b.id);
    if (k == 0 && !offline.empty()) {
      BlockId id = offline[Rand(offline.size())];
      auto r = m_->OnlineBlock(id);
      MD_ASSERT(r.ok()) << r.status();
      if (online_vetoes_ > 0) {
        // An injected GOING_ONLINE failure: MEM_CANCEL_ONLINE, still offline.
        MD_EXPECT(*r != Errno::kOk);
        MD_EXPECT(m_->GetBlock(id)->state == BlockState::kOffline);
        online_vetoes_--;
        cov_->online_vetoed++;
      } else {
        MD_EXPECT(*r == Errno::kOk) << *r;  // ks 7.4 r20
        cov_->onlines++;
      }
      absl::StrAppend(&op_, " online ", id, " -> ", ErrnoName(*r));
    } else if (k == 1 && blocks.size() < kMaxBlocks) {
      auto r = m_->AddBlock(static_cast<NodeId>(Rand(2)));
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(m_->GetBlock(*r)->state == BlockState::kOffline);
      cov_->blocks_added++;
      absl::StrAppend(&op_, " add block ", *r);
    } else if (k == 2 && !offline.empty()) {
      BlockId id = offline[Rand(offline.size())];
      auto r = m_->RemoveBlock(id);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(*r == Errno::kOk) << *r;
      cov_->blocks_removed++;
      absl::StrAppend(&op_, " remove block ", id);
    } else {
      // A block not offline can neither be onlined nor removed.
      BlockId id = static_cast<BlockId>(Rand(blocks.size()));
      if (blocks[id].state == BlockState::kOnline ||
          blocks[id].state == BlockState::kGoingOffline) {
        MD_EXPECT(*m_->OnlineBlock(id) == Errno::kEINVAL);
        MD_EXPECT(*m_->RemoveBlock(id) == Errno::kEBUSY);
      }
      absl::StrAppend(&op_, " wrong-state online/remove ", id);
    }
  }

  void DoInject() {
    if (Chance(30)) {
      m_->ClearNotifierFailures();
      online_vetoes_ = 0;
      absl::StrAppend(&op_, " clear notifier failures");
      return;
    }
    int prio = Chance(50) ? 50 : 200;
    Errno err = Chance(50) ? Errno::kEBUSY : Errno::kENOMEM;
    auto event = MemEvent::kGoingOffline;
    uint64_t k = Rand(10);
    if (k == 0) {
      event = MemEvent::kGoingOnline;
      online_vetoes_++;
    } else if (k == 1) {
      event = MemEvent::kOffline;  // the kernel ignores MEM_OFFLINE's result
    } else if (k == 2) {
      event = MemEvent::kCancelOffline;
    }
    absl::Status st = m_->InjectNotifierFailure(event, prio, err, 1);
    if (event == MemEvent::kOffline || event == MemEvent::kCancelOffline) {
      // Events whose result the kernel ignores: refused as misuse.
      MD_EXPECT(st.ok() || st.code() == absl::StatusCode::kInvalidArgument) << st;
    } else {
      MD_ASSERT(st.ok()) << st;
    }
    absl::StrAppend(&op_, " inject ", MemEventName(event), " prio ", prio, " ", ErrnoName(err));
  }

  void DoSnapshot() {
    auto s = m_->Snapshot();
    if (paused_) {
      MD_EXPECT(s.status().code() == absl::StatusCode::kFailedPrecondition) << s.status();
      MD_EXPECT(ErrorReason(s.status()) == "OFFLINE_IN_PROGRESS") << s.status();
      absl::StrAppend(&op_, " snapshot while paused -> refused");
      return;
    }
    MD_ASSERT(s.ok()) << s.status();
    std::string before = m_->Check().state_digest;
    auto r = Machine::Restore(*s);
    MD_ASSERT(r.ok()) << r.status();
    CheckResult c = (*r)->Check();
    MD_ASSERT(c.ok()) << absl::StrJoin(c.violations, "\n");
    MD_EXPECT(c.state_digest == before) << "restored digest " << c.state_digest << " != " << before;
    auto again = (*r)->Snapshot();
    MD_ASSERT(again.ok()) << again.status();
    MD_EXPECT(*again == *s) << "snapshot of the restored machine differs (" << again->size()
                            << " vs " << s->size() << " bytes)";
    m_ = std::move(*r);  // go on with the restored machine
    cov_->snapshots++;
    absl::StrAppend(&op_, " snapshot+restore ", s->size(), " bytes");
  }

  // API misuse that must change nothing: unknown pids and blocks, unaligned
  // or overflowing ranges, invalid knob values.
  void DoMisuse() {
    cov_->misuses++;
    const Pid ghost = 100000 + static_cast<Pid>(Rand(1000));
    Pid pid = AnyPid();
    uint64_t k = Rand(10);
    switch (k) {
      case 0: {
        auto r = m_->Fill(ghost, Machine::kMmapBase, kPageSize, FillPattern{});
        MD_EXPECT(r.status().code() == absl::StatusCode::kNotFound) << r.status();
        break;
      }
      case 1: {
        auto r = m_->Munmap(pid, Machine::kMmapBase + 1, kPageSize);
        MD_ASSERT(r.ok()) << r.status();
        MD_EXPECT(*r == Errno::kEINVAL) << *r;
        break;
      }
      case 2: {
        auto r = m_->Read(pid, ~uint64_t{0} - 10, 100);
        MD_ASSERT(r.ok()) << r.status();
        MD_EXPECT(r->err == Errno::kEFAULT) << r->err;
        break;
      }
      case 3: {
        auto r = m_->Madvise(pid, Machine::kMmapBase, ~uint64_t{0} - 4096, Advice::kMergeable);
        MD_ASSERT(r.ok()) << r.status();
        MD_EXPECT(*r != Errno::kOk) << *r;
        break;
      }
      case 4: {
        auto r = m_->KsmWriteSysfs("pages_to_scan", "not-a-number");
        MD_EXPECT(!r.ok() || *r == Errno::kEINVAL) << r.status();
        break;
      }
      case 5: {
        auto r = m_->OnlineBlock(1000 + static_cast<BlockId>(Rand(10)));
        MD_EXPECT(!r.ok()) << "online of a missing block";
        break;
      }
      case 6: {
        auto r = m_->MovePages(pid, pid, {Machine::kMmapBase - kPageSize * 7}, {0}, 2);
        MD_ASSERT(r.ok()) << r.status();
        if (r->err == Errno::kOk && r->status.size() == 1) {
          MD_EXPECT(r->status[0] == -14 || r->status[0] == -2) << r->status[0];
        }
        break;
      }
      case 7: {
        auto r = m_->Mbind(pid, Machine::kMmapBase, kPageSize, MemPolicy::kBind, 0, 2);
        MD_ASSERT(r.ok()) << r.status();
        MD_EXPECT(*r == Errno::kEINVAL) << *r;
        break;
      }
      case 8: {
        auto r = m_->Unpin(pid, 0x1000, kPageSize);
        MD_ASSERT(r.ok()) << r.status();
        MD_EXPECT(r->err == Errno::kEINVAL) << r->err;
        break;
      }
      default: {
        auto r = m_->Write(pid, 0x1000, reinterpret_cast<const uint8_t*>("x"), 1);
        MD_ASSERT(r.ok()) << r.status();
        MD_EXPECT(r->err == Errno::kEFAULT) << r->err;
        break;
      }
    }
    absl::StrAppend(&op_, " misuse ", k, " pid ", pid);
  }

  void Step() {
    uint64_t r = Rand(112);
    if (paused_ && r < 8) return DoPausedAction();
    if (r < 25) return DoWrite();
    if (r < 32) return DoMadvise(Advice::kMergeable);
    if (r < 34) return DoMadvise(Advice::kUnmergeable);
    if (r < 35) return DoMadvise(Advice::kDontNeed);
    if (r < 38) {
      if (shadow_.size() >= kMaxProcesses) return DoWrite();
      Pid parent = AnyPid();
      auto c = m_->Fork(parent);
      MD_ASSERT(c.ok()) << c.status();
      Space& child = shadow_[*c];
      for (const auto& [vpn, pg] : shadow_[parent]) {
        ShadowPage copy = pg;  // MAP_SHARED: the same object
        if (!pg.shared) copy.data = std::make_shared<std::vector<uint8_t>>(*pg.data);
        child[vpn] = copy;
      }
      privileged_[*c] = privileged_[parent];
      absl::StrAppend(&op_, " fork ", parent, " -> ", *c);
      return;
    }
    if (r < 40) {
      if (shadow_.size() <= 1) return NewProcess();
      Pid pid = AnyPid();
      auto e = m_->Exit(pid);
      MD_ASSERT(e.ok()) << e.status();
      shadow_.erase(pid);
      pins_.erase(std::remove_if(pins_.begin(), pins_.end(),
                                 [pid](const auto& x) { return x.first == pid; }),
                  pins_.end());
      absl::StrAppend(&op_, " exit ", pid);
      return;
    }
    if (r < 42) {
      if (shadow_.size() < kMaxProcesses) return NewProcess();
      return NewMapping(AnyPid());
    }
    if (r < 60) return DoKsmStep();
    if (r < 62) return DoRun();
    if (r < 67) return DoMigratePages();
    if (r < 72) return DoMbind();
    if (r < 77) return DoMovePages();
    if (r < 80) return DoPin();
    if (r < 88) return DoOffline();
    if (r < 91) return DoBlocks();
    if (r < 93) return DoInject();
    if (r < 100) return DoKsmStep();
    if (r < 103) return NewMapping(AnyPid());
    if (r < 105) return DoMunmap();
    if (r < 107) return DoMprotect();
    if (r < 109) return DoMempolicy();
    if (r < 110) return DoSnapshot();
    return DoMisuse();
  }

  void Verify() {
    for (auto& [pid, space] : shadow_) {
      for (const auto& [vpn0, pages] : Runs(pid, /*readable_only=*/true)) {
        const Vaddr start = vpn0 << kPageShift;
        auto r = m_->Read(pid, start, pages * kPageSize);
        MD_ASSERT(r.ok()) << r.status();
        MD_ASSERT(r->err == Errno::kOk)
            << r->err << " reading pid " << pid << " 0x" << std::hex << start;
        MD_ASSERT(r->data.size() == pages * kPageSize) << r->data.size();
        for (uint64_t i = 0; i < pages; ++i) {
          const std::vector<uint8_t>& mem = *space[vpn0 + i].data;
          const char* got = r->data.data() + i * kPageSize;
          if (std::memcmp(got, mem.data(), kPageSize) != 0) {
            size_t j = 0;
            while (static_cast<uint8_t>(got[j]) == mem[j]) ++j;
            MD_ASSERT(false) << "pid " << pid << ": first difference at 0x" << std::hex
                             << start + i * kPageSize + j << " read 0x"
                             << int(static_cast<uint8_t>(got[j])) << " shadow 0x" << int(mem[j]);
          }
        }
      }
      for (const auto& [vpn0, pages] : Runs(pid)) {
        auto t = m_->Translate(pid, vpn0 << kPageShift, pages);
        MD_ASSERT(t.ok()) << t.status();
        for (const Translation& x : *t) {
          MD_EXPECT(x.mapped) << "pid " << pid << " 0x" << std::hex << x.address << " unmapped";
          if (!x.present) continue;
          auto f = m_->GetFrame(x.pfn);
          MD_ASSERT(f.ok()) << f.status();
          MD_EXPECT(f->state != PageState::kOffline)
              << "pid " << pid << " 0x" << std::hex << x.address << " maps offline pfn " << x.pfn;
          MD_EXPECT(f->state != PageState::kFree)
              << "pid " << pid << " 0x" << std::hex << x.address << " maps free pfn " << x.pfn;
        }
      }
    }
    CheckResult c = m_->Check();
    MD_ASSERT(c.ok()) << absl::StrJoin(c.violations, "\n");
    digests_.push_back(c.state_digest);
    auto blocks = m_->ListBlocks();
    uint64_t shared = 0, sharing = 0;
    for (const StableNodeInfo& n : m_->KsmStableNodes()) {
      if (!n.mappings.empty()) {
        shared++;
        sharing += n.mappings.size() - 1;
      }
      BlockId b = static_cast<BlockId>(n.kpfn / kPagesPerBlock);
      MD_ASSERT(b < blocks.size()) << "kpfn " << n.kpfn;
      MD_EXPECT(blocks[b].state == BlockState::kOnline ||
                blocks[b].state == BlockState::kGoingOffline)
          << "node " << n.id << " kpfn " << n.kpfn << " in a block that is "
          << BlockStateName(blocks[b].state);
      if (n.stale) continue;
      auto f = m_->GetFrame(n.kpfn);
      MD_ASSERT(f.ok()) << f.status();
      MD_EXPECT(f->state == PageState::kKsm) << "node " << n.id << " kpfn " << n.kpfn;
      MD_EXPECT(f->stable_node_id == n.id) << "node " << n.id << " kpfn " << n.kpfn;
    }
    KsmInfo k = m_->GetKsm();
    MD_EXPECT(k.pages_shared == shared) << k.pages_shared << " vs " << shared;
    MD_EXPECT(k.pages_sharing == sharing) << k.pages_sharing << " vs " << sharing;
    MD_EXPECT(m_->KsmLocked() == Locked()) << m_->KsmLocked();
    MD_EXPECT(k.locked_by_offline == Locked()) << k.locked_by_offline;
    if (k.pages_sharing) cov_->steps_with_sharing++;
  }

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
  bool failed_ = false;
  std::string failure_;
};

}  // namespace memnode::testing

#endif  // MEMNODE_TESTS_TESTING_MODEL_DRIVER_H_
