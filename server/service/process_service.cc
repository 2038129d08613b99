#include "absl/strings/str_cat.h"
#include "server/service/auth.h"
#include "server/service/convert.h"
#include "server/service/services.h"
#include "server/service/status_mapping.h"

namespace memnode::service {
namespace {

// Resolves "machines/{m}/processes/{pid}".
grpc::Status Resolve(Registry& reg, const std::string& name, std::shared_ptr<MachineHandle>* h,
                     Pid* pid) {
  std::string id;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseProcessName(name, &id, pid));
  return Lookup(reg, id, h);
}

grpc::Status TooLarge(const char* field, uint64_t n, uint64_t limit) {
  return Error(
      grpc::StatusCode::RESOURCE_EXHAUSTED, Reason::kRequestTooLarge,
      absl::StrCat(field, " of ", n, " bytes exceeds the limit of ", limit, " bytes per request"),
      {{"field", field}, {"limit", absl::StrCat(limit)}});
}

// Operations that visit every page of a range (Fill, Touch, Digest, Pin):
// a range longer than the whole machine is refused before any work
// (RANGE_TOO_LARGE), instead of running until the emulated ENOMEM / EFAULT.
grpc::Status CheckRange(MachineHandle& h, uint64_t length) {
  const uint64_t machine_bytes = h.machine().Info().total_pages * kPageSize;
  if (length > machine_bytes)
    return OverLimit(Reason::kRangeTooLarge, "length", length, machine_bytes,
                     "bytes (the machine's emulated memory)");
  return grpc::Status::OK;
}

// PROCESS_LIMIT before a CreateProcess / ForkProcess.
grpc::Status CheckProcessRoom(Registry& reg, MachineHandle& h) {
  const uint64_t n = h.machine().Info().process_count;
  if (n >= reg.limits().max_processes)
    return OverLimit(Reason::kProcessLimit, "processes", n + 1, reg.limits().max_processes,
                     "processes on the machine");
  return grpc::Status::OK;
}

grpc::Status Describe(MachineHandle& h, Pid pid, v1::Process* out) {
  auto pi = h.machine().GetProcess(pid);
  if (!pi.ok()) return ToGrpc(pi.status());
  ToProto(h.id(), *pi, out);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ProcessServiceImpl::CreateProcess(grpc::ServerContext* ctx,
                                               const v1::CreateProcessRequest* req,
                                               v1::Process* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->parent(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  ProcessParams pp;
  pp.uid = req->process().uid();
  pp.privileged = req->process().privileged();
  pp.home_node = req->process().home_node();
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckProcessRoom(reg_, *h));
  auto pid = h->machine().CreateProcess(pp);
  if (!pid.ok()) return ToGrpc(pid.status());
  return Describe(*h, *pid, resp);
}

grpc::Status ProcessServiceImpl::GetProcess(grpc::ServerContext* ctx,
                                            const v1::GetProcessRequest* req, v1::Process* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  return Describe(*h, pid, resp);
}

grpc::Status ProcessServiceImpl::ListProcesses(grpc::ServerContext* ctx,
                                               const v1::ListProcessesRequest* req,
                                               v1::ListProcessesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::string id;
  std::shared_ptr<MachineHandle> h;
  MEMNODE_RETURN_IF_GRPC_ERROR(ParseMachineName(req->parent(), &id));
  MEMNODE_RETURN_IF_GRPC_ERROR(Lookup(reg_, id, &h));
  auto all = h->machine().ListProcesses(req->show_exited());
  size_t b, e;
  std::string next;
  MEMNODE_RETURN_IF_GRPC_ERROR(
      PageWindow(req->page_size(), req->page_token(), all.size(), 50, 1000, &b, &e, &next));
  for (size_t i = b; i < e; ++i) ToProto(id, all[i], resp->add_processes());
  resp->set_next_page_token(next);
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::ForkProcess(grpc::ServerContext* ctx,
                                             const v1::ForkProcessRequest* req, v1::Process* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckProcessRoom(reg_, *h));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto child = h->machine().Fork(pid);
  if (!child.ok()) return ToGrpc(child.status());
  return Describe(*h, *child, resp);
}

grpc::Status ProcessServiceImpl::ExitProcess(grpc::ServerContext* ctx,
                                             const v1::ExitProcessRequest* req,
                                             v1::ExitProcessResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto freed = h->machine().Exit(pid);
  if (!freed.ok()) return ToGrpc(freed.status());
  resp->set_pages_freed(*freed);
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::Mmap(grpc::ServerContext* ctx, const v1::MmapRequest* req,
                                      v1::MmapResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  auto r = h->machine().Mmap(pid, req->address(), req->length(), req->prot(), req->shared(),
                             req->fixed());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(r->err));
  resp->set_address(r->address);
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::Munmap(grpc::ServerContext* ctx, const v1::MunmapRequest* req,
                                        v1::SyscallResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  auto r = h->machine().Munmap(pid, req->address(), req->length());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(*r));
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::Mprotect(grpc::ServerContext* ctx, const v1::MprotectRequest* req,
                                          v1::SyscallResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  auto r = h->machine().Mprotect(pid, req->address(), req->length(), req->prot());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(*r));
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::Madvise(grpc::ServerContext* ctx, const v1::MadviseRequest* req,
                                         v1::SyscallResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  std::optional<Advice> advice = FromProto(req->advice());
  if (!advice) return InvalidField("advice", "advice must be DONTNEED, MERGEABLE or UNMERGEABLE");
  auto r = h->machine().Madvise(pid, req->address(), req->length(), *advice);
  if (!r.ok()) return ToGrpc(r.status());
  if (*advice == Advice::kMergeable) h->Wake();  // the first registration wakes ksmd
  resp->set_errnum(ToProto(*r));
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::WriteMemory(grpc::ServerContext* ctx,
                                             const v1::WriteMemoryRequest* req,
                                             v1::MemoryAccessResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  if (req->data().size() > reg_.limits().max_request_bytes)
    return TooLarge("data", req->data().size(), reg_.limits().max_request_bytes);
  auto r =
      h->machine().Write(pid, req->address(), reinterpret_cast<const uint8_t*>(req->data().data()),
                         req->data().size());
  if (!r.ok()) return ToGrpc(r.status());
  ToProto(*r, resp);
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::FillMemory(grpc::ServerContext* ctx,
                                            const v1::FillMemoryRequest* req,
                                            v1::MemoryAccessResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  FillPattern fp;
  switch (req->pattern_case()) {
    case v1::FillMemoryRequest::kByteValue:
      if (req->byte_value() > 255) return InvalidField("byte_value", "byte_value must be 0..255");
      fp.kind = FillPattern::kByte;
      fp.value = req->byte_value();
      break;
    case v1::FillMemoryRequest::kPattern64:
      fp.kind = FillPattern::kPattern64;
      fp.value = req->pattern64();
      break;
    case v1::FillMemoryRequest::kRandomSeed:
      fp.kind = FillPattern::kRandom;
      fp.value = req->random_seed();
      break;
    default:
      return InvalidField("pattern", "one of byte_value, pattern64, random_seed is required");
  }
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckRange(*h, req->length()));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto r = h->machine().Fill(pid, req->address(), req->length(), fp);
  if (!r.ok()) return ToGrpc(r.status());
  ToProto(*r, resp);
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::ReadMemory(grpc::ServerContext* ctx,
                                            const v1::ReadMemoryRequest* req,
                                            v1::ReadMemoryResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  if (req->length() > reg_.limits().max_request_bytes)
    return TooLarge("length", req->length(), reg_.limits().max_request_bytes);
  auto r = h->machine().Read(pid, req->address(), req->length());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(r->err));
  resp->set_fault_address(r->fault_address);
  if (r->err == Errno::kOk) resp->set_data(std::move(r->data));
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::DigestMemory(grpc::ServerContext* ctx,
                                              const v1::DigestMemoryRequest* req,
                                              v1::DigestMemoryResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckRange(*h, req->length()));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto r = h->machine().Digest(pid, req->address(), req->length());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(r->err));
  resp->set_digest(r->digest);
  resp->set_fault_address(r->fault_address);
  resp->set_populated_pages(r->populated_pages);
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::TouchMemory(grpc::ServerContext* ctx,
                                             const v1::TouchMemoryRequest* req,
                                             v1::MemoryAccessResult* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckRange(*h, req->length()));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckAlive(ctx));
  auto r = h->machine().Touch(pid, req->address(), req->length());
  if (!r.ok()) return ToGrpc(r.status());
  ToProto(*r, resp);
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::PinPages(grpc::ServerContext* ctx, const v1::PinPagesRequest* req,
                                          v1::PinPagesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  MEMNODE_RETURN_IF_GRPC_ERROR(CheckRange(*h, req->length()));
  if (req->length() > (uint64_t{1} << 32)) return InvalidField("length", "at most 4 GiB per call");
  auto r = h->machine().Pin(pid, req->address(), req->length());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(r->err));
  resp->set_pages(r->pages);
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::UnpinPages(grpc::ServerContext* ctx,
                                            const v1::UnpinPagesRequest* req,
                                            v1::PinPagesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  auto r = h->machine().Unpin(pid, req->address(), req->length());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_errnum(ToProto(r->err));
  resp->set_pages(r->pages);
  return grpc::Status::OK;
}

grpc::Status ProcessServiceImpl::TranslateAddresses(grpc::ServerContext* ctx,
                                                    const v1::TranslateAddressesRequest* req,
                                                    v1::TranslateAddressesResponse* resp) {
  MEMNODE_RETURN_IF_GRPC_ERROR(Admit(ctx));
  std::shared_ptr<MachineHandle> h;
  Pid pid;
  MEMNODE_RETURN_IF_GRPC_ERROR(Resolve(reg_, req->name(), &h, &pid));
  if (req->pages() == 0) return InvalidField("pages", "pages must be positive");
  if (req->pages() > reg_.limits().max_request_pages)
    return OverLimit(Reason::kTooManyPages, "pages", req->pages(), reg_.limits().max_request_pages,
                     "pages per request");
  auto r = h->machine().Translate(pid, req->address(), req->pages());
  if (!r.ok()) return ToGrpc(r.status());
  for (const Translation& t : *r) {
    auto* p = resp->add_pages();
    p->set_address(t.address);
    p->set_present(t.present);
    p->set_mapped(t.mapped);
    if (t.present) {
      p->set_pfn(t.pfn);
      p->set_node(t.node);
      p->set_state(ToProto(t.state));
    }
  }
  return grpc::Status::OK;
}

}  // namespace memnode::service
