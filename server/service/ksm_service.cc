#include <chrono>
#include <optional>

#include "absl/time/clock.h"
#include "server/core/status.h"

#include "absl/strings/str_cat.h"
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

// Retries `write` while it reports KSM_LOCKED, until the client's deadline
// (DEADLINE_EXCEEDED) or cancellation (CANCELLED).
template <typename F>
absl::StatusOr<Errno> WaitWhileKsmLocked(grpc::ServerContext* ctx, F write) {
  for (;;) {
    absl::StatusOr<Errno> e = write();
    if (e.ok() || ErrorReason(e.status()) != "KSM_LOCKED") return e;
    if (ctx->IsCancelled())
      return MakeError(absl::StatusCode::kCancelled, "CANCELLED", "the client went away");
    if (std::chrono::system_clock::now() >= ctx->deadline())
      return MakeError(absl::StatusCode::kDeadlineExceeded, "KSM_LOCKED",
                       "the run write waited for an offline until the call's deadline");
    absl::SleepFor(absl::Milliseconds(5));
  }
}

}  // namespace

grpc::Status KsmServiceImpl::GetKsm(grpc::ServerContext*, const v1::GetKsmRequest* req,
                                    v1::Ksm* resp) {
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->name(), &h));
  ToProto(h->id(), h->machine().GetKsm(), resp);
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::UpdateKsm(grpc::ServerContext* ctx, const v1::UpdateKsmRequest* req,
                                       v1::UpdateKsmResponse* resp) {
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->name(), &h));
  auto opt = [](bool has, uint64_t v) { return has ? std::optional<uint64_t>(v) : std::nullopt; };
  // A run write waits while an offline holds KSM's lock (kernel-semantics
  // 8.2), bounded by the call's deadline and cancellation.
  absl::StatusOr<Errno> e = WaitWhileKsmLocked(ctx, [&] {
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
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->name(), &h));
  if (req->value().size() > 4096) return InvalidField("value", "a sysfs write is at most 4096 bytes");
  absl::StatusOr<Errno> e = WaitWhileKsmLocked(
      ctx, [&] { return h->machine().KsmWriteSysfs(req->file(), req->value()); });
  if (!e.ok()) return ToGrpc(e.status());
  h->Wake();
  resp->set_errnum(ToProto(*e));
  ToProto(h->id(), h->machine().GetKsm(), resp->mutable_ksm());
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::StepKsm(grpc::ServerContext*, const v1::StepKsmRequest* req,
                                     v1::StepKsmResponse* resp) {
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->name(), &h));
  absl::StatusOr<KsmStepResult> r;
  switch (req->until_case()) {
    case v1::StepKsmRequest::kVisits:
      r = h->machine().KsmStepVisits(req->visits());
      break;
    case v1::StepKsmRequest::kFullScans:
      r = h->machine().KsmStepPasses(req->full_scans(),
                                     req->max_visits() ? req->max_visits() : (uint64_t{1} << 32));
      break;
    default:
      return InvalidField("until", "one of visits or full_scans is required");
  }
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_visits(r->visits);
  resp->set_passes(r->passes);
  ToProto(h->id(), h->machine().GetKsm(), resp->mutable_ksm());
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::ListStableNodes(grpc::ServerContext*,
                                             const v1::ListStableNodesRequest* req,
                                             v1::ListStableNodesResponse* resp) {
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->parent(), &h));
  auto all = h->machine().KsmStableNodes();
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(PageWindow(req->page_size(), req->page_token(), all.size(), 100,
                                          1000, &b, &e, &next));
  for (size_t i = b; i < e; ++i) ToProto(all[i], resp->add_stable_nodes());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::ListUnstableItems(grpc::ServerContext*,
                                               const v1::ListUnstableItemsRequest* req,
                                               v1::ListUnstableItemsResponse* resp) {
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveKsm(reg_, req->parent(), &h));
  auto all = h->machine().KsmUnstableItems();
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(PageWindow(req->page_size(), req->page_token(), all.size(), 100,
                                          1000, &b, &e, &next));
  for (size_t i = b; i < e; ++i) ToProto(all[i], resp->add_items());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

grpc::Status KsmServiceImpl::ListRmapItems(grpc::ServerContext*, const v1::ListRmapItemsRequest* req,
                                           v1::ListRmapItemsResponse* resp) {
  std::string id;
  Pid pid;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseProcessName(req->process(), &id, &pid));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  auto all = h->machine().KsmRmapItems(pid);
  if (!all.ok()) return ToGrpc(all.status());
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(PageWindow(req->page_size(), req->page_token(), all->size(), 100,
                                          1000, &b, &e, &next));
  for (size_t i = b; i < e; ++i) ToProto((*all)[i], resp->add_items());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

}  // namespace memnode::service
