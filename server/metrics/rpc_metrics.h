// RPC metrics: requests by method and status code, latency by method.
// Linux analogue: none (server-side instrumentation).
//
// How: a gRPC server interceptor. gRPC 1.51 offers
// grpc::experimental::ServerInterceptorFactoryInterface, set through
// ServerBuilder::experimental().SetInterceptorCreators(); it sees every RPC of
// every registered service (sync and streaming) with its method name, and the
// final status at PRE_SEND_STATUS. That covers all services without touching
// them, where wrapping would mean one decorator per service class. The API is
// "experimental" but has been stable since 1.20 and is what 1.51 ships.
//
// Thread safety: thread-safe (prometheus counters/histograms are).
#ifndef MEMNODE_SERVER_METRICS_RPC_METRICS_H_
#define MEMNODE_SERVER_METRICS_RPC_METRICS_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace memnode::metrics {

class RpcMetrics {
 public:
  // Registers memnode_rpc_requests_total and memnode_rpc_duration_seconds in
  // `registry` and pre-creates the series of every method of `services`
  // (full names, e.g. "memnode.v1.KsmService"): requests with code OK and the
  // latency histogram, all at zero.
  RpcMetrics(prometheus::Registry& registry, const std::vector<std::string>& services);

  // `method` as gRPC reports it ("/memnode.v1.KsmService/StepKsm"); methods of
  // services not given at construction are counted under method="other"
  // (bounded cardinality whatever clients send).
  void Record(const std::string& method, grpc::StatusCode code, double seconds);

  // An interceptor factory for ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  // "OK", "CANCELLED", ... (the canonical names).
  static const char* CodeName(grpc::StatusCode code);

 private:
  std::string MethodLabel(const std::string& method) const;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& duration_;
  std::vector<std::string> services_;  // "/memnode.v1.KsmService/" prefixes
  struct Children {
    prometheus::Histogram* duration = nullptr;
    std::array<prometheus::Counter*, 32> requests{};  // by status code
  };
  absl::Mutex mu_;
  // By method label: bounded (known methods + "other") whatever clients send.
  absl::flat_hash_map<std::string, Children> children_ ABSL_GUARDED_BY(mu_);
};

}  // namespace memnode::metrics

#endif  // MEMNODE_SERVER_METRICS_RPC_METRICS_H_
