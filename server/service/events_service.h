// EventService: a server-streaming watch of a machine's core events.
// Linux analogue: a per-reader ftrace ring buffer fed by tracepoints: the
// writer (the machine) never waits for a reader; a full buffer loses events
// and the reader is told how many.
//
// Design: one EventHub per machine (a core Observer attached when the machine
// enters the Registry) numbers the machine's events and appends them to the
// bounded queue of each subscribed stream; the stream's RPC thread drains its
// queue and writes to the client. The observer does O(streams) appends under
// two small mutexes (hub, then queue) and never blocks on the network.
//
// Thread safety: thread-safe. Lock order: Registry::mu_, EventServiceImpl::mu_,
// Machine::mu_, EventHub::mu_, EventQueue::mu_.
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
#include "server/service/registry.h"

namespace memnode::service {

// A core event as queued for a stream, with its per-machine sequence number.
struct QueuedEvent {
  uint64_t sequence = 0;
  Event event{EventKind::kMerge};
};

// The bounded queue of one stream. Push never blocks and never allocates
// (the ring is allocated once); when full the new event is dropped and
// counted. Losses only happen while the queue is full, so they always follow
// the last queued event: Drain hands them out after the events it returns.
class EventQueue {
 public:
  enum class End { kOpen, kMachineRemoved, kShutdown };
  // `kinds`: bit (proto EventKind value) set = deliver; 0 = every kind.
  EventQueue(size_t capacity, uint64_t kinds);

  // Called by the hub under the machine's lock.
  void Push(uint64_t sequence, const Event& e) ABSL_LOCKS_EXCLUDED(mu_);
  void Close(End why) ABSL_LOCKS_EXCLUDED(mu_);

  // Waits up to `timeout` for events (or the end), then moves them to `out`
  // (in order). `tail_dropped`: events lost after the last one in `out`.
  // Returns the end state.
  End Drain(absl::Duration timeout, std::vector<QueuedEvent>* out, uint64_t* tail_dropped)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Whether the proto kind `kind` passes the filter.
  bool Wants(int kind) const { return kinds_ == 0 || (kind < 64 && (kinds_ >> kind) & 1); }

 private:
  const uint64_t kinds_;
  absl::Mutex mu_;
  std::vector<QueuedEvent> ring_ ABSL_GUARDED_BY(mu_);
  size_t head_ ABSL_GUARDED_BY(mu_) = 0;  // oldest
  size_t size_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;  // lost since the last queued event
  End end_ ABSL_GUARDED_BY(mu_) = End::kOpen;
};

// Numbers a machine's events and fans them out to its streams.
class EventHub final : public Observer {
 public:
  void OnEvent(const Event& e) override ABSL_LOCKS_EXCLUDED(mu_);
  void Subscribe(EventQueue* q) ABSL_LOCKS_EXCLUDED(mu_);
  void Unsubscribe(EventQueue* q) ABSL_LOCKS_EXCLUDED(mu_);
  // Closes every subscribed queue (machine removed, server shutting down).
  void CloseAll(EventQueue::End why) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<EventQueue*> queues_ ABSL_GUARDED_BY(mu_);
  EventQueue::End closed_ ABSL_GUARDED_BY(mu_) = EventQueue::End::kOpen;
};

// The proto kind of a core event kind (every core kind has one; a kind added to
// the core without one maps to EVENT_KIND_UNSPECIFIED and is not streamed).
v1::EventKind ToProtoKind(EventKind k);

class EventServiceImpl final : public v1::EventService::Service, public RegistryListener {
 public:
  struct Options {
    size_t buffer_events = 4096;  // per stream (--event_buffer)
    int max_streams = 16;         // concurrent streams (--max_streams)
  };
  // Registers itself as a listener of `reg` (attaching a hub to every machine).
  EventServiceImpl(Registry& reg, Options options);
  // Unregisters and detaches every hub.
  ~EventServiceImpl() override;

  grpc::Status WatchEvents(grpc::ServerContext* ctx, const v1::WatchEventsRequest* req,
                           grpc::ServerWriter<v1::MachineEvent>* writer) override;

  // Ends every stream promptly (UNAVAILABLE / SHUTTING_DOWN) and refuses new
  // ones; call before grpc::Server::Shutdown.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  int active_streams() const { return active_streams_.load(); }

  // RegistryListener
  void OnMachineAdded(const std::shared_ptr<MachineHandle>& handle) override;
  void OnMachineRemoved(const std::shared_ptr<MachineHandle>& handle) override;

 private:
  struct Hooked {
    std::shared_ptr<MachineHandle> handle;
    std::shared_ptr<EventHub> hub;
  };
  Registry& reg_;
  const Options options_;
  std::atomic<int> active_streams_{0};
  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Hooked> hubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace memnode::service

#endif  // MEMNODE_SERVER_SERVICE_EVENTS_SERVICE_H_
