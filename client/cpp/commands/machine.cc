// machine *, page * and snapshot *: MachineService.

#include <cstdint>
#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/cpp/commands/commands.h"
#include "client/cpp/context.h"
#include "client/cpp/enum_names.h"
#include "client/cpp/format.h"
#include "google/protobuf/empty.pb.h"

namespace memnode {
namespace cli {

namespace {

constexpr uint64_t kPageSize = 4096;

// Machine id -> resource name; a full `machines/...` name is kept as is.
std::string MachineResource(const std::string& id) {
  if (absl::StartsWith(id, "machines/")) return id;
  return absl::StrCat("machines/", id);
}

// Last component of a resource name ("machines/default" -> "default").
std::string LastComponent(const std::string& name) {
  size_t slash = name.rfind('/');
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

void PrintMachine(const v1::Machine& m) {
  KeyValues kv;
  kv.Add("name", m.name());
  kv.Add("profile", m.profile());
  kv.Add("clock_mode", UpperName(m.clock_mode()));
  kv.Add("topology", absl::StrCat(m.topology().nodes(), " nodes x ", m.topology().blocks_per_node(),
                                  " blocks x ", m.topology().pages_per_block(), " pages"));
  kv.Add("total_pages",
         absl::StrCat(m.total_pages(), " (", Bytes(m.total_pages() * kPageSize), ")"));
  kv.Add("process_count", absl::StrCat(m.process_count()));
  kv.Add("distinct_contents", absl::StrCat(m.distinct_contents()));
  kv.Add("emulated_time_ns", absl::StrCat(m.emulated_time_ns()));
  kv.Print(std::cout);
  if (m.nodes_size() == 0) return;
  std::cout << "\n";
  Table table({"NODE", "BLOCKS", "PRESENT", "FREE", "ANON", "KSM", "SHMEM", "RESERVED"});
  for (const v1::NodeStats& n : m.nodes()) {
    table.AddRow({absl::StrCat(n.node()), absl::StrCat(n.blocks()), absl::StrCat(n.present_pages()),
                  absl::StrCat(n.free_pages()), absl::StrCat(n.anon_pages()),
                  absl::StrCat(n.ksm_pages()), absl::StrCat(n.shmem_pages()),
                  absl::StrCat(n.reserved_pages())});
  }
  table.Print(std::cout);
}

// Prints a machine (or its JSON); exit 0.
int MachineResult(Context& ctx, const v1::Machine& machine) {
  if (ctx.json()) {
    ctx.PrintJson(machine);
  } else {
    PrintMachine(machine);
  }
  return kExitOk;
}

int MachineList(Context& ctx) {
  v1::ListMachinesResponse all;
  if (int rc = ctx.FetchAll(&all, [&](const std::string& token, v1::ListMachinesResponse* page) {
        v1::ListMachinesRequest request;
        request.set_page_size(kListPageSize);
        request.set_page_token(token);
        return ctx.Call(ctx.machines(), &v1::MachineService::Stub::ListMachines, request, page);
      })) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(all);
    return kExitOk;
  }
  Table table({"MACHINE", "CLOCK", "NODES", "BLOCKS/NODE", "PAGES/BLOCK", "TOTAL_PAGES", "PROCS",
               "PROFILE"});
  for (const v1::Machine& m : all.machines()) {
    table.AddRow({LastComponent(m.name()), UpperName(m.clock_mode()),
                  absl::StrCat(m.topology().nodes()), absl::StrCat(m.topology().blocks_per_node()),
                  absl::StrCat(m.topology().pages_per_block()), absl::StrCat(m.total_pages()),
                  absl::StrCat(m.process_count()), m.profile()});
  }
  table.Print(std::cout);
  return kExitOk;
}

struct CreateArgs {
  std::string id;
  uint32_t nodes = 0;
  uint32_t blocks_per_node = 0;
  uint64_t pages_per_block = 0;
  v1::ClockMode clock = v1::CLOCK_MODE_UNSPECIFIED;
};

int MachineCreate(Context& ctx, const CreateArgs& a) {
  v1::CreateMachineRequest request;
  request.set_machine_id(absl::StartsWith(a.id, "machines/") ? a.id.substr(9) : a.id);
  v1::Topology* topology = request.mutable_machine()->mutable_topology();
  topology->set_nodes(a.nodes);
  topology->set_blocks_per_node(a.blocks_per_node);
  topology->set_pages_per_block(a.pages_per_block);
  request.mutable_machine()->set_clock_mode(a.clock);
  v1::Machine machine;
  if (int rc =
          ctx.Call(ctx.machines(), &v1::MachineService::Stub::CreateMachine, request, &machine)) {
    return rc;
  }
  return MachineResult(ctx, machine);
}

int MachineCheck(Context& ctx, const std::string& id) {
  v1::CheckMachineRequest request;
  request.set_name(id.empty() ? ctx.MachineName() : MachineResource(id));
  v1::CheckMachineResponse response;
  if (int rc =
          ctx.Call(ctx.machines(), &v1::MachineService::Stub::CheckMachine, request, &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    KeyValues kv;
    kv.Add("machine", request.name());
    kv.Add("ok", YesNo(response.ok()));
    kv.Add("state_digest", response.state_digest());
    kv.Add("violations", absl::StrCat(response.violations_size()));
    kv.Print(std::cout);
    for (const std::string& v : response.violations()) std::cout << "  - " << v << "\n";
  }
  return response.ok() ? kExitOk : kExitErrno;
}

int PageGet(Context& ctx, uint64_t pfn) {
  v1::GetPageFrameRequest request;
  request.set_machine(ctx.MachineName());
  request.set_pfn(pfn);
  v1::PageFrame frame;
  if (int rc = ctx.Call(ctx.machines(), &v1::MachineService::Stub::GetPageFrame, request, &frame)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(frame);
    return kExitOk;
  }
  KeyValues kv;
  kv.Add("pfn", absl::StrCat(frame.pfn(), " (", Hex(frame.pfn()), ")"));
  kv.Add("physical_address", Hex(frame.pfn() * kPageSize));
  kv.Add("node", absl::StrCat(frame.node()));
  kv.Add("block", absl::StrCat(frame.block()));
  kv.Add("state", UpperName(frame.state()));
  kv.Add("refcount", absl::StrCat(frame.refcount()));
  kv.Add("mapcount", absl::StrCat(frame.mapcount()));
  kv.Add("pins", absl::StrCat(frame.pins()));
  kv.Add("content_digest", frame.content_digest().empty() ? "-" : frame.content_digest());
  kv.Add("stable_node_id",
         frame.stable_node_id() == 0 ? "-" : absl::StrCat(frame.stable_node_id()));
  kv.Print(std::cout);
  return kExitOk;
}

struct PageListArgs {
  uint64_t start = 0;
  uint64_t count = 0;
  bool skip_free = false;
};

int PageList(Context& ctx, const PageListArgs& a) {
  v1::ListPageFramesResponse all;
  if (int rc = ctx.FetchAll(&all, [&](const std::string& token, v1::ListPageFramesResponse* page) {
        v1::ListPageFramesRequest request;
        request.set_machine(ctx.MachineName());
        request.set_start_pfn(a.start);
        request.set_count(a.count);
        request.set_skip_free(a.skip_free);
        request.set_page_size(kFramePageSize);
        request.set_page_token(token);
        return ctx.Call(ctx.machines(), &v1::MachineService::Stub::ListPageFrames, request, page);
      })) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(all);
    return kExitOk;
  }
  Table table({"PFN", "NODE", "BLOCK", "STATE", "REF", "MAP", "PINS", "DIGEST", "STABLE"});
  for (const v1::PageFrame& f : all.frames()) {
    table.AddRow({absl::StrCat(f.pfn()), absl::StrCat(f.node()), absl::StrCat(f.block()),
                  UpperName(f.state()), absl::StrCat(f.refcount()), absl::StrCat(f.mapcount()),
                  absl::StrCat(f.pins()), ShortDigest(f.content_digest()),
                  f.stable_node_id() == 0 ? "-" : absl::StrCat(f.stable_node_id())});
  }
  table.Print(std::cout);
  return kExitOk;
}

struct SaveArgs {
  std::string id;
  std::string file;
};

int SnapshotSave(Context& ctx, const SaveArgs& a) {
  v1::SaveMachineSnapshotRequest request;
  request.set_name(a.id.empty() ? ctx.MachineName() : MachineResource(a.id));
  request.set_file(a.file);
  v1::SaveMachineSnapshotResponse response;
  if (int rc = ctx.Call(ctx.machines(), &v1::MachineService::Stub::SaveMachineSnapshot, request,
                        &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
    return kExitOk;
  }
  KeyValues kv;
  kv.Add("machine", request.name());
  kv.Add("path", response.path());
  kv.Add("bytes", absl::StrCat(response.bytes()));
  kv.Add("state_digest", response.state_digest());
  kv.Print(std::cout);
  return kExitOk;
}

}  // namespace

void AddMachineCommands(CommandSet& set) {
  set.Add("machine list", "List machines.").Run(MachineList);

  auto& get_id = set.Store<std::string>();
  set.Add("machine get", "Show a machine (default: --machine) with per-node page counts.")
      .OptionalArg("ID", &get_id)
      .Run([&get_id](Context& ctx) {
        v1::GetMachineRequest request;
        request.set_name(get_id.empty() ? ctx.MachineName() : MachineResource(get_id));
        v1::Machine machine;
        if (int rc = ctx.Call(ctx.machines(), &v1::MachineService::Stub::GetMachine, request,
                              &machine)) {
          return rc;
        }
        return MachineResult(ctx, machine);
      });

  auto& create = set.Store<CreateArgs>();
  set.Add("machine create", "Create a machine. Unset values take the server's defaults.")
      .Arg("ID", &create.id)
      .Flag("--nodes", &create.nodes, "N", "NUMA nodes (1..64, default 2)", Uint(0, UINT32_MAX))
      .Flag("--blocks-per-node", &create.blocks_per_node, "N", "memory blocks per node (default 8)",
            Uint(0, UINT32_MAX))
      .Flag("--pages-per-block", &create.pages_per_block, "N",
            "4 KiB pages per block, a multiple of 64 (default 32768)", Size())
      .Flag("--clock", &create.clock, "MODE", "manual (deterministic, default) or realtime",
            EnumValue<v1::ClockMode>(
                NameStyle::kWord, [](v1::ClockMode m) { return m != v1::CLOCK_MODE_UNSPECIFIED; }))
      .Run([&create](Context& ctx) { return MachineCreate(ctx, create); });

  auto& delete_id = set.Store<std::string>();
  set.Add("machine delete", "Delete a machine with its processes.")
      .Arg("ID", &delete_id)
      .Run([&delete_id](Context& ctx) {
        v1::DeleteMachineRequest request;
        request.set_name(MachineResource(delete_id));
        google::protobuf::Empty empty;
        if (int rc = ctx.Call(ctx.machines(), &v1::MachineService::Stub::DeleteMachine, request,
                              &empty)) {
          return rc;
        }
        if (ctx.json()) {
          ctx.PrintJson(empty);
        } else {
          std::cout << "deleted " << request.name() << "\n";
        }
        return kExitOk;
      });

  auto& check_id = set.Store<std::string>();
  set.Add("machine check", "Run the machine's self-check; exits 1 when an invariant is broken.")
      .OptionalArg("ID", &check_id)
      .Run([&check_id](Context& ctx) { return MachineCheck(ctx, check_id); });

  auto& pfn = set.Store<uint64_t>();
  set.Add("page get", "Show one page frame (struct page).")
      .Arg("PFN", &pfn, Uint())
      .Run([&pfn](Context& ctx) { return PageGet(ctx, pfn); });

  auto& list = set.Store<PageListArgs>();
  set.Add("page list", "List the page frames of pfns [START, START+COUNT).")
      .Arg("START", &list.start, Size())
      .Arg("COUNT", &list.count, Size())
      .Switch("--skip-free", &list.skip_free, "leave out free frames")
      .Run([&list](Context& ctx) { return PageList(ctx, list); });
}

void AddSnapshotCommands(CommandSet& set) {
  auto& save = set.Store<SaveArgs>();
  set.Add("snapshot save",
          "Save a machine (default: --machine) to a file in the server's --state_dir.")
      .OptionalArg("ID", &save.id)
      .Flag("--file", &save.file, "NAME",
            "file name in the state directory ([A-Za-z0-9._-], default ID.mnsnap)")
      .Run([&save](Context& ctx) { return SnapshotSave(ctx, save); });

  auto& load = set.Store<SaveArgs>();
  set.Add("snapshot load", "Create machine ID from a snapshot file of the server's --state_dir.")
      .Arg("FILE", &load.file)
      .Arg("ID", &load.id)
      .Run([&load](Context& ctx) {
        v1::LoadMachineSnapshotRequest request;
        request.set_file(load.file);
        request.set_machine_id(absl::StartsWith(load.id, "machines/") ? load.id.substr(9)
                                                                      : load.id);
        v1::Machine machine;
        if (int rc = ctx.Call(ctx.machines(), &v1::MachineService::Stub::LoadMachineSnapshot,
                              request, &machine)) {
          return rc;
        }
        return MachineResult(ctx, machine);
      });
}

}  // namespace cli
}  // namespace memnode
