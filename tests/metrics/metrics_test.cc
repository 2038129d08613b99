// Metrics of a real small MANUAL machine after scripted KSM sequences, read
// the way Prometheus reads them: serialized with prometheus::TextSerializer
// and parsed back. Expected values are derived from
// /work/shared/kernel-semantics.md ("ks 10.1" = section 10 scenario 1,
// "ks 2.3 r9f" = section 2.3 rule 9f), never copied from the server's output.
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "memnode/v1/ksm.pb.h"
#include "server/core/machine.h"
#include "server/metrics/server_metrics.h"
#include "tests/testing/machine_fixture.h"

namespace memnode::metrics {
namespace {

using memnode::testing::PfnAt;
using memnode::testing::SmallMachine;
using memnode::testing::Unwrap;

// One parsed exposition: series key "name{a=\"x\",b=\"y\"}" (labels sorted)
// -> value, plus the families' TYPE lines.
struct Exposition {
  std::map<std::string, double> series;
  std::map<std::string, std::string> types;
};

std::string Key(const std::string& name, std::map<std::string, std::string> labels) {
  std::string k = name + "{";
  bool first = true;
  for (const auto& [n, v] : labels) {
    absl::StrAppend(&k, first ? "" : ",", n, "=\"", v, "\"");
    first = false;
  }
  return k + "}";
}

// Parses the text format as written by TextSerializer (no escapes in our
// label values, which are ids and fixed words).
Exposition Parse(const std::string& text) {
  Exposition e;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty()) continue;
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      std::vector<std::string> p = absl::StrSplit(line, ' ');
      if (p.size() == 2) e.types[p[0]] = p[1];
      continue;
    }
    if (line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    std::string head(line.substr(0, sp));
    double v = 0;
    std::string num(line.substr(sp + 1));
    if (num == "Nan" || num == "NaN") continue;
    EXPECT_TRUE(absl::SimpleAtod(num, &v)) << line;
    std::string name = head;
    std::map<std::string, std::string> labels;
    const size_t brace = head.find('{');
    if (brace != std::string::npos) {
      name = head.substr(0, brace);
      absl::string_view ls(head);
      ls = ls.substr(brace + 1, ls.size() - brace - 2);
      for (absl::string_view kv : absl::StrSplit(ls, "\",", absl::SkipEmpty())) {
        const size_t eq = kv.find('=');
        std::string val(kv.substr(eq + 2));
        if (!val.empty() && val.back() == '"') val.pop_back();
        labels[std::string(kv.substr(0, eq))] = val;
      }
    }
    e.series[Key(name, labels)] = v;
  }
  return e;
}

class TestSource final : public MachineSource {
 public:
  TestSource(std::string id, Machine* m) : id_(std::move(id)), m_(m) {}
  const std::string& machine_id() const override { return id_; }
  Machine& machine() override { return *m_; }

 private:
  std::string id_;
  Machine* m_;
};

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_ = SmallMachine();  // 2 nodes x 4 blocks x 64 pages, MANUAL
    metrics_ = std::make_unique<ServerMetrics>(std::vector<std::string>{"memnode.v1.KsmService"});
    metrics_->Attach(std::make_shared<TestSource>("m1", m_.get()));
  }

  // The value of a series, or nullopt when it is not exposed.
  std::optional<double> Get(const std::string& name,
                            std::map<std::string, std::string> labels = {}) {
    labels.emplace("machine", "m1");
    Exposition e = Parse(metrics_->Scrape());
    auto it = e.series.find(Key(name, labels));
    if (it == e.series.end()) return std::nullopt;
    return it->second;
  }
  double Val(const std::string& name, std::map<std::string, std::string> labels = {}) {
    auto v = Get(name, labels);
    EXPECT_TRUE(v.has_value()) << Key(name, labels) << " missing in\n" << metrics_->Scrape();
    return v.value_or(-1);
  }

  // A process with one private read-write page holding `byte`, advised
  // MERGEABLE after the write (ks 10 assumptions). Returns (pid, address).
  std::pair<Pid, Vaddr> ProcessWithPage(uint8_t byte, NodeId home = 0) {
    ProcessParams params;
    params.home_node = home;
    Pid pid = Unwrap(m_->CreateProcess(params));
    Vaddr a = Unwrap(m_->Mmap(pid, 0, kPageSize, kProtRead | kProtWrite, false, false)).address;
    FillPattern f;
    f.value = byte;
    EXPECT_EQ(Unwrap(m_->Fill(pid, a, kPageSize, f)).err, Errno::kOk);
    EXPECT_EQ(Unwrap(m_->Madvise(pid, a, kPageSize, Advice::kMergeable)), Errno::kOk);
    return {pid, a};
  }
  uint64_t Passes(uint64_t n) {
    KsmStepResult r = Unwrap(m_->KsmStepPasses(n, uint64_t{1} << 20));
    EXPECT_EQ(r.passes, n);
    visits_ += r.visits;
    return r.visits;
  }
  void WriteByte(Pid pid, Vaddr a, uint8_t b) {
    EXPECT_EQ(Unwrap(m_->Write(pid, a, &b, 1)).err, Errno::kOk);
  }

  std::unique_ptr<Machine> m_;
  std::unique_ptr<ServerMetrics> metrics_;
  uint64_t visits_ = 0;
};

