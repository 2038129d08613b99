// Resource names, pagination, and core <-> proto conversion.
// Thread safety: stateless.
#ifndef MEMNODE_SERVER_SERVICE_CONVERT_H_
#define MEMNODE_SERVER_SERVICE_CONVERT_H_

#include <string>

#include <grpcpp/grpcpp.h>

#include "memnode/v1/hotplug.pb.h"
#include "memnode/v1/ksm.pb.h"
#include "memnode/v1/machine.pb.h"
#include "memnode/v1/process.pb.h"
#include "server/core/machine.h"
#include "server/service/registry.h"

namespace memnode::service {

// "machines/{id}" -> id.
grpc::Status ParseMachineName(const std::string& name, std::string* id);
// "machines/{id}/processes/{pid}".
grpc::Status ParseProcessName(const std::string& name, std::string* id, Pid* pid);
// "machines/{id}/ksm".
grpc::Status ParseKsmName(const std::string& name, std::string* id);

// "machines/{id}/memoryBlocks/{block}".
grpc::Status ParseBlockName(const std::string& name, std::string* id, BlockId* block);

// Resolves a machine by id (NOT_FOUND / MACHINE_NOT_FOUND).
grpc::Status Lookup(Registry& reg, const std::string& id, std::shared_ptr<MachineHandle>* out);

// Pagination (AIP-158): page_token is the decimal offset of the next result
// prefixed with "o"; page_size defaults to `def` and is capped at `max`.
grpc::Status PageWindow(int32_t page_size, const std::string& token, size_t total, int32_t def,
                        int32_t max, size_t* begin, size_t* end, std::string* next_token);

v1::Errno ToProto(Errno e);
v1::PageState ToProto(PageState s);
v1::RmapState ToProto(RmapState s);
void ToProto(const MachineInfo& mi, const std::string& id, v1::Machine* out);
void ToProto(const std::string& machine_id, const ProcessInfo& pi, v1::Process* out);
void ToProto(const FrameInfo& fi, v1::PageFrame* out);
void ToProto(const std::string& machine_id, const KsmInfo& ki, v1::Ksm* out);
void ToProto(const StableNodeInfo& si, v1::StableNode* out);
void ToProto(const RmapItemInfo& ri, v1::RmapItem* out);
void ToProto(const AccessResult& r, v1::MemoryAccessResult* out);
void ToProto(const std::string& machine_id, const Machine::BlockInfo& bi, v1::MemoryBlock* out);
void ToProto(const std::string& machine_id, const Machine::OfflineReport& r,
             v1::OfflineReport* out);

}  // namespace memnode::service

#endif  // MEMNODE_SERVER_SERVICE_CONVERT_H_
