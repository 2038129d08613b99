// Overview
//
// WatchEvents streams a machine's core events to a client without ever
// letting the client slow the machine:
//   machine (under its lock) -> EventHub::OnEvent -> EventQueue::Push (per stream)
//   stream RPC thread        -> EventQueue::Drain -> ServerWriter::Write
// Invariants:
//  1. Push is O(1), takes only the queue's mutex, never allocates or blocks;
//     a full queue drops the new event and counts it.
//  2. Every lost event is reported exactly once, by an EVENT_KIND_DROPPED
//     event with the count, at the place of the loss in the stream (losses
//     happen only while the queue is full, i.e. after its last event).
//  3. Events are delivered in the machine's order; sequence numbers are per
//     machine (every event numbered, whatever the streams' filters).
//  4. A stream ends when the client goes away (Write fails or the context is
//     cancelled; checked at least every kPollInterval), when its machine
//     leaves the registry, or at server shutdown.
#include "server/service/events_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/service/auth.h"
#include "server/service/convert.h"
#include "server/service/services.h"
#include "server/service/status_mapping.h"

namespace memnode::service {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(100);

v1::PruneReason ToProto(PruneReason r) {
  switch (r) {
    case PruneReason::kStale: return v1::PRUNE_REASON_STALE;
    case PruneReason::kOffline: return v1::PRUNE_REASON_OFFLINE;
    case PruneReason::kUnmerge: return v1::PRUNE_REASON_UNMERGE;
  }
  return v1::PRUNE_REASON_UNSPECIFIED;
}

v1::MigrateReason ToProto(MigrateReason r) {
  switch (r) {
    case MigrateReason::kOffline: return v1::MIGRATE_REASON_MEMORY_OFFLINE;
    case MigrateReason::kMbind: return v1::MIGRATE_REASON_MBIND;
    case MigrateReason::kMigratePages: return v1::MIGRATE_REASON_MIGRATE_PAGES;
    case MigrateReason::kMovePages: return v1::MIGRATE_REASON_MOVE_PAGES;
  }
  return v1::MIGRATE_REASON_UNSPECIFIED;
}

// Machine::MemEvent (carried as an int by the core event) -> proto.
v1::MemoryNotifierEvent MemEventToProto(int e) {
  switch (static_cast<Machine::MemEvent>(e)) {
    case Machine::MemEvent::kGoingOnline: return v1::MEM_GOING_ONLINE;
    case Machine::MemEvent::kCancelOnline: return v1::MEM_CANCEL_ONLINE;
    case Machine::MemEvent::kOnline: return v1::MEM_ONLINE;
    case Machine::MemEvent::kGoingOffline: return v1::MEM_GOING_OFFLINE;
    case Machine::MemEvent::kCancelOffline: return v1::MEM_CANCEL_OFFLINE;
    case Machine::MemEvent::kOffline: return v1::MEM_OFFLINE;
  }
  return v1::MEMORY_NOTIFIER_EVENT_UNSPECIFIED;
}

// Machine::OfflinePhase (carried as an int) -> proto.
v1::OfflinePhase PhaseToProto(int p) {
  switch (static_cast<Machine::OfflinePhase>(p)) {
    case Machine::OfflinePhase::kNone: return v1::OFFLINE_PHASE_NONE;
    case Machine::OfflinePhase::kIsolated: return v1::OFFLINE_PHASE_ISOLATED;
    case Machine::OfflinePhase::kGoingOffline: return v1::OFFLINE_PHASE_GOING_OFFLINE;
    case Machine::OfflinePhase::kMigrated: return v1::OFFLINE_PHASE_MIGRATED;
    case Machine::OfflinePhase::kDone: return v1::OFFLINE_PHASE_DONE;
  }
  return v1::OFFLINE_PHASE_NONE;
}

// The core's results are 0 or -errno (Linux numbers, like v1::Errno's). An
// errno the enum does not name (a notifier veto may choose any) is kept as
// its number: proto3 enums are open.
v1::Errno ResultToErrno(int32_t result) {
  return static_cast<v1::Errno>(result < 0 ? -static_cast<int64_t>(result) : 0);
}

void ToProto(const QueuedEvent& q, uint64_t time_ns, v1::MachineEvent* out) {
  const Event& e = q.event;
  out->set_sequence(q.sequence);
  out->set_kind(ToProtoKind(e.kind));
  out->set_emulated_time_ns(time_ns);
  switch (e.kind) {
    case EventKind::kMerge:
      out->set_pid(e.pid);
      out->set_address(e.address);
      out->set_pfn(e.pfn);
      out->set_stable_node_id(e.node_id);
      out->set_new_node(e.new_node);
      break;
    case EventKind::kCowBreak:
      out->set_pid(e.pid);
      out->set_address(e.address);
      out->set_pfn(e.pfn);
      break;
    case EventKind::kPrune:
      out->set_pfn(e.pfn);
      out->set_stable_node_id(e.node_id);
      out->set_prune_reason(ToProto(e.reason));
      out->set_value(e.value);
      break;
    case EventKind::kPassEnd: out->set_value(e.value); break;
    case EventKind::kProcessExit: out->set_pid(e.pid); break;
    case EventKind::kMigrate:
      out->set_pfn(e.pfn);
      out->set_migrate_reason(ToProto(e.migrate_reason));
      out->set_errnum(ResultToErrno(e.result));
      out->set_ksm(e.ksm);
      break;
    case EventKind::kNotifier:
      out->set_memory_event(MemEventToProto(e.mem_event));
      out->set_notifier_priority(e.priority);
      out->set_notifier(e.notifier != nullptr ? e.notifier : "");
      out->set_block(e.block);
      out->set_errnum(ResultToErrno(e.result));
      break;
    case EventKind::kOfflinePhase:
      out->set_block(e.block);
      out->set_offline_phase(PhaseToProto(e.phase));
      break;
    case EventKind::kOfflineResult:
      out->set_block(e.block);
      out->set_errnum(ResultToErrno(e.result));
      out->set_duration_ns(e.duration_ns);
      break;
    case EventKind::kKsmdHeld: break;
  }
}

}  // namespace

