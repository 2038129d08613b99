// memnodectl: the command-line client of memnode.
//
// Overview
//
// Each invocation is one command: the words after the global flags select a
// Command from kCommands, whose handler validates its arguments (usage errors
// exit 2 before any RPC), makes one or more RPCs on the machine chosen with
// --machine, and prints either human output (tables, key: value blocks) or,
// with --json, exactly one JSON object made with MessageToJsonString.
//
// Exit codes (docs/CLI.md):
//   0  success
//   1  the emulated call returned a non-OK errno (or `machine check` failed)
//   2  usage error
//   3  the server returned a non-OK gRPC status
//   4  the server could not be reached, or the deadline expired
//
// Thread safety: single-threaded.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "client/cpp/args.h"
#include "client/cpp/format.h"
#include "google/protobuf/empty.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "memnode/v1/ksm.grpc.pb.h"
#include "memnode/v1/machine.grpc.pb.h"
#include "memnode/v1/process.grpc.pb.h"

namespace memnode {
namespace cli {
namespace {

namespace v1 = ::memnode::v1;

constexpr int kExitOk = 0;
constexpr int kExitErrno = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRpc = 3;
constexpr int kExitUnreachable = 4;

constexpr char kDefaultServer[] = "127.0.0.1:50051";
constexpr char kDefaultMachine[] = "default";
constexpr double kDefaultTimeoutSeconds = 30;

// Page sizes asked of the list RPCs (the server caps them anyway).
constexpr int32_t kListPageSize = 1000;
constexpr int32_t kFramePageSize = 4096;
// Bytes asked per ReadMemory call (below the server's per-request limit).
constexpr uint64_t kReadChunkBytes = uint64_t{1} << 20;

// Name of a canonical gRPC status code.
const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "CODE_UNKNOWN";
  }
}

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

std::string PageStateName(v1::PageState state) {
  return EnumName(v1::PageState_Name(state), "PAGE_STATE_", state);
}

std::string ClockName(v1::ClockMode mode) {
  return EnumName(v1::ClockMode_Name(mode), "CLOCK_MODE_", mode);
}

std::string ProcessStateName(v1::ProcessState state) {
  return EnumName(v1::ProcessState_Name(state), "PROCESS_STATE_", state);
}

std::string RmapStateName(v1::RmapState state) {
  return EnumName(v1::RmapState_Name(state), "RMAP_STATE_", state);
}

// Detail of an errno line for a memory access that may have a fault address.
std::string FaultDetail(v1::Errno errnum, uint64_t fault_address,
                        uint64_t bytes_done) {
  std::string detail;
  if (errnum == v1::ERRNO_EFAULT || errnum == v1::ERRNO_EACCES ||
      fault_address != 0) {
    detail = absl::StrCat(
        errnum == v1::ERRNO_EACCES ? "access denied at " : "fault at ",
        Hex(fault_address));
  } else {
    detail = ErrnoText(errnum);
  }
  if (bytes_done != 0)
    absl::StrAppend(&detail, " (", bytes_done, " bytes done)");
  return detail;
}

class Cli;

// A subcommand: its words, argument synopsis, help and handler.
struct Command {
  const char* path;      // "machine create"
  const char* synopsis;  // "ID [--nodes N] ..."
  const char* summary;   // One line.
  const char* details;   // Extra help lines ("" if none).
  int (Cli::*run)();
};

extern const Command kCommands[];
extern const size_t kCommandCount;

// Runs one command line.
class Cli {
 public:
  explicit Cli(Args args) : args_(std::move(args)) {}

  int Main();

  // Handlers, one per entry of kCommands.
  int MachineList();
  int MachineGet();
  int MachineCreate();
  int MachineDelete();
  int MachineCheck();
  int PageGet();
  int PageList();
  int ProcessCreate();
  int ProcessList();
  int ProcessGet();
  int ProcessFork();
  int ProcessExit();
  int Mmap();
  int Munmap();
  int Mprotect();
  int Madvise();
  int Write();
  int Fill();
  int Read();
  int Digest();
  int Touch();
  int Pin();
  int Unpin();
  int Translate();
  int KsmGet();
  int KsmSet();
  int KsmSysfs();
  int KsmStep();
  int KsmStable();
  int KsmUnstable();
  int KsmRmap();
  int KsmDump();

 private:
  // Reads the global flags; returns false (after printing) on a bad value.
  bool ReadGlobalFlags();
  // Prints the usage error recorded in args_ (if any) and returns 2, else 0.
  int CheckUsage(const Command& command);
  int UsageError(const std::string& message, const Command* command);

  std::string MachineName() const { return MachineResource(machine_id_); }
  std::string KsmName() const { return MachineName() + "/ksm"; }
  std::string ProcessName(int32_t pid) const {
    return absl::StrCat(MachineName(), "/processes/", pid);
  }

  // Creates the channel and stubs on first use.
  void Connect();

  // One unary RPC with the per-call deadline. Returns 0, or prints the error
  // and returns its exit code.
  template <typename Stub, typename Request, typename Response>
  int Call(Stub* stub,
           grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                        Response*),
           const Request& request, Response* response);

  // Follows next_page_token: fetch(token, page) performs one call. The pages
  // are merged into *all, whose next_page_token ends empty.
  template <typename Response, typename Fetch>
  int FetchAll(Response* all, Fetch fetch);

  int ReportRpcError(const grpc::Status& status);

  // Prints a message as one JSON object line.
  void PrintJson(const google::protobuf::Message& message);
  std::string ToJson(const google::protobuf::Message& message);

  // Prints "EFAULT (14): ..." to stderr (human mode) and returns 1 when
  // errnum is not OK; returns 0 otherwise.
  int ErrnoExit(v1::Errno errnum, const std::string& detail);

  // Human output of resources.
  void PrintMachine(const v1::Machine& machine);
  void PrintProcess(const v1::Process& process);
  void PrintKsm(const v1::Ksm& ksm);
  void PrintRmapItems(
      const google::protobuf::RepeatedPtrField<v1::RmapItem>& items,
      bool with_pid);

  // Shared body of write / fill / touch results.
  int AccessResult(const v1::MemoryAccessResult& result, const char* verb,
                   uint64_t address);
  // Shared body of ksm set / ksm sysfs.
  int UpdateResult(const v1::UpdateKsmResponse& response);

  int ListStable(v1::ListStableNodesResponse* all);
  int ListUnstable(v1::ListUnstableItemsResponse* all);

  Args args_;
  const Command* command_ = nullptr;
  std::string server_;
  std::string machine_id_;
  bool json_ = false;
  double timeout_seconds_ = kDefaultTimeoutSeconds;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::MachineService::Stub> machines_;
  std::unique_ptr<v1::ProcessService::Stub> processes_;
  std::unique_ptr<v1::KsmService::Stub> ksm_;
};

// ---------------------------------------------------------------------------
// Help.

constexpr char kGlobalHelp[] =
    R"(memnodectl: command-line client of memnode (emulated NUMA machines with KSM).

usage: memnodectl [global flags] COMMAND [ARGS] [FLAGS]

Global flags (may appear anywhere on the line):
  --server=HOST:PORT  server address (default $MEMNODE_SERVER, else 127.0.0.1:50051)
  --machine=ID        machine to act on (default "default", i.e. machines/default)
  --json              print one JSON object per command (proto field names)
  --timeout=SECONDS   deadline of each RPC (default 30; 0 = none)
  --help, -h          show help (memnodectl COMMAND --help for one command)

