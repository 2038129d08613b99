#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/service/auth.h"
#include "server/service/convert.h"
#include "server/service/services.h"
#include "server/service/status_mapping.h"

namespace memnode::service {
namespace {

grpc::Status ResolveBlock(Registry& reg, const std::string& name, std::shared_ptr<MachineHandle>* h,
                          BlockId* block) {
  std::string id;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseBlockName(name, &id, block));
  return Lookup(reg, id, h);
}

grpc::Status PauseAfter(v1::OfflinePhase p, std::optional<OfflinePhase>* out) {
  std::optional<OfflinePhase> ph = FromProto(p);
  if (!ph || *ph == OfflinePhase::kDone)
    return InvalidField("pause_after",
                        "pause_after must be NONE, ISOLATED, GOING_OFFLINE or MIGRATED");
  *out = ph;
  return grpc::Status::OK;
}

grpc::Status Event(v1::MemoryNotifierEvent e, MemEvent* out) {
  std::optional<MemEvent> ev = FromProto(e);
  if (!ev) return InvalidField("event", "unknown memory notifier event");
  *out = *ev;
  return grpc::Status::OK;
}

grpc::Status Describe(MachineHandle& h, BlockId b, v1::MemoryBlock* out) {
  auto bi = h.machine().GetBlock(b);
  if (!bi.ok()) return ToGrpc(bi.status());
  ToProto(h.id(), *bi, out);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status MemoryBlockServiceImpl::ListMemoryBlocks(grpc::ServerContext* ctx,
                                                      const v1::ListMemoryBlocksRequest* req,
                                                      v1::ListMemoryBlocksResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->parent(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  auto all = h->machine().ListBlocks();
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(
      PageWindow(req->page_size(), req->page_token(), all.size(), 256, 4096, &b, &e, &next));
  for (size_t i = b; i < e; ++i) ToProto(id, all[i], resp->add_memory_blocks());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

grpc::Status MemoryBlockServiceImpl::GetMemoryBlock(grpc::ServerContext* ctx,
                                                    const v1::GetMemoryBlockRequest* req,
                                                    v1::MemoryBlock* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  BlockId b;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveBlock(reg_, req->name(), &h, &b));
  return Describe(*h, b, resp);
}

grpc::Status MemoryBlockServiceImpl::OfflineMemoryBlock(grpc::ServerContext* ctx,
                                                        const v1::OfflineMemoryBlockRequest* req,
                                                        v1::OfflineReport* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  BlockId b;
  std::optional<OfflinePhase> pause;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveBlock(reg_, req->name(), &h, &b));
  MEMNODE_RETURN_IF_GRPC_ERROR(PauseAfter(req->pause_after(), &pause));
  OfflineOptions opt;
  opt.pause_after = *pause;
  if (req->timeout_ms()) opt.timeout_ns = req->timeout_ms() * 1000000;
  if (req->pause_ttl_seconds()) opt.pause_ttl = absl::Seconds(req->pause_ttl_seconds());
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto r = h->machine().OfflineBlock(b, opt, absl::Now());
  if (!r.ok()) return ToGrpc(r.status());
  h->Wake();
  ToProto(h->id(), *r, resp);
  return grpc::Status::OK;
}

grpc::Status MemoryBlockServiceImpl::ResumeOffline(grpc::ServerContext* ctx,
                                                   const v1::ResumeOfflineRequest* req,
                                                   v1::OfflineReport* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  BlockId b;
  std::optional<OfflinePhase> pause;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveBlock(reg_, req->name(), &h, &b));
  MEMNODE_RETURN_IF_GRPC_ERROR(PauseAfter(req->pause_after(), &pause));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  // An unknown block is NOT_FOUND / BLOCK_NOT_FOUND, not "no paused offline".
  if (auto bi = h->machine().GetBlock(b); !bi.ok()) return ToGrpc(bi.status());
  auto r = h->machine().ResumeOffline(b, pause, absl::Now());
  if (!r.ok()) return ToGrpc(r.status());
  h->Wake();
  ToProto(h->id(), *r, resp);
  return grpc::Status::OK;
}

grpc::Status MemoryBlockServiceImpl::CancelOffline(grpc::ServerContext* ctx,
                                                   const v1::CancelOfflineRequest* req,
                                                   v1::OfflineReport* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  BlockId b;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveBlock(reg_, req->name(), &h, &b));
  // An unknown block is NOT_FOUND / BLOCK_NOT_FOUND, not "no paused offline".
  if (auto bi = h->machine().GetBlock(b); !bi.ok()) return ToGrpc(bi.status());
  auto r = h->machine().CancelOffline(b);
  if (!r.ok()) return ToGrpc(r.status());
  h->Wake();
  ToProto(h->id(), *r, resp);
  return grpc::Status::OK;
}

