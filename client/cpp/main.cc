// memnodectl: the command-line client of memnode.
//
// Overview
//
// Each invocation is one command. The commands are declared in
// client/cpp/commands/*.cc (command.h: words, arguments, flags, handler);
// CLI11 parses the command line against those declarations, so usage errors
// exit 2 before any RPC. The handler then makes one or more RPCs on the
// machine chosen with --machine and prints either human output (tables,
// key: value blocks) or, with --json, exactly one JSON object made with
// MessageToJsonString. Exit codes: see context.h and docs/CLI.md.
//
// Global flags may appear anywhere on the line; a command's own flags follow
// its words. `--flag_name` is accepted for `--flag-name`.
//
// Thread safety: single-threaded (watch and top read their stream on a
// thread of their own).

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cpp/command.h"
#include "client/cpp/commands/commands.h"
#include "client/cpp/context.h"

namespace memnode {
namespace cli {
namespace {

constexpr char kIntro[] =
    "memnodectl: command-line client of memnode (emulated NUMA machines with KSM).";

constexpr char kGlobalDetails[] =
    R"(Numbers are decimal or 0x hex; lengths and addresses also take the binary
suffixes K, M, G, T (KiB, MiB, GiB, TiB), e.g. `mmap 1 1G`.

TLS is used when --tls-ca or --tls-cert/--tls-key is given; the bearer token
(--token-file, else $MEMNODE_TOKEN) goes with every call (docs/SECURITY.md).

Exit codes: 0 ok, 1 emulated errno (or failed check), 2 usage error,
3 gRPC error from the server, 4 server unreachable or deadline exceeded.
)";

// argv[1..] in the reverse order CLI11 consumes, with `--flag_name` spelled
// `--flag-name` and `--flag=` split into `--flag ""` (up to a `--`).
std::vector<std::string> Arguments(int argc, char** argv) {
  std::vector<std::string> args;
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") flags_done = true;
    if (!flags_done && arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      std::replace(arg.begin() + 2, arg.begin() + static_cast<std::ptrdiff_t>(end), '_', '-');
      if (end + 1 == arg.size()) {
        // `--flag=` is the empty value (CLI11 would take the next word).
        args.push_back(arg.substr(0, end));
        args.emplace_back();
        continue;
      }
    }
    args.push_back(std::move(arg));
  }
  std::reverse(args.begin(), args.end());
  return args;
}

// The message of a parse error: an unexpected word is an unknown command
// where a command is expected, an unknown flag or an extra argument.
std::string ParseErrorMessage(const CLI::ParseError& e, const CLI::App& app,
                              const Command& selected) {
  const std::vector<std::string> rest = app.remaining();
  if (dynamic_cast<const CLI::ExtrasError*>(&e) == nullptr || rest.empty()) return e.what();
  if (rest[0].rfind('-', 0) == 0 && rest[0].size() > 1) {
    return absl::StrCat("unknown flag ", rest[0]);
  }
  if (selected.is_group()) {
    return absl::StrCat("unknown command \"", selected.path(), selected.path().empty() ? "" : " ",
                        rest[0], "\"");
  }
  return absl::StrCat("unexpected argument \"", rest[0], "\"");
}

int Run(int argc, char** argv) {
  CLI::App app{kIntro, "memnodectl"};
  GlobalFlags flags;
  CommandSet set(&app, kIntro);
  AddGlobalFlags(set, &flags);
  set.root().Details(kGlobalDetails);
  AddAllCommands(set);

  std::vector<std::string> args = Arguments(argc, argv);
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    const Command& c = *set.Selected();
    if (c.path().empty()) {
      set.PrintGlobalHelp(std::cout);
    } else if (c.is_group()) {
      set.PrintGroupHelp(std::cout, c);
    } else {
      c.PrintHelp(std::cout, set.root());
    }
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    const Command& c = *set.Selected();
    return set.UsageError(&c, ParseErrorMessage(e, app, c));
  }
  const Command& command = *set.Selected();
  if (command.path().empty()) {
    set.PrintGlobalHelp(std::cerr);
    return kExitUsage;
  }
  if (command.is_group()) {
    set.PrintGroupHelp(std::cerr, command);
    return kExitUsage;
  }
  if (std::string error = command.CheckGroups(); !error.empty()) {
    return set.UsageError(&command, error);
  }
  if (flags.server.empty() || flags.machine.empty() || flags.machine == "machines/") {
    return set.UsageError(&command, "--server and --machine must not be empty");
  }
  Context context(flags, command, set);
  if (!command.local()) {
    if (int rc = context.Connect()) return rc;
  }
  int rc = command.handler()(context);
  std::cout.flush();
  return rc;
}

}  // namespace
}  // namespace cli
}  // namespace memnode

int main(int argc, char** argv) { return memnode::cli::Run(argc, argv); }