TEST_F(MetricsTest, EverySeriesExistsAtZeroOnAttach) {
  EXPECT_EQ(Val("memnode_ksm_merges_total"), 0);
  EXPECT_EQ(Val("memnode_ksm_cow_breaks_total"), 0);
  for (const char* r : {"stale", "offline", "unmerge"})
    EXPECT_EQ(Val("memnode_ksm_stable_nodes_pruned_total", {{"reason", r}}), 0) << r;
  // Hot-remove families: registered and zero before hot-remove feeds them.
  for (const char* reason : {"memory_offline", "mbind", "migrate_pages", "move_pages"})
    for (const char* result : {"success", "ebusy", "eagain", "enomem", "other"})
      EXPECT_EQ(Val("memnode_migrate_pages_total", {{"reason", reason}, {"result", result}}), 0);
  for (const char* result : {"success", "ebusy", "eagain", "eintr", "einval", "other"})
    EXPECT_EQ(Val("memnode_memory_offline_total", {{"result", result}}), 0) << result;
  EXPECT_EQ(Val("memnode_memory_offline_duration_seconds_count"), 0);
  for (const char* ev :
       {"going_online", "cancel_online", "online", "going_offline", "cancel_offline", "offline"})
    EXPECT_EQ(Val("memnode_memory_notifier_events_total", {{"event", ev}}), 0) << ev;
  EXPECT_EQ(Val("memnode_ksm_batches_held_total"), 0);

  // A fresh machine: the five counters are 0 (ks 3), run is 0 in 2.6.33
  // (ks 9.1), no process.
  for (const char* g :
       {"memnode_ksm_pages_shared", "memnode_ksm_pages_sharing", "memnode_ksm_pages_unshared",
        "memnode_ksm_pages_volatile", "memnode_ksm_full_scans_total", "memnode_ksm_stable_nodes",
        "memnode_ksm_rmap_items", "memnode_processes"})
    EXPECT_EQ(Val(g), 0) << g;
  // 2 nodes x 4 blocks online; 4 x 64 pages per node; node 0 holds the zero
  // page (reserved), everything else free.
  for (const char* node : {"0", "1"}) {
    EXPECT_EQ(Val("memnode_memory_blocks", {{"node", node}, {"state", "online"}}), 4);
    EXPECT_EQ(Val("memnode_memory_blocks", {{"node", node}, {"state", "offline"}}), 0);
  }
  EXPECT_EQ(Val("memnode_pages", {{"node", "1"}, {"state", "free"}}), 256);
  EXPECT_EQ(Val("memnode_pages", {{"node", "0"}, {"state", "free"}}) +
                Val("memnode_pages", {{"node", "0"}, {"state", "reserved"}}),
            256);
  Exposition e = Parse(metrics_->Scrape());
  EXPECT_EQ(e.series[Key("memnode_machines", {})], 1);
  EXPECT_EQ(e.types["memnode_ksm_full_scans_total"], "counter");
  EXPECT_EQ(e.types["memnode_ksm_pages_sharing"], "gauge");
  EXPECT_EQ(e.types["memnode_memory_offline_duration_seconds"], "histogram");
}

