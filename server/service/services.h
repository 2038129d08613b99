// The gRPC services of memnode.v1: thin classes that validate a request,
// convert it, make one core call and convert the result back.
// Linux analogue: the syscall and sysfs entry points.
// Thread safety: thread-safe (the registry and machines are).
#ifndef MEMNODE_SERVER_SERVICE_SERVICES_H_
#define MEMNODE_SERVER_SERVICE_SERVICES_H_

#include <grpcpp/grpcpp.h>

#include "memnode/v1/hotplug.grpc.pb.h"
#include "memnode/v1/ksm.grpc.pb.h"
#include "memnode/v1/machine.grpc.pb.h"
#include "memnode/v1/numa.grpc.pb.h"
#include "memnode/v1/process.grpc.pb.h"
#include "server/host/registry.h"
#include "server/service/convert.h"

namespace memnode::service {

#define MEMNODE_RETURN_IF_GRPC_ERROR(expr)     \
  do {                                         \
    ::grpc::Status memnode_gs_ = (expr);       \
    if (!memnode_gs_.ok()) return memnode_gs_; \
  } while (0)

class MachineServiceImpl final : public v1::MachineService::Service {
 public:
  explicit MachineServiceImpl(Registry& reg) : reg_(reg) {}
  grpc::Status CreateMachine(grpc::ServerContext*, const v1::CreateMachineRequest*,
                             v1::Machine*) override;
  grpc::Status GetMachine(grpc::ServerContext*, const v1::GetMachineRequest*,
                          v1::Machine*) override;
  grpc::Status ListMachines(grpc::ServerContext*, const v1::ListMachinesRequest*,
                            v1::ListMachinesResponse*) override;
  grpc::Status DeleteMachine(grpc::ServerContext*, const v1::DeleteMachineRequest*,
                             google::protobuf::Empty*) override;
  grpc::Status CheckMachine(grpc::ServerContext*, const v1::CheckMachineRequest*,
                            v1::CheckMachineResponse*) override;
  grpc::Status SaveMachineSnapshot(grpc::ServerContext*, const v1::SaveMachineSnapshotRequest*,
                                   v1::SaveMachineSnapshotResponse*) override;
  grpc::Status LoadMachineSnapshot(grpc::ServerContext*, const v1::LoadMachineSnapshotRequest*,
                                   v1::Machine*) override;
  grpc::Status GetPageFrame(grpc::ServerContext*, const v1::GetPageFrameRequest*,
                            v1::PageFrame*) override;
  grpc::Status ListPageFrames(grpc::ServerContext*, const v1::ListPageFramesRequest*,
                              v1::ListPageFramesResponse*) override;

 private:
  Registry& reg_;
};

class ProcessServiceImpl final : public v1::ProcessService::Service {
 public:
  explicit ProcessServiceImpl(Registry& reg) : reg_(reg) {}
  grpc::Status CreateProcess(grpc::ServerContext*, const v1::CreateProcessRequest*,
                             v1::Process*) override;
  grpc::Status GetProcess(grpc::ServerContext*, const v1::GetProcessRequest*,
                          v1::Process*) override;
  grpc::Status ListProcesses(grpc::ServerContext*, const v1::ListProcessesRequest*,
                             v1::ListProcessesResponse*) override;
  grpc::Status ForkProcess(grpc::ServerContext*, const v1::ForkProcessRequest*,
                           v1::Process*) override;
  grpc::Status ExitProcess(grpc::ServerContext*, const v1::ExitProcessRequest*,
                           v1::ExitProcessResponse*) override;
  grpc::Status Mmap(grpc::ServerContext*, const v1::MmapRequest*, v1::MmapResponse*) override;
  grpc::Status Munmap(grpc::ServerContext*, const v1::MunmapRequest*, v1::SyscallResult*) override;
  grpc::Status Mprotect(grpc::ServerContext*, const v1::MprotectRequest*,
                        v1::SyscallResult*) override;
  grpc::Status Madvise(grpc::ServerContext*, const v1::MadviseRequest*,
                       v1::SyscallResult*) override;
  grpc::Status WriteMemory(grpc::ServerContext*, const v1::WriteMemoryRequest*,
                           v1::MemoryAccessResult*) override;
  grpc::Status FillMemory(grpc::ServerContext*, const v1::FillMemoryRequest*,
                          v1::MemoryAccessResult*) override;
  grpc::Status ReadMemory(grpc::ServerContext*, const v1::ReadMemoryRequest*,
                          v1::ReadMemoryResponse*) override;
  grpc::Status DigestMemory(grpc::ServerContext*, const v1::DigestMemoryRequest*,
                            v1::DigestMemoryResponse*) override;
  grpc::Status TouchMemory(grpc::ServerContext*, const v1::TouchMemoryRequest*,
                           v1::MemoryAccessResult*) override;
  grpc::Status PinPages(grpc::ServerContext*, const v1::PinPagesRequest*,
                        v1::PinPagesResponse*) override;
  grpc::Status UnpinPages(grpc::ServerContext*, const v1::UnpinPagesRequest*,
                          v1::PinPagesResponse*) override;
  grpc::Status TranslateAddresses(grpc::ServerContext*, const v1::TranslateAddressesRequest*,
                                  v1::TranslateAddressesResponse*) override;

