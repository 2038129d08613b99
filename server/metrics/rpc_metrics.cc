#include "server/metrics/rpc_metrics.h"

#include <chrono>

#include <google/protobuf/descriptor.h>

#include "absl/strings/match.h"

namespace memnode::metrics {
namespace {

// 50 us (a small unary call on loopback) to 60 s (long steps, streams).
const prometheus::Histogram::BucketBoundaries& RpcBuckets() {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,    0.1,    0.25,    0.5,    1,     2.5,    10,    60};
  return *kBuckets;
}

class Interceptor final : public grpc::experimental::Interceptor {
 public:
  Interceptor(RpcMetrics& metrics, const char* method)
      : metrics_(metrics),
        method_(method ? method : ""),
        start_(std::chrono::steady_clock::now()) {}
  ~Interceptor() override {
    // The call ended without a status going out (the client went away first).
    if (!recorded_) Finish(grpc::StatusCode::CANCELLED);
  }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS))
      Finish(methods->GetSendStatus().error_code());
    methods->Proceed();
  }

 private:
  void Finish(grpc::StatusCode code) {
    recorded_ = true;
    std::chrono::duration<double> d = std::chrono::steady_clock::now() - start_;
    metrics_.Record(method_, code, d.count());
  }
  RpcMetrics& metrics_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(RpcMetrics& m) : metrics_(m) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new Interceptor(metrics_, info->method());
  }

 private:
  RpcMetrics& metrics_;
};

}  // namespace

const char* RpcMetrics::CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

RpcMetrics::RpcMetrics(prometheus::Registry& registry, const std::vector<std::string>& services)
    : requests_(prometheus::BuildCounter()
                    .Name("memnode_rpc_requests_total")
                    .Help("gRPC requests handled, by method and status code.")
                    .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("memnode_rpc_duration_seconds")
                    .Help("gRPC handling time from the call's start to its status, by method "
                          "(a stream's whole life for WatchEvents).")
                    .Register(registry)) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const std::string& s : services) {
    services_.push_back("/" + s + "/");
    const google::protobuf::ServiceDescriptor* sd = pool->FindServiceByName(s);
    if (!sd) continue;
    for (int i = 0; i < sd->method_count(); ++i) {
      const std::string m = s + "/" + sd->method(i)->name();
      requests_.Add({{"method", m}, {"code", "OK"}});
      duration_.Add({{"method", m}}, RpcBuckets());
    }
  }
}

std::string RpcMetrics::MethodLabel(const std::string& method) const {
  for (const std::string& prefix : services_)
    if (absl::StartsWith(method, prefix)) return method.substr(1);
  return "other";
}

void RpcMetrics::Record(const std::string& method, grpc::StatusCode code, double seconds) {
  prometheus::Counter* requests;
  prometheus::Histogram* duration;
  {
    // Family::Add would build a throw-away metric on every call; cache the
    // children instead (one small map lookup per RPC).
    const std::string label = MethodLabel(method);
    absl::MutexLock lock(&mu_);
    Children& c = children_[label];
    if (!c.duration) c.duration = &duration_.Add({{"method", label}}, RpcBuckets());
    prometheus::Counter*& r = c.requests[static_cast<int>(code) & 31];
    if (!r) r = &requests_.Add({{"method", label}, {"code", CodeName(code)}});
    requests = r;
    duration = c.duration;
  }
  requests->Increment();
  duration->Observe(seconds);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcMetrics::InterceptorFactory() {
  return std::make_unique<Factory>(*this);
}

}  // namespace memnode::metrics