Numbers are decimal or 0x hex; lengths and addresses also take the binary
suffixes K, M, G, T (KiB, MiB, GiB, TiB), e.g. `mmap 1 1G`.

Exit codes: 0 ok, 1 emulated errno (or failed check), 2 usage error,
3 gRPC error from the server, 4 server unreachable or deadline exceeded.
)";

void PrintCommandList(std::ostream& out, absl::string_view group) {
  Table table({"COMMAND", "SUMMARY"});
  for (size_t i = 0; i < kCommandCount; ++i) {
    const Command& c = kCommands[i];
    if (!group.empty() && !absl::StartsWith(c.path, absl::StrCat(group, " ")) &&
        c.path != group) {
      continue;
    }
    table.AddRow({c.path, c.summary});
  }
  table.Print(out, "  ");
}

void PrintCommandHelp(std::ostream& out, const Command& c) {
  out << "usage: memnodectl " << c.path;
  if (c.synopsis[0] != '\0') out << " " << c.synopsis;
  out << "\n\n" << c.summary << "\n";
  if (c.details[0] != '\0') out << "\n" << c.details;
  out << "\nGlobal flags: --server=HOST:PORT --machine=ID --json "
         "--timeout=SECONDS (see memnodectl help)\n";
}

const Command* FindCommand(const std::string& path) {
  for (size_t i = 0; i < kCommandCount; ++i) {
    if (path == kCommands[i].path) return &kCommands[i];
  }
  return nullptr;
}

bool IsGroup(const std::string& word) {
  for (size_t i = 0; i < kCommandCount; ++i) {
    if (absl::StartsWith(kCommands[i].path, absl::StrCat(word, " "))) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Plumbing.

int Cli::Main() {
  bool help = args_.FlagSwitch("help");
  std::string word = args_.Shift();
  if (word.empty()) {
    if (help) {
      std::cout << kGlobalHelp << "\nCommands:\n";
      PrintCommandList(std::cout, "");
      return kExitOk;
    }
    std::cerr << kGlobalHelp << "\nCommands:\n";
    PrintCommandList(std::cerr, "");
    return kExitUsage;
  }
  if (word == "help") {
    std::string topic = args_.Shift();
    if (topic.empty()) {
      std::cout << kGlobalHelp << "\nCommands:\n";
      PrintCommandList(std::cout, "");
      return kExitOk;
    }
    std::string sub = args_.Shift();
    const Command* c = FindCommand(sub.empty() ? topic : topic + " " + sub);
    if (c == nullptr && !sub.empty()) c = FindCommand(topic);
    if (c != nullptr) {
      PrintCommandHelp(std::cout, *c);
      return kExitOk;
    }
    if (IsGroup(topic)) {
      std::cout << "usage: memnodectl " << topic << " SUBCOMMAND ...\n\n";
      PrintCommandList(std::cout, topic);
      return kExitOk;
    }
    return UsageError(absl::StrCat("unknown command \"", topic, "\""), nullptr);
  }

  const Command* command = FindCommand(word);
  if (command == nullptr && IsGroup(word)) {
    std::string sub = args_.Shift();
    command = sub.empty() ? nullptr : FindCommand(word + " " + sub);
    if (command == nullptr) {
      std::ostream& out = (help && sub.empty()) ? std::cout : std::cerr;
      if (!sub.empty()) {
        out << "error: unknown command \"" << word << " " << sub << "\"\n";
      }
      out << "usage: memnodectl " << word << " SUBCOMMAND ...\n\n";
      PrintCommandList(out, word);
      return (help && sub.empty()) ? kExitOk : kExitUsage;
    }
  }
  if (command == nullptr) {
    return UsageError(absl::StrCat("unknown command \"", word, "\""), nullptr);
  }
  command_ = command;
  if (help) {
    PrintCommandHelp(std::cout, *command);
    return kExitOk;
  }
  if (!ReadGlobalFlags()) return kExitUsage;
  return (this->*(command->run))();
}

bool Cli::ReadGlobalFlags() {
  const char* env = std::getenv("MEMNODE_SERVER");
  server_ = args_.FlagString(
      "server", env != nullptr && env[0] != '\0' ? env : kDefaultServer);
  machine_id_ = args_.FlagString("machine", kDefaultMachine);
  json_ = args_.FlagSwitch("json");
  std::string timeout = args_.FlagString("timeout", "");
  if (!timeout.empty() &&
      (!absl::SimpleAtod(timeout, &timeout_seconds_) || timeout_seconds_ < 0)) {
    UsageError(
        absl::StrCat("--timeout: not a number of seconds: \"", timeout, "\""),
        command_);
    return false;
  }
  if (server_.empty() || machine_id_.empty() || machine_id_ == "machines/") {
    UsageError("--server and --machine must not be empty", command_);
    return false;
  }
  if (!args_.status().ok()) {
    CheckUsage(*command_);
    return false;
  }
  return true;
}

int Cli::UsageError(const std::string& message, const Command* command) {
  std::cerr << "error: " << message << "\n";
  if (command != nullptr) {
    std::cerr << "usage: memnodectl " << command->path
              << (command->synopsis[0] != '\0' ? " " : "") << command->synopsis
              << "\n"
              << "(memnodectl " << command->path << " --help for details)\n";
  } else {
    std::cerr << "(memnodectl help lists the commands)\n";
  }
  return kExitUsage;
}

int Cli::CheckUsage(const Command& command) {
  if (args_.status().ok()) return kExitOk;
  return UsageError(std::string(args_.status().message()), &command);
}

void Cli::Connect() {
  if (channel_ != nullptr) return;
  channel_ = grpc::CreateChannel(server_, grpc::InsecureChannelCredentials());
  machines_ = v1::MachineService::NewStub(channel_);
  processes_ = v1::ProcessService::NewStub(channel_);
  ksm_ = v1::KsmService::NewStub(channel_);
}

template <typename Stub, typename Request, typename Response>
int Cli::Call(Stub* stub,
              grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                           Response*),
              const Request& request, Response* response) {
  grpc::ClientContext context;
  if (timeout_seconds_ > 0) {
    context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(timeout_seconds_)));
  }
  grpc::Status status = (stub->*method)(&context, request, response);
  if (status.ok()) return kExitOk;
  return ReportRpcError(status);
}

template <typename Response, typename Fetch>
int Cli::FetchAll(Response* all, Fetch fetch) {
  std::string token;
  for (;;) {
    Response page;
    if (int rc = fetch(token, &page)) return rc;
    std::string next = page.next_page_token();
    all->MergeFrom(page);
    if (next.empty()) break;
    if (next == token) {
      std::cerr << "error: server repeated page token \"" << token << "\"\n";
      return kExitRpc;
    }
    token = next;
  }
  all->clear_next_page_token();
  return kExitOk;
}

int Cli::ReportRpcError(const grpc::Status& status) {
  google::rpc::ErrorInfo info;
  bool has_info = false;
  if (!status.error_details().empty()) {
    google::rpc::Status details;
    if (details.ParseFromString(status.error_details())) {
      for (const auto& any : details.details()) {
        if (any.UnpackTo(&info)) {
          has_info = true;
          break;
        }
      }
    }
  }
  std::cerr << "error: " << CodeName(status.error_code()) << ": "
            << status.error_message();
  if (has_info && !info.reason().empty()) {
    std::cerr << " [reason=" << info.reason() << "]";
  }
  std::cerr << "\n";
  if (has_info && !info.metadata().empty()) {
    std::vector<std::pair<std::string, std::string>> sorted(
        info.metadata().begin(), info.metadata().end());
    std::sort(sorted.begin(), sorted.end());
    std::cerr << "  " << absl::StrJoin(sorted, " ", absl::PairFormatter("="))
              << "\n";
  }
  // Without an ErrorInfo, UNAVAILABLE comes from the transport (nothing
  // listening, connection refused); a deadline is the client's own limit.
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      (status.error_code() == grpc::StatusCode::UNAVAILABLE && !has_info)) {
    return kExitUnreachable;
  }
  return kExitRpc;
}

