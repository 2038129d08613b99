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

// The core's results are 0 or -errno (Linux numbers, like v1::Errno's). An
// errno the enum does not name (a notifier veto may choose any) is kept as
// its number: proto3 enums are open.
v1::Errno ResultToErrno(int32_t result) {
  return static_cast<v1::Errno>(result < 0 ? -static_cast<int64_t>(result) : 0);
}

void EventToProto(const host::QueuedEvent& q, uint64_t time_ns, v1::MachineEvent* out) {
  const Event& e = q.event;
  out->set_sequence(q.sequence);
  out->set_kind(ToProto(e.kind));
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
      out->set_memory_event(ToProto(e.mem_event));
      out->set_notifier_priority(e.priority);
      out->set_notifier(e.notifier != nullptr ? e.notifier : "");
      out->set_block(e.block);
      out->set_errnum(ResultToErrno(e.result));
      break;
    case EventKind::kOfflinePhase:
      out->set_block(e.block);
      out->set_offline_phase(ToProto(e.phase));
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

grpc::Status EventServiceImpl::WatchEvents(grpc::ServerContext* ctx,
                                           const v1::WatchEventsRequest* req,
                                           grpc::ServerWriter<v1::MachineEvent>* writer) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->name(), &id));
  // The core kinds asked for (DROPPED is the stream's own and always sent).
  uint64_t kinds = 0;
  for (int i = 0; i < req->kinds_size(); ++i) {
    const int k = req->kinds(i);
    std::optional<EventKind> core = FromProto(static_cast<v1::EventKind>(k));
    if (k == v1::EVENT_KIND_DROPPED) continue;
    if (!core)
      return InvalidField("kinds",
                          absl::StrCat("kinds[", i, "] is not a valid EventKind (", k, ")"));
    kinds |= host::KindBit(*core);
  }
  const bool only_dropped = req->kinds_size() > 0 && kinds == 0;

  bool shutting_down = false;
  host::EventHubs::Hooked hooked = hubs_.Find(id, &shutting_down);
  if (shutting_down)
    return Error(grpc::StatusCode::UNAVAILABLE, Reason::kShuttingDown,
                 "the server is shutting down");
  std::shared_ptr<host::MachineHandle> handle = hooked.handle;
  std::shared_ptr<host::EventHub> hub = hooked.hub;
  if (!hub) {
    // Not (or no longer) in the registry: the registry's own NOT_FOUND.
    std::shared_ptr<MachineHandle> h;
    MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
    return Error(grpc::StatusCode::NOT_FOUND, Reason::kMachineNotFound,
                 absl::StrCat("machines/", id, " not found"));
  }

  if (active_streams_.fetch_add(1) >= options_.max_streams) {
    active_streams_.fetch_sub(1);
    return Error(grpc::StatusCode::RESOURCE_EXHAUSTED, Reason::kStreamLimit,
                 absl::StrCat("at most ", options_.max_streams, " event streams at once"),
                 {{"max_streams", absl::StrCat(options_.max_streams)}});
  }
  struct Release {
    std::atomic<int>& n;
    ~Release() { n.fetch_sub(1); }
  } release{active_streams_};

  // A filter naming only DROPPED selects no core event (a bit no kind has).
  host::EventQueue queue(options_.buffer_events, only_dropped ? uint64_t{1} << 63 : kinds);
  hub->Subscribe(&queue);
  struct Unsub {
    host::EventHub& hub;
    host::EventQueue* q;
    ~Unsub() { hub.Unsubscribe(q); }
  } unsub{*hub, &queue};

  // Headers go out at once so that a client knows the watch is in place
  // before it drives the machine.
  writer->SendInitialMetadata();

  std::vector<host::QueuedEvent> batch;
  v1::MachineEvent msg;
  for (;;) {
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    uint64_t tail_dropped = 0;
    const host::EventQueue::End end = queue.Drain(kPollInterval, &batch, &tail_dropped);
    if (!batch.empty()) {
      // Core events carry no time yet: stamp them with the clock as of now
      // (one short lock of the machine per batch).
      const uint64_t now_ns = handle->machine().Info().emulated_time_ns;
      for (const host::QueuedEvent& q : batch) {
        msg.Clear();
        EventToProto(q, now_ns, &msg);
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
    if (end == host::EventQueue::End::kMachineRemoved && batch.empty() && tail_dropped == 0)
      return Error(grpc::StatusCode::NOT_FOUND, Reason::kMachineNotFound,
                   absl::StrCat("machines/", id, " was deleted"));
    if (end == host::EventQueue::End::kShutdown && batch.empty() && tail_dropped == 0)
      return Error(grpc::StatusCode::UNAVAILABLE, Reason::kShuttingDown,
                   "the server is shutting down");
  }
}

}  // namespace memnode::service
