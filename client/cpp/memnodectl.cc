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

#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/cpp/args.h"
#include "client/cpp/format.h"
#include "google/protobuf/empty.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "memnode/v1/events.grpc.pb.h"
#include "memnode/v1/hotplug.grpc.pb.h"
#include "memnode/v1/ksm.grpc.pb.h"
#include "memnode/v1/machine.grpc.pb.h"
#include "memnode/v1/numa.grpc.pb.h"
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
// Fills longer than this are sent as several FillMemory calls of this size
// (a multiple of 8, so 64-bit patterns and the random stream stay in phase).
constexpr uint64_t kFillChunkBytes = uint64_t{64} << 20;
// splitmix64's increment: output k of the stream seeded with s is the mix of
// s + (k+1) * kGolden, so the stream from output k on is the stream seeded
// with s + k * kGolden.
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// Whether progress lines go to stderr: MEMNODECTL_PROGRESS=always|never,
// otherwise (auto) when stderr is a terminal.
bool ShowProgress() {
  const char* env = std::getenv("MEMNODECTL_PROGRESS");
  std::string mode = env != nullptr ? env : "auto";
  if (mode == "always" || mode == "1") return true;
  if (mode == "never" || mode == "0") return false;
  return isatty(STDERR_FILENO) != 0;
}

// A one-line progress display on stderr, rewritten in place ("\r").
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}
  ~Progress() { Done(); }
  void Update(const std::string& line) {
    if (!enabled_) return;
    std::string padded = line;
    if (padded.size() < width_) padded.append(width_ - padded.size(), ' ');
    width_ = line.size();
    std::cerr << "\r" << padded << std::flush;
    shown_ = true;
  }
  // Ends the line (once).
  void Done() {
    if (shown_) std::cerr << "\n" << std::flush;
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  size_t width_ = 0;
};

// Name of a canonical gRPC status code.
const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "CODE_UNKNOWN";
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

std::string BlockStateName(v1::MemoryBlockState state) {
  return EnumName(v1::MemoryBlockState_Name(state), "MEMORY_BLOCK_STATE_", state);
}

std::string PhaseName(v1::OfflinePhase phase) {
  return EnumName(v1::OfflinePhase_Name(phase), "OFFLINE_PHASE_", phase);
}

std::string ModeName(v1::MempolicyMode mode) {
  return EnumName(v1::MempolicyMode_Name(mode), "MPOL_", mode);
}

// "isolated", "going-offline", "migrated" (also "none", and the enum names).
bool ParsePhase(const std::string& text, v1::OfflinePhase* phase) {
  std::string t = absl::AsciiStrToUpper(text);
  std::replace(t.begin(), t.end(), '-', '_');
  if (!absl::StartsWith(t, "OFFLINE_PHASE_")) t = "OFFLINE_PHASE_" + t;
  return v1::OfflinePhase_Parse(t, phase) && *phase != v1::OFFLINE_PHASE_DONE;
}

// "default", "preferred", "bind", "interleave" (or MPOL_*, or 0..3).
bool ParseMode(const std::string& text, v1::MempolicyMode* mode) {
  std::string t = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(t, "MPOL_")) t = "MPOL_" + t;
  if (v1::MempolicyMode_Parse(t, mode)) return true;
  int n = 0;
  if (absl::SimpleAtoi(text, &n) && v1::MempolicyMode_IsValid(n)) {
    *mode = static_cast<v1::MempolicyMode>(n);
    return true;
  }
  return false;
}

// "going-offline", "MEM_GOING_OFFLINE", "cancel-offline", ... or 1..6.
bool ParseEvent(const std::string& text, v1::MemoryNotifierEvent* event) {
  std::string t = absl::AsciiStrToUpper(text);
  std::replace(t.begin(), t.end(), '-', '_');
  if (!absl::StartsWith(t, "MEM_")) t = "MEM_" + t;
  if (v1::MemoryNotifierEvent_Parse(t, event)) return true;
  int n = 0;
  if (absl::SimpleAtoi(text, &n) && n > 0 && v1::MemoryNotifierEvent_IsValid(n)) {
    *event = static_cast<v1::MemoryNotifierEvent>(n);
    return true;
  }
  return false;
}

// "EBUSY", "ebusy", "ERRNO_EBUSY" or the number 16; OK is refused.
bool ParseErrno(const std::string& text, v1::Errno* errnum) {
  std::string t = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(t, "ERRNO_")) t = "ERRNO_" + t;
  int n = 0;
  if (v1::Errno_Parse(t, errnum)) {
    // Parsed by name.
  } else if (absl::SimpleAtoi(text, &n) && v1::Errno_IsValid(n)) {
    *errnum = static_cast<v1::Errno>(n);
  } else {
    return false;
  }
  return *errnum != v1::ERRNO_OK;
}

// A move_pages status: the node id, or the errno name of -status.
std::string MoveStatus(int32_t status) {
  if (status >= 0) return absl::StrCat(status);
  if (v1::Errno_IsValid(-status)) {
    return ErrnoName(static_cast<v1::Errno>(-status));
  }
  return absl::StrCat("errno ", -status);
}

// "1.000 ms" for nanoseconds.
std::string Duration(uint64_t ns) {
  if (ns >= 1000000000) return absl::StrFormat("%.3f s", ns / 1e9);
  if (ns >= 1000000) return absl::StrFormat("%.3f ms", ns / 1e6);
  if (ns >= 1000) return absl::StrFormat("%.3f us", ns / 1e3);
  return absl::StrCat(ns, " ns");
}

// Detail of an errno line for a memory access that may have a fault address.
std::string FaultDetail(v1::Errno errnum, uint64_t fault_address, uint64_t bytes_done) {
  std::string detail;
  if (errnum == v1::ERRNO_EFAULT || errnum == v1::ERRNO_EACCES || fault_address != 0) {
    detail = absl::StrCat(errnum == v1::ERRNO_EACCES ? "access denied at " : "fault at ",
                          Hex(fault_address));
  } else {
    detail = ErrnoText(errnum);
  }
  if (bytes_done != 0) absl::StrAppend(&detail, " (", bytes_done, " bytes done)");
  return detail;
}

// Adds "authorization: Bearer <token>" to every call of the channel.
class BearerTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string& token) : value_("Bearer " + token) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", value_});
    }
    methods->Proceed();
  }

 private:
  std::string value_;
};

class BearerTokenFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenFactory(std::string token) : token_(std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new BearerTokenInterceptor(token_);
  }

 private:
  std::string token_;
};

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
  int BlockList();
  int BlockGet();
  int BlockOffline();
  int BlockResume();
  int BlockCancel();
  int BlockOnline();
  int BlockAdd();
  int BlockRemove();
  int BlockKernelPages();
  int BlockFreeKernelPages();
  int NotifierInject();
  int NotifierClear();
  int MempolicySet();
  int MempolicyGet();
  int Mbind();
  int MigratePages();
  int MovePages();
  int Watch();
  int Top();
  int Health();
  int Completion();

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
  std::string BlockName(uint64_t block) const {
    return absl::StrCat(MachineName(), "/memoryBlocks/", block);
  }

  // Positional i as a block number (records a usage error when bad).
  uint64_t PosBlock(size_t i);
  // Positional i as a node list (mask).
  uint64_t PosNodes(size_t i, const char* what);
  // Positional i as a memory policy mode.
  v1::MempolicyMode PosMode(size_t i);
  // --pause-after (NONE when absent).
  v1::OfflinePhase PauseAfterFlag();

  void PrintBlock(const v1::MemoryBlock& block);
  // Prints an OfflineReport (or its JSON) and returns the exit code: 1 when
  // errnum is not OK.
  int OfflineResult(const v1::OfflineReport& report);
  // Prints `ok` / the errno of a SyscallResult.
  int SyscallDone(const v1::SyscallResult& result);
  // Prints a KernelPagesResponse.
  int KernelPagesResult(const v1::KernelPagesResponse& response, const char* verb);
  // Creates the channel and stubs on first use.
  void Connect();

  // One unary RPC with the per-call deadline. Returns 0, or prints the error
  // and returns its exit code.
  template <typename Stub, typename Request, typename Response>
  int Call(Stub* stub,
           grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
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
  void PrintRmapItems(const google::protobuf::RepeatedPtrField<v1::RmapItem>& items, bool with_pid);

  // Shared body of write / fill / touch results.
  int AccessResult(const v1::MemoryAccessResult& result, const char* verb, uint64_t address);
  // Shared body of ksm set / ksm sysfs.
  int UpdateResult(const v1::UpdateKsmResponse& response);

  int ListStable(v1::ListStableNodesResponse* all);
  int ListUnstable(v1::ListUnstableItemsResponse* all);

  Args args_;
  const Command* command_ = nullptr;
  std::string server_;
  std::string token_;   // from --token-file: sent as "authorization: Bearer <token>"
  std::string tls_ca_;  // --tls-ca: PEM roots; non-empty means a TLS channel
  std::string machine_id_;
  bool json_ = false;
  double timeout_seconds_ = kDefaultTimeoutSeconds;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::MachineService::Stub> machines_;
  std::unique_ptr<v1::ProcessService::Stub> processes_;
  std::unique_ptr<v1::KsmService::Stub> ksm_;
  std::unique_ptr<v1::NumaService::Stub> numa_;
  std::unique_ptr<v1::MemoryBlockService::Stub> blocks_;
  std::unique_ptr<v1::EventService::Stub> events_;
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
  --token-file=PATH   bearer token for a server with --token_file (default
                      $MEMNODE_TOKEN_FILE): the first word of the file's first
                      line that is not blank or a '#' comment, so the
                      server's own token file works too
  --tls-ca=PATH       speak TLS, trusting the PEM CA bundle PATH (default
                      $MEMNODE_TLS_CA); the server's certificate must name
                      the --server host
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
    if (!group.empty() && !absl::StartsWith(c.path, absl::StrCat(group, " ")) && c.path != group) {
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
         "--timeout=SECONDS --token-file=PATH --tls-ca=PATH (see memnodectl help)\n";
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
  server_ = args_.FlagString("server", env != nullptr && env[0] != '\0' ? env : kDefaultServer);
  machine_id_ = args_.FlagString("machine", kDefaultMachine);
  json_ = args_.FlagSwitch("json");
  std::string timeout = args_.FlagString("timeout", "");
  if (!timeout.empty() && (!absl::SimpleAtod(timeout, &timeout_seconds_) || timeout_seconds_ < 0)) {
    UsageError(absl::StrCat("--timeout: not a number of seconds: \"", timeout, "\""), command_);
    return false;
  }
  auto env_or = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  // `health` needs no token (a health check must not depend on the secret).
  const std::string token_file = command_->run == &Cli::Health
                                     ? std::string()
                                     : args_.FlagString("token-file", env_or("MEMNODE_TOKEN_FILE"));
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::string line;
    while (token_.empty() && std::getline(in, line)) {
      absl::string_view l = absl::StripAsciiWhitespace(line);
      if (l.empty() || l[0] == '#') continue;
      token_ = std::string(l.substr(0, l.find_first_of(" \t")));
    }
    if (token_.empty()) {
      UsageError(absl::StrCat("--token-file: no token in \"", token_file, "\""), command_);
      return false;
    }
  }
  const std::string tls_ca = args_.FlagString("tls-ca", env_or("MEMNODE_TLS_CA"));
  if (!tls_ca.empty()) {
    std::ifstream in(tls_ca, std::ios::binary);
    tls_ca_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (tls_ca_.empty()) {
      UsageError(absl::StrCat("--tls-ca: cannot read \"", tls_ca, "\""), command_);
      return false;
    }
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
    std::cerr << "usage: memnodectl " << command->path << (command->synopsis[0] != '\0' ? " " : "")
              << command->synopsis << "\n"
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
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!tls_ca_.empty()) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = tls_ca_;
    credentials = grpc::SslCredentials(tls);
  }
  // The token goes on every call (unary and streaming) through one client
  // interceptor; gRPC's call credentials would refuse a plaintext channel.
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!token_.empty()) interceptors.push_back(std::make_unique<BearerTokenFactory>(token_));
  channel_ = grpc::experimental::CreateCustomChannelWithInterceptors(
      server_, credentials, grpc::ChannelArguments(), std::move(interceptors));
  machines_ = v1::MachineService::NewStub(channel_);
  processes_ = v1::ProcessService::NewStub(channel_);
  ksm_ = v1::KsmService::NewStub(channel_);
  numa_ = v1::NumaService::NewStub(channel_);
  blocks_ = v1::MemoryBlockService::NewStub(channel_);
  events_ = v1::EventService::NewStub(channel_);
}