grpc::Status MemoryBlockServiceImpl::OnlineMemoryBlock(grpc::ServerContext* ctx,
                                                       const v1::OnlineMemoryBlockRequest* req,
                                                       v1::SyscallResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  BlockId b;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveBlock(reg_, req->name(), &h, &b));
  auto r = h->machine().OnlineBlock(b);
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(*r));
  return grpc::Status::OK;
}

grpc::Status MemoryBlockServiceImpl::AddMemoryBlock(grpc::ServerContext* ctx,
                                                    const v1::AddMemoryBlockRequest* req,
                                                    v1::MemoryBlock* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->parent(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  const uint64_t block_bytes = h->machine().config().pages_per_block * kPageSize;
  if (h->machine().Info().total_pages * kPageSize + block_bytes > reg_.limits().max_machine_bytes)
    return Error(grpc::StatusCode::RESOURCE_EXHAUSTED, Reason::kMemoryLimit,
                 "adding a block would exceed max_machine_bytes");
  // The server-wide total too (best effort: two concurrent adds may both pass).
  uint64_t total = block_bytes;
  for (const auto& m : reg_.List()) total += m->machine().Info().total_pages * kPageSize;
  if (total > reg_.limits().max_total_bytes)
    return Error(grpc::StatusCode::RESOURCE_EXHAUSTED, Reason::kMemoryLimit,
                 "adding a block would exceed max_total_bytes");
  auto b = h->machine().AddBlock(req->node());
  if (!b.ok()) return ToGrpc(b.status());
  return Describe(*h, *b, resp);
}

grpc::Status MemoryBlockServiceImpl::RemoveMemoryBlock(grpc::ServerContext* ctx,
                                                       const v1::RemoveMemoryBlockRequest* req,
                                                       v1::SyscallResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  BlockId b;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveBlock(reg_, req->name(), &h, &b));
  auto r = h->machine().RemoveBlock(b);
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(*r));
  return grpc::Status::OK;
}

grpc::Status MemoryBlockServiceImpl::AllocateKernelPages(grpc::ServerContext* ctx,
                                                         const v1::AllocateKernelPagesRequest* req,
                                                         v1::KernelPagesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  BlockId b;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveBlock(reg_, req->name(), &h, &b));
  if (req->count() == 0) return InvalidField("count", "count must be positive");
  auto r = h->machine().AllocKernelPages(b, req->count(), req->unmovable());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_pages(*r);
  return Describe(*h, b, resp->mutable_memory_block());
}

grpc::Status MemoryBlockServiceImpl::FreeKernelPages(grpc::ServerContext* ctx,
                                                     const v1::FreeKernelPagesRequest* req,
                                                     v1::KernelPagesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  BlockId b;
  MEMNODE_RETURN_IF_GRPC_ERROR(ResolveBlock(reg_, req->name(), &h, &b));
  auto r = h->machine().FreeKernelPages(b, req->count());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_pages(*r);
  return Describe(*h, b, resp->mutable_memory_block());
}

grpc::Status MemoryBlockServiceImpl::InjectNotifierFailure(
    grpc::ServerContext* ctx, const v1::InjectNotifierFailureRequest* req,
    v1::InjectNotifierFailureResponse*) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MemEvent ev = MemEvent::kGoingOffline;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->parent(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  MEMNODE_RETURN_IF_GRPC_ERROR(Event(req->event(), &ev));
  std::optional<Errno> err = FromProto(req->errnum());
  if (!err || *err == Errno::kOk) return InvalidField("errnum", "errnum must be a non-OK Errno");
  return ToGrpc(h->machine().InjectNotifierFailure(ev, req->priority(), *err, req->count()));
}

grpc::Status MemoryBlockServiceImpl::ClearNotifierFailures(
    grpc::ServerContext* ctx, const v1::ClearNotifierFailuresRequest* req,
    v1::InjectNotifierFailureResponse*) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->parent(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  h->machine().ClearNotifierFailures();
  return grpc::Status::OK;
}

}  // namespace memnode::service
