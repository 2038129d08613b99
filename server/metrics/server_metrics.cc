#include "server/metrics/server_metrics.h"

#include <sstream>

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/text_serializer.h>

namespace memnode::metrics {
namespace {

// A registry machine seen through the collector's MachineSource interface.
class HandleSource final : public MachineSource {
 public:
  explicit HandleSource(std::shared_ptr<host::MachineHandle> h) : h_(std::move(h)) {}
  const std::string& machine_id() const override { return h_->id(); }
  Machine& machine() override { return h_->machine(); }

 private:
  std::shared_ptr<host::MachineHandle> h_;
};

prometheus::Family<prometheus::Counter>* Counter(prometheus::Registry& r, const char* name,
                                                 const char* help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

}  // namespace

ServerMetrics::ServerMetrics(const std::vector<std::string>& rpc_services, host::Registry* registry)
    : machines_registry_(registry),
      registry_(std::make_shared<prometheus::Registry>()),
      collector_(std::make_shared<MachineCollector>()) {
  prometheus::Registry& r = *registry_;
  // KSM events (observer).
  families_.merges =
      Counter(r, "memnode_ksm_merges_total",
              "Rmap items that joined a stable node, new or existing (stable_tree_append).");
  families_.cow_breaks =
      Counter(r, "memnode_ksm_cow_breaks_total",
              "Writes or unmerges that copied a KSM page (do_wp_page / break_ksm on PageKsm).");
  families_.pruned =
      Counter(r, "memnode_ksm_stable_nodes_pruned_total",
              "Stable nodes removed from the tree, by reason: stale (get_ksm_page), offline "
              "(MEM_OFFLINE in ksm_memory_callback), unmerge (run=2).");
  families_.process_exits =
      Counter(r, "memnode_process_exits_total", "Processes that exited (exit_mmap).");
  // Memory hot-remove (fed through MachineMetrics::Record*; zero until then).
  families_.migrate_pages =
      Counter(r, "memnode_migrate_pages_total",
              "Pages migrate_pages() handled, by caller (reason) and per-page result.");
  families_.offline = Counter(r, "memnode_memory_offline_total",
                              "Offline requests of memory blocks by result "
                              "(echo offline > /sys/devices/system/memory/memoryN/state).");
  families_.offline_duration = &prometheus::BuildHistogram()
                                    .Name("memnode_memory_offline_duration_seconds")
                                    .Help(
                                        "Duration of offline requests on the machine's clock "
                                        "(emulated time for MANUAL machines).")
                                    .Register(r);
  families_.notifier_events =
      Counter(r, "memnode_memory_notifier_events_total",
              "Memory notifier chain events (MEM_GOING_OFFLINE, MEM_OFFLINE, ...).");
  families_.ksm_batches_held =
      Counter(r, "memnode_ksm_batches_held_total",
              "ksmd batches that waited for ksm_thread_mutex held by an offline.");
  rpc_ = std::make_unique<RpcMetrics>(r, rpc_services);
  if (machines_registry_) machines_registry_->AddListener(this);
}

ServerMetrics::~ServerMetrics() {
  if (machines_registry_) machines_registry_->RemoveListener(this);
  std::map<std::string, Attached> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(machines_);
  }
  for (auto& [id, a] : left) a.source->machine().RemoveObserver(a.metrics.get());
}

std::vector<std::weak_ptr<prometheus::Collectable>> ServerMetrics::Collectables() const {
  return {registry_, collector_};
}

std::string ServerMetrics::Scrape() const {
  std::vector<prometheus::MetricFamily> all = registry_->Collect();
  for (auto& f : collector_->Collect()) all.push_back(std::move(f));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, all);
  return out.str();
}

MachineMetrics* ServerMetrics::ForMachine(const std::string& machine_id) {
  absl::MutexLock lock(&mu_);
  auto it = machines_.find(machine_id);
  return it == machines_.end() ? nullptr : it->second.metrics.get();
}

void ServerMetrics::Attach(std::shared_ptr<MachineSource> source) {
  const std::string id = source->machine_id();
  auto metrics = std::make_unique<MachineMetrics>(families_, id);
  absl::MutexLock lock(&mu_);
  source->machine().AddObserver(metrics.get());
  collector_->Add(source);
  machines_[id] = Attached{std::move(source), std::move(metrics)};
}

void ServerMetrics::Detach(const std::string& machine_id) {
  Attached a;
  {
    absl::MutexLock lock(&mu_);
    auto it = machines_.find(machine_id);
    if (it == machines_.end()) return;
    a = std::move(it->second);
    machines_.erase(it);
    collector_->Remove(machine_id);
    // After this no event of the machine reaches the observer.
    a.source->machine().RemoveObserver(a.metrics.get());
    // Series removed here, under mu_, so that a re-created machine of the
    // same id cannot interleave with the removal.
    a.metrics.reset();
  }
}

void ServerMetrics::OnMachineAdded(const std::shared_ptr<host::MachineHandle>& handle) {
  Attach(std::make_shared<HandleSource>(handle));
}

void ServerMetrics::OnMachineRemoved(const std::shared_ptr<host::MachineHandle>& handle) {
  Detach(handle->id());
}

}  // namespace memnode::metrics