std::string Cli::ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  google::protobuf::util::Status status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    std::cerr << "error: cannot print JSON: " << status.ToString() << "\n";
    return "{}";
  }
  return json;
}

void Cli::PrintJson(const google::protobuf::Message& message) {
  std::cout << ToJson(message) << "\n";
}

int Cli::ErrnoExit(v1::Errno errnum, const std::string& detail) {
  if (errnum == v1::ERRNO_OK) return kExitOk;
  if (!json_) std::cerr << ErrnoLine(errnum, detail) << "\n";
  return kExitErrno;
}

// ---------------------------------------------------------------------------
// Machines and pages.

void Cli::PrintMachine(const v1::Machine& m) {
  KeyValues kv;
  kv.Add("name", m.name());
  kv.Add("profile", m.profile());
  kv.Add("clock_mode", ClockName(m.clock_mode()));
  kv.Add("topology", absl::StrCat(m.topology().nodes(), " nodes x ",
                                  m.topology().blocks_per_node(), " blocks x ",
                                  m.topology().pages_per_block(), " pages"));
  kv.Add("total_pages", absl::StrCat(m.total_pages(), " (",
                                     Bytes(m.total_pages() * 4096), ")"));
  kv.Add("process_count", absl::StrCat(m.process_count()));
  kv.Add("distinct_contents", absl::StrCat(m.distinct_contents()));
  kv.Add("emulated_time_ns", absl::StrCat(m.emulated_time_ns()));
  kv.Print(std::cout);
  if (m.nodes_size() == 0) return;
  std::cout << "\n";
  Table table({"NODE", "BLOCKS", "PRESENT", "FREE", "ANON", "KSM", "SHMEM",
               "RESERVED"});
  for (const v1::NodeStats& n : m.nodes()) {
    table.AddRow({absl::StrCat(n.node()), absl::StrCat(n.blocks()),
                  absl::StrCat(n.present_pages()), absl::StrCat(n.free_pages()),
                  absl::StrCat(n.anon_pages()), absl::StrCat(n.ksm_pages()),
                  absl::StrCat(n.shmem_pages()),
                  absl::StrCat(n.reserved_pages())});
  }
  table.Print(std::cout);
}

int Cli::MachineList() {
  args_.Expect(0, 0, {});
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::ListMachinesResponse all;
  if (int rc = FetchAll(
          &all, [&](const std::string& token, v1::ListMachinesResponse* page) {
            v1::ListMachinesRequest request;
            request.set_page_size(kListPageSize);
            request.set_page_token(token);
            return Call(machines_.get(),
                        &v1::MachineService::Stub::ListMachines, request, page);
          })) {
    return rc;
  }
  if (json_) {
    PrintJson(all);
    return kExitOk;
  }
  Table table({"MACHINE", "CLOCK", "NODES", "BLOCKS/NODE", "PAGES/BLOCK",
               "TOTAL_PAGES", "PROCS", "PROFILE"});
  for (const v1::Machine& m : all.machines()) {
    table.AddRow({LastComponent(m.name()), ClockName(m.clock_mode()),
                  absl::StrCat(m.topology().nodes()),
                  absl::StrCat(m.topology().blocks_per_node()),
                  absl::StrCat(m.topology().pages_per_block()),
                  absl::StrCat(m.total_pages()),
                  absl::StrCat(m.process_count()), m.profile()});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Cli::MachineGet() {
  args_.Expect(0, 1, {});
  if (int rc = CheckUsage(*command_)) return rc;
  v1::GetMachineRequest request;
  request.set_name(MachineResource(
      args_.PositionalCount() > 0 ? args_.Positional(0) : machine_id_));
  Connect();
  v1::Machine machine;
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::GetMachine,
                    request, &machine)) {
    return rc;
  }
  if (json_) {
    PrintJson(machine);
  } else {
    PrintMachine(machine);
  }
  return kExitOk;
}

int Cli::MachineCreate() {
  args_.Expect(1, 1, {"nodes", "blocks-per-node", "pages-per-block", "clock"});
  v1::CreateMachineRequest request;
  std::string id = args_.Positional(0);
  if (absl::StartsWith(id, "machines/")) id = id.substr(9);
  request.set_machine_id(id);
  v1::Topology* topology = request.mutable_machine()->mutable_topology();
  uint64_t nodes = args_.FlagUint("nodes", 0);
  uint64_t blocks = args_.FlagUint("blocks-per-node", 0);
  if (nodes > UINT32_MAX) args_.Fail("--nodes out of range");
  if (blocks > UINT32_MAX) args_.Fail("--blocks-per-node out of range");
  topology->set_nodes(static_cast<uint32_t>(nodes));
  topology->set_blocks_per_node(static_cast<uint32_t>(blocks));
  topology->set_pages_per_block(args_.FlagSize("pages-per-block", 0));
  std::string clock = args_.FlagString("clock", "");
  if (clock == "manual") {
    request.mutable_machine()->set_clock_mode(v1::CLOCK_MODE_MANUAL);
  } else if (clock == "realtime") {
    request.mutable_machine()->set_clock_mode(v1::CLOCK_MODE_REALTIME);
  } else if (!clock.empty()) {
    args_.Fail(absl::StrCat("--clock must be manual or realtime, not \"", clock,
                            "\""));
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::Machine machine;
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::CreateMachine,
                    request, &machine)) {
    return rc;
  }
  if (json_) {
    PrintJson(machine);
  } else {
    PrintMachine(machine);
  }
  return kExitOk;
}

int Cli::MachineDelete() {
  args_.Expect(1, 1, {});
  if (int rc = CheckUsage(*command_)) return rc;
  v1::DeleteMachineRequest request;
  request.set_name(MachineResource(args_.Positional(0)));
  Connect();
  google::protobuf::Empty empty;
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::DeleteMachine,
                    request, &empty)) {
    return rc;
  }
  if (json_) {
    PrintJson(empty);
  } else {
    std::cout << "deleted " << request.name() << "\n";
  }
  return kExitOk;
}

int Cli::MachineCheck() {
  args_.Expect(0, 1, {});
  if (int rc = CheckUsage(*command_)) return rc;
  v1::CheckMachineRequest request;
  request.set_name(MachineResource(
      args_.PositionalCount() > 0 ? args_.Positional(0) : machine_id_));
  Connect();
  v1::CheckMachineResponse response;
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::CheckMachine,
                    request, &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else {
    KeyValues kv;
    kv.Add("machine", request.name());
    kv.Add("ok", YesNo(response.ok()));
    kv.Add("state_digest", response.state_digest());
    kv.Add("violations", absl::StrCat(response.violations_size()));
    kv.Print(std::cout);
    for (const std::string& v : response.violations()) {
      std::cout << "  - " << v << "\n";
    }
  }
  return response.ok() ? kExitOk : kExitErrno;
}

