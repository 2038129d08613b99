// Fan-out of a machine's core events to bounded per-reader queues.
// Linux analogue: a per-reader ftrace ring buffer fed by tracepoints: the
// writer (the machine) never waits for a reader; a full buffer loses events
// and the reader is told how many.
//
// Design: one EventHub per machine (a core Observer attached when the machine
// enters the Registry) appends the machine's events (numbered and stamped by
// the machine itself) to the bounded queue of each subscribed reader (an event stream, the HTTP
// gateway's stream); the reader's thread drains its queue. The observer does
// O(readers) appends under two small mutexes (hub, then queue) and never
// blocks on a reader.
//
// Thread safety: thread-safe. Lock order: Registry::mu_, EventHubs::mu_,
// Machine::mu_, EventHub::mu_, EventQueue::mu_.
#ifndef MEMNODE_SERVER_HOST_EVENT_HUB_H_
#define MEMNODE_SERVER_HOST_EVENT_HUB_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/events.h"
#include "server/host/registry.h"

namespace memnode::host {

// A core event as queued for a reader, with its per-machine sequence number.
struct QueuedEvent {
  uint64_t sequence = 0;
  Event event{EventKind::kMerge};
};

// The mask of one core event kind (EventQueue filters).
inline constexpr uint64_t KindBit(EventKind k) { return uint64_t{1} << static_cast<int>(k); }

// The bounded queue of one reader. Push never blocks and never allocates
// (the ring is allocated once); when full the new event is dropped and
// counted. Losses only happen while the queue is full, so they always follow
// the last queued event: Drain hands them out after the events it returns.
class EventQueue {
 public:
  enum class End { kOpen, kMachineRemoved, kShutdown };
  // `kinds`: KindBit()s to deliver; 0 = every kind.
  EventQueue(size_t capacity, uint64_t kinds);

  // Called by the hub under the machine's lock.
  void Push(uint64_t sequence, const Event& e) ABSL_LOCKS_EXCLUDED(mu_);
  void Close(End why) ABSL_LOCKS_EXCLUDED(mu_);

  // Waits up to `timeout` for events (or the end), then moves them to `out`
  // (in order). `tail_dropped`: events lost after the last one in `out`.
  // Returns the end state.
  End Drain(absl::Duration timeout, std::vector<QueuedEvent>* out, uint64_t* tail_dropped)
      ABSL_LOCKS_EXCLUDED(mu_);

  bool Wants(EventKind kind) const { return kinds_ == 0 || (kinds_ & KindBit(kind)) != 0; }

 private:
  const uint64_t kinds_;
  absl::Mutex mu_;
  std::vector<QueuedEvent> ring_ ABSL_GUARDED_BY(mu_);
  size_t head_ ABSL_GUARDED_BY(mu_) = 0;  // oldest
  size_t size_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;  // lost since the last queued event
  End end_ ABSL_GUARDED_BY(mu_) = End::kOpen;
};

// Fans a machine's events (numbered by the machine) out to its readers.
class EventHub final : public Observer {
 public:
  void OnEvent(const Event& e) override ABSL_LOCKS_EXCLUDED(mu_);
  void Subscribe(EventQueue* q) ABSL_LOCKS_EXCLUDED(mu_);
  void Unsubscribe(EventQueue* q) ABSL_LOCKS_EXCLUDED(mu_);
  // Closes every subscribed queue (machine removed, server shutting down).
  void CloseAll(EventQueue::End why) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::vector<EventQueue*> queues_ ABSL_GUARDED_BY(mu_);
  EventQueue::End closed_ ABSL_GUARDED_BY(mu_) = EventQueue::End::kOpen;
};

// One hub per machine of a registry, attached while the machine is in it.
class EventHubs final : public RegistryListener {
 public:
  // Registers itself as a listener of `reg` (attaching a hub to every machine).
  explicit EventHubs(Registry& reg);
  // Unregisters, detaches every hub and closes its readers.
  ~EventHubs() override;

  struct Hooked {
    std::shared_ptr<MachineHandle> handle;
    std::shared_ptr<EventHub> hub;
  };
  // The machine's hub; an empty result when the machine is not (or no longer)
  // in the registry, or the server is shutting down (*shutting_down set).
  Hooked Find(const std::string& id, bool* shutting_down) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every reader promptly and refuses new ones.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  void OnMachineAdded(const std::shared_ptr<MachineHandle>& handle) override;
  void OnMachineRemoved(const std::shared_ptr<MachineHandle>& handle) override;

 private:
  Registry& reg_;
  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Hooked> hubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace memnode::host

#endif  // MEMNODE_SERVER_HOST_EVENT_HUB_H_
