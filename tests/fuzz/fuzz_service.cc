// fuzz_service: arbitrary bytes decoded as a sequence of requests of the
// memnode.v1 gRPC services, each passed to the real handler (the *ServiceImpl
// method, called directly with a default-constructed grpc::ServerContext)
// against a fresh Registry holding one small MANUAL machine "fz". Must never
// crash; after the sequence every machine must pass Check().
//
// Input: records of [method u8][fixup u8][length u16 LE][request bytes]. The
// fixup byte may overwrite the request's `name`/`parent` string fields with
// a valid resource name (machines/fz, .../processes/N, .../memoryBlocks/N,
// .../ksm) so that mutations of the other fields reach the core.
// Not covered: EventService.WatchEvents (a server-streaming call needs a
// ServerWriter); run writes while an offline holds KSM's lock are skipped
// (with no call deadline the handler waits, by design, until the pause ends).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/service/services.h"
#include "tests/fuzz/corpus_util.h"

namespace {

using namespace memnode;           // NOLINT
using namespace memnode::service;  // NOLINT
namespace v1 = memnode::v1;

struct Services {
  explicit Services(Registry& r) : machine(r), process(r), ksm(r), numa(r), block(r) {}
  MachineServiceImpl machine;
  ProcessServiceImpl process;
  KsmServiceImpl ksm;
  NumaServiceImpl numa;
  MemoryBlockServiceImpl block;
};

struct Method {
  std::string name;
  std::function<std::unique_ptr<google::protobuf::Message>()> make_request;
  std::function<grpc::Status(Services&, const google::protobuf::Message&)> call;
};

template <typename Svc, typename Req, typename Resp>
Method Make(const char* name, Svc Services::*svc,
            grpc::Status (Svc::*m)(grpc::ServerContext*, const Req*, Resp*)) {
  Method out;
  out.name = name;
  out.make_request = [] { return std::make_unique<Req>(); };
  out.call = [svc, m](Services& s, const google::protobuf::Message& req) {
    grpc::ServerContext ctx;
    Resp resp;
    return ((s.*svc).*m)(&ctx, static_cast<const Req*>(&req), &resp);
  };
  return out;
}

#define MN(svc, cls, method) Make(#method, &Services::svc, &cls::method)

const std::vector<Method>& Methods() {
  static const auto* methods = new std::vector<Method>{
      MN(machine, MachineServiceImpl, CreateMachine),
      MN(machine, MachineServiceImpl, GetMachine),
      MN(machine, MachineServiceImpl, ListMachines),
      MN(machine, MachineServiceImpl, DeleteMachine),
      MN(machine, MachineServiceImpl, CheckMachine),
      MN(machine, MachineServiceImpl, SaveMachineSnapshot),
      MN(machine, MachineServiceImpl, LoadMachineSnapshot),
      MN(machine, MachineServiceImpl, GetPageFrame),
      MN(machine, MachineServiceImpl, ListPageFrames),
      MN(process, ProcessServiceImpl, CreateProcess),
      MN(process, ProcessServiceImpl, GetProcess),
      MN(process, ProcessServiceImpl, ListProcesses),
      MN(process, ProcessServiceImpl, ForkProcess),
      MN(process, ProcessServiceImpl, ExitProcess),
      MN(process, ProcessServiceImpl, Mmap),
      MN(process, ProcessServiceImpl, Munmap),
      MN(process, ProcessServiceImpl, Mprotect),
      MN(process, ProcessServiceImpl, Madvise),
      MN(process, ProcessServiceImpl, WriteMemory),
      MN(process, ProcessServiceImpl, FillMemory),
      MN(process, ProcessServiceImpl, ReadMemory),
      MN(process, ProcessServiceImpl, DigestMemory),
      MN(process, ProcessServiceImpl, TouchMemory),
      MN(process, ProcessServiceImpl, PinPages),
      MN(process, ProcessServiceImpl, UnpinPages),
      MN(process, ProcessServiceImpl, TranslateAddresses),
      MN(ksm, KsmServiceImpl, GetKsm),
      MN(ksm, KsmServiceImpl, UpdateKsm),
      MN(ksm, KsmServiceImpl, WriteKsmSysfs),
      MN(ksm, KsmServiceImpl, StepKsm),
      MN(ksm, KsmServiceImpl, ListStableNodes),
      MN(ksm, KsmServiceImpl, ListUnstableItems),
      MN(ksm, KsmServiceImpl, ListRmapItems),
      MN(numa, NumaServiceImpl, SetMempolicy),
      MN(numa, NumaServiceImpl, GetMempolicy),
      MN(numa, NumaServiceImpl, Mbind),
      MN(numa, NumaServiceImpl, MigratePages),
      MN(numa, NumaServiceImpl, MovePages),
      MN(block, MemoryBlockServiceImpl, ListMemoryBlocks),
      MN(block, MemoryBlockServiceImpl, GetMemoryBlock),
      MN(block, MemoryBlockServiceImpl, OfflineMemoryBlock),
      MN(block, MemoryBlockServiceImpl, ResumeOffline),
      MN(block, MemoryBlockServiceImpl, CancelOffline),
      MN(block, MemoryBlockServiceImpl, OnlineMemoryBlock),
      MN(block, MemoryBlockServiceImpl, AddMemoryBlock),
      MN(block, MemoryBlockServiceImpl, RemoveMemoryBlock),
      MN(block, MemoryBlockServiceImpl, AllocateKernelPages),
      MN(block, MemoryBlockServiceImpl, FreeKernelPages),
      MN(block, MemoryBlockServiceImpl, InjectNotifierFailure),
      MN(block, MemoryBlockServiceImpl, ClearNotifierFailures),
  };
  return *methods;
}

int MethodIndex(const std::string& name) {
  const auto& ms = Methods();
  for (size_t i = 0; i < ms.size(); ++i)
    if (ms[i].name == name) return static_cast<int>(i);
  std::abort();
}

// Fixup byte: low 3 bits choose the name, the high 5 bits a number.
std::string FixedName(uint8_t fix) {
  uint32_t n = fix >> 3;
  switch (fix & 7) {
    case 1: return "machines/fz";
    case 2: return absl::StrCat("machines/fz/processes/", n);
    case 3: return absl::StrCat("machines/fz/memoryBlocks/", n);
    case 4: return "machines/fz/ksm";
    default: return "";
  }
}

void Fixup(google::protobuf::Message* m, uint8_t fix) {
  std::string name = FixedName(fix);
  if (name.empty()) return;
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  for (const char* f : {"name", "parent"}) {
    const auto* fd = d->FindFieldByName(f);
    if (fd && fd->type() == google::protobuf::FieldDescriptor::TYPE_STRING && !fd->is_repeated())
      r->SetString(m, fd, f == std::string("parent") && (fix & 7) != 1 ? "machines/fz" : name);
  }
}

bool IsRunWrite(const std::string& method, const google::protobuf::Message& m) {
  if (method == "UpdateKsm") return true;  // may carry run
  if (method == "WriteKsmSysfs") return true;
  return false;
}

std::string g_state_dir;

std::string Record(const std::string& method, uint8_t fix, const google::protobuf::Message& m) {
  std::string b = m.SerializeAsString();
  std::string out;
  out.push_back(static_cast<char>(MethodIndex(method)));
  out.push_back(static_cast<char>(fix));
  out.push_back(static_cast<char>(b.size() & 0xff));
  out.push_back(static_cast<char>(b.size() >> 8));
  return out + b;
}

std::vector<std::string> Corpus() {
  // A few request sequences in the style of docs/API.md's examples.
  const uint8_t kMachine = 1, kKsm = 4;
  auto proc = [](int pid) { return static_cast<uint8_t>(2 | (pid << 3)); };
  auto block = [](int b) { return static_cast<uint8_t>(3 | (b << 3)); };
  std::vector<std::string> seeds;
  v1::CreateProcessRequest cp;
  v1::MmapRequest mm;
  mm.set_length(4 * 4096);
  mm.set_prot(3);
  v1::FillMemoryRequest fill;
  fill.set_address(0x7f0000000000ULL);
  fill.set_length(4 * 4096);
  fill.set_byte_value(0x5a);
  v1::MadviseRequest adv;
  adv.set_address(0x7f0000000000ULL);
  adv.set_length(4 * 4096);
  adv.set_advice(v1::ADVICE_MERGEABLE);
  v1::UpdateKsmRequest run;
  run.set_run(1);
  v1::StepKsmRequest step;
  step.set_visits(100);
  v1::ReadMemoryRequest rd;
  rd.set_address(0x7f0000000000ULL);
  rd.set_length(8192);
  v1::OfflineMemoryBlockRequest off;
  off.set_pause_after(v1::OFFLINE_PHASE_GOING_OFFLINE);
  v1::ResumeOfflineRequest res;
  v1::MovePagesRequest mv;
  mv.add_addresses(0x7f0000000000ULL);
  mv.add_nodes(1);
  v1::MbindRequest mb;
  mb.set_address(0x7f0000000000ULL);
  mb.set_length(8192);
  v1::MigratePagesRequest mig;
  v1::WriteMemoryRequest wr;
  wr.set_address(0x7f0000000010ULL);
  wr.set_data("hello");
  v1::SaveMachineSnapshotRequest save;
  v1::LoadMachineSnapshotRequest load;
  load.set_file("fz.mnsnap");
  load.set_machine_id("fz2");
  v1::CheckMachineRequest check;
  v1::ListStableNodesRequest lsn;
  v1::TranslateAddressesRequest tr;
  tr.set_address(0x7f0000000000ULL);
  tr.set_pages(4);
  v1::CreateMachineRequest cm;
  cm.set_machine_id("m2");
  cm.mutable_machine()->mutable_topology()->set_nodes(2);
  cm.mutable_machine()->mutable_topology()->set_blocks_per_node(2);
  cm.mutable_machine()->mutable_topology()->set_pages_per_block(64);

  std::string base = Record("CreateProcess", kMachine, cp) + Record("CreateProcess", kMachine, cp) +
                     Record("Mmap", proc(1), mm) + Record("Mmap", proc(2), mm) +
                     Record("FillMemory", proc(1), fill) + Record("FillMemory", proc(2), fill) +
                     Record("Madvise", proc(1), adv) + Record("Madvise", proc(2), adv);
  seeds.push_back(base);
  seeds.push_back(base + Record("UpdateKsm", kKsm, run) + Record("StepKsm", kKsm, step) +
                  Record("ListStableNodes", kKsm, lsn) + Record("ReadMemory", proc(1), rd));
  seeds.push_back(base + Record("StepKsm", kKsm, step) + Record("StepKsm", kKsm, step) +
                  Record("OfflineMemoryBlock", block(1), off) +
                  Record("ResumeOffline", block(1), res) + Record("CheckMachine", kMachine, check));
  seeds.push_back(base + Record("MovePages", proc(1), mv) + Record("Mbind", proc(2), mb) +
                  Record("MigratePages", proc(1), mig) + Record("WriteMemory", proc(1), wr) +
                  Record("TranslateAddresses", proc(1), tr));
  seeds.push_back(base + Record("SaveMachineSnapshot", kMachine, save) +
                  Record("LoadMachineSnapshot", 0, load) + Record("CreateMachine", 0, cm) +
                  Record("ForkProcess", proc(1), v1::ForkProcessRequest()) +
                  Record("ExitProcess", proc(1), v1::ExitProcessRequest()));
  // One record of each method with an empty request and the machine's name.
  std::string each;
  for (const auto& m : Methods()) each += Record(m.name, kMachine, *m.make_request());
  seeds.push_back(each);
  return seeds;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  std::string dir = memnode::fuzz::WriteCorpusDir(argc, argv);
  if (!dir.empty()) memnode::fuzz::WriteCorpus(dir, Corpus());
  char tmpl[] = "/tmp/memnode-fuzz-service-XXXXXX";
  if (!mkdtemp(tmpl)) std::abort();
  g_state_dir = tmpl;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 65536) return 0;
  Limits limits;
  limits.max_machines = 3;
  limits.max_machine_bytes = uint64_t{16} << 20;  // 4096 pages
  limits.max_total_bytes = uint64_t{32} << 20;
  limits.max_request_bytes = 1 << 20;
  Registry reg(limits, g_state_dir);
  MachineConfig c;
  c.nodes = 2;
  c.blocks_per_node = 4;
  c.pages_per_block = 64;
  c.clock = ClockMode::kManual;
  if (!reg.Create("fz", c).ok()) std::abort();
  Services s(reg);
  const auto& methods = Methods();
  size_t pos = 0;
  int calls = 0;
  while (pos + 4 <= size && calls < 64) {
    const Method& m = methods[data[pos] % methods.size()];
    uint8_t fix = data[pos + 1];
    size_t len = data[pos + 2] | (size_t{data[pos + 3]} << 8);
    pos += 4;
    len = std::min(len, size - pos);
    auto req = m.make_request();
    (void)req->ParsePartialFromArray(data + pos, static_cast<int>(len));
    pos += len;
    Fixup(req.get(), fix);
    if (IsRunWrite(m.name, *req)) {
      bool locked = false;
      for (const auto& h : reg.List()) locked |= h->machine().KsmLocked();
      if (locked) continue;
    }
    (void)m.call(s, *req);
    ++calls;
  }
  for (const auto& h : reg.List()) {
    CheckResult r = h->machine().Check();
    if (!r.ok()) {
      std::fprintf(stderr, "fuzz_service: machines/%s fails Check():\n%s\n", h->id().c_str(),
                   absl::StrJoin(r.violations, "\n").c_str());
      std::abort();
    }
  }
  return 0;
}
