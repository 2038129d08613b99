// Gauges read from the core at scrape time: the KSM counters of
// /sys/kernel/mm/ksm, tree sizes, pages by node and state, memory blocks by
// node and state, processes, machines.
// Linux analogue: reading /sys/kernel/mm/ksm/*, /sys/devices/system/node/nodeN/meminfo
// and /sys/devices/system/memory/memoryN/state when scraped.
//
// Thread safety: thread-safe. Collect() copies the list of machines under
// mu_, releases it, then calls Machine::GetKsm(), Info() and ListBlocks()
// once per machine: each holds that machine's lock only for a copy
// (O(blocks + processes)), never across machines or for the serialization.
#ifndef MEMNODE_SERVER_METRICS_COLLECTOR_H_
#define MEMNODE_SERVER_METRICS_COLLECTOR_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/core/machine.h"

namespace memnode::metrics {

// What the collector reads; the service layer's MachineHandle is adapted to
// this so the collector (and its tests) need only the core.
class MachineSource {
 public:
  virtual ~MachineSource() = default;
  virtual const std::string& machine_id() const = 0;
  virtual Machine& machine() = 0;
};

// Memory blocks of one node by state (/sys/devices/system/memory/memoryN/state;
// "removed" = hot-removed, no longer present).
struct BlockCounts {
  uint64_t online = 0;
  uint64_t going_offline = 0;
  uint64_t offline = 0;
  uint64_t removed = 0;
  uint64_t offline_pages = 0;  // pages of the offline blocks
};

// Blocks of every node, from Machine::ListBlocks (one short lock).
std::vector<BlockCounts> BlocksByNode(Machine& m, uint32_t nodes);

class MachineCollector final : public prometheus::Collectable {
 public:
  MachineCollector() = default;
  void Add(std::shared_ptr<MachineSource> source) ABSL_LOCKS_EXCLUDED(mu_);
  // Its series disappear from the next scrape on.
  void Remove(const std::string& machine_id) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<prometheus::MetricFamily> Collect() const override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<MachineSource>> machines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace memnode::metrics

#endif  // MEMNODE_SERVER_METRICS_COLLECTOR_H_
