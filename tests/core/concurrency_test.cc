// Concurrency test of the core without gRPC: a REALTIME machine driven from
// several threads at once, like memnoded serving several clients while its
// ksmd thread runs. Built and run under TSan by `make test`
// (scripts/sanitizers.sh, build/tsan: only this binary), and as an ordinary
// test in every other build.
//
// Threads:
//  - the real ksmd loop (MachineHandle from server/host/registry.cc,
//    which needs no gRPC): KsmdBatch every sleep_millisecs, expiry of
//    abandoned pauses;
//  - two "clients", each owning processes: mmap, fill, write, fork, madvise
//    MERGEABLE/UNMERGEABLE/DONTNEED, mbind, move_pages, pin/unpin, munmap,
//    and a read-back of their own shadow after every operation (content is
//    never lost, whatever the others do);
//  - a KSM client: scanner steps, knob writes (run 0/1/2, pages_to_scan,
//    sleep_millisecs, via KsmUpdate and sysfs text), listings, ksmd batches
//    by hand and wake-ups of the ksmd thread;
//  - a hotplug client: offline with a pause after GOING_OFFLINE, resumed or
//    cancelled from *another* thread (the resumer), online again, Check();
//  - the resumer: resumes or cancels whatever offline is paused.
// At the end: Check() holds and every client's memory matches its shadow.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/machine.h"
#include "server/core/names.h"
#include "server/core/status.h"
#include "server/host/registry.h"

