#include "server/metrics/collector.h"

#include <utility>

namespace memnode::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Fam(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void Sample(MetricFamily& f, std::vector<ClientMetric::Label> labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

}  // namespace

std::vector<BlockCounts> BlocksByNode(Machine& m, uint32_t nodes) {
  std::vector<BlockCounts> out(nodes);
  for (const BlockInfo& b : m.ListBlocks()) {
    if (b.node >= nodes) continue;
    BlockCounts& c = out[b.node];
    switch (b.state) {
      case BlockState::kOnline: c.online++; break;
      case BlockState::kGoingOffline: c.going_offline++; break;
      case BlockState::kOffline:
        c.offline++;
        c.offline_pages += b.pages;
        break;
      case BlockState::kRemoved: c.removed++; break;
    }
  }
  return out;
}

void MachineCollector::Add(std::shared_ptr<MachineSource> source) {
  absl::MutexLock lock(&mu_);
  machines_[source->machine_id()] = std::move(source);
}

void MachineCollector::Remove(const std::string& machine_id) {
  absl::MutexLock lock(&mu_);
  machines_.erase(machine_id);
}

std::vector<MetricFamily> MachineCollector::Collect() const {
  std::vector<std::shared_ptr<MachineSource>> machines;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, s] : machines_) machines.push_back(s);
  }

  MetricFamily n_machines =
      Fam("memnode_machines", "Machines hosted by this server.", MetricType::Gauge);
  MetricFamily processes =
      Fam("memnode_processes", "Live (not exited) processes of the machine.", MetricType::Gauge);
  MetricFamily shared = Fam("memnode_ksm_pages_shared",
                            "KSM pages in use: stable nodes with at least one rmap item "
                            "(/sys/kernel/mm/ksm/pages_shared).",
                            MetricType::Gauge);
  MetricFamily sharing = Fam("memnode_ksm_pages_sharing",
                             "Extra mappings of KSM pages, i.e. pages saved "
                             "(/sys/kernel/mm/ksm/pages_sharing).",
                             MetricType::Gauge);
  MetricFamily unshared = Fam("memnode_ksm_pages_unshared",
                              "Rmap items flagged unstable "
                              "(/sys/kernel/mm/ksm/pages_unshared).",
                              MetricType::Gauge);
  MetricFamily volat = Fam("memnode_ksm_pages_volatile",
                           "Rmap items neither stable nor unstable, clamped at 0 "
                           "(/sys/kernel/mm/ksm/pages_volatile).",
                           MetricType::Gauge);
  MetricFamily full_scans = Fam("memnode_ksm_full_scans_total",
                                "Completed ksmd passes; reset to 0 by run=2 "
                                "(/sys/kernel/mm/ksm/full_scans).",
                                MetricType::Counter);
  MetricFamily scanned = Fam("memnode_ksm_pages_scanned_total",
                             "Pages visited by ksmd since the machine was created "
                             "(6.x /sys/kernel/mm/ksm/pages_scanned).",
                             MetricType::Counter);
  MetricFamily stable_nodes =
      Fam("memnode_ksm_stable_nodes", "Nodes in the KSM stable tree, stale ones included.",
          MetricType::Gauge);
  MetricFamily rmap_items = Fam("memnode_ksm_rmap_items",
                                "Allocated KSM rmap items (ksm_rmap_items).", MetricType::Gauge);
  MetricFamily mm_slots =
      Fam("memnode_ksm_mm_slots", "Processes registered with KSM (mm slots).", MetricType::Gauge);
  MetricFamily run =
      Fam("memnode_ksm_run", "KSM run knob: 0 stop, 1 run, 2 unmerge (/sys/kernel/mm/ksm/run).",
          MetricType::Gauge);
  MetricFamily to_scan =
      Fam("memnode_ksm_pages_to_scan", "Pages per ksmd batch (/sys/kernel/mm/ksm/pages_to_scan).",
          MetricType::Gauge);
  MetricFamily sleep = Fam(
      "memnode_ksm_sleep_seconds",
      "Sleep between ksmd batches (/sys/kernel/mm/ksm/sleep_millisecs / 1000).", MetricType::Gauge);
  MetricFamily locked = Fam("memnode_ksm_locked_by_offline",
                            "1 while an offline holds ksm_thread_mutex (ksmd and run writes wait).",
                            MetricType::Gauge);
  MetricFamily pages = Fam("memnode_pages",
                           "Page frames by NUMA node and state (4 KiB pages; "
                           "/sys/devices/system/node/nodeN/meminfo).",
                           MetricType::Gauge);
  MetricFamily blocks = Fam("memnode_memory_blocks",
                            "Memory blocks by NUMA node and state "
                            "(/sys/devices/system/memory/memoryN/state).",
                            MetricType::Gauge);
  MetricFamily clock =
      Fam("memnode_emulated_time_seconds",
          "The machine's emulated clock (advances with ksmd batches).", MetricType::Gauge);

  Sample(n_machines, {}, static_cast<double>(machines.size()));
  for (const auto& src : machines) {
    Machine& m = src->machine();
    const std::string& id = src->machine_id();
    // Two short critical sections on this machine's lock, one after the other.
    const KsmInfo k = m.GetKsm();
    const MachineInfo info = m.Info();
    const std::vector<BlockCounts> by_node = BlocksByNode(m, info.config.nodes);
    std::vector<ClientMetric::Label> ml{{"machine", id}};
    Sample(processes, ml, info.process_count);
    Sample(shared, ml, k.pages_shared);
    Sample(sharing, ml, k.pages_sharing);
    Sample(unshared, ml, k.pages_unshared);
    Sample(volat, ml, k.pages_volatile);
    Sample(full_scans, ml, k.full_scans);
    Sample(scanned, ml, k.visits_total);
    Sample(stable_nodes, ml, k.stable_nodes);
    Sample(rmap_items, ml, k.rmap_items);
    Sample(mm_slots, ml, k.mm_slots);
    Sample(run, ml, k.run);
    Sample(to_scan, ml, k.pages_to_scan);
    Sample(sleep, ml, k.sleep_millisecs / 1000.0);
    Sample(locked, ml, k.locked_by_offline ? 1 : 0);
    Sample(clock, ml, info.emulated_time_ns / 1e9);
    for (const NodeStats& ns : info.nodes) {
      const std::string node = std::to_string(ns.node);
      const BlockCounts bc = ns.node < by_node.size() ? by_node[ns.node] : BlockCounts{};
      const uint64_t offline_pages = bc.offline_pages;
      const std::pair<const char*, uint64_t> by_state[] = {
          {"free", ns.free_pages},   {"anon", ns.anon_pages},         {"ksm", ns.ksm_pages},
          {"shmem", ns.shmem_pages}, {"reserved", ns.reserved_pages}, {"offline", offline_pages},
      };
      for (const auto& [state, v] : by_state)
        Sample(pages, {{"machine", id}, {"node", node}, {"state", state}}, v);
      const std::pair<const char*, uint64_t> by_block_state[] = {
          {"online", bc.online},
          {"going_offline", bc.going_offline},
          {"offline", bc.offline},
          {"removed", bc.removed}};
      for (const auto& [state, v] : by_block_state)
        Sample(blocks, {{"machine", id}, {"node", node}, {"state", state}}, v);
    }
  }

  std::vector<MetricFamily> out;
  for (MetricFamily* f : {&n_machines, &processes, &shared, &sharing, &unshared, &volat,
                          &full_scans, &scanned, &stable_nodes, &rmap_items, &mm_slots, &run,
                          &to_scan, &sleep, &locked, &pages, &blocks, &clock})
    out.push_back(std::move(*f));
  return out;
}

}  // namespace memnode::metrics
