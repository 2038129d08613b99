#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/time/clock.h"
#include "server/core/status.h"
#include "server/host/ksm_wait.h"

#include "absl/strings/str_cat.h"
#include "server/service/auth.h"
#include "server/service/convert.h"
#include "server/service/services.h"
#include "server/service/status_mapping.h"

namespace memnode::service {
namespace {

grpc::Status ResolveKsm(Registry& reg, const std::string& name, std::shared_ptr<MachineHandle>* h) {
  std::string id;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseKsmName(name, &id));
  return Lookup(reg, id, h);
}

// The call's deadline and cancellation, for writes that wait for KSM's lock.
host::CallBounds Bounds(grpc::ServerContext* ctx) {
  host::CallBounds b;
  b.deadline = absl::FromChrono(ctx->deadline());
  b.cancelled = [ctx] { return ctx->IsCancelled(); };
  return b;
}

}  // namespace

grpc::Status KsmServiceImpl::GetKsm(grpc::ServerContext* ctx, const v1::GetKsmRequest* req,
                                    v1::Ksm* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->name(), &h));
  ToProto(h->id(), h->machine().GetKsm(), resp);
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::UpdateKsm(grpc::ServerContext* ctx, const v1::UpdateKsmRequest* req,
                                       v1::UpdateKsmResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->name(), &h));
  auto opt = [](bool has, uint64_t v) { return has ? std::optional<uint64_t>(v) : std::nullopt; };
  // A run write waits while an offline holds KSM's lock, bounded by the
  // call's deadline and cancellation (host/ksm_wait.h).
  absl::StatusOr<Errno> e = host::WaitWhileKsmLocked(Bounds(ctx), [&] {
    return h->machine().KsmUpdate(opt(req->has_run(), req->run()),
                                  opt(req->has_pages_to_scan(), req->pages_to_scan()),
                                  opt(req->has_sleep_millisecs(), req->sleep_millisecs()));
  });
  if (!e.ok()) return ToGrpc(e.status());
  h->Wake();
  resp->set_errnum(ToProto(*e));
  ToProto(h->id(), h->machine().GetKsm(), resp->mutable_ksm());
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::WriteKsmSysfs(grpc::ServerContext* ctx,
                                           const v1::WriteKsmSysfsRequest* req,
                                           v1::UpdateKsmResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->name(), &h));
  if (req->value().size() > 4096)
    return InvalidField("value", "a sysfs write is at most 4096 bytes");
  absl::StatusOr<Errno> e = host::WaitWhileKsmLocked(
      Bounds(ctx), [&] { return h->machine().KsmWriteSysfs(req->file(), req->value()); });
  if (!e.ok()) return ToGrpc(e.status());
  h->Wake();
  resp->set_errnum(ToProto(*e));
  ToProto(h->id(), h->machine().GetKsm(), resp->mutable_ksm());
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::StepKsm(grpc::ServerContext* ctx, const v1::StepKsmRequest* req,
                                     v1::StepKsmResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->name(), &h));
  // The scan runs under the machine's lock in one core call and cannot be
  // interrupted: its size is bounded by --max_ksm_visits instead.
  const uint64_t cap = reg_.limits().max_ksm_visits;
  absl::StatusOr<KsmStepResult> r;
  switch (req->until_case()) {
    case v1::StepKsmRequest::kVisits:
      if (req->visits() > cap)
        return OverLimit(Reason::kVisitsLimit, "visits", req->visits(), cap, "visits");
      MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
      r = h->machine().KsmStepVisits(req->visits());
      break;
    case v1::StepKsmRequest::kFullScans:
      // max_visits is a safety bound: the server's cap tightens it (clients
      // such as memnodectl send the documented 2^32).
      MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
      r = h->machine().KsmStepPasses(req->full_scans(),
                                     req->max_visits() ? std::min(req->max_visits(), cap) : cap);
      break;
    default: return InvalidField("until", "one of visits or full_scans is required");
  }
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_visits(r->visits);
  resp->set_passes(r->passes);
  ToProto(h->id(), h->machine().GetKsm(), resp->mutable_ksm());
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::ListStableNodes(grpc::ServerContext* ctx,
                                             const v1::ListStableNodesRequest* req,
                                             v1::ListStableNodesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->parent(), &h));
  auto all = h->machine().KsmStableNodes();
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(
      PageWindow(req->page_size(), req->page_token(), all.size(), 100, 1000, &b, &e, &next));
  for (size_t i = b; i < e; ++i) ToProto(all[i], resp->add_stable_nodes());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::ListUnstableItems(grpc::ServerContext* ctx,
                                               const v1::ListUnstableItemsRequest* req,
                                               v1::ListUnstableItemsResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->parent(), &h));
  auto all = h->machine().KsmUnstableItems();
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(
      PageWindow(req->page_size(), req->page_token(), all.size(), 100, 1000, &b, &e, &next));
  for (size_t i = b; i < e; ++i) ToProto(all[i], resp->add_items());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::ListRmapItems(grpc::ServerContext* ctx,
                                           const v1::ListRmapItemsRequest* req,
                                           v1::ListRmapItemsResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  Pid pid;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseProcessName(req->process(), &id, &pid));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  auto all = h->machine().KsmRmapItems(pid);
  if (!all.ok()) return ToGrpc(all.status());
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(
      PageWindow(req->page_size(), req->page_token(), all->size(), 100, 1000, &b, &e, &next));
  for (size_t i = b; i < e; ++i) ToProto((*all)[i], resp->add_items());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

}  // namespace memnode::service
