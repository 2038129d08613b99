// EventService: a server-streaming watch of a machine's core events.
// Linux analogue: a per-reader ftrace ring buffer fed by tracepoints: the
// writer (the machine) never waits for a reader; a full buffer loses events
// and the reader is told how many.
//
// Design: the host layer's EventHubs (server/host/event_hub.h) number each
// machine's events and queue them for every reader; a stream's RPC thread
// drains its queue and writes to the client, never blocking the machine.
//
// Thread safety: thread-safe.
#ifndef MEMNODE_SERVER_SERVICE_EVENTS_SERVICE_H_
#define MEMNODE_SERVER_SERVICE_EVENTS_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "memnode/v1/events.grpc.pb.h"
#include "server/core/events.h"
#include "server/host/event_hub.h"
#include "server/host/registry.h"

namespace memnode::service {

class EventServiceImpl final : public v1::EventService::Service {
 public:
  struct Options {
    size_t buffer_events = 4096;  // per stream (--event_buffer)
    int max_streams = 16;         // concurrent streams (--max_streams)
  };
  EventServiceImpl(host::Registry& reg, host::EventHubs& hubs, Options options)
      : reg_(reg), hubs_(hubs), options_(options) {}

  grpc::Status WatchEvents(grpc::ServerContext* ctx, const v1::WatchEventsRequest* req,
                           grpc::ServerWriter<v1::MachineEvent>* writer) override;

  int active_streams() const { return active_streams_.load(); }

 private:
  host::Registry& reg_;
  host::EventHubs& hubs_;
  const Options options_;
  std::atomic<int> active_streams_{0};
};

}  // namespace memnode::service

#endif  // MEMNODE_SERVER_SERVICE_EVENTS_SERVICE_H_