v1::EventKind ToProtoKind(EventKind k) {
  switch (k) {
    case EventKind::kMerge: return v1::EVENT_KIND_MERGE;
    case EventKind::kCowBreak: return v1::EVENT_KIND_COW_BREAK;
    case EventKind::kPrune: return v1::EVENT_KIND_PRUNE;
    case EventKind::kPassEnd: return v1::EVENT_KIND_PASS_END;
    case EventKind::kProcessExit: return v1::EVENT_KIND_PROCESS_EXIT;
    case EventKind::kMigrate: return v1::EVENT_KIND_MIGRATE;
    case EventKind::kNotifier: return v1::EVENT_KIND_MEMORY_NOTIFY;
    case EventKind::kOfflinePhase: return v1::EVENT_KIND_OFFLINE_PHASE;
    case EventKind::kOfflineResult: return v1::EVENT_KIND_OFFLINE_RESULT;
    case EventKind::kKsmdHeld: return v1::EVENT_KIND_KSM_BATCH_HELD;
  }
  return v1::EVENT_KIND_UNSPECIFIED;
}

// --- EventQueue ---------------------------------------------------------------

EventQueue::EventQueue(size_t capacity, uint64_t kinds)
    : kinds_(kinds), ring_(std::max<size_t>(capacity, 1)) {}

void EventQueue::Push(uint64_t sequence, const Event& e) {
  absl::MutexLock lock(&mu_);
  if (end_ != End::kOpen) return;
  if (size_ == ring_.size()) {
    dropped_++;
    return;
  }
  QueuedEvent& q = ring_[(head_ + size_) % ring_.size()];
  q.sequence = sequence;
  q.event = e;
  size_++;
}

void EventQueue::Close(End why) {
  absl::MutexLock lock(&mu_);
  if (end_ == End::kOpen) end_ = why;
}

EventQueue::End EventQueue::Drain(absl::Duration timeout, std::vector<QueuedEvent>* out,
                                  uint64_t* tail_dropped) {
  out->clear();
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return size_ > 0 || dropped_ > 0 || end_ != End::kOpen;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  // Batch: after the first event, wait a moment for more (up to a quarter of
  // the ring or 2 ms), so a busy machine wakes the reader once per batch
  // instead of once per event.
  auto batch = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return size_ >= ring_.size() / 4 || end_ != End::kOpen;
  };
  if (size_ > 0 && end_ == End::kOpen)
    mu_.AwaitWithTimeout(absl::Condition(&batch), absl::Milliseconds(2));
  out->reserve(size_);
  for (; size_ > 0; size_--, head_ = (head_ + 1) % ring_.size()) out->push_back(ring_[head_]);
  *tail_dropped = dropped_;
  dropped_ = 0;
  return end_;
}

// --- EventHub -----------------------------------------------------------------

void EventHub::OnEvent(const Event& e) {
  absl::MutexLock lock(&mu_);
  const uint64_t seq = ++sequence_;
  if (queues_.empty()) return;
  const int kind = ToProtoKind(e.kind);
  if (kind == v1::EVENT_KIND_UNSPECIFIED) return;  // a kind the API does not carry
  for (EventQueue* q : queues_)
    if (q->Wants(kind)) q->Push(seq, e);
}

void EventHub::Subscribe(EventQueue* q) {
  absl::MutexLock lock(&mu_);
  if (closed_ != EventQueue::End::kOpen) {
    q->Close(closed_);
    return;
  }
  queues_.push_back(q);
}

void EventHub::Unsubscribe(EventQueue* q) {
  absl::MutexLock lock(&mu_);
  queues_.erase(std::remove(queues_.begin(), queues_.end(), q), queues_.end());
}

void EventHub::CloseAll(EventQueue::End why) {
  absl::MutexLock lock(&mu_);
  if (closed_ == EventQueue::End::kOpen) closed_ = why;
  for (EventQueue* q : queues_) q->Close(why);
}

// --- EventServiceImpl -----------------------------------------------------------