template <typename Stub, typename Request, typename Response>
int Cli::Call(Stub* stub,
              grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
              const Request& request, Response* response) {
  grpc::ClientContext context;
  if (timeout_seconds_ > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
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
  std::cerr << "error: " << CodeName(status.error_code()) << ": " << status.error_message();
  if (has_info && !info.reason().empty()) {
    std::cerr << " [reason=" << info.reason() << "]";
  }
  std::cerr << "\n";
  if (has_info && !info.metadata().empty()) {
    std::vector<std::pair<std::string, std::string>> sorted(info.metadata().begin(),
                                                            info.metadata().end());
    std::sort(sorted.begin(), sorted.end());
    std::cerr << "  " << absl::StrJoin(sorted, " ", absl::PairFormatter("=")) << "\n";
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
  kv.Add("topology", absl::StrCat(m.topology().nodes(), " nodes x ", m.topology().blocks_per_node(),
                                  " blocks x ", m.topology().pages_per_block(), " pages"));
  kv.Add("total_pages", absl::StrCat(m.total_pages(), " (", Bytes(m.total_pages() * 4096), ")"));
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

int Cli::MachineList() {
  args_.Expect(0, 0, {});
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::ListMachinesResponse all;
  if (int rc = FetchAll(&all, [&](const std::string& token, v1::ListMachinesResponse* page) {
        v1::ListMachinesRequest request;
        request.set_page_size(kListPageSize);
        request.set_page_token(token);
        return Call(machines_.get(), &v1::MachineService::Stub::ListMachines, request, page);
      })) {
    return rc;
  }
  if (json_) {
    PrintJson(all);
    return kExitOk;
  }
  Table table({"MACHINE", "CLOCK", "NODES", "BLOCKS/NODE", "PAGES/BLOCK", "TOTAL_PAGES", "PROCS",
               "PROFILE"});
  for (const v1::Machine& m : all.machines()) {
    table.AddRow({LastComponent(m.name()), ClockName(m.clock_mode()),
                  absl::StrCat(m.topology().nodes()), absl::StrCat(m.topology().blocks_per_node()),
                  absl::StrCat(m.topology().pages_per_block()), absl::StrCat(m.total_pages()),
                  absl::StrCat(m.process_count()), m.profile()});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Cli::MachineGet() {
  args_.Expect(0, 1, {});
  if (int rc = CheckUsage(*command_)) return rc;
  v1::GetMachineRequest request;
  request.set_name(
      MachineResource(args_.PositionalCount() > 0 ? args_.Positional(0) : machine_id_));
  Connect();
  v1::Machine machine;
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::GetMachine, request, &machine)) {
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
    args_.Fail(absl::StrCat("--clock must be manual or realtime, not \"", clock, "\""));
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::Machine machine;
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::CreateMachine, request, &machine)) {
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
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::DeleteMachine, request, &empty)) {
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
  request.set_name(
      MachineResource(args_.PositionalCount() > 0 ? args_.Positional(0) : machine_id_));
  Connect();
  v1::CheckMachineResponse response;
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::CheckMachine, request, &response)) {
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
  if (int rc = Call(machines_.get(), &v1::MachineService::Stub::GetPageFrame, request, &frame)) {
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
  kv.Add("content_digest", frame.content_digest().empty() ? "-" : frame.content_digest());
  kv.Add("stable_node_id",
         frame.stable_node_id() == 0 ? "-" : absl::StrCat(frame.stable_node_id()));
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
  if (int rc = FetchAll(&all, [&](const std::string& token, v1::ListPageFramesResponse* page) {
        v1::ListPageFramesRequest request;
        request.set_machine(MachineName());
        request.set_start_pfn(start);
        request.set_count(count);
        request.set_skip_free(skip_free);
        request.set_page_size(kFramePageSize);
        request.set_page_token(token);
        return Call(machines_.get(), &v1::MachineService::Stub::ListPageFrames, request, page);
      })) {
    return rc;
  }
  if (json_) {
    PrintJson(all);
    return kExitOk;
  }
  Table table({"PFN", "NODE", "BLOCK", "STATE", "REF", "MAP", "PINS", "DIGEST", "STABLE"});
  for (const v1::PageFrame& f : all.frames()) {
    table.AddRow({absl::StrCat(f.pfn()), absl::StrCat(f.node()), absl::StrCat(f.block()),
                  PageStateName(f.state()), absl::StrCat(f.refcount()), absl::StrCat(f.mapcount()),
                  absl::StrCat(f.pins()), ShortDigest(f.content_digest()),
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
  Table table({"START", "END", "SIZE", "PROT", "TYPE", "MERGEABLE", "ANON_VMA", "RESIDENT"});
  for (const v1::Vma& v : p.vmas()) {
    table.AddRow({Hex(v.start()), Hex(v.end()), absl::StrCat(v.end() - v.start()),
                  ProtString(v.prot()), v.shared() ? "shared" : "private", YesNo(v.mergeable()),
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
  if (int rc =
          Call(processes_.get(), &v1::ProcessService::Stub::CreateProcess, request, &process)) {
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
  if (int rc = FetchAll(&all, [&](const std::string& token, v1::ListProcessesResponse* page) {
        v1::ListProcessesRequest request;
        request.set_parent(MachineName());
        request.set_page_size(kListPageSize);
        request.set_page_token(token);
        request.set_show_exited(show_exited);
        return Call(processes_.get(), &v1::ProcessService::Stub::ListProcesses, request, page);
      })) {
    return rc;
  }
  if (json_) {
    PrintJson(all);
    return kExitOk;
  }
  Table table({"PID", "UID", "PRIV", "HOME", "STATE", "VMAS", "ANON", "KSM", "ZERO", "SHMEM",
               "PINNED", "PPID", "KSM_MM"});
  for (const v1::Process& p : all.processes()) {
    table.AddRow({absl::StrCat(p.pid()), absl::StrCat(p.uid()), YesNo(p.privileged()),
                  absl::StrCat(p.home_node()), ProcessStateName(p.state()),
                  absl::StrCat(p.vmas_size()), absl::StrCat(p.anon_pages()),
                  absl::StrCat(p.ksm_pages()), absl::StrCat(p.zero_pages()),
                  absl::StrCat(p.shmem_pages()), absl::StrCat(p.pinned_pages()),
                  absl::StrCat(p.parent_pid()), YesNo(p.ksm_registered())});
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::GetProcess, request, &process)) {
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::ForkProcess, request, &child)) {
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::ExitProcess, request, &response)) {
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::Mmap, request, &response)) {
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::Munmap, request, &result)) {
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::Mprotect, request, &result)) {
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::Madvise, request, &result)) {
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

int Cli::AccessResult(const v1::MemoryAccessResult& result, const char* verb, uint64_t address) {
  if (json_) {
    PrintJson(result);
  } else if (result.errnum() == v1::ERRNO_OK) {
    std::cout << verb << " " << result.bytes_done() << " bytes at " << Hex(address) << "\n";
  }
  return ErrnoExit(result.errnum(),
                   FaultDetail(result.errnum(), result.fault_address(), result.bytes_done()));
}

int Cli::Write() {
  args_.Expect(2, 2, {"hex", "text", "file"});
  v1::WriteMemoryRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  int sources = args_.HasFlag("hex") + args_.HasFlag("text") + args_.HasFlag("file");
  if (sources != 1) {
    args_.Fail("give exactly one of --hex, --text, --file");
  } else if (args_.HasFlag("hex")) {
    absl::StatusOr<std::string> bytes = ParseHexBytes(args_.FlagString("hex", ""));
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
      request.set_data(
          std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()));
    } else {
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        args_.Fail(absl::StrCat("--file: cannot open \"", path, "\""));
      } else {
        request.set_data(
            std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
      }
    }
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::MemoryAccessResult result;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::WriteMemory, request, &result)) {
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
  int patterns = args_.HasFlag("byte") + args_.HasFlag("pattern") + args_.HasFlag("random");
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
  const uint64_t address = request.address();
  const uint64_t length = request.length();
  v1::MemoryAccessResult result;
  bool chunked = length > kFillChunkBytes;
  if (chunked) {
    // Only chunk a range that is entirely mapped and writable: there the
    // chunks do exactly what one call would. Anything else (EFAULT, EACCES:
    // "nothing done") goes as one call so the server's answer is unchanged.
    v1::GetProcessRequest get;
    get.set_name(request.name());
    v1::Process process;
    if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::GetProcess, get, &process)) {
      return rc;
    }
    uint64_t covered = address;
    const uint64_t end = address + length;
    for (const v1::Vma& v : process.vmas()) {
      if (v.end() <= covered || v.start() > covered) continue;
      if (!(v.prot() & v1::PROT_WRITE)) break;
      covered = v.end();
      if (covered >= end) break;
    }
    chunked = end > address && covered >= end;
  }
  if (!chunked) {
    if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::FillMemory, request, &result)) {
      return rc;
    }
    return AccessResult(result, "filled", address);
  }
  Progress progress(ShowProgress());
  const uint64_t seed = request.random_seed();
  const bool random = request.pattern_case() == v1::FillMemoryRequest::kRandomSeed;
  uint64_t done = 0;
  while (done < length) {
    v1::FillMemoryRequest part = request;
    part.set_address(address + done);
    part.set_length(std::min(kFillChunkBytes, length - done));
    if (random) part.set_random_seed(seed + (done / 8) * kGolden);
    v1::MemoryAccessResult chunk;
    if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::FillMemory, part, &chunk)) {
      progress.Done();
      return rc;
    }
    done += chunk.bytes_done();
    if (chunk.errnum() != v1::ERRNO_OK) {
      result = chunk;
      break;
    }
    progress.Update(absl::StrFormat("fill: %s / %s (%d%%)", Bytes(done), Bytes(length),
                                    static_cast<int>(done * 100 / length)));
  }
  progress.Done();
  result.set_bytes_done(done);
  return AccessResult(result, "filled", address);
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::TouchMemory, request, &result)) {
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
    if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::ReadMemory, request, &part)) {
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
      std::cout.write(response.data().data(), static_cast<std::streamsize>(response.data().size()));
    } else {
      HexDump(std::cout, request.address(), response.data());
    }
  }
  return ErrnoExit(response.errnum(), FaultDetail(response.errnum(), response.fault_address(), 0));
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
  if (int rc =
          Call(processes_.get(), &v1::ProcessService::Stub::DigestMemory, request, &response)) {
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
  return ErrnoExit(response.errnum(), FaultDetail(response.errnum(), response.fault_address(), 0));
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::PinPages, request, &response)) {
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
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::UnpinPages, request, &response)) {
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
  request.set_pages(args_.PositionalCount() > 2 ? args_.PosSize(2, "PAGES") : 1);
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::TranslateAddressesResponse response;
  if (int rc = Call(processes_.get(), &v1::ProcessService::Stub::TranslateAddresses, request,
                    &response)) {
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
                       : absl::StrCat("pid ", k.cursor_pid(), " at ", Hex(k.cursor_address())));
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
  if (!request.has_run() && !request.has_pages_to_scan() && !request.has_sleep_millisecs()) {
    args_.Fail("give at least one of --run, --pages-to-scan, --sleep-millisecs");
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::UpdateKsmResponse response;
  if (int rc = Call(ksm_.get(), &v1::KsmService::Stub::UpdateKsm, request, &response)) {
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
  if (int rc = Call(ksm_.get(), &v1::KsmService::Stub::WriteKsmSysfs, request, &response)) {
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
  const uint64_t want = request.full_scans();
  if (request.until_case() == v1::StepKsmRequest::kFullScans && want > 1 && ShowProgress()) {
    // One pass per call, with a progress line; the visits, passes and KSM
    // state printed are those a single call would have given (the bound on
    // visits applies to the whole run).
    const uint64_t bound = request.max_visits() != 0 ? request.max_visits() : (uint64_t{1} << 32);
    Progress progress(true);
    uint64_t visits = 0, done = 0;
    while (done < want && visits < bound) {
      v1::StepKsmRequest one = request;
      one.set_full_scans(1);
      one.set_max_visits(bound - visits);
      v1::StepKsmResponse part;
      if (int rc = Call(ksm_.get(), &v1::KsmService::Stub::StepKsm, one, &part)) {
        progress.Done();
        return rc;
      }
      visits += part.visits();
      done += part.passes();
      *response.mutable_ksm() = part.ksm();
      progress.Update(absl::StrFormat("ksm step: %d/%d passes, %d visits", done, want, visits));
      if (part.passes() == 0) break;  // the visit bound ended the run
    }
    progress.Done();
    response.set_visits(visits);
    response.set_passes(done);
  } else if (int rc = Call(ksm_.get(), &v1::KsmService::Stub::StepKsm, request, &response)) {
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
  return FetchAll(all, [&](const std::string& token, v1::ListStableNodesResponse* page) {
    v1::ListStableNodesRequest request;
    request.set_parent(KsmName());
    request.set_page_size(kListPageSize);
    request.set_page_token(token);
    return Call(ksm_.get(), &v1::KsmService::Stub::ListStableNodes, request, page);
  });
}

int Cli::ListUnstable(v1::ListUnstableItemsResponse* all) {
  return FetchAll(all, [&](const std::string& token, v1::ListUnstableItemsResponse* page) {
    v1::ListUnstableItemsRequest request;
    request.set_parent(KsmName());
    request.set_page_size(kListPageSize);
    request.set_page_token(token);
    return Call(ksm_.get(), &v1::KsmService::Stub::ListUnstableItems, request, page);
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
  Table table({"ID", "KPFN", "NODE", "DIGEST", "STALE", "MAPCOUNT", "DEPTH", "MAPPINGS(PID:ADDR)"});
  for (const v1::StableNode& n : all.stable_nodes()) {
    table.AddRow({absl::StrCat(n.id()), absl::StrCat(n.kpfn()), absl::StrCat(n.node()),
                  ShortDigest(n.content_digest()), YesNo(n.stale()), absl::StrCat(n.mapcount()),
                  absl::StrCat(n.depth()), MappingList(n)});
  }
  table.Print(std::cout);
  return kExitOk;
}

void Cli::PrintRmapItems(const google::protobuf::RepeatedPtrField<v1::RmapItem>& items,
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
  if (int rc = FetchAll(&all, [&](const std::string& token, v1::ListRmapItemsResponse* page) {
        v1::ListRmapItemsRequest request;
        request.set_process(ProcessName(pid));
        request.set_page_size(kListPageSize);
        request.set_page_token(token);
        return Call(ksm_.get(), &v1::KsmService::Stub::ListRmapItems, request, page);
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
    std::cout << "{\"ksm\":" << ToJson(ksm) << ",\"stable_nodes\":[" << absl::StrJoin(nodes, ",")
              << "],\"unstable_items\":[" << absl::StrJoin(items, ",") << "]}\n";
    return kExitOk;
  }

  std::cout << "== " << ksm.name() << " ==\n";
  PrintKsm(ksm);

  std::cout << "\n== stable tree: " << stable.stable_nodes_size()
            << " nodes (in-order, indented by depth) ==\n";
  for (const v1::StableNode& n : stable.stable_nodes()) {
    std::string indent(2 + 4 * n.depth(), ' ');
    std::cout << indent << "#" << n.id() << " kpfn=" << n.kpfn() << " node=" << n.node()
              << " digest=" << ShortDigest(n.content_digest()) << " mapcount=" << n.mapcount()
              << " depth=" << n.depth() << (n.stale() ? " STALE" : "") << "\n";
    for (const v1::StableMapping& m : n.mappings()) {
      std::cout << indent << "    (pid " << m.pid() << ", " << Hex(m.address()) << ")\n";
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
    std::cout << "\n== unstable items of the previous pass (not in the tree): " << previous.size()
              << " ==\n";
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
// Memory blocks and hotplug.

uint64_t Cli::PosBlock(size_t i) {
  uint64_t block = args_.PosUint(i, "BLOCK");
  if (block > UINT32_MAX) args_.Fail("BLOCK out of range");
  return block;
}

uint64_t Cli::PosNodes(size_t i, const char* what) {
  std::string text = args_.PosString(i, what);
  if (i >= args_.PositionalCount()) return 0;
  absl::StatusOr<uint64_t> mask = ParseNodeMask(text);
  if (!mask.ok()) {
    args_.Fail(absl::StrCat(what, ": ", mask.status().message()));
    return 0;
  }
  return *mask;
}

v1::MempolicyMode Cli::PosMode(size_t i) {
  std::string text = args_.PosString(i, "MODE");
  v1::MempolicyMode mode = v1::MPOL_DEFAULT;
  if (i < args_.PositionalCount() && !ParseMode(text, &mode)) {
    args_.Fail(
        absl::StrCat("MODE must be default, preferred, bind or interleave, not \"", text, "\""));
  }
  return mode;
}

v1::OfflinePhase Cli::PauseAfterFlag() {
  v1::OfflinePhase phase = v1::OFFLINE_PHASE_NONE;
  if (!args_.HasFlag("pause-after")) return phase;
  std::string text = args_.FlagString("pause-after", "");
  if (!ParsePhase(text, &phase)) {
    args_.Fail(absl::StrCat("--pause-after must be isolated, going-offline or migrated, not \"",
                            text, "\""));
  }
  return phase;
}

void Cli::PrintBlock(const v1::MemoryBlock& b) {
  KeyValues kv;
  kv.Add("name", b.name());
  kv.Add("block", absl::StrCat(b.block()));
  kv.Add("node", absl::StrCat(b.node()));
  kv.Add("state", BlockStateName(b.state()));
  kv.Add("pfns", absl::StrCat(b.start_pfn(), "-", b.start_pfn() + b.pages() - 1, " (", b.pages(),
                              " pages, ", Bytes(b.pages() * 4096), ")"));
  kv.Add("removable", YesNo(b.removable()));
  kv.Add("free_pages", absl::StrCat(b.free_pages()));
  kv.Add("anon_pages", absl::StrCat(b.anon_pages()));
  kv.Add("ksm_pages", absl::StrCat(b.ksm_pages()));
  kv.Add("shmem_pages", absl::StrCat(b.shmem_pages()));
  kv.Add("reserved_pages", absl::StrCat(b.reserved_pages()));
  kv.Add("unmovable_pages", absl::StrCat(b.unmovable_pages()));
  kv.Print(std::cout);
}

int Cli::OfflineResult(const v1::OfflineReport& r) {
  if (json_) {
    PrintJson(r);
  } else {
    KeyValues kv;
    kv.Add("block", r.name());
    kv.Add("result", r.errnum() == v1::ERRNO_OK ? std::string("ok")
                                                : absl::StrCat(ErrnoName(r.errnum()), " (",
                                                               static_cast<int>(r.errnum()), ")"));
    kv.Add("paused",
           r.paused() ? absl::StrCat("yes, after ", PhaseName(r.phase()), " (resume or cancel it)")
                      : std::string("no"));
    kv.Add("phase", PhaseName(r.phase()));
    kv.Add("pages_migrated", absl::StrCat(r.pages_migrated()));
    kv.Add("ksm_pages_migrated", absl::StrCat(r.ksm_pages_migrated()));
    kv.Add("stable_nodes_pruned", absl::StrCat(r.stable_nodes_pruned()));
    kv.Add("rounds", absl::StrCat(r.rounds()));
    kv.Add("emulated_duration",
           r.emulated_ns() < 1000
               ? Duration(r.emulated_ns())
               : absl::StrCat(Duration(r.emulated_ns()), " (", r.emulated_ns(), " ns)"));
    kv.Add("failure", r.failure().empty() ? "-" : r.failure());
    kv.Add("notifier_calls", absl::StrCat(r.notifier_calls_size()));
    kv.Print(std::cout);
    for (const std::string& call : r.notifier_calls()) {
      std::cout << "  " << call << "\n";
    }
  }
  return ErrnoExit(r.errnum(), r.failure());
}

int Cli::SyscallDone(const v1::SyscallResult& result) {
  if (json_) {
    PrintJson(result);
  } else if (result.errnum() == v1::ERRNO_OK) {
    std::cout << "ok\n";
  }
  return ErrnoExit(result.errnum(), "");
}

int Cli::KernelPagesResult(const v1::KernelPagesResponse& response, const char* verb) {
  if (json_) {
    PrintJson(response);
    return kExitOk;
  }
  std::cout << verb << " " << response.pages() << " kernel pages\n\n";
  PrintBlock(response.memory_block());
  return kExitOk;
}

int Cli::BlockList() {
  args_.Expect(0, 0, {});
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::ListMemoryBlocksResponse all;
  if (int rc = FetchAll(&all, [&](const std::string& token, v1::ListMemoryBlocksResponse* page) {
        v1::ListMemoryBlocksRequest request;
        request.set_parent(MachineName());
        request.set_page_size(4096);
        request.set_page_token(token);
        return Call(blocks_.get(), &v1::MemoryBlockService::Stub::ListMemoryBlocks, request, page);
      })) {
    return rc;
  }
  if (json_) {
    PrintJson(all);
    return kExitOk;
  }
  Table table({"BLOCK", "NODE", "STATE", "START_PFN", "PAGES", "FREE", "ANON", "KSM", "SHMEM",
               "RESERVED", "UNMOVABLE", "REMOVABLE"});
  for (const v1::MemoryBlock& b : all.memory_blocks()) {
    table.AddRow({absl::StrCat(b.block()), absl::StrCat(b.node()), BlockStateName(b.state()),
                  absl::StrCat(b.start_pfn()), absl::StrCat(b.pages()),
                  absl::StrCat(b.free_pages()), absl::StrCat(b.anon_pages()),
                  absl::StrCat(b.ksm_pages()), absl::StrCat(b.shmem_pages()),
                  absl::StrCat(b.reserved_pages()), absl::StrCat(b.unmovable_pages()),
                  YesNo(b.removable())});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Cli::BlockGet() {
  args_.Expect(1, 1, {});
  v1::GetMemoryBlockRequest request;
  request.set_name(BlockName(PosBlock(0)));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::MemoryBlock block;
  if (int rc =
          Call(blocks_.get(), &v1::MemoryBlockService::Stub::GetMemoryBlock, request, &block)) {
    return rc;
  }
  if (json_) {
    PrintJson(block);
  } else {
    PrintBlock(block);
  }
  return kExitOk;
}

int Cli::BlockOffline() {
  args_.Expect(1, 1, {"pause-after", "timeout-ms", "pause-ttl"});
  v1::OfflineMemoryBlockRequest request;
  request.set_name(BlockName(PosBlock(0)));
  request.set_pause_after(PauseAfterFlag());
  request.set_timeout_ms(args_.FlagUint("timeout-ms", 0));
  uint64_t ttl = args_.FlagUint("pause-ttl", 0);
  if (ttl > UINT32_MAX) args_.Fail("--pause-ttl out of range");
  request.set_pause_ttl_seconds(static_cast<uint32_t>(ttl));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::OfflineReport report;
  if (int rc = Call(blocks_.get(), &v1::MemoryBlockService::Stub::OfflineMemoryBlock, request,
                    &report)) {
    return rc;
  }
  return OfflineResult(report);
}

int Cli::BlockResume() {
  args_.Expect(1, 1, {"pause-after"});
  v1::ResumeOfflineRequest request;
  request.set_name(BlockName(PosBlock(0)));
  request.set_pause_after(PauseAfterFlag());
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::OfflineReport report;
  if (int rc =
          Call(blocks_.get(), &v1::MemoryBlockService::Stub::ResumeOffline, request, &report)) {
    return rc;
  }
  return OfflineResult(report);
}

int Cli::BlockCancel() {
  args_.Expect(1, 1, {});
  v1::CancelOfflineRequest request;
  request.set_name(BlockName(PosBlock(0)));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::OfflineReport report;
  if (int rc =
          Call(blocks_.get(), &v1::MemoryBlockService::Stub::CancelOffline, request, &report)) {
    return rc;
  }
  return OfflineResult(report);
}

int Cli::BlockOnline() {
  args_.Expect(1, 1, {});
  v1::OnlineMemoryBlockRequest request;
  request.set_name(BlockName(PosBlock(0)));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::SyscallResult result;
  if (int rc =
          Call(blocks_.get(), &v1::MemoryBlockService::Stub::OnlineMemoryBlock, request, &result)) {
    return rc;
  }
  return SyscallDone(result);
}

int Cli::BlockAdd() {
  args_.Expect(1, 1, {});
  v1::AddMemoryBlockRequest request;
  request.set_parent(MachineName());
  uint64_t node = args_.PosUint(0, "NODE");
  if (node > UINT32_MAX) args_.Fail("NODE out of range");
  request.set_node(static_cast<uint32_t>(node));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::MemoryBlock block;
  if (int rc =
          Call(blocks_.get(), &v1::MemoryBlockService::Stub::AddMemoryBlock, request, &block)) {
    return rc;
  }
  if (json_) {
    PrintJson(block);
  } else {
    PrintBlock(block);
  }
  return kExitOk;
}

int Cli::BlockRemove() {
  args_.Expect(1, 1, {});
  v1::RemoveMemoryBlockRequest request;
  request.set_name(BlockName(PosBlock(0)));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::SyscallResult result;
  if (int rc =
          Call(blocks_.get(), &v1::MemoryBlockService::Stub::RemoveMemoryBlock, request, &result)) {
    return rc;
  }
  return SyscallDone(result);
}

int Cli::BlockKernelPages() {
  args_.Expect(2, 2, {"unmovable"});
  v1::AllocateKernelPagesRequest request;
  request.set_name(BlockName(PosBlock(0)));
  request.set_count(args_.PosUint(1, "COUNT"));
  request.set_unmovable(args_.FlagSwitch("unmovable"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::KernelPagesResponse response;
  if (int rc = Call(blocks_.get(), &v1::MemoryBlockService::Stub::AllocateKernelPages, request,
                    &response)) {
    return rc;
  }
  return KernelPagesResult(response, "allocated");
}

int Cli::BlockFreeKernelPages() {
  args_.Expect(2, 2, {});
  v1::FreeKernelPagesRequest request;
  request.set_name(BlockName(PosBlock(0)));
  request.set_count(args_.PosUint(1, "COUNT"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::KernelPagesResponse response;
  if (int rc =
          Call(blocks_.get(), &v1::MemoryBlockService::Stub::FreeKernelPages, request, &response)) {
    return rc;
  }
  return KernelPagesResult(response, "freed");
}

int Cli::NotifierInject() {
  args_.Expect(3, 3, {"count"});
  v1::InjectNotifierFailureRequest request;
  request.set_parent(MachineName());
  std::string event_text = args_.PosString(0, "EVENT");
  v1::MemoryNotifierEvent event = v1::MEMORY_NOTIFIER_EVENT_UNSPECIFIED;
  if (!event_text.empty() && !ParseEvent(event_text, &event)) {
    args_.Fail(
        absl::StrCat("EVENT must be going-online, cancel-online, online, going-offline, "
                     "cancel-offline or offline, not \"",
                     event_text, "\""));
  }
  request.set_event(event);
  std::string priority_text = args_.PosString(1, "PRIORITY");
  int32_t priority = 0;
  if (!priority_text.empty() && !absl::SimpleAtoi(priority_text, &priority)) {
    args_.Fail(absl::StrCat("PRIORITY: not an integer: \"", priority_text, "\""));
  }
  request.set_priority(priority);
  std::string errno_text = args_.PosString(2, "ERRNO");
  v1::Errno errnum = v1::ERRNO_OK;
  if (!errno_text.empty() && !ParseErrno(errno_text, &errnum)) {
    args_.Fail(
        absl::StrCat("ERRNO must be a non-zero errno name (EBUSY, "
                     "EINVAL, ...) or number, not \"",
                     errno_text, "\""));
  }
  request.set_errnum(errnum);
  uint64_t count = args_.FlagUint("count", 0);
  if (count > UINT32_MAX) args_.Fail("--count out of range");
  request.set_count(static_cast<uint32_t>(count));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::InjectNotifierFailureResponse response;
  if (int rc = Call(blocks_.get(), &v1::MemoryBlockService::Stub::InjectNotifierFailure, request,
                    &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else {
    std::cout << "injected: " << v1::MemoryNotifierEvent_Name(event) << " fails with "
              << ErrnoName(errnum) << " at priority " << priority << " ("
              << (count == 0 ? std::string("until cleared")
                             : absl::StrCat(count, count == 1 ? " time" : " times"))
              << ")\n";
  }
  return kExitOk;
}

int Cli::NotifierClear() {
  args_.Expect(0, 0, {});
  if (int rc = CheckUsage(*command_)) return rc;
  v1::ClearNotifierFailuresRequest request;
  request.set_parent(MachineName());
  Connect();
  v1::InjectNotifierFailureResponse response;
  if (int rc = Call(blocks_.get(), &v1::MemoryBlockService::Stub::ClearNotifierFailures, request,
                    &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else {
    std::cout << "cleared\n";
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// NUMA policy and migration.

int Cli::MempolicySet() {
  args_.Expect(2, 3, {});
  v1::SetMempolicyRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_mode(PosMode(1));
  if (args_.PositionalCount() > 2) request.set_nodes(PosNodes(2, "NODES"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::SyscallResult result;
  if (int rc = Call(numa_.get(), &v1::NumaService::Stub::SetMempolicy, request, &result)) {
    return rc;
  }
  return SyscallDone(result);
}

int Cli::MempolicyGet() {
  args_.Expect(1, 1, {"address", "node"});
  v1::GetMempolicyRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  if (args_.HasFlag("address")) {
    request.set_address(args_.FlagSize("address", 0));
  }
  request.set_node_of_address(args_.FlagSwitch("node"));
  if (request.node_of_address() && !request.has_address()) {
    args_.Fail("--node needs --address");
  }
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::GetMempolicyResponse response;
  if (int rc = Call(numa_.get(), &v1::NumaService::Stub::GetMempolicy, request, &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    KeyValues kv;
    kv.Add("mode", ModeName(response.mode()));
    kv.Add("nodes",
           absl::StrCat(NodeMaskString(response.nodes()), " (mask ", Hex(response.nodes()), ")"));
    if (request.node_of_address()) {
      kv.Add("node", absl::StrCat(response.node()));
    }
    kv.Print(std::cout);
  }
  return ErrnoExit(response.errnum(), "");
}

int Cli::Mbind() {
  args_.Expect(5, 5, {"strict", "move", "move-all"});
  v1::MbindRequest request;
  request.set_name(ProcessName(args_.PosPid(0)));
  request.set_address(args_.PosSize(1, "ADDR"));
  request.set_length(args_.PosSize(2, "LEN"));
  request.set_mode(PosMode(3));
  request.set_nodes(PosNodes(4, "NODES"));
  uint32_t flags = 0;
  if (args_.FlagSwitch("strict")) flags |= v1::MPOL_MF_STRICT;
  if (args_.FlagSwitch("move")) flags |= v1::MPOL_MF_MOVE;
  if (args_.FlagSwitch("move-all")) flags |= v1::MPOL_MF_MOVE_ALL;
  request.set_flags(flags);
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::SyscallResult result;
  if (int rc = Call(numa_.get(), &v1::NumaService::Stub::Mbind, request, &result)) {
    return rc;
  }
  return SyscallDone(result);
}

int Cli::MigratePages() {
  args_.Expect(4, 4, {});
  v1::MigratePagesRequest request;
  request.set_caller(ProcessName(args_.PosPid(0)));
  request.set_pid(args_.PosPid(1));
  request.set_old_nodes(PosNodes(2, "OLD_NODES"));
  request.set_new_nodes(PosNodes(3, "NEW_NODES"));
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::MigratePagesResponse response;
  if (int rc = Call(numa_.get(), &v1::NumaService::Stub::MigratePages, request, &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    std::cout << "not_migrated: " << response.not_migrated() << "\n";
  }
  return ErrnoExit(response.errnum(), "");
}

int Cli::MovePages() {
  args_.Expect(3, 3, {"nodes", "move-all"});
  v1::MovePagesRequest request;
  request.set_caller(ProcessName(args_.PosPid(0)));
  request.set_pid(args_.PosPid(1));
  std::string addr_text = args_.PosString(2, "ADDR[,ADDR...]");
  if (!addr_text.empty()) {
    absl::StatusOr<std::vector<uint64_t>> addresses = ParseSizeList(addr_text);
    if (addresses.ok()) {
      for (uint64_t a : *addresses) request.add_addresses(a);
    } else {
      args_.Fail(absl::StrCat("ADDR: ", addresses.status().message()));
    }
  }
  if (args_.HasFlag("nodes")) {
    absl::StatusOr<std::vector<uint64_t>> nodes = ParseSizeList(args_.FlagString("nodes", ""));
    if (!nodes.ok()) {
      args_.Fail(absl::StrCat("--nodes: ", nodes.status().message()));
    } else if (nodes->size() != 1 &&
               nodes->size() != static_cast<size_t>(request.addresses_size())) {
      args_.Fail("--nodes needs one node, or one per address");
    } else {
      for (int i = 0; i < request.addresses_size(); ++i) {
        uint64_t n = (*nodes)[nodes->size() == 1 ? 0 : i];
        if (n > INT32_MAX) args_.Fail("--nodes: node out of range");
        request.add_nodes(static_cast<int32_t>(n));
      }
    }
  }
  request.set_flags(args_.FlagSwitch("move-all") ? v1::MPOL_MF_MOVE_ALL : v1::MPOL_MF_MOVE);
  if (int rc = CheckUsage(*command_)) return rc;
  Connect();
  v1::MovePagesResponse response;
  if (int rc = Call(numa_.get(), &v1::NumaService::Stub::MovePages, request, &response)) {
    return rc;
  }
  if (json_) {
    PrintJson(response);
  } else {
    // One line per address that got a status: the address, then the node
    // id or the errno name. A whole-call error leaves the rest out.
    std::vector<std::pair<std::string, std::string>> lines;
    size_t width = 0;
    for (int i = 0; i < response.status_size() && i < request.addresses_size(); ++i) {
      lines.emplace_back(Hex(request.addresses(i)), MoveStatus(response.status(i)));
      width = std::max(width, lines.back().first.size());
    }
    for (const auto& [address, status] : lines) {
      std::cout << address << std::string(width - address.size() + 2, ' ') << status << "\n";
    }
  }
  return ErrnoExit(response.errnum(), "");
}

// ---------------------------------------------------------------------------
// Event stream: watch and top.

// Ctrl-C (SIGINT), SIGTERM and SIGHUP end `watch` and `top` cleanly. The
// handler only writes a byte to a pipe (async-signal-safe); a thread or a
// poll() on the pipe's read end turns that into a cancelled RPC or a loop
// exit. Installed once, by the command that needs it.
class StopSignal {
 public:
  // Installs the handlers; false (with a message) when the pipe fails.
  static bool Install() {
    if (fds_[0] >= 0) return true;
    if (pipe(fds_) != 0) {
      std::cerr << "error: pipe: " << std::strerror(errno) << "\n";
      return false;
    }
    for (int fd : fds_) fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fds_[1], F_SETFL, O_NONBLOCK);
    struct sigaction sa {};
    sa.sa_handler = &StopSignal::Handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
    // A closed stdout (`watch | head`) shows as a failed write, not a signal.
    signal(SIGPIPE, SIG_IGN);
    return true;
  }
  // Wakes a waiter as a signal would (the byte tells it not to stop).
  static void Wake() {
    const char b = 'w';
    (void)!write(fds_[1], &b, 1);
  }
  // Waits up to `timeout_ms` (-1: forever). Returns true when a signal
  // arrived (then and ever after), false on timeout or Wake().
  static bool Wait(int timeout_ms) {
    if (stopped_) return true;
    struct pollfd p {
      fds_[0], POLLIN, 0
    };
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
      int wait_ms = -1;
      if (timeout_ms >= 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        wait_ms = std::max<int64_t>(0, left.count());
      }
      int n = poll(&p, 1, wait_ms);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      char b;
      if (read(fds_[0], &b, 1) == 1) {
        if (b == 's') stopped_ = true;
        return stopped_;
      }
    }
  }
  static bool stopped() { return stopped_; }

 private:
  static void Handler(int) {
    const char b = 's';
    (void)!write(fds_[1], &b, 1);
  }
  static inline int fds_[2] = {-1, -1};
  static inline bool stopped_ = false;  // read and written by waiters only
};

// "merge" for EVENT_KIND_MERGE: the enum name without its prefix, lower
// case, '-' for '_'.
std::string KindWord(v1::EventKind kind) {
  std::string name = EnumName(v1::EventKind_Name(kind), "EVENT_KIND_", static_cast<int>(kind));
  name = absl::AsciiStrToLower(name);
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

// The kinds `watch --kinds` accepts, in enum order (DROPPED is always
// delivered, so it is not a choice).
std::vector<v1::EventKind> FilterableKinds() {
  std::vector<v1::EventKind> kinds;
  const auto* desc = v1::EventKind_descriptor();
  for (int i = 0; i < desc->value_count(); ++i) {
    auto k = static_cast<v1::EventKind>(desc->value(i)->number());
    if (k != v1::EVENT_KIND_UNSPECIFIED && k != v1::EVENT_KIND_DROPPED) {
      kinds.push_back(k);
    }
  }
  return kinds;
}

std::string KindWords() {
  std::vector<std::string> words;
  for (v1::EventKind k : FilterableKinds()) words.push_back(KindWord(k));
  return absl::StrJoin(words, " ");
}

// "merge", "cow-break", "COW_BREAK", "EVENT_KIND_PRUNE" or a number.
bool ParseKind(const std::string& text, v1::EventKind* kind) {
  std::string t = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  std::replace(t.begin(), t.end(), '-', '_');
  if (!absl::StartsWith(t, "EVENT_KIND_")) t = "EVENT_KIND_" + t;
  int n = 0;
  if (!v1::EventKind_Parse(t, kind)) {
    if (!absl::SimpleAtoi(text, &n) || !v1::EventKind_IsValid(n)) return false;
    *kind = static_cast<v1::EventKind>(n);
  }
  return *kind != v1::EVENT_KIND_UNSPECIFIED && *kind != v1::EVENT_KIND_DROPPED;
}

// "ok" or the errno name.
std::string ResultWord(v1::Errno errnum) {
  return errnum == v1::ERRNO_OK ? std::string("ok") : ErrnoName(errnum);
}

std::string MigrateReasonWord(v1::MigrateReason reason) {
  return absl::AsciiStrToLower(EnumName(v1::MigrateReason_Name(reason), "MIGRATE_REASON_", reason));
}

// Emulated nanoseconds as seconds with 9 decimals ("12.000500000").
std::string EmulatedSeconds(uint64_t ns) {
  return absl::StrFormat("%d.%09d", ns / 1000000000, ns % 1000000000);
}

// One human line per event: sequence, emulated time, kind, fields.
std::string EventLine(const v1::MachineEvent& e) {
  if (e.kind() == v1::EVENT_KIND_DROPPED) {
    return absl::StrFormat("%-8s %-15s %-15s lost %d events here (this client read too slowly)",
                           "-", "-", KindWord(e.kind()), e.dropped());
  }
  std::string fields;
  switch (e.kind()) {
    case v1::EVENT_KIND_MERGE:
      fields = absl::StrCat("pid=", e.pid(), " address=", Hex(e.address()), " pfn=", e.pfn(),
                            " stable_node=", e.stable_node_id(), e.new_node() ? " new_node" : "");
      break;
    case v1::EVENT_KIND_COW_BREAK:
      fields = absl::StrCat("pid=", e.pid(), " address=", Hex(e.address()), " pfn=", e.pfn());
      break;
    case v1::EVENT_KIND_PRUNE:
      fields = absl::StrCat("pfn=", e.pfn(), " stable_node=", e.stable_node_id(), " reason=",
                            absl::AsciiStrToLower(EnumName(v1::PruneReason_Name(e.prune_reason()),
                                                           "PRUNE_REASON_", e.prune_reason())),
                            " items=", e.value());
      break;
    case v1::EVENT_KIND_PASS_END: fields = absl::StrCat("full_scans=", e.value()); break;
    case v1::EVENT_KIND_PROCESS_EXIT: fields = absl::StrCat("pid=", e.pid()); break;
    case v1::EVENT_KIND_MIGRATE:
      fields = absl::StrCat("reason=", MigrateReasonWord(e.migrate_reason()), " pfn=", e.pfn(),
                            " ksm=", YesNo(e.ksm()), " result=", ResultWord(e.errnum()));
      break;
    case v1::EVENT_KIND_MEMORY_NOTIFY:
      // Like the offline report's notifier_calls lines.
      fields = absl::StrCat(
          "block=", e.block(), " ",
          EnumName(v1::MemoryNotifierEvent_Name(e.memory_event()), "", e.memory_event()), " ",
          e.notifier(), "(", e.notifier_priority(), ") ", ResultWord(e.errnum()));
      break;
    case v1::EVENT_KIND_OFFLINE_PHASE:
      fields = absl::StrCat("block=", e.block(), " phase=", PhaseName(e.offline_phase()));
      break;
    case v1::EVENT_KIND_OFFLINE_RESULT:
      fields = absl::StrCat("block=", e.block(), " result=", ResultWord(e.errnum()),
                            " duration=", Duration(e.duration_ns()));
      break;
    case v1::EVENT_KIND_KSM_BATCH_HELD:
      fields = "ksmd batch waited for ksm_thread_mutex (offline)";
      break;
    default: break;
  }
  return absl::StrFormat("%-8d %-15s %-15s %s", e.sequence(), EmulatedSeconds(e.emulated_time_ns()),
                         KindWord(e.kind()), fields);
}

// Whether a stream that ended with `status` was ended by the server in the
// ordinary way (its machine deleted, the server shutting down); prints why.
bool EndedByServer(const grpc::Status& status, const std::string& machine) {
  std::string reason;
  if (!status.error_details().empty()) {
    google::rpc::Status details;
    google::rpc::ErrorInfo info;
    if (details.ParseFromString(status.error_details())) {
      for (const auto& any : details.details()) {
        if (any.UnpackTo(&info)) reason = info.reason();
      }
    }
  }
  if (status.error_code() == grpc::StatusCode::NOT_FOUND && reason == "MACHINE_NOT_FOUND") {
    std::cerr << "stream ended: " << machine << " was deleted\n";
    return true;
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE && reason == "SHUTTING_DOWN") {
    std::cerr << "stream ended: the server is shutting down\n";
    return true;
  }
  return false;
}

int Cli::Watch() {
  args_.Expect(0, 0, {"kinds", "count"});
  v1::WatchEventsRequest request;
  request.set_name(MachineName());
  if (args_.HasFlag("kinds")) {
    std::string list = args_.FlagString("kinds", "");
    for (absl::string_view word : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
      v1::EventKind kind;
      if (!ParseKind(std::string(word), &kind)) {
        args_.Fail(
            absl::StrCat("--kinds: unknown event kind \"", word, "\" (one of: ", KindWords(), ")"));
        break;
      }
      request.add_kinds(kind);
    }
    if (request.kinds_size() == 0 && args_.status().ok()) {
      args_.Fail("--kinds: give at least one kind");
    }
  }
  const uint64_t count = args_.FlagUint("count", 0);
  if (args_.HasFlag("count") && count == 0) args_.Fail("--count must be at least 1");
  if (int rc = CheckUsage(*command_)) return rc;
  if (!StopSignal::Install()) return kExitUsage;
  Connect();

  // A missing machine is an error of the call (exit 3); once the stream is
  // open, NOT_FOUND means the machine was deleted while watched (exit 0).
  {
    v1::GetMachineRequest get;
    get.set_name(MachineName());
    v1::Machine machine;
    if (int rc = Call(machines_.get(), &v1::MachineService::Stub::GetMachine, get, &machine)) {
      return rc;
    }
  }

  grpc::ClientContext context;
  // A watch has no deadline unless --timeout is given explicitly.
  if (args_.HasFlag("timeout") && timeout_seconds_ > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::duration<double>(timeout_seconds_)));
  }
  std::unique_ptr<grpc::ClientReader<v1::MachineEvent>> reader =
      events_->WatchEvents(&context, request);

  // Ctrl-C cancels the call; the Read below then returns false.
  std::atomic<bool> done{false};
  std::thread canceller([&] {
    while (!done.load()) {
      if (StopSignal::Wait(-1)) {
        context.TryCancel();
        return;
      }
    }
  });

  // The server sends its headers once the stream is subscribed: from then on
  // no event of the machine is missed. Said on stderr, so that scripts can
  // wait for it before they drive the machine.
  reader->WaitForInitialMetadata();
  std::cerr << "watching " << MachineName() << " (Ctrl-C to stop)\n" << std::flush;

  uint64_t seen = 0, lost = 0;
  bool out_closed = false;
  v1::MachineEvent event;
  while ((count == 0 || seen < count) && reader->Read(&event)) {
    if (event.kind() == v1::EVENT_KIND_DROPPED) {
      lost += event.dropped();
    } else {
      seen++;
    }
    std::cout << (json_ ? ToJson(event) : EventLine(event)) << "\n" << std::flush;
    if (!std::cout) {
      out_closed = true;  // stdout closed (`watch | head`): stop quietly
      break;
    }
  }
  const bool stopped_by_us = (count != 0 && seen >= count) || out_closed;
  if (stopped_by_us) context.TryCancel();
  grpc::Status status = reader->Finish();
  done.store(true);
  StopSignal::Wake();
  canceller.join();

  if (lost > 0) {
    std::cerr << "watch: " << lost << " events lost (the server's per-stream buffer was full)\n";
  }
  if (stopped_by_us || StopSignal::stopped() || status.ok()) return kExitOk;
  if (EndedByServer(status, MachineName())) return kExitOk;
  return ReportRpcError(status);
}

// Tallies of the events `top` watches (migration outcomes, offline results).
struct EventTally {
  std::mutex mu;
  // (reason, result) -> pages.
  std::map<std::pair<std::string, std::string>, uint64_t> migrations;
  uint64_t ksm_moved = 0;
  std::map<std::string, uint64_t> offlines;  // result -> requests
  uint64_t held_batches = 0;
  uint64_t lost = 0;
  bool subscribed = false;  // the server's headers arrived
  bool ended = false;
  std::string end_message;          // why the stream ended (shown in the view)
  std::condition_variable changed;  // subscribed or ended
};

int Cli::Top() {
  args_.Expect(0, 0, {"interval", "iterations"});
  double interval = 1;
  std::string interval_text = args_.FlagString("interval", "1");
  if (!absl::SimpleAtod(interval_text, &interval) || !(interval >= 0.05) || interval > 86400) {
    args_.Fail(
        absl::StrCat("--interval: seconds between 0.05 and 86400, not \"", interval_text, "\""));
  }
  const uint64_t iterations = args_.FlagUint("iterations", 0);
  if (args_.HasFlag("iterations") && iterations == 0) {
    args_.Fail("--iterations must be at least 1");
  }
  if (int rc = CheckUsage(*command_)) return rc;
  if (!StopSignal::Install()) return kExitUsage;
  Connect();
  const bool tty = !json_ && isatty(STDOUT_FILENO) != 0;

  // Migration outcomes come from the event stream (MIGRATE, OFFLINE_RESULT,
  // KSM_BATCH_HELD), counted from the moment top started.
  EventTally tally;
  grpc::ClientContext stream_context;
  v1::WatchEventsRequest watch;
  watch.set_name(MachineName());
  watch.add_kinds(v1::EVENT_KIND_MIGRATE);
  watch.add_kinds(v1::EVENT_KIND_OFFLINE_RESULT);
  watch.add_kinds(v1::EVENT_KIND_KSM_BATCH_HELD);
  std::unique_ptr<grpc::ClientReader<v1::MachineEvent>> reader =
      events_->WatchEvents(&stream_context, watch);
  std::thread stream_thread([&] {
    reader->WaitForInitialMetadata();
    {
      std::lock_guard<std::mutex> lock(tally.mu);
      tally.subscribed = true;
    }
    tally.changed.notify_all();
    v1::MachineEvent e;
    while (reader->Read(&e)) {
      std::lock_guard<std::mutex> lock(tally.mu);
      switch (e.kind()) {
        case v1::EVENT_KIND_MIGRATE:
          tally.migrations[{MigrateReasonWord(e.migrate_reason()),
                            absl::AsciiStrToLower(ResultWord(e.errnum()))}]++;
          if (e.ksm() && e.errnum() == v1::ERRNO_OK) tally.ksm_moved++;
          break;
        case v1::EVENT_KIND_OFFLINE_RESULT:
          tally.offlines[absl::AsciiStrToLower(ResultWord(e.errnum()))]++;
          break;
        case v1::EVENT_KIND_KSM_BATCH_HELD: tally.held_batches++; break;
        case v1::EVENT_KIND_DROPPED: tally.lost += e.dropped(); break;
        default: break;
      }
    }
    grpc::Status status = reader->Finish();
    std::lock_guard<std::mutex> lock(tally.mu);
    tally.ended = true;
    if (status.error_code() != grpc::StatusCode::CANCELLED) {
      tally.end_message = absl::StrCat(CodeName(status.error_code()), ": ", status.error_message());
    }
    tally.changed.notify_all();
  });
  {
    // Counting starts when the stream is in place (bounded by --timeout).
    std::unique_lock<std::mutex> lock(tally.mu);
    tally.changed.wait_for(
        lock, std::chrono::duration<double>(timeout_seconds_ > 0 ? timeout_seconds_ : 30),
        [&] { return tally.subscribed || tally.ended; });
  }
  auto stop_stream = [&] {
    stream_context.TryCancel();
    stream_thread.join();
  };

  std::vector<std::pair<const char*, uint64_t>> previous;
  int rc = kExitOk;
  for (uint64_t i = 1;; ++i) {
    v1::GetKsmRequest ksm_request;
    ksm_request.set_name(KsmName());
    v1::Ksm ksm;
    if ((rc = Call(ksm_.get(), &v1::KsmService::Stub::GetKsm, ksm_request, &ksm))) {
      break;
    }
    v1::ListMemoryBlocksResponse blocks;
    if ((rc = FetchAll(&blocks, [&](const std::string& token, v1::ListMemoryBlocksResponse* page) {
           v1::ListMemoryBlocksRequest request;
           request.set_parent(MachineName());
           request.set_page_size(4096);
           request.set_page_token(token);
           return Call(blocks_.get(), &v1::MemoryBlockService::Stub::ListMemoryBlocks, request,
                       page);
         }))) {
      break;
    }
    const std::vector<std::pair<const char*, uint64_t>> counters = {
        {"pages_shared", ksm.pages_shared()},     {"pages_sharing", ksm.pages_sharing()},
        {"pages_unshared", ksm.pages_unshared()}, {"pages_volatile", ksm.pages_volatile()},
        {"full_scans", ksm.full_scans()},         {"stable_nodes", ksm.stable_nodes()},
        {"rmap_items", ksm.rmap_items()},         {"mm_slots", ksm.mm_slots()},
        {"visits_total", ksm.visits_total()},
    };
    // node -> state -> blocks
    std::map<uint32_t, std::map<v1::MemoryBlockState, uint64_t>> per_node;
    const std::vector<v1::MemoryBlockState> states = {
        v1::MEMORY_BLOCK_STATE_ONLINE, v1::MEMORY_BLOCK_STATE_GOING_OFFLINE,
        v1::MEMORY_BLOCK_STATE_OFFLINE, v1::MEMORY_BLOCK_STATE_REMOVED};
    for (const v1::MemoryBlock& b : blocks.memory_blocks()) per_node[b.node()][b.state()]++;
    std::map<std::pair<std::string, std::string>, uint64_t> migrations;
    std::map<std::string, uint64_t> offlines;
    uint64_t ksm_moved, held, lost;
    bool ended;
    std::string end_message;
    {
      std::lock_guard<std::mutex> lock(tally.mu);
      migrations = tally.migrations;
      offlines = tally.offlines;
      ksm_moved = tally.ksm_moved;
      held = tally.held_batches;
      lost = tally.lost;
      ended = tally.ended;
      end_message = tally.end_message;
    }

    if (json_) {
      google::protobuf::Struct doc;
      auto& f = *doc.mutable_fields();
      f["machine"].set_string_value(MachineName());
      f["iteration"].set_number_value(static_cast<double>(i));
      f["run"].set_number_value(ksm.run());
      f["locked_by_offline"].set_bool_value(ksm.locked_by_offline());
      auto& kf = *f["ksm"].mutable_struct_value()->mutable_fields();
      auto& df = *f["ksm_delta"].mutable_struct_value()->mutable_fields();
      for (size_t c = 0; c < counters.size(); ++c) {
        kf[counters[c].first].set_number_value(static_cast<double>(counters[c].second));
        if (!previous.empty()) {
          df[counters[c].first].set_number_value(static_cast<double>(counters[c].second) -
                                                 static_cast<double>(previous[c].second));
        }
      }
      auto& nodes = *f["blocks"].mutable_list_value();
      for (const auto& [node, by_state] : per_node) {
        auto& nf = *nodes.add_values()->mutable_struct_value()->mutable_fields();
        nf["node"].set_number_value(node);
        for (v1::MemoryBlockState s : states) {
          auto it = by_state.find(s);
          nf[absl::AsciiStrToLower(BlockStateName(s))].set_number_value(
              it == by_state.end() ? 0 : static_cast<double>(it->second));
        }
      }
      auto& mig = *f["migrations"].mutable_list_value();
      for (const auto& [key, n] : migrations) {
        auto& mf = *mig.add_values()->mutable_struct_value()->mutable_fields();
        mf["reason"].set_string_value(key.first);
        mf["result"].set_string_value(key.second);
        mf["pages"].set_number_value(static_cast<double>(n));
      }
      f["ksm_pages_migrated"].set_number_value(static_cast<double>(ksm_moved));
      auto& off = *f["offlines"].mutable_struct_value()->mutable_fields();
      for (const auto& [result, n] : offlines) off[result].set_number_value(static_cast<double>(n));
      f["ksm_batches_held"].set_number_value(static_cast<double>(held));
      f["events_lost"].set_number_value(static_cast<double>(lost));
      std::cout << ToJson(doc) << "\n";
    } else {
      std::ostringstream out;
      if (tty) out << "\033[H\033[2J";  // home, clear screen
      out << "memnodectl top: " << MachineName() << "  iteration " << i;
      if (iterations != 0) out << "/" << iterations;
      out << "  every " << interval_text << " s  run=" << ksm.run()
          << "  locked_by_offline=" << YesNo(ksm.locked_by_offline()) << "\n\n";
      Table kt({"KSM", "VALUE", "DELTA"});
      for (size_t c = 0; c < counters.size(); ++c) {
        std::string delta = "-";
        if (!previous.empty()) {
          const int64_t d = static_cast<int64_t>(counters[c].second - previous[c].second);
          delta = d > 0 ? absl::StrCat("+", d) : absl::StrCat(d);
        }
        kt.AddRow({counters[c].first, absl::StrCat(counters[c].second), delta});
      }
      kt.Print(out);
      out << "\n";
      Table bt({"NODE", "ONLINE", "GOING_OFFLINE", "OFFLINE", "REMOVED", "TOTAL"});
      for (const auto& [node, by_state] : per_node) {
        std::vector<std::string> row = {absl::StrCat(node)};
        uint64_t total = 0;
        for (v1::MemoryBlockState s : states) {
          auto it = by_state.find(s);
          const uint64_t n = it == by_state.end() ? 0 : it->second;
          total += n;
          row.push_back(absl::StrCat(n));
        }
        row.push_back(absl::StrCat(total));
        bt.AddRow(row);
      }
      bt.Print(out);
      out << "\nmigrations since top started (from the event stream):\n";
      if (migrations.empty()) {
        out << "  none\n";
      } else {
        Table mt({"REASON", "RESULT", "PAGES"});
        for (const auto& [key, n] : migrations) {
          mt.AddRow({key.first, key.second, absl::StrCat(n)});
        }
        mt.Print(out, "  ");
      }
      std::vector<std::string> off;
      for (const auto& [result, n] : offlines) off.push_back(absl::StrCat(result, "=", n));
      out << "  ksm_pages_migrated=" << ksm_moved
          << "  offlines: " << (off.empty() ? std::string("none") : absl::StrJoin(off, " "))
          << "  ksm_batches_held=" << held << "\n";
      if (lost > 0) out << "  (" << lost << " events lost: tallies are low)\n";
      if (ended && !end_message.empty()) {
        out << "  (event stream ended: " << end_message << ")\n";
      }
      if (!tty) out << "\n";
      std::cout << out.str() << std::flush;
    }
    if (!std::cout) break;  // stdout closed
    previous = counters;
    if (iterations != 0 && i >= iterations) break;
    if (StopSignal::Wait(static_cast<int>(interval * 1000))) break;
  }
  stop_stream();
  return rc;
}

// ---------------------------------------------------------------------------
// Health.

// grpc.health.v1.Health/Check through a generic stub (the health proto is not
// among memnode's; its two messages are one optional field each, encoded by
// hand): HealthCheckRequest{service = 1: string}, HealthCheckResponse{status
// = 1: enum, SERVING = 1}. Needs no token. Exit 0 when SERVING, 1 otherwise,
// 3/4 on an RPC error as for every command.
int Cli::Health() {
  args_.Expect(0, 1, {});
  if (int rc = CheckUsage(*command_)) return rc;
  const std::string service = args_.Positional(0);
  Connect();
  std::string request;
  if (!service.empty()) {
    if (service.size() > 127) return UsageError("SERVICE is too long", command_);
    request.push_back('\x0a');
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ClientContext context;
  if (timeout_seconds_ > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::duration<double>(timeout_seconds_)));
  }
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request_buffer, &cq);
  call->StartCall();
  grpc::ByteBuffer response_buffer;
  grpc::Status status;
  call->Finish(&response_buffer, &status, nullptr);
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return ReportRpcError(status);
  std::vector<grpc::Slice> slices;
  std::string response;
  if (response_buffer.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      response.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  // Field 1, varint; absent means 0 (UNKNOWN).
  int value = 0;
  if (response.size() >= 2 && response[0] == '\x08')
    value = static_cast<unsigned char>(response[1]);
  static const char* const kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  const char* name = value >= 0 && value < 4 ? kNames[value] : "UNKNOWN";
  if (json_) {
    std::cout << "{\"status\":\"" << name << "\"}\n";
  } else {
    std::cout << name << "\n";
  }
  return value == 1 ? kExitOk : kExitErrno;
}

// ---------------------------------------------------------------------------
// Shell completion.

// Words offered for positional argument `index` (0-based, after the command
// words) of a command.
struct PositionalWords {
  const char* path;
  int index;
  const char* words;
};

constexpr char kModeWords[] = "default preferred bind interleave";
constexpr char kEventWords[] =
    "going-online cancel-online online going-offline cancel-offline offline";
constexpr char kErrnoWords[] =
    "EPERM ENOENT ESRCH EINTR EIO EAGAIN ENOMEM EACCES EFAULT EBUSY ENODEV "
    "EINVAL";

const PositionalWords kPositionalWords[] = {
    {"madvise", 3, "mergeable unmergeable dontneed"},
    {"mprotect", 3, "rw r w none"},
    {"ksm sysfs", 0, "run pages_to_scan sleep_millisecs"},
    {"mempolicy set", 1, kModeWords},
    {"mempolicy set", 2, "none 0 1 0-1"},
    {"mbind", 3, kModeWords},
    {"notifier inject", 0, kEventWords},
    {"notifier inject", 2, kErrnoWords},
    {"completion", 0, "bash"},
};

// Words offered for the value of a flag ("" = free text).
const char* FlagValueWords(const std::string& flag) {
  if (flag == "pause-after") return "isolated going-offline migrated";
  if (flag == "clock") return "manual realtime";
  if (flag == "prot") return "rw r w none";
  if (flag == "kinds") {
    return "merge cow-break prune pass-end process-exit migrate memory-notify "
           "offline-phase offline-result ksm-batch-held";
  }
  return "";
}

// The --flags named in a synopsis.
std::vector<std::string> SynopsisFlags(absl::string_view synopsis) {
  std::vector<std::string> flags;
  for (size_t i = synopsis.find("--"); i != absl::string_view::npos;
       i = synopsis.find("--", i + 2)) {
    size_t end = i + 2;
    while (end < synopsis.size() &&
           (std::islower(static_cast<unsigned char>(synopsis[end])) || synopsis[end] == '-')) {
      ++end;
    }
    std::string flag(synopsis.substr(i, end - i));
    if (flag.size() > 2 && std::find(flags.begin(), flags.end(), flag) == flags.end()) {
      flags.push_back(flag);
    }
  }
  return flags;
}

int Cli::Completion() {
  args_.Expect(1, 1, {});
  std::string shell = args_.PosString(0, "SHELL");
  if (!shell.empty() && shell != "bash") {
    args_.Fail(absl::StrCat("only bash completion exists, not \"", shell, "\""));
  }
  if (int rc = CheckUsage(*command_)) return rc;

  // Command words: top level, and the subcommands of each group.
  std::vector<std::string> top = {"help"};
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;
  for (size_t i = 0; i < kCommandCount; ++i) {
    std::vector<std::string> words = absl::StrSplit(kCommands[i].path, ' ');
    if (std::find(top.begin(), top.end(), words[0]) == top.end()) {
      top.push_back(words[0]);
    }
    if (words.size() < 2) continue;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == words[0]; });
    if (it == groups.end()) {
      groups.push_back({words[0], {}});
      it = groups.end() - 1;
    }
    it->second.push_back(words[1]);
  }
  std::vector<std::string> value_flags;
  for (const auto& [name, kind] : KnownFlags()) {
    if (kind == FlagKind::kValue) value_flags.push_back("--" + name);
  }
  std::vector<std::string> global_flags;
  for (const std::string& name : GlobalFlags()) {
    global_flags.push_back("--" + name);
  }

  std::ostringstream out;
  out << "# bash completion for memnodectl; generated by `memnodectl "
         "completion bash`.\n"
         "# Use: source <(memnodectl completion bash)\n"
         "_memnodectl_value_flags=\""
      << absl::StrJoin(value_flags, " ") << "\"\n"
      << "_memnodectl_global_flags=\"" << absl::StrJoin(global_flags, " ") << "\"\n\n"
      << "_memnodectl() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]}\n"
         "  local prev=\"\" flag=\"\"\n"
         "  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
         "  # --flag=value arrives as \"--flag\" \"=\" \"value\" (= is a word "
         "break).\n"
         "  if [[ $cur == \"=\" ]]; then\n"
         "    flag=$prev; cur=\"\"\n"
         "  elif [[ $prev == \"=\" ]] && ((COMP_CWORD > 1)); then\n"
         "    flag=${COMP_WORDS[COMP_CWORD-2]}\n"
         "  elif [[ $prev == --* ]]; then\n"
         "    flag=$prev\n"
         "  fi\n"
         "  if [[ -n $flag && \" $_memnodectl_value_flags \" == *\" $flag \"* "
         "]]; then\n"
         "    local values=\"\"\n"
         "    case $flag in\n";
  for (const auto& [name, kind] : KnownFlags()) {
    const char* words = FlagValueWords(name);
    if (kind == FlagKind::kValue && words[0] != '\0') {
      out << "      --" << name << ") values=\"" << words << "\" ;;\n";
    }
  }
  out << "    esac\n"
         "    # Comma-separated lists (--kinds): complete the last element.\n"
         "    if [[ $flag == --kinds && $cur == *,* ]]; then\n"
         "      COMPREPLY=($(compgen -P \"${cur%,*},\" -W \"$values\" -- "
         "\"${cur##*,}\"))\n"
         "      return 0\n"
         "    fi\n"
         "    COMPREPLY=($(compgen -W \"$values\" -- \"$cur\"))\n"
         "    return 0\n"
         "  fi\n"
         "  # The command words typed so far (flags and their values left "
         "out).\n"
         "  local -a words=()\n"
         "  local i w skip=0\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    w=${COMP_WORDS[i]}\n"
         "    if ((skip)); then\n"
         "      [[ $w == \"=\" ]] || skip=0\n"
         "      continue\n"
         "    fi\n"
         "    case $w in\n"
         "      -*) [[ \" $_memnodectl_value_flags \" == *\" $w \"* ]] && "
         "skip=1 ;;\n"
         "      =) ;;\n"
         "      *) words+=(\"$w\") ;;\n"
         "    esac\n"
         "  done\n"
         "  if ((${#words[@]} == 0)); then\n"
         "    if [[ $cur == -* ]]; then\n"
         "      COMPREPLY=($(compgen -W \"$_memnodectl_global_flags\" -- "
         "\"$cur\"))\n"
         "    else\n"
         "      COMPREPLY=($(compgen -W \""
      << absl::StrJoin(top, " ")
      << "\" -- \"$cur\"))\n"
         "    fi\n"
         "    return 0\n"
         "  fi\n"
         "  local subs=\"\" path npos\n"
         "  case ${words[0]} in\n";
  for (const auto& [group, subs] : groups) {
    out << "    " << group << ") subs=\"" << absl::StrJoin(subs, " ") << "\" ;;\n";
  }
  out << "    help) subs=\"" << absl::StrJoin(top, " ") << "\" ;;\n"
      << "  esac\n"
         "  if [[ -n $subs ]]; then\n"
         "    if ((${#words[@]} == 1)) && [[ $cur != -* ]]; then\n"
         "      COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n"
         "      return 0\n"
         "    fi\n"
         "    path=\"${words[0]} ${words[1]}\"\n"
         "    npos=$((${#words[@]} - 2))\n"
         "  else\n"
         "    path=${words[0]}\n"
         "    npos=$((${#words[@]} - 1))\n"
         "  fi\n"
         "  local choices=\"\"\n"
         "  if [[ $cur == -* ]]; then\n"
         "    case $path in\n";
  for (size_t i = 0; i < kCommandCount; ++i) {
    std::vector<std::string> flags = SynopsisFlags(kCommands[i].synopsis);
    if (flags.empty()) continue;
    out << "      \"" << kCommands[i].path << "\") choices=\"" << absl::StrJoin(flags, " ")
        << "\" ;;\n";
  }
  out << "    esac\n"
         "    COMPREPLY=($(compgen -W \"$choices $_memnodectl_global_flags\" -- "
         "\"$cur\"))\n"
         "    return 0\n"
         "  fi\n"
         "  case \"$path:$npos\" in\n";
  for (const PositionalWords& p : kPositionalWords) {
    out << "    \"" << p.path << ":" << p.index << "\") choices=\"" << p.words << "\" ;;\n";
  }
  out << "  esac\n"
         "  COMPREPLY=($(compgen -W \"$choices\" -- \"$cur\"))\n"
         "  return 0\n"
         "}\n"
         "complete -F _memnodectl memnodectl\n";
  std::cout << out.str();
  return kExitOk;
}

// ---------------------------------------------------------------------------
// The command table.

const Command kCommands[] = {
    {"machine list", "", "List machines.", "", &Cli::MachineList},
    {"machine get", "[ID]", "Show a machine (default: --machine) with per-node page counts.", "",
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
    {"machine delete", "ID", "Delete a machine with its processes.", "", &Cli::MachineDelete},
    {"machine check", "[ID]", "Run the machine's self-check; exits 1 when an invariant is broken.",
     "", &Cli::MachineCheck},
    {"page get", "PFN", "Show one page frame (struct page).", "", &Cli::PageGet},
    {"page list", "START COUNT [--skip-free]", "List the page frames of pfns [START, START+COUNT).",
     "  --skip-free   leave out free frames\n", &Cli::PageList},
    {"process create", "[--uid N] [--privileged] [--home-node N]",
     "Create a process with an empty address space.",
     "  --uid N          user id (default 0)\n"
     "  --privileged     give it CAP_SYS_NICE\n"
     "  --home-node N    node where its default policy allocates (default 0)\n",
     &Cli::ProcessCreate},
    {"process list", "[--show-exited]", "List processes.",
     "  --show-exited   also list exited processes whose mm KSM still holds\n", &Cli::ProcessList},
    {"process get", "PID", "Show a process with its VMAs.", "", &Cli::ProcessGet},
    {"process fork", "PID", "fork(2): print the child.", "", &Cli::ProcessFork},
    {"process exit", "PID", "exit(2): unmap everything.", "", &Cli::ProcessExit},
    {"mmap", "PID LENGTH [--address A] [--prot rw|r|none] [--shared] [--fixed]",
     "mmap(2) anonymous memory; prints the address.",
     "  --address A    hint (or the exact address with --fixed)\n"
     "  --prot P       rw (default), r, w or none\n"
     "  --shared       MAP_SHARED (shmem) instead of MAP_PRIVATE\n"
     "  --fixed        MAP_FIXED at --address\n",
     &Cli::Mmap},
    {"munmap", "PID ADDR LENGTH", "munmap(2).", "", &Cli::Munmap},
    {"mprotect", "PID ADDR LENGTH PROT", "mprotect(2); PROT is rw, r, w or none.", "",
     &Cli::Mprotect},
    {"madvise", "PID ADDR LENGTH mergeable|unmergeable|dontneed",
     "madvise(2) with MADV_MERGEABLE, MADV_UNMERGEABLE or MADV_DONTNEED.", "", &Cli::Madvise},
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
    {"digest", "PID ADDR LENGTH", "SHA-256 digest of a range (see docs/API.md).", "", &Cli::Digest},
    {"touch", "PID ADDR LENGTH",
     "Read one byte of each page (maps the zero page where nothing is).", "", &Cli::Touch},
    {"pin", "PID ADDR LENGTH", "Pin the pages of a range (get_user_pages).", "", &Cli::Pin},
    {"unpin", "PID ADDR LENGTH", "Drop pins taken by pin.", "", &Cli::Unpin},
    {"translate", "PID ADDR [PAGES]",
     "Virtual to physical (pagemap): pfn, node and state of each page.", "", &Cli::Translate},
    {"ksm get", "", "Show the KSM knobs and counters.", "", &Cli::KsmGet},
    {"ksm set", "[--run N] [--pages-to-scan N] [--sleep-millisecs N]",
     "Write KSM knobs (kernel validation; EINVAL exits 1).",
     "  --run N               0 stop, 1 run, 2 stop and unmerge all\n"
     "  --pages-to-scan N     visits per ksmd batch\n"
     "  --sleep-millisecs N   sleep between batches (realtime clock)\n",
     &Cli::KsmSet},
    {"ksm sysfs", "FILE VALUE",
     "Write VALUE verbatim to /sys/kernel/mm/ksm/FILE (e.g. ksm sysfs run 1).", "", &Cli::KsmSysfs},
    {"ksm step", "(--visits N | --full-scans K) [--max-visits N]",
     "Run ksmd's scanner now: N visits, or until full_scans grew by K.",
     "  --visits N       perform N visits\n"
     "  --full-scans K   scan until K more passes completed\n"
     "  --max-visits N   safety bound for --full-scans (server default 2^32)\n",
     &Cli::KsmStep},
    {"ksm stable", "", "List the stable tree's nodes in tree order.", "", &Cli::KsmStable},
    {"ksm unstable", "", "List the unstable tree's rmap items in tree order.", "",
     &Cli::KsmUnstable},
    {"ksm rmap", "PID", "List a process's rmap items in address order.", "", &Cli::KsmRmap},
    {"ksm dump", "", "Counters, then both trees with nodes indented by their depth.", "",
     &Cli::KsmDump},
    {"block list", "", "List the memory blocks (sysfs memoryN) in id order.", "", &Cli::BlockList},
    {"block get", "BLOCK", "Show one memory block.", "", &Cli::BlockGet},
    {"block offline",
     "BLOCK [--pause-after isolated|going-offline|migrated] [--timeout-ms N] "
     "[--pause-ttl S]",
     "Offline a block (echo offline > state) and print the offline report; "
     "exits 1 when the write failed.",
     "  --pause-after PHASE  stop after isolated, going-offline (KSM's lock is\n"
     "                       held) or migrated; then block resume / cancel\n"
     "  --timeout-ms N       migration-loop deadline in emulated ms (server\n"
     "                       default 120000, the seed's 120 s)\n"
     "  --pause-ttl S        a pause left alone S wall seconds is cancelled\n"
     "                       (server default 300)\n",
     &Cli::BlockOffline},
    {"block resume", "BLOCK [--pause-after going-offline|migrated]",
     "Continue a paused offline (optionally pausing again later).",
     "  --pause-after PHASE  pause again after this later phase\n", &Cli::BlockResume},
    {"block cancel", "BLOCK", "Cancel a paused offline (MEM_CANCEL_OFFLINE if it was sent; EINTR).",
     "", &Cli::BlockCancel},
    {"block online", "BLOCK", "Online an offline block (echo online > state).", "",
     &Cli::BlockOnline},
    {"block add", "NODE", "Hot-add a memory block to NODE (it starts offline).", "",
     &Cli::BlockAdd},
    {"block remove", "BLOCK", "Hot-remove an offline block.", "", &Cli::BlockRemove},
    {"block kernel-pages", "BLOCK COUNT [--unmovable]",
     "Allocate COUNT kernel pages in a block (makes offline fail).",
     "  --unmovable   in an unmovable pageblock: isolation fails (EBUSY, no\n"
     "                notifier); default: non-LRU pages in a movable\n"
     "                pageblock (EBUSY from the migration loop)\n",
     &Cli::BlockKernelPages},
    {"block free-kernel-pages", "BLOCK COUNT", "Free up to COUNT kernel pages of a block.", "",
     &Cli::BlockFreeKernelPages},
    {"notifier inject", "EVENT PRIORITY ERRNO [--count N]",
     "Make memory notifier calls of EVENT fail with ERRNO at PRIORITY.",
     "  EVENT       going-online, cancel-online, online, going-offline,\n"
     "              cancel-offline, offline (or MEM_*)\n"
     "  PRIORITY    chain priority; higher is called first (KSM is at 100)\n"
     "  ERRNO       errno name (EBUSY, EINVAL, ...) or number\n"
     "  --count N   fail N times, then go away (default 0: until cleared)\n",
     &Cli::NotifierInject},
    {"notifier clear", "", "Remove every injected notifier failure.", "", &Cli::NotifierClear},
    {"mempolicy set", "PID MODE [NODES]",
     "set_mempolicy(2): MODE default|preferred|bind|interleave, NODES like "
     "0,1 or 0-1 or none.",
     "", &Cli::MempolicySet},
    {"mempolicy get", "PID [--address A] [--node]",
     "get_mempolicy(2): the task policy, or the VMA's at --address.",
     "  --address A   MPOL_F_ADDR: the policy of the VMA at A\n"
     "  --node        MPOL_F_NODE: also the node of the page at A (read-faults\n"
     "                it in)\n",
     &Cli::MempolicyGet},
    {"mbind", "PID ADDR LEN MODE NODES [--strict] [--move] [--move-all]",
     "mbind(2) over [ADDR, ADDR+LEN); KSM pages are never moved.",
     "  --strict     MPOL_MF_STRICT: EIO when a page is misplaced\n"
     "  --move       MPOL_MF_MOVE: migrate pages mapped once\n"
     "  --move-all   MPOL_MF_MOVE_ALL: also shared pages (needs privilege)\n",
     &Cli::Mbind},
    {"migrate-pages", "CALLER_PID TARGET_PID OLD_NODES NEW_NODES",
     "migrate_pages(2) by CALLER_PID on TARGET_PID (0 = itself); prints the "
     "pages not migrated.",
     "", &Cli::MigratePages},
    {"move-pages",
     "CALLER_PID TARGET_PID ADDR[,ADDR...] [--nodes N[,N...]] "
     "[--move-all]",
     "move_pages(2): one line per address with its node or errno name.",
     "  --nodes N[,N...]  target node per address (one node: all of them);\n"
     "                    without it, query mode\n"
     "  --move-all        MPOL_MF_MOVE_ALL (default MPOL_MF_MOVE)\n",
     &Cli::MovePages},
    {"watch", "[--kinds KIND[,KIND...]] [--count N]",
     "Stream the machine's events, one line (or, with --json, one JSON "
     "object) per event, until Ctrl-C.",
     "  --kinds K,...  only these kinds: merge, cow-break, prune, pass-end,\n"
     "                 process-exit, migrate, memory-notify, offline-phase,\n"
     "                 offline-result, ksm-batch-held (default: all)\n"
     "  --count N      stop after N events (dropped markers not counted)\n"
     "Lines: SEQUENCE EMULATED_SECONDS KIND FIELDS. Lost events (a reader too\n"
     "slow for the server's buffer) show as a `dropped` line and are summed on\n"
     "stderr at the end. Exits 0 on Ctrl-C, after --count events, and when the\n"
     "server ends the stream (machine deleted, server shutting down). No\n"
     "deadline unless --timeout is given (then exit 4 when it expires).\n",
     &Cli::Watch},
    {"top", "[--interval S] [--iterations N]",
     "Live view of KSM counters (with deltas), blocks per node and state, and "
     "migration outcomes.",
     "  --interval S     seconds between refreshes (default 1)\n"
     "  --iterations N   stop after N refreshes (default: until Ctrl-C)\n"
     "KSM counters and blocks come from GetKsm and ListMemoryBlocks at each\n"
     "refresh; migrations, offline results and held ksmd batches are counted\n"
     "from the event stream since top started. Redraws in place on a terminal;\n"
     "plain text blocks (or one JSON object per refresh with --json) otherwise.\n",
     &Cli::Top},
    {"health", "[SERVICE]",
     "Ask the server's standard gRPC health service (grpc.health.v1; no token needed).",
     "  Prints SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN; exits 0 only for\n"
     "  SERVING (1 otherwise). SERVICE defaults to \"\", the whole server.\n",
     &Cli::Health},
    {"completion", "bash", "Print a bash completion script: source <(memnodectl completion bash).",
     "", &Cli::Completion},
};
const size_t kCommandCount = sizeof(kCommands) / sizeof(kCommands[0]);

}  // namespace
}  // namespace cli
}  // namespace memnode

int main(int argc, char** argv) {
  absl::StatusOr<memnode::cli::Args> args = memnode::cli::Args::Parse(argc, argv);
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