// ks 10.1: two processes, one identical page each, A registered first.
TEST_F(MetricsTest, TwoIdenticalPagesMergeInPassTwo) {
  auto [a, va] = ProcessWithPage(0x5a);
  auto [b, vb] = ProcessWithPage(0x5a);
  const Pfn b_page = PfnAt(*m_, b, vb);

  Passes(1);
  // After pass 1: first visits only store checksums (ks 2.3 r9d): nothing
  // merged, both items volatile, full_scans 1 (ks 3.5).
  EXPECT_EQ(Val("memnode_ksm_merges_total"), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_volatile"), 2);
  EXPECT_EQ(Val("memnode_ksm_pages_shared"), 0);
  EXPECT_EQ(Val("memnode_ksm_full_scans_total"), 1);
  EXPECT_EQ(Val("memnode_ksm_rmap_items"), 2);

  Passes(1);
  // Pass 2: A's item enters the unstable tree, B's matches; ks 2.3 r9f
  // creates the node and appends the tree item (A) then the current one (B):
  // two merge events. Counters: shared 1, sharing 1, unshared 0, volatile 0.
  EXPECT_EQ(Val("memnode_ksm_merges_total"), 2);
  EXPECT_EQ(Val("memnode_ksm_pages_shared"), 1);
  EXPECT_EQ(Val("memnode_ksm_pages_sharing"), 1);
  EXPECT_EQ(Val("memnode_ksm_pages_unshared"), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_volatile"), 0);
  EXPECT_EQ(Val("memnode_ksm_full_scans_total"), 2);
  EXPECT_EQ(Val("memnode_ksm_stable_nodes"), 1);
  EXPECT_EQ(Val("memnode_ksm_cow_breaks_total"), 0);
  EXPECT_EQ(Val("memnode_processes"), 2);
  EXPECT_EQ(Val("memnode_ksm_pages_scanned_total"), visits_);
  // The KSM page is B's original page (ks 2.3 r10): one KSM frame, on B's
  // page's node; A's original page was freed.
  const std::string node = b_page < 4 * 64 ? "0" : "1";
  EXPECT_EQ(Val("memnode_pages", {{"node", node}, {"state", "ksm"}}), 1);
  EXPECT_EQ(Val("memnode_pages", {{"node", "0"}, {"state", "anon"}}) +
                Val("memnode_pages", {{"node", "1"}, {"state", "anon"}}),
            0);
  EXPECT_EQ(PfnAt(*m_, a, va), b_page);
}

// ks 10.6: writes to both merged pages, then ksmd revisits.
TEST_F(MetricsTest, CowBreaksThenStalePrune) {
  auto [a, va] = ProcessWithPage(0x11);
  auto [b, vb] = ProcessWithPage(0x11);
  Passes(2);
  ASSERT_EQ(Val("memnode_ksm_pages_sharing"), 1);

  WriteByte(a, va, 0x22);
  // The write breaks COW at once (ks 5.1); counters are lazy (ks 3.7).
  EXPECT_EQ(Val("memnode_ksm_cow_breaks_total"), 1);
  EXPECT_EQ(Val("memnode_ksm_pages_shared"), 1);
  EXPECT_EQ(Val("memnode_ksm_pages_sharing"), 1);

  WriteByte(b, vb, 0x33);
  // B's write frees the KSM page; the node is stale but still counted until
  // ksmd looks (ks 10.6).
  EXPECT_EQ(Val("memnode_ksm_cow_breaks_total"), 2);
  EXPECT_EQ(Val("memnode_ksm_stable_nodes_pruned_total", {{"reason", "stale"}}), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_shared"), 1);

  Passes(1);
  // The first revisit goes through get_ksm_page, finds the page gone and
  // prunes the node (ks 5.3): one stale prune, shared 0, sharing 0.
  EXPECT_EQ(Val("memnode_ksm_stable_nodes_pruned_total", {{"reason", "stale"}}), 1);
  EXPECT_EQ(Val("memnode_ksm_stable_nodes_pruned_total", {{"reason", "offline"}}), 0);
  EXPECT_EQ(Val("memnode_ksm_stable_nodes_pruned_total", {{"reason", "unmerge"}}), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_shared"), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_sharing"), 0);
  EXPECT_EQ(Val("memnode_ksm_stable_nodes"), 0);
  EXPECT_EQ(Val("memnode_ksm_merges_total"), 2);
}

// ks 10.14: run=2 in scenario 1's state.
TEST_F(MetricsTest, RunTwoUnmergePrunes) {
  ProcessWithPage(0x44);
  ProcessWithPage(0x44);
  Passes(2);
  ASSERT_EQ(Unwrap(m_->KsmUpdate(1, std::nullopt, std::nullopt)), Errno::kOk);
  EXPECT_EQ(Val("memnode_ksm_run"), 1);
  ASSERT_EQ(Unwrap(m_->KsmUpdate(2, std::nullopt, std::nullopt)), Errno::kOk);
  // Both addresses get private copies (two COW breaks), the node is pruned
  // by unmerge, all counters and full_scans go to 0, run reads 2.
  EXPECT_EQ(Val("memnode_ksm_stable_nodes_pruned_total", {{"reason", "unmerge"}}), 1);
  EXPECT_EQ(Val("memnode_ksm_cow_breaks_total"), 2);
  EXPECT_EQ(Val("memnode_ksm_pages_shared"), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_sharing"), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_volatile"), 0);
  EXPECT_EQ(Val("memnode_ksm_full_scans_total"), 0);
  EXPECT_EQ(Val("memnode_ksm_run"), 2);
}

// ks 10.9: offline the block holding a KSM page freed while its node is
// still in the tree (both sharers wrote, ksmd has not revisited).
TEST_F(MetricsTest, OfflinePrunesStaleNodeScenario109) {
  // On node 1, away from the zero page (which makes block 0 unmovable).
  auto [a, va] = ProcessWithPage(0x66, 1);
  auto [b, vb] = ProcessWithPage(0x66, 1);
  Passes(2);
  const Pfn kpage = PfnAt(*m_, b, vb);
  WriteByte(a, va, 1);
  WriteByte(b, vb, 2);  // the KSM page is freed; counters still 1/1 (ks 3.7)
  ASSERT_EQ(Val("memnode_ksm_pages_shared"), 1);
  const BlockId block = static_cast<BlockId>(kpage / 64);
  const std::string node = block < 4 ? "0" : "1";
  ASSERT_EQ(node, "1");
  auto r = Unwrap(m_->OfflineBlock(block, OfflineOptions{}, absl::Now()));
  ASSERT_EQ(r.err, Errno::kOk) << r.failure;
  // MEM_OFFLINE prunes the stale node at once (ks 7.3 r16): shared 0,
  // sharing 0; the offline succeeded; KSM's notifier saw GOING_OFFLINE and
  // OFFLINE once each (ks 7.2 r8, r10); the block is offline.
  EXPECT_EQ(Val("memnode_ksm_stable_nodes_pruned_total", {{"reason", "offline"}}), 1);
  EXPECT_EQ(Val("memnode_ksm_stable_nodes_pruned_total", {{"reason", "stale"}}), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_shared"), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_sharing"), 0);
  EXPECT_EQ(Val("memnode_memory_offline_total", {{"result", "success"}}), 1);
  EXPECT_EQ(Val("memnode_memory_offline_duration_seconds_count"), 1);
  EXPECT_EQ(Val("memnode_memory_notifier_events_total", {{"event", "going_offline"}}), 1);
  EXPECT_EQ(Val("memnode_memory_notifier_events_total", {{"event", "offline"}}), 1);
  EXPECT_EQ(Val("memnode_memory_notifier_events_total", {{"event", "cancel_offline"}}), 0);
  EXPECT_EQ(Val("memnode_memory_blocks", {{"node", node}, {"state", "offline"}}), 1);
  EXPECT_EQ(Val("memnode_memory_blocks", {{"node", node}, {"state", "online"}}), 3);
  EXPECT_EQ(Val("memnode_pages", {{"node", node}, {"state", "offline"}}), 64);
}

