#include "absl/strings/str_cat.h"
#include "server/service/auth.h"
#include "server/service/convert.h"
#include "server/service/services.h"
#include "server/service/status_mapping.h"

namespace memnode::service {
namespace {

grpc::Status Resolve(Registry& reg, const std::string& name, std::shared_ptr<MachineHandle>* h,
                     Pid* pid) {
  std::string id;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseProcessName(name, &id, pid));
  return Lookup(reg, id, h);
}

grpc::Status Mode(v1::MempolicyMode m, MpolMode* out) {
  std::optional<MpolMode> mode = FromProto(m);
  if (!mode) return InvalidField("mode", "unknown memory policy mode");
  *out = *mode;
  return grpc::Status::OK;
}

}  // namespace

grpc::Status NumaServiceImpl::SetMempolicy(grpc::ServerContext* ctx,
                                           const v1::SetMempolicyRequest* req,
                                           v1::SyscallResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MpolMode mode;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  MEMNODE_RETURN_IF_GRPC_ERROR(Mode(req->mode(), &mode));
  auto r = h->machine().SetMempolicy(pid, mode, req->nodes());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(*r));
  return grpc::Status::OK;
}

grpc::Status NumaServiceImpl::GetMempolicy(grpc::ServerContext* ctx,
                                           const v1::GetMempolicyRequest* req,
                                           v1::GetMempolicyResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  std::optional<Vaddr> addr;
  if (req->has_address()) addr = req->address();
  auto r = h->machine().GetMempolicy(pid, addr, req->node_of_address());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(r->err));
  resp->set_mode(ToProto(r->policy.mode));
  resp->set_nodes(r->policy.nodes);
  resp->set_node(r->node);
  return grpc::Status::OK;
}

grpc::Status NumaServiceImpl::Mbind(grpc::ServerContext* ctx, const v1::MbindRequest* req,
                                    v1::SyscallResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MpolMode mode;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  MEMNODE_RETURN_IF_GRPC_ERROR(Mode(req->mode(), &mode));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto r = h->machine().Mbind(pid, req->address(), req->length(), mode, req->nodes(), req->flags());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(*r));
  return grpc::Status::OK;
}

grpc::Status NumaServiceImpl::MigratePages(grpc::ServerContext* ctx,
                                           const v1::MigratePagesRequest* req,
                                           v1::MigratePagesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid caller;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->caller(), &h, &caller));
  if (req->pid() < 0) return InvalidField("pid", "pid must be >= 0");
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto r = h->machine().MigratePages(caller, req->pid(), req->old_nodes(), req->new_nodes());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(r->err));
  resp->set_not_migrated(r->not_migrated);
  return grpc::Status::OK;
}

grpc::Status NumaServiceImpl::MovePages(grpc::ServerContext* ctx, const v1::MovePagesRequest* req,
                                        v1::MovePagesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid caller;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->caller(), &h, &caller));
  if (req->pid() < 0) return InvalidField("pid", "pid must be >= 0");
  if (static_cast<uint64_t>(req->addresses_size()) > reg_.limits().max_request_pages)
    return OverLimit(Reason::kTooManyPages, "addresses", req->addresses_size(),
                     reg_.limits().max_request_pages, "pages per request");
  if (req->nodes_size() != 0 && req->nodes_size() != req->addresses_size())
    return InvalidField("nodes", "nodes must be empty (query) or as long as addresses");
  std::vector<Vaddr> addrs(req->addresses().begin(), req->addresses().end());
  std::vector<int32_t> nodes(req->nodes().begin(), req->nodes().end());
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto r = h->machine().MovePages(caller, req->pid(), addrs, nodes, req->flags());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(r->err));
  for (int32_t s : r->status) resp->add_status(s);
  return grpc::Status::OK;
}

}  // namespace memnode::service
