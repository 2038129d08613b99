// Resource names, pagination, and core <-> proto conversion. This is the only
// place where proto enums and core enums meet: each enum has one table of
// (core, proto) pairs, read in both directions.
// Thread safety: stateless.
#ifndef MEMNODE_SERVER_SERVICE_CONVERT_H_
#define MEMNODE_SERVER_SERVICE_CONVERT_H_

#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "memnode/v1/events.pb.h"
#include "memnode/v1/hotplug.pb.h"
#include "memnode/v1/ksm.pb.h"
#include "memnode/v1/machine.pb.h"
#include "memnode/v1/numa.pb.h"
#include "memnode/v1/process.pb.h"
#include "server/core/events.h"
#include "server/core/machine.h"
#include "server/host/registry.h"

namespace memnode::service {

using host::Limits;
using host::MachineHandle;
using host::Registry;
using host::ValidMachineId;

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

// A proto topology + clock + profile as a core config (defaults applied).
MachineConfig ConfigFromProto(const v1::Machine& m);

// Enums, core -> proto (every core value has a proto value).
v1::Errno ToProto(Errno e);
v1::PageState ToProto(PageState s);
v1::RmapState ToProto(RmapState s);
v1::MemoryBlockState ToProto(BlockState s);
v1::OfflinePhase ToProto(OfflinePhase p);
v1::MemoryNotifierEvent ToProto(MemEvent e);
v1::PruneReason ToProto(PruneReason r);
v1::MigrateReason ToProto(MigrateReason r);
v1::EventKind ToProto(EventKind k);
v1::MempolicyMode ToProto(MpolMode m);
v1::ClockMode ToProto(ClockMode m);
// Enums, proto -> core: nullopt for UNSPECIFIED and unknown values.
std::optional<Errno> FromProto(v1::Errno e);
std::optional<OfflinePhase> FromProto(v1::OfflinePhase p);
std::optional<MemEvent> FromProto(v1::MemoryNotifierEvent e);
std::optional<EventKind> FromProto(v1::EventKind k);
std::optional<MpolMode> FromProto(v1::MempolicyMode m);
std::optional<Advice> FromProto(v1::Advice a);
std::optional<ClockMode> FromProto(v1::ClockMode m);
void ToProto(const MachineInfo& mi, const std::string& id, v1::Machine* out);
void ToProto(const std::string& machine_id, const ProcessInfo& pi, v1::Process* out);
void ToProto(const FrameInfo& fi, v1::PageFrame* out);
void ToProto(const std::string& machine_id, const KsmInfo& ki, v1::Ksm* out);
void ToProto(const StableNodeInfo& si, v1::StableNode* out);
void ToProto(const RmapItemInfo& ri, v1::RmapItem* out);
void ToProto(const AccessResult& r, v1::MemoryAccessResult* out);
void ToProto(const std::string& machine_id, const BlockInfo& bi, v1::MemoryBlock* out);
void ToProto(const std::string& machine_id, const OfflineReport& r, v1::OfflineReport* out);

}  // namespace memnode::service

#endif  // MEMNODE_SERVER_SERVICE_CONVERT_H_
