// memnodectl's commands, each declared once: its words ("block offline"),
// summary, positional arguments and flags with their syntaxes (ValueParser),
// help texts and completion words, constraints between flags, and handler.
// A declaration registers the arguments with CLI11, which parses the command
// line into the targets the declaration names; the synopsis, `--help`, the
// command list and the bash completion script (completion.cc) are generated
// from the same declaration.
//
// Example (commands/*.cc):
//
//   auto& a = set.Store<OfflineArgs>();
//   set.Add("block offline", "Offline a block ...")
//       .Arg("BLOCK", &a.block, Uint(0, UINT32_MAX))
//       .Flag("--pause-after", &a.pause_after, "PHASE", "stop after ...", PhaseParser())
//       .Run([&a](Context& ctx) { ... });
//
// Thread safety: not thread-safe; built and used by main() only.

#ifndef MEMNODE_CLIENT_CPP_COMMAND_H_
#define MEMNODE_CLIENT_CPP_COMMAND_H_

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "client/cpp/args.h"

namespace memnode {
namespace cli {

class Context;

// Runs a parsed command; returns the exit code (context.h).
using Handler = std::function<int(Context&)>;

// One declared positional argument or flag.
struct Param {
  std::string name;                // "BLOCK", "--pause-after"
  std::string value_name;          // "PHASE" (flags with a value), synopsis text (positionals)
  std::string help;                // "" for self-explanatory arguments
  std::vector<std::string> words;  // completion words
  bool positional = false;
  bool required = false;
  bool is_switch = false;
  bool list = false;  // comma-separated values
  CLI::Option* option = nullptr;

  // "BLOCK", "[PAGES]", "--pause-after isolated|going-offline|migrated".
  std::string SynopsisWord() const;
  // The left column of the help: "--pause-after PHASE", "EVENT".
  std::string HelpName() const;
};

// A constraint on how many of `flags` may be given.
struct FlagGroup {
  std::vector<std::string> flags;
  size_t min = 0;
  size_t max = 0;
};

// `text` with its lines wrapped to 80 columns; the first starts at column
// `first_column` (already printed), the others with `indent`.
std::string Wrap(absl::string_view text, absl::string_view indent, size_t first_column);

template <typename T>
struct IsVector : std::false_type {};
// `text` with its lines wrapped to 80 columns; the first starts at column
// `first_column` (already printed), the others with `indent`.
std::string Wrap(absl::string_view text, absl::string_view indent, size_t first_column);

template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};

class Command {
 public:
  Command(CLI::App* app, std::string path, std::string summary, bool is_group);

  // A required positional argument parsed into *target.
  template <typename T>
  Command& Arg(std::string name, T* target, ValueParser parser = {}, std::string help = "") {
    return AddOption(MakeParam(std::move(name), true, std::move(help)), target, parser);
  }
  // An optional positional argument (it keeps its value when absent).
  template <typename T>
  Command& OptionalArg(std::string name, T* target, ValueParser parser = {},
                       std::string help = "") {
    return AddOption(MakeParam(std::move(name), false, std::move(help)), target, parser);
  }
  // A flag with a value (`--name V` or `--name=V`); a vector target takes a
  // comma-separated list.
  template <typename T>
  Command& Flag(std::string name, T* target, std::string value_name, std::string help,
                ValueParser parser = {}) {
    Param p = MakeParam(std::move(name), false, std::move(help));
    p.value_name = std::move(value_name);
    return AddOption(std::move(p), target, parser);
  }
  // A switch (`--name`, or `--name=true|false`).
  Command& Switch(std::string name, bool* target, std::string help);

