#include "client/cpp/command.h"

#include <algorithm>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cpp/context.h"
#include "client/cpp/format.h"

namespace memnode {
namespace cli {

namespace {

// Flags whose completion words are at most this many show them in the
// synopsis ("--clock manual|realtime") instead of their value name.
constexpr size_t kSynopsisWords = 4;
// Help lines: names wider than this put their text on the next line.
constexpr size_t kHelpNameWidth = 22;

// Help lines are wrapped to this width.
constexpr size_t kLineWidth = 80;

}  // namespace

std::string Wrap(absl::string_view text, absl::string_view indent, size_t first_column) {
  std::string out;
  size_t column = first_column;
  bool first_line = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!first_line) {
      absl::StrAppend(&out, "\n", indent);
      column = indent.size();
    }
    first_line = false;
    bool first_word = true;
    for (absl::string_view word : absl::StrSplit(line, ' ')) {
      if (!first_word && column + 1 + word.size() > kLineWidth) {
        absl::StrAppend(&out, "\n", indent);
        column = indent.size();
        first_word = true;
      }
      if (!first_word) {
        out += ' ';
        ++column;
      }
      absl::StrAppend(&out, word);
      column += word.size();
      first_word = false;
    }
  }
  return out;
}

std::string Param::SynopsisWord() const {
  if (positional) {
    std::string shown = value_name.empty() ? name : value_name;
    return required ? shown : absl::StrCat("[", shown, "]");
  }
  if (is_switch) return name;
  std::string value = value_name;
  if (!words.empty() && words.size() <= kSynopsisWords && !list) value = absl::StrJoin(words, "|");
  return absl::StrCat(name, " ", value);
}

std::string Param::HelpName() const {
  if (positional) return value_name.empty() ? name : value_name;
  return is_switch ? name : absl::StrCat(name, " ", value_name);
}

Command::Command(CLI::App* app, std::string path, std::string summary, bool is_group)
    : app_(app), path_(std::move(path)), summary_(std::move(summary)), is_group_(is_group) {}

Param Command::MakeParam(std::string name, bool required, std::string help) const {
  Param p;
  p.positional = !absl::StartsWith(name, "-");
  p.name = std::move(name);
  p.required = required;
  p.help = std::move(help);
  return p;
}

Param& Command::Last() {
  if (params_.empty()) {
    std::cerr << "memnodectl: internal error: " << path_ << " declares no argument\n";
    std::abort();
  }
  return params_.back();
}

Command& Command::Switch(std::string name, bool* target, std::string help) {
  Param p = MakeParam(std::move(name), false, std::move(help));
  p.is_switch = true;
  p.option = app_->add_flag(p.name, *target, p.help);
  params_.push_back(std::move(p));
  return *this;
}

Command& Command::Document(Param param) {
  params_.push_back(std::move(param));
  return *this;
}

Command& Command::Shown(std::string text) {
  Last().value_name = std::move(text);
  return *this;
}

Command& Command::Env(std::string var) {
  Last().option->envname(std::move(var));
  return *this;
}

Command& Command::ExactlyOneOf(std::vector<std::string> flags) {
  groups_.push_back({std::move(flags), 1, 1});
  return *this;
}

Command& Command::AtLeastOneOf(std::vector<std::string> flags) {
  size_t n = flags.size();
  groups_.push_back({std::move(flags), 1, n});
  return *this;
}

Command& Command::AtMostOneOf(std::vector<std::string> flags) {
  groups_.push_back({std::move(flags), 0, 1});
  return *this;
}

Command& Command::Needs(const std::string& flag, const std::string& other) {
  const Param* a = FindParam(flag);
  const Param* b = FindParam(other);
  if (a == nullptr || b == nullptr) {
    std::cerr << "memnodectl: internal error: " << path_ << ": Needs(" << flag << ", " << other
              << ")\n";
    std::abort();
  }
  a->option->needs(b->option);
  return *this;
}

Command& Command::Details(std::string text) {
  details_ = std::move(text);
  return *this;
}

Command& Command::Run(Handler handler, bool local) {
  handler_ = std::move(handler);
  local_ = local;
  return *this;
}