namespace memnode {
namespace {

constexpr int kClientOps = 1000;

std::unique_ptr<Machine> RealtimeMachine() {
  MachineConfig c;
  c.nodes = 2;
  c.blocks_per_node = 4;
  c.pages_per_block = 64;
  c.clock = ClockMode::kRealtime;
  auto m = Machine::Create(c);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

// One client: its own processes and their shadow.
class Client {
 public:
  Client(Machine* m, uint64_t seed) : m_(m), rng_(seed) {}

  void Run(std::atomic<int>* failures) {
    for (int i = 0; i < kClientOps && failures->load() == 0; ++i) {
      std::string err = Step();
      if (err.empty()) err = VerifyAll();
      if (!err.empty()) {
        ADD_FAILURE() << "client op " << i << ": " << err;
        failures->fetch_add(1);
        return;
      }
    }
  }

  std::string VerifyAll() {
    for (const auto& [key, mem] : shadow_) {
      auto r = m_->Read(key.first, key.second, mem.size());
      if (!r.ok()) return r.status().ToString();
      if (r->err != Errno::kOk) return absl::StrCat("read ", ErrnoName(r->err));
      if (std::memcmp(r->data.data(), mem.data(), mem.size()) != 0)
        return absl::StrCat("pid ", key.first, " 0x", absl::Hex(key.second),
                            ": memory differs from the shadow");
    }
    return "";
  }

 private:
  uint64_t Rand(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }

  std::string NewProcess() {
    ProcessParams pp;
    pp.home_node = static_cast<NodeId>(Rand(2));
    auto p = m_->CreateProcess(pp);
    if (!p.ok()) return p.status().ToString();
    uint64_t pages = 1 + Rand(4);
    auto r = m_->Mmap(*p, 0, pages * kPageSize, kProtRead | kProtWrite, false, false);
    if (!r.ok() || r->err != Errno::kOk) return "mmap failed";
    shadow_[{*p, r->address}] = std::vector<uint8_t>(pages * kPageSize, 0);
    return "";
  }

  std::string Step() {
    if (shadow_.empty() || (shadow_.size() < 4 && Rand(20) == 0)) return NewProcess();
    auto it = shadow_.begin();
    std::advance(it, Rand(shadow_.size()));
    const Pid pid = it->first.first;
    const Vaddr start = it->first.second;
    std::vector<uint8_t>& mem = it->second;
    const uint64_t pages = mem.size() / kPageSize;
    const uint64_t first = Rand(pages), count = 1 + Rand(pages - first);
    const Vaddr a = start + first * kPageSize;
    switch (Rand(12)) {
      case 0:
      case 1:
      case 2: {
        static constexpr uint8_t kPatterns[] = {0x11, 0x22, 0x33};
        FillPattern fp;
        fp.value = kPatterns[Rand(3)];
        auto r = m_->Fill(pid, a, count * kPageSize, fp);
        if (!r.ok() || r->err != Errno::kOk) return "fill failed";
        std::memset(mem.data() + first * kPageSize, static_cast<int>(fp.value), count * kPageSize);
        return "";
      }
      case 3: {
        uint64_t off = Rand(mem.size() - 16);
        uint8_t data[16];
        for (auto& d : data) d = static_cast<uint8_t>(Rand(256));
        auto r = m_->Write(pid, start + off, data, sizeof(data));
        if (!r.ok() || r->err != Errno::kOk) return "write failed";
        std::memcpy(mem.data() + off, data, sizeof(data));
        return "";
      }
      case 4:
      case 5: {
        auto r = m_->Madvise(pid, a, count * kPageSize, Advice::kMergeable);
        return r.ok() && *r == Errno::kOk ? "" : "madvise MERGEABLE failed";
      }
      case 6: {
        auto r = m_->Madvise(pid, a, count * kPageSize, Advice::kUnmergeable);
        return r.ok() && (*r == Errno::kOk || *r == Errno::kEAGAIN) ? "" : "UNMERGEABLE failed";
      }
      case 7: {
        auto r = m_->Madvise(pid, a, count * kPageSize, Advice::kDontNeed);
        if (!r.ok() || *r != Errno::kOk) return "DONTNEED failed";
        std::memset(mem.data() + first * kPageSize, 0, count * kPageSize);
        return "";
      }
      case 8: {
        if (shadow_.size() >= 4) return "";
        auto c = m_->Fork(pid);
        if (!c.ok()) return c.status().ToString();
        std::vector<std::pair<std::pair<Pid, Vaddr>, std::vector<uint8_t>>> add;
        for (const auto& [key, m] : shadow_)
          if (key.first == pid) add.push_back({{*c, key.second}, m});
        for (auto& kv : add) shadow_.insert(std::move(kv));
        return "";
      }
      case 9: {
        auto r = m_->MovePages(pid, pid, {a}, {static_cast<int32_t>(Rand(2))}, 2);
        if (!r.ok()) return r.status().ToString();
        auto b = m_->Mbind(pid, a, kPageSize, MemPolicy::kPreferred, 1u << Rand(2), 2);
        return b.ok() ? "" : b.status().ToString();
      }
      case 10: {
        auto p = m_->Pin(pid, a, kPageSize);
        if (!p.ok()) return p.status().ToString();
        if (p->err == Errno::kOk) {
          absl::SleepFor(absl::Microseconds(200));
          auto u = m_->Unpin(pid, a, kPageSize);
          if (!u.ok() || u->err != Errno::kOk) return "unpin failed";
        }
        return "";
      }
      default: {
        if (shadow_.size() <= 1 || Rand(3) != 0) return "";
        auto e = m_->Exit(pid);
        if (!e.ok()) return e.status().ToString();
        for (auto s = shadow_.begin(); s != shadow_.end();)
          s = s->first.first == pid ? shadow_.erase(s) : std::next(s);
        return "";
      }
    }
  }

  Machine* m_;
  std::mt19937_64 rng_;
  std::map<std::pair<Pid, Vaddr>, std::vector<uint8_t>> shadow_;
};

bool LockedOrOk(const absl::Status& s) { return s.ok() || ErrorReason(s) == "KSM_LOCKED"; }

TEST(Concurrency, RealtimeMachineUnderConcurrentClientsKsmdAndOffline) {
  auto handle = std::make_shared<host::MachineHandle>("tsan", RealtimeMachine());
  Machine& m = handle->machine();
  ASSERT_EQ(*m.KsmUpdate(1, 32, 1), Errno::kOk);
  handle->Wake();

  std::atomic<int> failures{0};
  std::atomic<bool> clients_done{false};
  std::atomic<int> offlines{0}, resumed{0}, cancelled{0}, refusals{0};

  Client c1(&m, 1), c2(&m, 2);
  std::thread t1([&] { c1.Run(&failures); });
  std::thread t2([&] { c2.Run(&failures); });

  std::thread ksm([&] {
    std::mt19937_64 rng(3);
    while (!clients_done.load()) {
      switch (rng() % 8) {
        case 0: {
          auto r = m.KsmStepVisits(1 + rng() % 64);
          if (!LockedOrOk(r.status())) ADD_FAILURE() << r.status();
          if (!r.ok()) refusals++;
          break;
        }
        case 1: {
          auto r = m.KsmUpdate(rng() % 3, std::nullopt, std::nullopt);
          if (!LockedOrOk(r.status())) ADD_FAILURE() << r.status();
          if (!r.ok()) refusals++;
          handle->Wake();
          break;
        }
        case 2: {
          auto r = m.KsmWriteSysfs("pages_to_scan", absl::StrCat(1 + rng() % 100));
          if (!LockedOrOk(r.status())) ADD_FAILURE() << r.status();
          break;
        }
        case 3: {
          auto r = m.KsmUpdate(std::nullopt, std::nullopt, rng() % 3);
          if (!LockedOrOk(r.status())) ADD_FAILURE() << r.status();
          break;
        }
        case 4:
          (void)m.KsmStableNodes();
          (void)m.KsmUnstableItems();
          (void)m.GetKsm();
          break;
        case 5:
          (void)m.KsmdBatch();  // a second ksmd-like caller
          break;
        case 6:
          (void)m.Info();
          (void)m.ListProcesses(true);
          break;
        default: handle->Wake(); absl::SleepFor(absl::Microseconds(300));
      }
    }
    // Leave ksmd running with merging on.
    for (int i = 0; i < 1000; ++i) {
      auto r = m.KsmUpdate(1, std::nullopt, std::nullopt);
      if (r.ok()) break;
      absl::SleepFor(absl::Milliseconds(1));
    }
  });

  std::thread hotplug([&] {
    std::mt19937_64 rng(4);
    while (!clients_done.load()) {
      BlockId id = 1 + static_cast<BlockId>(rng() % 3);  // node 0 keeps block 0
      if (rng() % 2) id += 4;                            // or node 1's blocks 5..7
      OfflineOptions o;
      o.pause_after = (rng() % 3 == 0) ? OfflinePhase::kNone : OfflinePhase::kGoingOffline;
      o.timeout_ns = 2'000'000;
      auto r = m.OfflineBlock(id, o, absl::Now());
      if (!r.ok()) {
        if (ErrorReason(r.status()) != "OFFLINE_IN_PROGRESS") ADD_FAILURE() << r.status();
        absl::SleepFor(absl::Milliseconds(1));
        continue;
      }
      offlines++;
      // Whoever ends the offline (here or the resumer), bring the block back.
      absl::SleepFor(absl::Milliseconds(2));
      for (int i = 0; i < 200; ++i) {
        auto b = m.GetBlock(id);
        if (b.ok() && b->state != BlockState::kGoingOffline) break;
        absl::SleepFor(absl::Milliseconds(1));
      }
      auto b = m.GetBlock(id);
      if (b.ok() && b->state == BlockState::kOffline) {
        auto on = m.OnlineBlock(id);
        if (!on.ok() || *on != Errno::kOk) ADD_FAILURE() << "online " << id;
      }
      CheckResult c = m.Check();
      if (!c.ok()) ADD_FAILURE() << absl::StrJoin(c.violations, "\n");
    }
  });

  std::thread resumer([&] {
    std::mt19937_64 rng(5);
    while (!clients_done.load()) {
      for (BlockId id = 1; id < 8; ++id) {
        auto b = m.GetBlock(id);
        if (!b.ok() || b->state != BlockState::kGoingOffline) continue;
        if (rng() % 2) {
          auto r = m.ResumeOffline(id, std::nullopt, absl::Now());
          if (r.ok()) resumed++;
        } else {
          auto r = m.CancelOffline(id);
          if (r.ok()) cancelled++;
        }
      }
      (void)m.ExpirePausedOffline(absl::Now());
      absl::SleepFor(absl::Microseconds(500));
    }
  });

  t1.join();
  t2.join();
  clients_done = true;
  ksm.join();
  hotplug.join();
  resumer.join();
  // Anything still paused: cancel it.
  for (BlockId id = 1; id < 8; ++id)
    if (m.GetBlock(id).ok() && m.GetBlock(id)->state == BlockState::kGoingOffline)
      (void)m.CancelOffline(id);
  // Let ksmd run a little more over the final state, then check everything.
  absl::SleepFor(absl::Milliseconds(50));
  CheckResult c = m.Check();
  EXPECT_TRUE(c.ok()) << absl::StrJoin(c.violations, "\n");
  EXPECT_EQ(c1.VerifyAll(), "");
  EXPECT_EQ(c2.VerifyAll(), "");
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(offlines.load(), 0);
  std::printf("offlines=%d resumed=%d cancelled=%d ksm refusals=%d\n", offlines.load(),
              resumed.load(), cancelled.load(), refusals.load());
  handle.reset();  // stops ksmd
}

}  // namespace
}  // namespace memnode