int Cli::PageGet() {
  args_.Expect(1, 1, {});
  v1::GetPageFrameRequest request;
  request.set_machine(MachineName());
  request.set_pfn(args_.PosUint(0, "PFN"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::PageFrame frame;
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::GetPageFrame,
                    request, &frame)) {
    return rc;
  }
  if (json_) {
    PrintJson(frame);
    return kExitOk;
  }
  KeyValues kv;
  kv.Add("pfn", absl::StrCat(frame.pfn(), " (", Hex(frame.pfn()), ")"));
  kv.Add("physical_address", Hex(frame.pfn() * 4096));
  kv.Add("node", absl::StrCat(frame.node()));
  kv.Add("block", absl::StrCat(frame.block()));
  kv.Add("state", PageStateName(frame.state()));
  kv.Add("refcount", absl::StrCat(frame.refcount()));
  kv.Add("mapcount", absl::StrCat(frame.mapcount()));
  kv.Add("pins", absl::StrCat(frame.pins()));
  kv.Add("content_digest",
         frame.content_digest().empty() ? "-" : frame.content_digest());
  kv.Add("stable_node_id", frame.stable_node_id() == 0
                               ? "-"
                               : absl::StrCat(frame.stable_node_id()));
  kv.Print(std::cout);
  return kExitOk;
}

int Cli::PageList() {
  args_.Expect(2, 2, {"skip-free"});
  uint64_t start = args_.PosSize(0, "START");
  uint64_t count = args_.PosSize(1, "COUNT");
  bool skip_free = args_.FlagSwitch("skip-free");
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::ListPageFramesResponse all;
  if (int rc = FetchAll(&all, [&](const std::string& token,
                                  v1::ListPageFramesResponse* page) {
        v1::ListPageFramesRequest request;
        request.set_machine(MachineName());
        request.set_start_pfn(start);
        request.set_count(count);
        request.set_skip_free(skip_free);
        request.set_page_size(kFramePageSize);
        request.set_page_token(token);
        return Call(machines_.get(), &v1::MachineService::Stub::ListPageFrames,
                    request, page);
      })) {
    return rc;
  }
  if (json_) {
    PrintJson(all);
    return kExitOk;
  }
  Table table({"PFN", "NODE", "BLOCK", "STATE", "REF", "MAP", "PINS", "DIGEST",
               "STABLE"});
  for (const v1::PageFrame& f : all.frames()) {
    table.AddRow(
        {absl::StrCat(f.pfn()), absl::StrCat(f.node()), absl::StrCat(f.block()),
         PageStateName(f.state()), absl::StrCat(f.refcount()),
         absl::StrCat(f.mapcount()), absl::StrCat(f.pins()),
         ShortDigest(f.content_digest()),
         f.stable_node_id() == 0 ? "-" : absl::StrCat(f.stable_node_id())});
  }
  table.Print(std::cout);
  return kExitOk;
}

// ---------------------------------------------------------------------------
// Processes.

void Cli::PrintProcess(const v1::Process& p) {
  KeyValues kv;
  kv.Add("name", p.name());
  kv.Add("pid", absl::StrCat(p.pid()));
  kv.Add("parent_pid", absl::StrCat(p.parent_pid()));
  kv.Add("uid", absl::StrCat(p.uid()));
  kv.Add("privileged", YesNo(p.privileged()));
  kv.Add("home_node", absl::StrCat(p.home_node()));
  kv.Add("state", ProcessStateName(p.state()));
  kv.Add("ksm_registered", YesNo(p.ksm_registered()));
  kv.Add("anon_pages", absl::StrCat(p.anon_pages()));
  kv.Add("ksm_pages", absl::StrCat(p.ksm_pages()));
  kv.Add("zero_pages", absl::StrCat(p.zero_pages()));
  kv.Add("shmem_pages", absl::StrCat(p.shmem_pages()));
  kv.Add("pinned_pages", absl::StrCat(p.pinned_pages()));
  kv.Add("vmas", absl::StrCat(p.vmas_size()));
  kv.Print(std::cout);
  if (p.vmas_size() == 0) return;
  std::cout << "\n";
  Table table({"START", "END", "SIZE", "PROT", "TYPE", "MERGEABLE", "ANON_VMA",
               "RESIDENT"});
  for (const v1::Vma& v : p.vmas()) {
    table.AddRow({Hex(v.start()), Hex(v.end()),
                  absl::StrCat(v.end() - v.start()), ProtString(v.prot()),
                  v.shared() ? "shared" : "private", YesNo(v.mergeable()),
                  YesNo(v.has_anon_vma()), absl::StrCat(v.resident_pages())});
  }
  table.Print(std::cout, "  ");
}

int Cli::ProcessCreate() {
  args_.Expect(0, 0, {"uid", "privileged", "home-node"});
  v1::CreateProcessRequest request;
  request.set_parent(MachineName());
  uint64_t uid = args_.FlagUint("uid", 0);
  uint64_t home = args_.FlagUint("home-node", 0);
  if (uid > UINT32_MAX) args_.Fail("--uid out of range");
  if (home > UINT32_MAX) args_.Fail("--home-node out of range");
  request.mutable_process()->set_uid(static_cast<uint32_t>(uid));
  request.mutable_process()->set_home_node(static_cast<uint32_t>(home));
  request.mutable_process()->set_privileged(args_.FlagSwitch("privileged"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::Process process;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::CreateProcess,
                    request, &process)) {
    return rc;
  }
  if (json_) {
    PrintJson(process);
  } else {
    PrintProcess(process);
  }
  return kExitOk;
}

int Cli::ProcessList() {
  args_.Expect(0, 0, {"show-exited"});
  bool show_exited = args_.FlagSwitch("show-exited");
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::ListProcessesResponse all;
  if (int rc = FetchAll(&all, [&](const std::string& token,
                                  v1::ListProcessesResponse* page) {
        v1::ListProcessesRequest request;
        request.set_parent(MachineName());
        request.set_page_size(kListPageSize);
        request.set_page_token(token);
        request.set_show_exited(show_exited);
        return Call(processes_.get(), &v1::ProcessService::Stub::ListProcesses,
                    request, page);
      })) {
    return rc;
  }
  if (json_) {
    PrintJson(all);
    return kExitOk;
  }
  Table table({"PID", "UID", "PRIV", "HOME", "STATE", "VMAS", "ANON", "KSM",
               "ZERO", "SHMEM", "PINNED", "PPID", "KSM_MM"});
  for (const v1::Process& p : all.processes()) {
    table.AddRow({absl::StrCat(p.pid()), absl::StrCat(p.uid()),
                  YesNo(p.privileged()), absl::StrCat(p.home_node()),
                  ProcessStateName(p.state()), absl::StrCat(p.vmas_size()),
                  absl::StrCat(p.anon_pages()), absl::StrCat(p.ksm_pages()),
                  absl::StrCat(p.zero_pages()), absl::StrCat(p.shmem_pages()),
                  absl::StrCat(p.pinned_pages()), absl::StrCat(p.parent_pid()),
                  YesNo(p.ksm_registered())});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Cli::ProcessGet() {
  args_.Expect(1, 1, {});
  int32_t pid = args_.PosPid(0);
  if (int rc = CheckUsage(*command_)) return rc;
  v1::GetProcessRequest request;
  request.set_name(ProcessName(pid));
  Connect();
  v1::Process process;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::GetProcess,
                    request, &process)) {
    return rc;
  }
  if (json_) {
    PrintJson(process);
  } else {
    PrintProcess(process);
  }
  return kExitOk;
}