EventServiceImpl::EventServiceImpl(Registry& reg, Options options) : reg_(reg), options_(options) {
  reg_.AddListener(this);
}

EventServiceImpl::~EventServiceImpl() {
  reg_.RemoveListener(this);
  std::map<std::string, Hooked> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(hubs_);
  }
  for (auto& [id, h] : left) {
    h.handle->machine().RemoveObserver(h.hub.get());
    h.hub->CloseAll(EventQueue::End::kShutdown);
  }
}

void EventServiceImpl::OnMachineAdded(const std::shared_ptr<MachineHandle>& handle) {
  auto hub = std::make_shared<EventHub>();
  absl::MutexLock lock(&mu_);
  handle->machine().AddObserver(hub.get());
  hubs_[handle->id()] = Hooked{handle, std::move(hub)};
}

void EventServiceImpl::OnMachineRemoved(const std::shared_ptr<MachineHandle>& handle) {
  Hooked h;
  {
    absl::MutexLock lock(&mu_);
    auto it = hubs_.find(handle->id());
    if (it == hubs_.end()) return;
    h = std::move(it->second);
    hubs_.erase(it);
    h.handle->machine().RemoveObserver(h.hub.get());
  }
  h.hub->CloseAll(EventQueue::End::kMachineRemoved);
}

void EventServiceImpl::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  for (auto& [id, h] : hubs_) h.hub->CloseAll(EventQueue::End::kShutdown);
}

grpc::Status EventServiceImpl::WatchEvents(grpc::ServerContext* ctx,
                                           const v1::WatchEventsRequest* req,
                                           grpc::ServerWriter<v1::MachineEvent>* writer) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->name(), &id));
  uint64_t kinds = 0;
  for (int i = 0; i < req->kinds_size(); ++i) {
    const int k = req->kinds(i);
    if (k == v1::EVENT_KIND_UNSPECIFIED || !v1::EventKind_IsValid(k) || k >= 64)
      return InvalidField("kinds",
                          absl::StrCat("kinds[", i, "] is not a valid EventKind (", k, ")"));
    kinds |= uint64_t{1} << k;
  }
  if (kinds) kinds |= uint64_t{1} << v1::EVENT_KIND_DROPPED;

  std::shared_ptr<MachineHandle> handle;
  std::shared_ptr<EventHub> hub;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_)
      return Error(grpc::StatusCode::UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down");
    auto it = hubs_.find(id);
    if (it != hubs_.end()) {
      handle = it->second.handle;
      hub = it->second.hub;
    }
  }
  if (!hub) {
    // Not (or no longer) in the registry: the registry's own NOT_FOUND.
    std::shared_ptr<MachineHandle> h;
    MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
    return Error(grpc::StatusCode::NOT_FOUND, "MACHINE_NOT_FOUND",
                 absl::StrCat("machines/", id, " not found"));
  }

  if (active_streams_.fetch_add(1) >= options_.max_streams) {
    active_streams_.fetch_sub(1);
    return Error(grpc::StatusCode::RESOURCE_EXHAUSTED, "STREAM_LIMIT",
                 absl::StrCat("at most ", options_.max_streams, " event streams at once"),
                 {{"max_streams", absl::StrCat(options_.max_streams)}});
  }
  struct Release {
    std::atomic<int>& n;
    ~Release() { n.fetch_sub(1); }
  } release{active_streams_};

  EventQueue queue(options_.buffer_events, kinds);
  hub->Subscribe(&queue);
  struct Unsub {
    EventHub& hub;
    EventQueue* q;
    ~Unsub() { hub.Unsubscribe(q); }
  } unsub{*hub, &queue};

  // Headers go out at once so that a client knows the watch is in place
  // before it drives the machine.
  writer->SendInitialMetadata();

  std::vector<QueuedEvent> batch;
  v1::MachineEvent msg;
  for (;;) {
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    uint64_t tail_dropped = 0;
    const EventQueue::End end = queue.Drain(kPollInterval, &batch, &tail_dropped);
    if (!batch.empty()) {
      // Core events carry no time yet: stamp them with the clock as of now
      // (one short lock of the machine per batch).
      const uint64_t now_ns = handle->machine().Info().emulated_time_ns;
      for (const QueuedEvent& q : batch) {
        msg.Clear();
        ToProto(q, now_ns, &msg);
        if (!writer->Write(msg))
          return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
    }
    if (tail_dropped > 0) {
      msg.Clear();
      msg.set_kind(v1::EVENT_KIND_DROPPED);
      msg.set_dropped(tail_dropped);
      if (!writer->Write(msg)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    if (end == EventQueue::End::kMachineRemoved && batch.empty() && tail_dropped == 0)
      return Error(grpc::StatusCode::NOT_FOUND, "MACHINE_NOT_FOUND",
                   absl::StrCat("machines/", id, " was deleted"));
    if (end == EventQueue::End::kShutdown && batch.empty() && tail_dropped == 0)
      return Error(grpc::StatusCode::UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down");
  }
}

}  // namespace memnode::service