TEST_F(MetricsTest, ProcessExitIsCounted) {
  const Pid a = ProcessWithPage(1).first;
  Unwrap(m_->Exit(a));
  EXPECT_EQ(Val("memnode_process_exits_total"), 1);
  EXPECT_EQ(Val("memnode_processes"), 0);
}

TEST_F(MetricsTest, HotRemoveFeedReachesItsSeries) {
  MachineMetrics* mm = metrics_->ForMachine("m1");
  ASSERT_NE(mm, nullptr);
  mm->RecordMigration(MigrateReason::kOffline, MigrateResult::kSuccess, 3);
  mm->RecordOffline(OfflineResult::kEagain, 120);
  mm->RecordNotifierEvent(MemEvent::kCancelOffline);
  mm->RecordKsmBatchHeld();
  EXPECT_EQ(
      Val("memnode_migrate_pages_total", {{"reason", "memory_offline"}, {"result", "success"}}), 3);
  EXPECT_EQ(Val("memnode_memory_offline_total", {{"result", "eagain"}}), 1);
  EXPECT_EQ(Val("memnode_memory_offline_duration_seconds_count"), 1);
  EXPECT_EQ(Val("memnode_memory_offline_duration_seconds_bucket", {{"le", "60"}}), 0);
  EXPECT_EQ(Val("memnode_memory_offline_duration_seconds_bucket", {{"le", "120"}}), 1);
  EXPECT_EQ(Val("memnode_memory_notifier_events_total", {{"event", "cancel_offline"}}), 1);
  EXPECT_EQ(Val("memnode_ksm_batches_held_total"), 1);
}