int Cli::ProcessFork() {
  args_.Expect(1, 1, {});
  int32_t pid = args_.PosPid(0);
  if (int rc = CheckUsage(*command_)) return rc;
  v1::ForkProcessRequest request;
  request.set_name(ProcessName(pid));
  Connect();
  v1::Process child;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::ForkProcess,
                    request, &child)) {
    return rc;
  }
  if (json_) {
    PrintJson(child);
  } else {
    PrintProcess(child);
  }
  return kExitOk;
}

int Cli::ProcessExit() {
  args_.Expect(1, 1, {});
  int32_t pid = args_.PosPid(0);
  if (int rc = CheckUsage(*command_)) return rc;
  v1::ExitProcessRequest request;
  request.set_name(ProcessName(pid));
  Connect();
  v1::ExitProcessResponse response;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::ExitProcess,
                    request, &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else {
    KeyValues kv;
    kv.Add("exited", request.name());
    kv.Add("pages_freed", absl::StrCat(response.pages_freed()));
    kv.Print(std::cout);
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// Address-space syscalls.

int Cli::Mmap() {
  args_.Expect(2, 2, {"address", "prot", "shared", "fixed"});
  v1::MmapRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_length(args_.PosSize(1, "LENGTH"));
  request.set_address(args_.FlagSize("address", 0));
  absl::StatusOr<uint32_t> prot = ParseProt(args_.FlagString("prot", "rw"));
  if (!prot.ok()) args_.Fail(absl::StrCat("--prot: ", prot.status().message()));
  request.set_prot(prot.ok() ? *prot : 0);
  request.set_shared(args_.FlagSwitch("shared"));
  request.set_fixed(args_.FlagSwitch("fixed"));
  if (request.fixed() && !args_.HasFlag("address")) {
    args_.Fail("--fixed needs --address");
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::MmapResponse response;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::Mmap, request,
                    &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    std::cout << Hex(response.address()) << "\n";
  }
  return ErrnoExit(response.errnum(), "");
}

int Cli::Munmap() {
  args_.Expect(3, 3, {});
  v1::MunmapRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LENGTH"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::SyscallResult result;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::Munmap,
                    request, &result)) {
    return rc;
  }
  if (json_) {
    PrintJson(result);
  } else if (result.errnum() == v1::ERRNO_OK) {
    std::cout << "ok\n";
  }
  return ErrnoExit(result.errnum(), "");
}

int Cli::Mprotect() {
  args_.Expect(4, 4, {});
  v1::MprotectRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LENGTH"));
  absl::StatusOr<uint32_t> prot = ParseProt(args_.PosString(3, "PROT"));
  if (args_.PositionalCount() > 3 && !prot.ok()) {
    args_.Fail(std::string(prot.status().message()));
  }
  request.set_prot(prot.ok() ? *prot : 0);
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::SyscallResult result;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::Mprotect,
                    request, &result)) {
    return rc;
  }
  if (json_) {
    PrintJson(result);
  } else if (result.errnum() == v1::ERRNO_OK) {
    std::cout << "ok\n";
  }
  return ErrnoExit(result.errnum(), "");
}

int Cli::Madvise() {
  args_.Expect(4, 4, {});
  v1::MadviseRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LENGTH"));
  std::string advice = args_.PosString(3, "ADVICE");
  if (advice == "mergeable") {
    request.set_advice(v1::ADVICE_MERGEABLE);
  } else if (advice == "unmergeable") {
    request.set_advice(v1::ADVICE_UNMERGEABLE);
  } else if (advice == "dontneed") {
    request.set_advice(v1::ADVICE_DONTNEED);
  } else if (!advice.empty()) {
    args_.Fail(
        absl::StrCat("ADVICE must be mergeable, unmergeable or "
                     "dontneed, not \"",
                     advice, "\""));
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::SyscallResult result;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::Madvise,
                    request, &result)) {
    return rc;
  }
  if (json_) {
    PrintJson(result);
  } else if (result.errnum() == v1::ERRNO_OK) {
    std::cout << "ok\n";
  }
  return ErrnoExit(result.errnum(), "");
}

// ---------------------------------------------------------------------------
// Memory access.

int Cli::AccessResult(const v1::MemoryAccessResult& result, const char* verb,
                      uint64_t address) {
  if (json_) {
    PrintJson(result);
  } else if (result.errnum() == v1::ERRNO_OK) {
    std::cout << verb << " " << result.bytes_done() << " bytes at "
              << Hex(address) << "\n";
  }
  return ErrnoExit(result.errnum(),
                   FaultDetail(result.errnum(), result.fault_address(),
                               result.bytes_done()));
}

int Cli::Write() {
  args_.Expect(2, 2, {"hex", "text", "file"});
  v1::WriteMemoryRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  int sources =
      args_.HasFlag("hex") + args_.HasFlag("text") + args_.HasFlag("file");
  if (sources != 1) {
    args_.Fail("give exactly one of --hex, --text, --file");
  } else if (args_.HasFlag("hex")) {
    absl::StatusOr<std::string> bytes =
        ParseHexBytes(args_.FlagString("hex", ""));
    if (bytes.ok()) {
      request.set_data(*std::move(bytes));
    } else {
      args_.Fail(absl::StrCat("--hex: ", bytes.status().message()));
    }
  } else if (args_.HasFlag("text")) {
    request.set_data(args_.FlagString("text", ""));
  } else {
    std::string path = args_.FlagString("file", "");
    if (path == "-") {
      request.set_data(std::string(std::istreambuf_iterator<char>(std::cin),
                                   std::istreambuf_iterator<char>()));
    } else {
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        args_.Fail(absl::StrCat("--file: cannot open \"", path, "\""));
      } else {
        request.set_data(std::string(std::istreambuf_iterator<char>(in),
                                     std::istreambuf_iterator<char>()));
      }
    }
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::MemoryAccessResult result;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::WriteMemory,
                    request, &result)) {
    return rc;
  }
  return AccessResult(result, "wrote", request.address());
}

int Cli::Fill() {
  args_.Expect(3, 3, {"byte", "pattern", "random"});
  v1::FillMemoryRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LENGTH"));
  int patterns = args_.HasFlag("byte") + args_.HasFlag("pattern") +
                 args_.HasFlag("random");
  if (patterns != 1) {
    args_.Fail("give exactly one of --byte, --pattern, --random");
  } else if (args_.HasFlag("byte")) {
    uint64_t value = args_.FlagUint("byte", 0);
    if (value > 255) args_.Fail("--byte must be 0..255");
    request.set_byte_value(static_cast<uint32_t>(value));
  } else if (args_.HasFlag("pattern")) {
    request.set_pattern64(args_.FlagUint("pattern", 0));
  } else {
    request.set_random_seed(args_.FlagUint("random", 0));
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::MemoryAccessResult result;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::FillMemory,
                    request, &result)) {
    return rc;
  }
  return AccessResult(result, "filled", request.address());
}

int Cli::Touch() {
  args_.Expect(3, 3, {});
  v1::TouchMemoryRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LENGTH"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::MemoryAccessResult result;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::TouchMemory,
                    request, &result)) {
    return rc;
  }
  return AccessResult(result, "touched", request.address());
}