 private:
  Registry& reg_;
};

class KsmServiceImpl final : public v1::KsmService::Service {
 public:
  explicit KsmServiceImpl(Registry& reg) : reg_(reg) {}
  grpc::Status GetKsm(grpc::ServerContext*, const v1::GetKsmRequest*, v1::Ksm*) override;
  grpc::Status UpdateKsm(grpc::ServerContext*, const v1::UpdateKsmRequest*,
                         v1::UpdateKsmResponse*) override;
  grpc::Status WriteKsmSysfs(grpc::ServerContext*, const v1::WriteKsmSysfsRequest*,
                             v1::UpdateKsmResponse*) override;
  grpc::Status StepKsm(grpc::ServerContext*, const v1::StepKsmRequest*,
                       v1::StepKsmResponse*) override;
  grpc::Status ListStableNodes(grpc::ServerContext*, const v1::ListStableNodesRequest*,
                               v1::ListStableNodesResponse*) override;
  grpc::Status ListUnstableItems(grpc::ServerContext*, const v1::ListUnstableItemsRequest*,
                                 v1::ListUnstableItemsResponse*) override;
  grpc::Status ListRmapItems(grpc::ServerContext*, const v1::ListRmapItemsRequest*,
                             v1::ListRmapItemsResponse*) override;

 private:
  Registry& reg_;
};

class NumaServiceImpl final : public v1::NumaService::Service {
 public:
  explicit NumaServiceImpl(Registry& reg) : reg_(reg) {}
  grpc::Status SetMempolicy(grpc::ServerContext*, const v1::SetMempolicyRequest*,
                            v1::SyscallResult*) override;
  grpc::Status GetMempolicy(grpc::ServerContext*, const v1::GetMempolicyRequest*,
                            v1::GetMempolicyResponse*) override;
  grpc::Status Mbind(grpc::ServerContext*, const v1::MbindRequest*, v1::SyscallResult*) override;
  grpc::Status MigratePages(grpc::ServerContext*, const v1::MigratePagesRequest*,
                            v1::MigratePagesResponse*) override;
  grpc::Status MovePages(grpc::ServerContext*, const v1::MovePagesRequest*,
                         v1::MovePagesResponse*) override;

 private:
  Registry& reg_;
};

class MemoryBlockServiceImpl final : public v1::MemoryBlockService::Service {
 public:
  explicit MemoryBlockServiceImpl(Registry& reg) : reg_(reg) {}
  grpc::Status ListMemoryBlocks(grpc::ServerContext*, const v1::ListMemoryBlocksRequest*,
                                v1::ListMemoryBlocksResponse*) override;
  grpc::Status GetMemoryBlock(grpc::ServerContext*, const v1::GetMemoryBlockRequest*,
                              v1::MemoryBlock*) override;
  grpc::Status OfflineMemoryBlock(grpc::ServerContext*, const v1::OfflineMemoryBlockRequest*,
                                  v1::OfflineReport*) override;
  grpc::Status ResumeOffline(grpc::ServerContext*, const v1::ResumeOfflineRequest*,
                             v1::OfflineReport*) override;
  grpc::Status CancelOffline(grpc::ServerContext*, const v1::CancelOfflineRequest*,
                             v1::OfflineReport*) override;
  grpc::Status OnlineMemoryBlock(grpc::ServerContext*, const v1::OnlineMemoryBlockRequest*,
                                 v1::SyscallResult*) override;
  grpc::Status AddMemoryBlock(grpc::ServerContext*, const v1::AddMemoryBlockRequest*,
                              v1::MemoryBlock*) override;
  grpc::Status RemoveMemoryBlock(grpc::ServerContext*, const v1::RemoveMemoryBlockRequest*,
                                 v1::SyscallResult*) override;
  grpc::Status AllocateKernelPages(grpc::ServerContext*, const v1::AllocateKernelPagesRequest*,
                                   v1::KernelPagesResponse*) override;
  grpc::Status FreeKernelPages(grpc::ServerContext*, const v1::FreeKernelPagesRequest*,
                               v1::KernelPagesResponse*) override;
  grpc::Status InjectNotifierFailure(grpc::ServerContext*, const v1::InjectNotifierFailureRequest*,
                                     v1::InjectNotifierFailureResponse*) override;
  grpc::Status ClearNotifierFailures(grpc::ServerContext*, const v1::ClearNotifierFailuresRequest*,
                                     v1::InjectNotifierFailureResponse*) override;

 private:
  Registry& reg_;
};

}  // namespace memnode::service

#endif  // MEMNODE_SERVER_SERVICE_SERVICES_H_