TEST_F(MetricsTest, DetachRemovesEverySeriesAndStopsCounting) {
  ProcessWithPage(7);
  ProcessWithPage(7);
  metrics_->Detach("m1");
  Passes(2);  // merges happen, nobody counts them
  const std::string text = metrics_->Scrape();
  EXPECT_EQ(text.find("machine=\"m1\""), std::string::npos) << text;
  Exposition e = Parse(text);
  EXPECT_EQ(e.series[Key("memnode_machines", {})], 0);
  // Re-attaching starts from zero for event counters; gauges read the core.
  metrics_->Attach(std::make_shared<TestSource>("m1", m_.get()));
  EXPECT_EQ(Val("memnode_ksm_merges_total"), 0);
  EXPECT_EQ(Val("memnode_ksm_pages_sharing"), 1);
}

TEST(RpcMetricsTest, CountsByMethodAndCodeWithBoundedMethods) {
  // Links ksm.pb.cc in, so that its service descriptor is in the pool.
  ASSERT_NE(v1::Ksm::descriptor(), nullptr);
  ServerMetrics metrics(std::vector<std::string>{"memnode.v1.KsmService"});
  Exposition e0 = Parse(metrics.Scrape());
  // Pre-created at zero for every method of the service.
  const std::string step_ok = Key("memnode_rpc_requests_total",
                                  {{"method", "memnode.v1.KsmService/StepKsm"}, {"code", "OK"}});
  ASSERT_EQ(e0.series.count(step_ok), 1u);
  EXPECT_EQ(e0.series[step_ok], 0);
  EXPECT_EQ(e0.series.count(Key("memnode_rpc_duration_seconds_count",
                                {{"method", "memnode.v1.KsmService/GetKsm"}})),
            1u);
  metrics.rpc().Record("/memnode.v1.KsmService/StepKsm", grpc::StatusCode::OK, 0.002);
  metrics.rpc().Record("/memnode.v1.KsmService/StepKsm", grpc::StatusCode::NOT_FOUND, 0.0001);
  metrics.rpc().Record("/evil/x1", grpc::StatusCode::UNIMPLEMENTED, 0.0001);
  metrics.rpc().Record("/evil/x2", grpc::StatusCode::UNIMPLEMENTED, 0.0001);
  Exposition e = Parse(metrics.Scrape());
  const std::string step = "memnode.v1.KsmService/StepKsm";
  EXPECT_EQ(e.series[Key("memnode_rpc_requests_total", {{"method", step}, {"code", "OK"}})], 1);
  EXPECT_EQ(e.series[Key("memnode_rpc_requests_total", {{"method", step}, {"code", "NOT_FOUND"}})],
            1);
  EXPECT_EQ(e.series[Key("memnode_rpc_duration_seconds_count", {{"method", step}})], 2);
  EXPECT_EQ(
      e.series[Key("memnode_rpc_duration_seconds_bucket", {{"method", step}, {"le", "0.001"}})], 1);
  EXPECT_EQ(
      e.series[Key("memnode_rpc_requests_total", {{"method", "other"}, {"code", "UNIMPLEMENTED"}})],
      2);
}

}  // namespace
}  // namespace memnode::metrics
