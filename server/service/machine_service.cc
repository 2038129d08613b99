#include "absl/strings/str_cat.h"
#include "server/service/auth.h"
#include "server/service/convert.h"
#include "server/service/services.h"
#include "server/service/status_mapping.h"

namespace memnode::service {

grpc::Status MachineServiceImpl::CreateMachine(grpc::ServerContext* ctx,
                                               const v1::CreateMachineRequest* req,
                                               v1::Machine* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  if (req->machine().clock_mode() != v1::CLOCK_MODE_UNSPECIFIED &&
      !v1::ClockMode_IsValid(req->machine().clock_mode()))
    return InvalidField("machine.clock_mode", "unknown clock mode");
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto h = reg_.Create(req->machine_id(), ConfigFromProto(req->machine()));
  if (!h.ok()) return ToGrpc(h.status());
  ToProto((*h)->machine().Info(), (*h)->id(), resp);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::GetMachine(grpc::ServerContext* ctx,
                                            const v1::GetMachineRequest* req, v1::Machine* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->name(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  ToProto(h->machine().Info(), id, resp);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::ListMachines(grpc::ServerContext* ctx,
                                              const v1::ListMachinesRequest* req,
                                              v1::ListMachinesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  auto all = reg_.List();
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(
      PageWindow(req->page_size(), req->page_token(), all.size(), 50, 1000, &b, &e, &next));
  for (size_t i = b; i < e; ++i)
    ToProto(all[i]->machine().Info(), all[i]->id(), resp->add_machines());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::DeleteMachine(grpc::ServerContext* ctx,
                                               const v1::DeleteMachineRequest* req,
                                               google::protobuf::Empty*) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->name(), &id));
  return ToGrpc(reg_.Delete(id));
}

grpc::Status MachineServiceImpl::CheckMachine(grpc::ServerContext* ctx,
                                              const v1::CheckMachineRequest* req,
                                              v1::CheckMachineResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->name(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  CheckResult r = h->machine().Check();
  resp->set_ok(r.ok());
  for (const auto& v : r.violations) resp->add_violations(v);
  resp->set_state_digest(r.state_digest);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::SaveMachineSnapshot(grpc::ServerContext* ctx,
                                                     const v1::SaveMachineSnapshotRequest* req,
                                                     v1::SaveMachineSnapshotResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->name(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto r = reg_.SaveSnapshot(id, req->file());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_path(r->path);
  resp->set_bytes(r->bytes);
  resp->set_state_digest(r->state_digest);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::LoadMachineSnapshot(grpc::ServerContext* ctx,
                                                     const v1::LoadMachineSnapshotRequest* req,
                                                     v1::Machine* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto h = reg_.LoadSnapshot(req->file(), req->machine_id());
  if (!h.ok()) return ToGrpc(h.status());
  ToProto((*h)->machine().Info(), (*h)->id(), resp);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::GetPageFrame(grpc::ServerContext* ctx,
                                              const v1::GetPageFrameRequest* req,
                                              v1::PageFrame* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->machine(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  auto fi = h->machine().GetFrame(req->pfn());
  if (!fi.ok()) return ToGrpc(fi.status());
  ToProto(*fi, resp);
  return grpc::Status::OK;
}

grpc::Status MachineServiceImpl::ListPageFrames(grpc::ServerContext* ctx,
                                                const v1::ListPageFramesRequest* req,
                                                v1::ListPageFramesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->machine(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  if (req->count() == 0) return InvalidField("count", "count must be positive");
  if (req->count() > reg_.limits().max_request_pages)
    return OverLimit(Reason::kTooManyPages, "count", req->count(), reg_.limits().max_request_pages,
                     "pages per request");
  auto frames = h->machine().ListFrames(req->start_pfn(), req->count(), req->skip_free());
  if (!frames.ok()) return ToGrpc(frames.status());
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(
      PageWindow(req->page_size(), req->page_token(), frames->size(), 256, 4096, &b, &e, &next));
  for (size_t i = b; i < e; ++i) ToProto((*frames)[i], resp->add_frames());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

}  // namespace memnode::service