int Cli::Read() {
  args_.Expect(3, 3, {"hexdump", "raw"});
  v1::ReadMemoryRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LENGTH"));
  bool raw = args_.FlagSwitch("raw");
  if (raw && args_.FlagSwitch("hexdump")) {
    args_.Fail("--raw and --hexdump exclude each other");
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  // Reads are observation only, so a long range is read in chunks below the
  // server's per-request limit; the first errno ends the read and, as for a
  // single request, no data is returned.
  const uint64_t address = request.address();
  const uint64_t length = request.length();
  v1::ReadMemoryResponse response;
  uint64_t done = 0;
  do {
    v1::ReadMemoryResponse part;
    request.set_address(address + done);
    request.set_length(std::min(kReadChunkBytes, length - done));
    if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::ReadMemory,
                      request, &part)) {
      return rc;
    }
    if (part.errnum() != v1::ERRNO_OK) {
      response.clear_data();
      response.set_errnum(part.errnum());
      response.set_fault_address(part.fault_address());
      break;
    }
    response.mutable_data()->append(part.data());
    done += request.length();
  } while (done < length);
  request.set_address(address);
  if (json_) {
    PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    if (raw) {
      std::cout.write(response.data().data(),
                      static_cast<std::streamsize>(response.data().size()));
    } else {
      HexDump(std::cout, request.address(), response.data());
    }
  }
  return ErrnoExit(response.errnum(),
                   FaultDetail(response.errnum(), response.fault_address(), 0));
}

int Cli::Digest() {
  args_.Expect(3, 3, {});
  v1::DigestMemoryRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LENGTH"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::DigestMemoryResponse response;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::DigestMemory,
                    request, &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    KeyValues kv;
    kv.Add("digest", response.digest());
    kv.Add("populated_pages", absl::StrCat(response.populated_pages()));
    kv.Print(std::cout);
  }
  return ErrnoExit(response.errnum(),
                   FaultDetail(response.errnum(), response.fault_address(), 0));
}

int Cli::Pin() {
  args_.Expect(3, 3, {});
  v1::PinPagesRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LENGTH"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::PinPagesResponse response;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::PinPages,
                    request, &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    std::cout << "pinned " << response.pages() << " pages\n";
  }
  return ErrnoExit(response.errnum(), "");
}

int Cli::Unpin() {
  args_.Expect(3, 3, {});
  v1::UnpinPagesRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LENGTH"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::PinPagesResponse response;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::UnpinPages,
                    request, &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    std::cout << "unpinned " << response.pages() << " pages\n";
  }
  return ErrnoExit(response.errnum(), "");
}