  // A param whose option CLI11 made itself (the help flag).
  Command& Document(Param param);
  // Synopsis text of the last positional ("ADDR[,ADDR...]").
  Command& Shown(std::string text);
  // The last flag also reads environment variable `var` when not given.
  Command& Env(std::string var);
  // Constraints between flags, checked after parsing (usage errors).
  Command& ExactlyOneOf(std::vector<std::string> flags);
  Command& AtLeastOneOf(std::vector<std::string> flags);
  Command& AtMostOneOf(std::vector<std::string> flags);
  // `flag` is only accepted together with `other`.
  Command& Needs(const std::string& flag, const std::string& other);
  // Help text after the flag list.
  Command& Details(std::string text);
  // The handler; `local` commands run without a server connection.
  Command& Run(Handler handler, bool local = false);

  // After parsing: whether the argument or flag was given.
  bool Given(absl::string_view name) const;
  // After parsing: "" or the usage error of a broken flag constraint.
  std::string CheckGroups() const;

  // "memnodectl block offline BLOCK [--pause-after ...] ...".
  std::string Usage() const;
  // "BLOCK [--pause-after ...] ..." (without the command words).
  std::string Synopsis() const;
  // The command's --help text; `root` holds the global flags.
  void PrintHelp(std::ostream& out, const Command& root) const;
  // Aligned "  NAME  help" lines of the params with help text, positionals
  // first.
  void PrintParams(std::ostream& out) const;

  const std::string& path() const { return path_; }
  const std::string& summary() const { return summary_; }
  const std::string& details() const { return details_; }
  bool is_group() const { return is_group_; }
  bool local() const { return local_; }
  const Handler& handler() const { return handler_; }
  const std::vector<Param>& params() const { return params_; }
  const Param* FindParam(absl::string_view name) const;
  CLI::App* app() const { return app_; }

 private:
  Param MakeParam(std::string name, bool required, std::string help) const;
  Param& Last();

  template <typename T>
  Command& AddOption(Param p, T* target, const ValueParser& parser) {
    CLI::Option* opt = app_->add_option(p.name, *target, p.help);
    opt->transform(parser.transform);
    if (p.required) opt->required();
    if constexpr (IsVector<T>::value) {
      opt->delimiter(',');
      p.list = true;
    }
    p.words = parser.words;
    p.option = opt;
    params_.push_back(std::move(p));
    return *this;
  }

  CLI::App* app_;
  std::string path_;
  std::string summary_;
  std::string details_;
  bool is_group_;
  bool local_ = false;
  Handler handler_;
  std::vector<Param> params_;
  std::vector<FlagGroup> groups_;
};

// Every command of memnodectl, with the CLI11 application they live in. The
// root command (path "") holds the global flags.
class CommandSet {
 public:
  // `intro` heads memnodectl's help.
  CommandSet(CLI::App* app, std::string intro);

  Command& root() { return *commands_.front(); }
  const Command& root() const { return *commands_.front(); }

  // Declares command `path` ("block offline"), creating its group.
  Command& Add(const std::string& path, std::string summary);

  // Storage owned by the set for a command's parsed values.
  template <typename T>
  T& Store() {
    auto value = std::make_shared<T>();
    storage_.push_back(value);
    return *value;
  }

  // All commands, the root first, groups included, in declaration order.
  const std::vector<std::unique_ptr<Command>>& commands() const { return commands_; }
  Command* Find(const std::string& path) const;
  // After parsing: the deepest command selected on the command line.
  Command* Selected() const;

  // "  COMMAND  SUMMARY" table of the commands (of `group` when not empty).
  void PrintCommandList(std::ostream& out, absl::string_view group) const;
  // Usage of a group: its commands.
  void PrintGroupHelp(std::ostream& out, const Command& group) const;
  // The help of memnodectl itself: intro, global flags, commands.
  void PrintGlobalHelp(std::ostream& out) const;
  // Prints "error: ..." and how to get help; returns the usage exit code.
  int UsageError(const Command* command, const std::string& message) const;

 private:
  CLI::App* app_;
  std::vector<std::unique_ptr<Command>> commands_;
  std::vector<std::shared_ptr<void>> storage_;
};

}  // namespace cli
}  // namespace memnode

#endif  // MEMNODE_CLIENT_CPP_COMMAND_H_
