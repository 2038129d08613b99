// The Prometheus metrics of memnoded: every family registered at start-up,
// one MachineMetrics observer per machine (attached and detached as machines
// come and go in the Registry), the scrape-time MachineCollector and the RPC
// metrics. The HTTP side is prometheus::Exposer, wired in main.cc.
// Linux analogue: none (the kernel exposes sysfs files, not Prometheus).
//
// Thread safety: thread-safe. Lock order: Registry::mu_ (listener calls),
// ServerMetrics::mu_, Machine::mu_ (Add/RemoveObserver). Observers never take
// mu_; a scrape takes mu_ of the collector only to copy its machine list.
#ifndef MEMNODE_SERVER_METRICS_SERVER_METRICS_H_
#define MEMNODE_SERVER_METRICS_SERVER_METRICS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/host/registry.h"
#include "server/metrics/collector.h"
#include "server/metrics/machine_metrics.h"
#include "server/metrics/rpc_metrics.h"

namespace memnode::metrics {

class ServerMetrics final : public host::RegistryListener {
 public:
  // `rpc_services`: full names of the gRPC services whose methods get their
  // RPC series pre-created (e.g. "memnode.v1.KsmService"). With a `registry`,
  // listens to it (attaching every machine it has and will have) until
  // destroyed; without, machines are attached with Attach().
  explicit ServerMetrics(const std::vector<std::string>& rpc_services,
                         host::Registry* registry = nullptr);
  // Stops listening, detaches every observer.
  ~ServerMetrics() override;

  // What a prometheus::Exposer (or a test) collects: event counters, RPC
  // metrics and the scrape-time gauges.
  std::vector<std::weak_ptr<prometheus::Collectable>> Collectables() const;
  // All of them serialized in the text exposition format.
  std::string Scrape() const;

  RpcMetrics& rpc() { return *rpc_; }

  // The per-machine observer, to feed hot-remove metrics; null if unknown.
  // The pointer is valid until the machine is removed.
  MachineMetrics* ForMachine(const std::string& machine_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Attaches/detaches a machine directly (what the RegistryListener calls do
  // for a host::MachineHandle). Attach adds every series of the machine at
  // zero; Detach removes the observer from the machine, then its series.
  void Attach(std::shared_ptr<MachineSource> source) ABSL_LOCKS_EXCLUDED(mu_);
  void Detach(const std::string& machine_id) ABSL_LOCKS_EXCLUDED(mu_);

  // host::RegistryListener
  void OnMachineAdded(const std::shared_ptr<host::MachineHandle>& handle) override;
  void OnMachineRemoved(const std::shared_ptr<host::MachineHandle>& handle) override;

 private:
  struct Attached {
    std::shared_ptr<MachineSource> source;
    std::unique_ptr<MachineMetrics> metrics;
  };
  host::Registry* const machines_registry_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<MachineCollector> collector_;
  EventFamilies families_;
  std::unique_ptr<RpcMetrics> rpc_;
  absl::Mutex mu_;
  std::map<std::string, Attached> machines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace memnode::metrics

#endif  // MEMNODE_SERVER_METRICS_SERVER_METRICS_H_