int Cli::Translate() {
  args_.Expect(2, 3, {});
  v1::TranslateAddressesRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_pages(args_.PositionalCount() > 2 ? args_.PosSize(2, "PAGES")
                                                : 1);
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::TranslateAddressesResponse response;
  if (int rc =
          Call(processes_.get(), &v1::ProcessService::Stub::TranslateAddresses,
               request, &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
    return kExitOk;
  }
  Table table({"ADDRESS", "MAPPED", "PRESENT", "PFN", "NODE", "STATE"});
  for (const v1::PageTranslation& t : response.pages()) {
    table.AddRow({Hex(t.address()), YesNo(t.mapped()), YesNo(t.present()),
                  t.present() ? absl::StrCat(t.pfn()) : "-",
                  t.present() ? absl::StrCat(t.node()) : "-",
                  t.present() ? PageStateName(t.state()) : "-"});
  }
  table.Print(std::cout);
  return kExitOk;
}

// ---------------------------------------------------------------------------
// KSM.

void Cli::PrintKsm(const v1::Ksm& k) {
  KeyValues kv;
  kv.Add("run", absl::StrCat(k.run()));
  kv.Add("pages_to_scan", absl::StrCat(k.pages_to_scan()));
  kv.Add("sleep_millisecs", absl::StrCat(k.sleep_millisecs()));
  kv.Add("pages_shared", absl::StrCat(k.pages_shared()));
  kv.Add("pages_sharing", absl::StrCat(k.pages_sharing()));
  kv.Add("pages_unshared", absl::StrCat(k.pages_unshared()));
  kv.Add("pages_volatile", absl::StrCat(k.pages_volatile()));
  kv.Add("full_scans", absl::StrCat(k.full_scans()));
  kv.Add("rmap_items", absl::StrCat(k.rmap_items()));
  kv.Add("stable_nodes", absl::StrCat(k.stable_nodes()));
  kv.Add("mm_slots", absl::StrCat(k.mm_slots()));
  kv.Add("cursor", k.cursor_pid() == 0
                       ? std::string("-")
                       : absl::StrCat("pid ", k.cursor_pid(), " at ",
                                      Hex(k.cursor_address())));
  kv.Add("visits_total", absl::StrCat(k.visits_total()));
  kv.Add("locked_by_offline", YesNo(k.locked_by_offline()));
  kv.Print(std::cout);
}

int Cli::KsmGet() {
  args_.Expect(0, 0, {});
  if (int rc = CheckUsage(*command_)) return rc;
  v1::GetKsmRequest request;
  request.set_name(KsmName());
  Connect();
  v1::Ksm ksm;
  if (int rc = Call(ksm_.get(), &v1::KsmService::Stub::GetKsm, request, &ksm)) {
    return rc;
  }
  if (json_) {
    PrintJson(ksm);
  } else {
    PrintKsm(ksm);
  }
  return kExitOk;
}

int Cli::UpdateResult(const v1::UpdateKsmResponse& response) {
  if (json_) {
    PrintJson(response);
  } else {
    PrintKsm(response.ksm());
  }
  return ErrnoExit(response.errnum(), "");
}

int Cli::KsmSet() {
  args_.Expect(0, 0, {"run", "pages-to-scan", "sleep-millisecs"});
  v1::UpdateKsmRequest request;
  request.set_name(KsmName());
  if (args_.HasFlag("run")) request.set_run(args_.FlagUint("run", 0));
  if (args_.HasFlag("pages-to-scan")) {
    request.set_pages_to_scan(args_.FlagUint("pages-to-scan", 0));
  }
  if (args_.HasFlag("sleep-millisecs")) {
    request.set_sleep_millisecs(args_.FlagUint("sleep-millisecs", 0));
  }
  if (!request.has_run() && !request.has_pages_to_scan() &&
      !request.has_sleep_millisecs()) {
    args_.Fail(
        "give at least one of --run, --pages-to-scan, --sleep-millisecs");
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::UpdateKsmResponse response;
  if (int rc = Call(ksm_.get(), &v1::KsmService::Stub::UpdateKsm, request,
                    &response)) {
    return rc;
  }
  return UpdateResult(response);
}

int Cli::KsmSysfs() {
  args_.Expect(2, 2, {});
  if (int rc = CheckUsage(*command_)) return rc;
  v1::WriteKsmSysfsRequest request;
  request.set_name(KsmName());
  request.set_file(args_.Positional(0));
  request.set_value(args_.Positional(1));
  Connect();
  v1::UpdateKsmResponse response;
  if (int rc = Call(ksm_.get(), &v1::KsmService::Stub::WriteKsmSysfs, request,
                    &response)) {
    return rc;
  }
  return UpdateResult(response);
}

int Cli::KsmStep() {
  args_.Expect(0, 0, {"visits", "full-scans", "max-visits"});
  v1::StepKsmRequest request;
  request.set_name(KsmName());
  if (args_.HasFlag("visits") == args_.HasFlag("full-scans")) {
    args_.Fail("give exactly one of --visits, --full-scans");
  } else if (args_.HasFlag("visits")) {
    request.set_visits(args_.FlagUint("visits", 0));
  } else {
    request.set_full_scans(args_.FlagUint("full-scans", 0));
  }
  if (args_.HasFlag("max-visits")) {
    if (!args_.HasFlag("full-scans")) {
      args_.Fail("--max-visits goes with --full-scans");
    }
    request.set_max_visits(args_.FlagUint("max-visits", 0));
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::StepKsmResponse response;
  if (int rc = Call(ksm_.get(), &v1::KsmService::Stub::StepKsm, request,
                    &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
    return kExitOk;
  }
  KeyValues kv;
  kv.Add("visits", absl::StrCat(response.visits()));
  kv.Add("passes", absl::StrCat(response.passes()));
  kv.Print(std::cout);
  std::cout << "\n";
  PrintKsm(response.ksm());
  return kExitOk;
}

int Cli::ListStable(v1::ListStableNodesResponse* all) {
  return FetchAll(
      all, [&](const std::string& token, v1::ListStableNodesResponse* page) {
        v1::ListStableNodesRequest request;
        request.set_parent(KsmName());
        request.set_page_size(kListPageSize);
        request.set_page_token(token);
        return Call(ksm_.get(), &v1::KsmService::Stub::ListStableNodes, request,
                    page);
      });
}

int Cli::ListUnstable(v1::ListUnstableItemsResponse* all) {
  return FetchAll(
      all, [&](const std::string& token, v1::ListUnstableItemsResponse* page) {
        v1::ListUnstableItemsRequest request;
        request.set_parent(KsmName());
        request.set_page_size(kListPageSize);
        request.set_page_token(token);
        return Call(ksm_.get(), &v1::KsmService::Stub::ListUnstableItems,
                    request, page);
      });
}

std::string MappingList(const v1::StableNode& node) {
  std::vector<std::string> parts;
  for (const v1::StableMapping& m : node.mappings()) {
    parts.push_back(absl::StrCat(m.pid(), ":", Hex(m.address())));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ",");
}

int Cli::KsmStable() {
  args_.Expect(0, 0, {});
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::ListStableNodesResponse all;
  if (int rc = ListStable(&all)) return rc;
  if (json_) {
    PrintJson(all);
    return kExitOk;
  }
  Table table({"ID", "KPFN", "NODE", "DIGEST", "STALE", "MAPCOUNT", "DEPTH",
               "MAPPINGS(PID:ADDR)"});
  for (const v1::StableNode& n : all.stable_nodes()) {
    table.AddRow({absl::StrCat(n.id()), absl::StrCat(n.kpfn()),
                  absl::StrCat(n.node()), ShortDigest(n.content_digest()),
                  YesNo(n.stale()), absl::StrCat(n.mapcount()),
                  absl::StrCat(n.depth()), MappingList(n)});
  }
  table.Print(std::cout);
  return kExitOk;
}

void Cli::PrintRmapItems(
    const google::protobuf::RepeatedPtrField<v1::RmapItem>& items,
    bool with_pid) {
  std::vector<std::string> header = {"ADDRESS", "STATE",  "CHECKSUM", "SEQNR",
                                     "STABLE",  "DIGEST", "DEPTH",    "PREV"};
  if (with_pid) header.insert(header.begin(), "PID");
  Table table(header);
  for (const v1::RmapItem& r : items) {
    bool unstable = r.state() == v1::RMAP_STATE_UNSTABLE;
    std::vector<std::string> row = {
        Hex(r.address()),
        RmapStateName(r.state()),
        r.oldchecksum() == 0 ? "-" : absl::StrFormat("%08x", r.oldchecksum()),
        unstable ? absl::StrCat(r.seqnr()) : "-",
        r.stable_node_id() == 0 ? "-" : absl::StrCat(r.stable_node_id()),
        ShortDigest(r.content_digest()),
        unstable && !r.previous_pass() ? absl::StrCat(r.depth()) : "-",
        YesNo(r.previous_pass())};
    if (with_pid) row.insert(row.begin(), absl::StrCat(r.pid()));
    table.AddRow(std::move(row));
  }
  table.Print(std::cout);
}

int Cli::KsmUnstable() {
  args_.Expect(0, 0, {});
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::ListUnstableItemsResponse all;
  if (int rc = ListUnstable(&all)) return rc;
  if (json_) {
    PrintJson(all);
  } else {
    PrintRmapItems(all.items(), /*with_pid=*/true);
  }
  return kExitOk;
}

int Cli::KsmRmap() {
  args_.Expect(1, 1, {});
  int32_t pid = args_.PosPid(0);
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::ListRmapItemsResponse all;
  if (int rc = FetchAll(
          &all, [&](const std::string& token, v1::ListRmapItemsResponse* page) {
            v1::ListRmapItemsRequest request;
            request.set_process(ProcessName(pid));
            request.set_page_size(kListPageSize);
            request.set_page_token(token);
            return Call(ksm_.get(), &v1::KsmService::Stub::ListRmapItems,
                        request, page);
          })) {
    return rc;
  }
  if (json_) {
    PrintJson(all);
  } else {
    PrintRmapItems(all.items(), /*with_pid=*/false);
  }
  return kExitOk;
}

int Cli::KsmDump() {
  args_.Expect(0, 0, {});
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::GetKsmRequest request;
  request.set_name(KsmName());
  v1::Ksm ksm;
  if (int rc = Call(ksm_.get(), &v1::KsmService::Stub::GetKsm, request, &ksm)) {
    return rc;
  }
  v1::ListStableNodesResponse stable;
  if (int rc = ListStable(&stable)) return rc;
  v1::ListUnstableItemsResponse unstable;
  if (int rc = ListUnstable(&unstable)) return rc;

  if (json_) {
    // One object: {"ksm": {...}, "stable_nodes": [...], "unstable_items":
    // [...]}.
    std::vector<std::string> nodes;
    for (const v1::StableNode& n : stable.stable_nodes()) {
      nodes.push_back(ToJson(n));
    }
    std::vector<std::string> items;
    for (const v1::RmapItem& r : unstable.items()) items.push_back(ToJson(r));
    std::cout << "{\"ksm\":" << ToJson(ksm) << ",\"stable_nodes\":["
              << absl::StrJoin(nodes, ",") << "],\"unstable_items\":["
              << absl::StrJoin(items, ",") << "]}\n";
    return kExitOk;
  }

  std::cout << "== " << ksm.name() << " ==\n";
  PrintKsm(ksm);

  std::cout << "\n== stable tree: " << stable.stable_nodes_size()
            << " nodes (in-order, indented by depth) ==\n";
  for (const v1::StableNode& n : stable.stable_nodes()) {
    std::string indent(2 + 4 * n.depth(), ' ');
    std::cout << indent << "#" << n.id() << " kpfn=" << n.kpfn()
              << " node=" << n.node()
              << " digest=" << ShortDigest(n.content_digest())
              << " mapcount=" << n.mapcount() << " depth=" << n.depth()
              << (n.stale() ? " STALE" : "") << "\n";
    for (const v1::StableMapping& m : n.mappings()) {
      std::cout << indent << "    (pid " << m.pid() << ", " << Hex(m.address())
                << ")\n";
    }
    if (n.mappings_size() == 0) std::cout << indent << "    (no mappings)\n";
  }

  std::vector<const v1::RmapItem*> in_tree;
  std::vector<const v1::RmapItem*> previous;
  for (const v1::RmapItem& r : unstable.items()) {
    (r.previous_pass() ? previous : in_tree).push_back(&r);
  }
  std::cout << "\n== unstable tree: " << in_tree.size()
            << " items (in-order, indented by depth) ==\n";
  for (const v1::RmapItem* r : in_tree) {
    std::string indent(2 + 4 * r->depth(), ' ');
    std::cout << indent << "(pid " << r->pid() << ", " << Hex(r->address())
              << ") digest=" << ShortDigest(r->content_digest())
              << " checksum=" << absl::StrFormat("%08x", r->oldchecksum())
              << " seqnr=" << r->seqnr() << " depth=" << r->depth() << "\n";
  }
  if (!previous.empty()) {
    std::cout << "\n== unstable items of the previous pass (not in the tree): "
              << previous.size() << " ==\n";
    for (const v1::RmapItem* r : previous) {
      std::cout << "  (pid " << r->pid() << ", " << Hex(r->address())
                << ") digest=" << ShortDigest(r->content_digest())
                << " checksum=" << absl::StrFormat("%08x", r->oldchecksum())
                << " seqnr=" << r->seqnr() << "\n";
    }
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// The command table.

const Command kCommands[] = {
    {"machine list", "", "List machines.", "", &Cli::MachineList},
    {"machine get", "[ID]",
     "Show a machine (default: --machine) with per-node page counts.", "",
     &Cli::MachineGet},
    {"machine create",
     "ID [--nodes N] [--blocks-per-node N] [--pages-per-block N] "
     "[--clock manual|realtime]",
     "Create a machine. Unset values take the server's defaults.",
     "  --nodes N              NUMA nodes (1..64, default 2)\n"
     "  --blocks-per-node N    memory blocks per node (default 8)\n"
     "  --pages-per-block N    4 KiB pages per block, a multiple of 64 "
     "(default 32768)\n"
     "  --clock MODE           manual (deterministic, default) or realtime\n",
     &Cli::MachineCreate},
    {"machine delete", "ID", "Delete a machine with its processes.", "",
     &Cli::MachineDelete},
    {"machine check", "[ID]",
     "Run the machine's self-check; exits 1 when an invariant is broken.", "",
     &Cli::MachineCheck},
    {"page get", "PFN", "Show one page frame (struct page).", "",
     &Cli::PageGet},
    {"page list", "START COUNT [--skip-free]",
     "List the page frames of pfns [START, START+COUNT).",
     "  --skip-free   leave out free frames\n", &Cli::PageList},
    {"process create", "[--uid N] [--privileged] [--home-node N]",
     "Create a process with an empty address space.",
     "  --uid N          user id (default 0)\n"
     "  --privileged     give it CAP_SYS_NICE\n"
     "  --home-node N    node where its default policy allocates (default 0)\n",
     &Cli::ProcessCreate},
    {"process list", "[--show-exited]", "List processes.",
     "  --show-exited   also list exited processes whose mm KSM still holds\n",
     &Cli::ProcessList},
    {"process get", "PID", "Show a process with its VMAs.", "",
     &Cli::ProcessGet},
    {"process fork", "PID", "fork(2): print the child.", "", &Cli::ProcessFork},
    {"process exit", "PID", "exit(2): unmap everything.", "",
     &Cli::ProcessExit},
    {"mmap", "PID LENGTH [--address A] [--prot rw|r|none] [--shared] [--fixed]",
     "mmap(2) anonymous memory; prints the address.",
     "  --address A    hint (or the exact address with --fixed)\n"
     "  --prot P       rw (default), r, w or none\n"
     "  --shared       MAP_SHARED (shmem) instead of MAP_PRIVATE\n"
     "  --fixed        MAP_FIXED at --address\n",
     &Cli::Mmap},
    {"munmap", "PID ADDR LENGTH", "munmap(2).", "", &Cli::Munmap},
    {"mprotect", "PID ADDR LENGTH PROT",
     "mprotect(2); PROT is rw, r, w or none.", "", &Cli::Mprotect},
    {"madvise", "PID ADDR LENGTH mergeable|unmergeable|dontneed",
     "madvise(2) with MADV_MERGEABLE, MADV_UNMERGEABLE or MADV_DONTNEED.", "",
     &Cli::Madvise},
    {"write", "PID ADDR (--hex HEX | --text STRING | --file PATH)",
     "Store bytes at an address (write faults, COW).",
     "  --hex HEX       bytes as hex digits (spaces and ':' allowed)\n"
     "  --text STRING   the bytes of STRING (no terminating NUL)\n"
     "  --file PATH     the bytes of a file (- for stdin)\n",
     &Cli::Write},
    {"fill", "PID ADDR LENGTH (--byte N | --pattern 0xHEX | --random SEED)",
     "Fill a range with a generated pattern.",
     "  --byte N          every byte = N (0..255)\n"
     "  --pattern 0xHEX   a 64-bit value repeated, little-endian\n"
     "  --random SEED     splitmix64 stream seeded with SEED\n",
     &Cli::Fill},
    {"read", "PID ADDR LENGTH [--hexdump|--raw]",
     "Read bytes (observation only); hex dump by default.",
     "  --hexdump   hexdump -C style listing (default)\n"
     "  --raw       write the bytes to stdout unchanged\n",
     &Cli::Read},
    {"digest", "PID ADDR LENGTH",
     "SHA-256 digest of a range (see docs/API.md).", "", &Cli::Digest},
    {"touch", "PID ADDR LENGTH",
     "Read one byte of each page (maps the zero page where nothing is).", "",
     &Cli::Touch},
    {"pin", "PID ADDR LENGTH", "Pin the pages of a range (get_user_pages).", "",
     &Cli::Pin},
    {"unpin", "PID ADDR LENGTH", "Drop pins taken by pin.", "", &Cli::Unpin},
    {"translate", "PID ADDR [PAGES]",
     "Virtual to physical (pagemap): pfn, node and state of each page.", "",
     &Cli::Translate},
    {"ksm get", "", "Show the KSM knobs and counters.", "", &Cli::KsmGet},
    {"ksm set", "[--run N] [--pages-to-scan N] [--sleep-millisecs N]",
     "Write KSM knobs (kernel validation; EINVAL exits 1).",
     "  --run N               0 stop, 1 run, 2 stop and unmerge all\n"
     "  --pages-to-scan N     visits per ksmd batch\n"
     "  --sleep-millisecs N   sleep between batches (realtime clock)\n",
     &Cli::KsmSet},
    {"ksm sysfs", "FILE VALUE",
     "Write VALUE verbatim to /sys/kernel/mm/ksm/FILE (e.g. ksm sysfs run 1).",
     "", &Cli::KsmSysfs},
    {"ksm step", "(--visits N | --full-scans K) [--max-visits N]",
     "Run ksmd's scanner now: N visits, or until full_scans grew by K.",
     "  --visits N       perform N visits\n"
     "  --full-scans K   scan until K more passes completed\n"
     "  --max-visits N   safety bound for --full-scans (server default 2^32)\n",
     &Cli::KsmStep},
    {"ksm stable", "", "List the stable tree's nodes in tree order.", "",
     &Cli::KsmStable},
    {"ksm unstable", "", "List the unstable tree's rmap items in tree order.",
     "", &Cli::KsmUnstable},
    {"ksm rmap", "PID", "List a process's rmap items in address order.", "",
     &Cli::KsmRmap},
    {"ksm dump", "",
     "Counters, then both trees with nodes indented by their depth.", "",
     &Cli::KsmDump},
};
const size_t kCommandCount = sizeof(kCommands) / sizeof(kCommands[0]);

}  // namespace
}  // namespace cli
}  // namespace memnode

int main(int argc, char** argv) {
  absl::StatusOr<memnode::cli::Args> args =
      memnode::cli::Args::Parse(argc, argv);
  if (!args.ok()) {
    std::cerr << "error: " << args.status().message() << "\n"
              << "(memnodectl help lists the commands and flags)\n";
    return memnode::cli::kExitUsage;
  }
  memnode::cli::Cli cli(*std::move(args));
  int rc = cli.Main();
  std::cout.flush();
  return rc;
}