const Param* Command::FindParam(absl::string_view name) const {
  for (const Param& p : params_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

bool Command::Given(absl::string_view name) const {
  const Param* p = FindParam(name);
  return p != nullptr && p->option->count() > 0;
}

std::string Command::CheckGroups() const {
  for (const FlagGroup& g : groups_) {
    size_t given = 0;
    for (const std::string& f : g.flags) given += Given(f) ? 1 : 0;
    if (given >= g.min && given <= g.max) continue;
    const std::string names = absl::StrJoin(g.flags, ", ");
    if (g.min == 1 && g.max == 1) return absl::StrCat("give exactly one of ", names);
    if (g.min >= 1) return absl::StrCat("give at least one of ", names);
    return absl::StrCat("give at most one of ", names);
  }
  return "";
}

std::string Command::Synopsis() const {
  std::vector<std::string> words;
  std::vector<const FlagGroup*> shown;
  for (const Param& p : params_) {
    // A group of exclusive flags shows as one unit where its first flag is.
    const FlagGroup* group = nullptr;
    for (const FlagGroup& g : groups_) {
      if (g.max == 1 && std::find(g.flags.begin(), g.flags.end(), p.name) != g.flags.end()) {
        group = &g;
      }
    }
    if (group != nullptr) {
      if (std::find(shown.begin(), shown.end(), group) != shown.end()) continue;
      shown.push_back(group);
      std::vector<std::string> alternatives;
      for (const std::string& f : group->flags)
        alternatives.push_back(FindParam(f)->SynopsisWord());
      const std::string inner = absl::StrJoin(alternatives, " | ");
      words.push_back(group->min == 1 ? absl::StrCat("(", inner, ")")
                                      : absl::StrCat("[", inner, "]"));
      continue;
    }
    const bool optional = !p.positional && !p.required;
    words.push_back(optional ? absl::StrCat("[", p.SynopsisWord(), "]") : p.SynopsisWord());
  }
  return absl::StrJoin(words, " ");
}

std::string Command::Usage() const {
  std::string synopsis = Synopsis();
  return absl::StrCat("memnodectl ", path_, synopsis.empty() ? "" : " ", synopsis);
}

void Command::PrintParams(std::ostream& out) const {
  std::vector<const Param*> shown;
  size_t width = 0;
  for (bool positionals : {true, false}) {
    for (const Param& p : params_) {
      if (p.help.empty() || p.positional != positionals) continue;
      shown.push_back(&p);
      if (p.HelpName().size() <= kHelpNameWidth) width = std::max(width, p.HelpName().size());
    }
  }
  const std::string indent(2 + width + 2, ' ');
  for (const Param* p : shown) {
    std::string name = p->HelpName();
    if (name.size() > width) {
      out << "  " << name << "\n" << indent;
    } else {
      out << "  " << name << std::string(width - name.size() + 2, ' ');
    }
    out << Wrap(p->help, indent, indent.size()) << "\n";
  }
}

void Command::PrintHelp(std::ostream& out, const Command& root) const {
  out << "usage: " << Usage() << "\n\n" << Wrap(summary_, "", 0) << "\n";
  if (std::any_of(params_.begin(), params_.end(), [](const Param& p) { return !p.help.empty(); })) {
    out << "\n";
    PrintParams(out);
  }
  if (!details_.empty()) out << "\n" << details_;
  std::vector<std::string> globals;
  for (const Param& p : root.params()) {
    if (p.name == "--help") continue;
    globals.push_back(p.is_switch ? p.name : absl::StrCat(p.name, "=", p.value_name));
  }
  out << "\n"
      << Wrap(absl::StrCat("Global flags: ", absl::StrJoin(globals, " "), " (see memnodectl help)"),
              "  ", 0)
      << "\n";
}

// ---------------------------------------------------------------------------

CommandSet::CommandSet(CLI::App* app, std::string intro) : app_(app) {
  // Global flags may follow the command words; a command word is only
  // recognised where a command is expected, so a machine called "top" is a
  // positional of `machine get`, never the `top` command.
  app_->fallthrough();
  app_->require_subcommand(0, 1);
  app_->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  commands_.push_back(std::make_unique<Command>(app_, "", std::move(intro), /*is_group=*/true));
}

Command& CommandSet::Add(const std::string& path, std::string summary) {
  std::vector<std::string> words = absl::StrSplit(path, ' ');
  CLI::App* parent = app_;
  if (words.size() == 2) {
    Command* group = Find(words[0]);
    if (group == nullptr) {
      CLI::App* g = app_->add_subcommand(words[0], "");
      g->require_subcommand(0, 1);
      commands_.push_back(std::make_unique<Command>(g, words[0], "", /*is_group=*/true));
      group = commands_.back().get();
    }
    parent = group->app();
  }
  CLI::App* app = parent->add_subcommand(words.back(), summary);
  commands_.push_back(std::make_unique<Command>(app, path, std::move(summary), false));
  return *commands_.back();
}

Command* CommandSet::Find(const std::string& path) const {
  for (const auto& c : commands_) {
    if (c->path() == path) return c.get();
  }
  return nullptr;
}

Command* CommandSet::Selected() const {
  const CLI::App* app = app_;
  for (;;) {
    std::vector<const CLI::App*> subs = app->get_subcommands({});
    const CLI::App* next = nullptr;
    for (const CLI::App* s : subs) {
      if (s->parsed()) next = s;
    }
    if (next == nullptr) break;
    app = next;
  }
  for (const auto& c : commands_) {
    if (c->app() == app) return c.get();
  }
  return commands_.front().get();
}

void CommandSet::PrintCommandList(std::ostream& out, absl::string_view group) const {
  Table table({"COMMAND", "SUMMARY"});
  for (const auto& c : commands_) {
    if (c->is_group()) continue;
    if (!group.empty() && !absl::StartsWith(c->path(), absl::StrCat(group, " "))) continue;
    table.AddRow({c->path(), c->summary()});
  }
  table.Print(out, "  ");
}

void CommandSet::PrintGroupHelp(std::ostream& out, const Command& group) const {
  out << "usage: memnodectl " << group.path() << " SUBCOMMAND ...\n\n";
  PrintCommandList(out, group.path());
}

void CommandSet::PrintGlobalHelp(std::ostream& out) const {
  const Command& r = root();
  out << r.summary() << "\n\nusage: memnodectl [global flags] COMMAND [ARGS] [FLAGS]\n\n"
      << "Global flags (may appear anywhere on the line):\n";
  r.PrintParams(out);
  if (!r.details().empty()) out << "\n" << r.details();
  out << "\nCommands:\n";
  PrintCommandList(out, "");
}

int CommandSet::UsageError(const Command* command, const std::string& message) const {
  std::cerr << "error: " << message << "\n";
  if (command == nullptr || command->path().empty()) {
    std::cerr << "(memnodectl help lists the commands)\n";
  } else if (command->is_group()) {
    PrintGroupHelp(std::cerr, *command);
  } else {
    std::cerr << "usage: " << command->Usage() << "\n"
              << "(memnodectl " << command->path() << " --help for details)\n";
  }
  return kExitUsage;
}

}  // namespace cli
}  // namespace memnode
