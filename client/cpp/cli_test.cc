// Tests of memnodectl that need no server: enum display names for every
// value of every memnode.v1 enum, the argument syntaxes, command lines
// parsed against the declarations, the synopses against docs/CLI.md, and the
// completion script. client/cpp/smoke_test.sh drives the real thing.

#include <CLI/CLI.hpp>

#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/cpp/args.h"
#include "client/cpp/command.h"
#include "client/cpp/commands/commands.h"
#include "client/cpp/enum_names.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "memnode/v1/events.pb.h"
#include "memnode/v1/hotplug.pb.h"
#include "memnode/v1/ksm.pb.h"
#include "memnode/v1/machine.pb.h"
#include "memnode/v1/numa.pb.h"
#include "memnode/v1/process.pb.h"

namespace memnode {
namespace cli {
namespace {

using google::protobuf::EnumDescriptor;
using ::testing::HasSubstr;

// Every enum of the memnode.v1 proto files, nested ones included.
std::vector<const EnumDescriptor*> AllEnums() {
  std::vector<const EnumDescriptor*> out;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* file :
       {"memnode/v1/common.proto", "memnode/v1/events.proto", "memnode/v1/hotplug.proto",
        "memnode/v1/ksm.proto", "memnode/v1/machine.proto", "memnode/v1/numa.proto",
        "memnode/v1/process.proto"}) {
    const google::protobuf::FileDescriptor* f = pool->FindFileByName(file);
    if (f == nullptr) {
      ADD_FAILURE() << file << " is not linked in";
      continue;
    }
    for (int i = 0; i < f->enum_type_count(); ++i) out.push_back(f->enum_type(i));
    std::vector<const google::protobuf::Descriptor*> messages;
    for (int i = 0; i < f->message_type_count(); ++i) messages.push_back(f->message_type(i));
    while (!messages.empty()) {
      const google::protobuf::Descriptor* m = messages.back();
      messages.pop_back();
      for (int i = 0; i < m->enum_type_count(); ++i) out.push_back(m->enum_type(i));
      for (int i = 0; i < m->nested_type_count(); ++i) messages.push_back(m->nested_type(i));
    }
  }
  return out;
}

TEST(EnumNames, EveryValueOfEveryEnumHasADistinctNameThatParsesBack) {
  std::vector<const EnumDescriptor*> enums = AllEnums();
  ASSERT_GE(enums.size(), 14u);
  for (const EnumDescriptor* e : enums) {
    std::set<std::string> seen;
    for (int i = 0; i < e->value_count(); ++i) {
      const int n = e->value(i)->number();
      const std::string proto = e->value(i)->name();
      const std::string name = EnumDisplayName(e, n);
      SCOPED_TRACE(absl::StrCat(e->full_name(), " ", proto, " -> ", name));
      // The rule: the proto name minus a prefix ending in '_', lower case.
      EXPECT_FALSE(name.empty());
      EXPECT_EQ(name, absl::AsciiStrToLower(name));
      EXPECT_TRUE(absl::EndsWith(proto, absl::AsciiStrToUpper(name)));
      EXPECT_TRUE(proto.size() == name.size() || proto[proto.size() - name.size() - 1] == '_');
      EXPECT_TRUE(seen.insert(name).second) << "two values named " << name;
      EXPECT_EQ(EnumName(e, n, NameStyle::kUpper), absl::AsciiStrToUpper(name));
      std::string word = name;
      std::replace(word.begin(), word.end(), '_', '-');
      EXPECT_EQ(EnumName(e, n, NameStyle::kWord), word);
      // Every spelling parses back to the value.
      for (const std::string& text :
           {name, absl::AsciiStrToUpper(name), word, proto, absl::StrCat(n)}) {
        EXPECT_EQ(ParseEnumName(e, text), std::optional<int>(n)) << text;
      }
    }
    EXPECT_EQ(ParseEnumName(e, "no-such-value"), std::nullopt);
    EXPECT_EQ(ParseEnumName(e, ""), std::nullopt);
  }
}

TEST(EnumNames, TheRuleOfDocsApiMd) {
  // The examples of docs/API.md, "Enum display names".
  EXPECT_EQ(DisplayName(v1::OFFLINE_PHASE_GOING_OFFLINE), "going_offline");
  EXPECT_EQ(DisplayName(v1::MEMORY_BLOCK_STATE_GOING_OFFLINE), "going_offline");
  EXPECT_EQ(DisplayName(v1::ERRNO_EFAULT), "efault");
  EXPECT_EQ(DisplayName(v1::ERRNO_OK), "ok");
  EXPECT_EQ(DisplayName(v1::MPOL_BIND), "bind");
  EXPECT_EQ(DisplayName(v1::MPOL_MF_MOVE_ALL), "move_all");
  EXPECT_EQ(DisplayName(v1::MBIND_FLAG_NONE), "mbind_flag_none");
  EXPECT_EQ(DisplayName(v1::MEM_GOING_OFFLINE), "going_offline");
  EXPECT_EQ(DisplayName(v1::MEMORY_NOTIFIER_EVENT_UNSPECIFIED),
            "memory_notifier_event_unspecified");
  EXPECT_EQ(DisplayName(v1::PROT_NONE), "none");
  EXPECT_EQ(DisplayName(v1::ADVICE_DONTNEED), "dontneed");
  EXPECT_EQ(DisplayName(v1::MIGRATE_REASON_MEMORY_OFFLINE), "memory_offline");
  EXPECT_EQ(DisplayName(v1::PRUNE_REASON_STALE), "stale");
  EXPECT_EQ(WordName(v1::EVENT_KIND_COW_BREAK), "cow-break");
  EXPECT_EQ(UpperName(v1::PAGE_STATE_KSM), "KSM");
  EXPECT_EQ(UpperName(v1::CLOCK_MODE_MANUAL), "MANUAL");
  EXPECT_EQ(UpperName(v1::RMAP_STATE_STABLE), "STABLE");
  EXPECT_EQ(UpperName(v1::PROCESS_STATE_EXITED), "EXITED");
  EXPECT_EQ(ProtoName(v1::MEM_CANCEL_OFFLINE), "MEM_CANCEL_OFFLINE");
  EXPECT_EQ(EnumPrefix(v1::MemoryNotifierEvent_descriptor()), "MEM_");
  EXPECT_EQ(EnumPrefix(v1::MempolicyMode_descriptor()), "MPOL_");
  EXPECT_EQ(EnumPrefix(v1::OfflinePhase_descriptor()), "OFFLINE_PHASE_");
  // A number the descriptor does not know shows as the number.
  EXPECT_EQ(DisplayName(static_cast<v1::PageState>(99)), "99");
  EXPECT_EQ(ProtoName(static_cast<v1::MemoryNotifierEvent>(99)), "99");
}

TEST(Syntax, SizesNodeListsProtectionsBytes) {
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("0x1000"), 4096u);
  EXPECT_EQ(*ParseSize("64K"), 65536u);
  EXPECT_EQ(*ParseSize("1m"), 1u << 20);
  EXPECT_EQ(*ParseSize("4KiB"), 4096u);
  EXPECT_EQ(*ParseSize("1G"), 1u << 30);
  EXPECT_EQ(*ParseSize("0x7f00_0000_0000"), 0x7f0000000000u);
  EXPECT_FALSE(ParseSize("16777216T").ok());  // 2^64
  EXPECT_FALSE(ParseSize("12Q").ok());
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_EQ(*ParseNodeMask("0,2-3"), 0b1101u);
  EXPECT_EQ(*ParseNodeMask("none"), 0u);
  EXPECT_FALSE(ParseNodeMask("0-64").ok());
  EXPECT_FALSE(ParseNodeMask("3-1").ok());
  EXPECT_EQ(NodeMaskString(0b1101), "0,2,3");
  EXPECT_EQ(NodeMaskString(0xf), "0-3");
  EXPECT_EQ(*ParseProt("rw-"), 3u);
  EXPECT_EQ(*ParseProt("r"), 1u);
  EXPECT_EQ(*ParseProt("none"), 0u);
  EXPECT_FALSE(ParseProt("rwx").ok());
  EXPECT_EQ(*ParseHexBytes("de ad:be-ef"), std::string("\xde\xad\xbe\xef"));
  EXPECT_FALSE(ParseHexBytes("abc").ok());
  EXPECT_EQ(*ParseSizeList("0x1000,4K"), (std::vector<uint64_t>{4096, 4096}));
}

// A parsed command line of the real declarations.
struct Line {
  CLI::App app{"memnodectl test", "memnodectl"};
  GlobalFlags flags;
  CommandSet set{&app, "intro"};
  std::string error;  // the CLI11 error class, "" when parsed

  explicit Line(std::vector<std::string> words) {
    AddGlobalFlags(set, &flags);
    AddAllCommands(set);
    std::reverse(words.begin(), words.end());
    try {
      app.parse(words);
    } catch (const CLI::ExtrasError&) {
      error = "ExtrasError";  // (its get_name() is the app's name)
    } catch (const CLI::ParseError& e) {
      error = e.get_name();
    }
  }
  std::string selected() const { return set.Selected()->path(); }
};

TEST(Parse, GlobalFlagsBeforeOrAfterTheCommandWords) {
  Line a({"--json", "--machine=lab", "ksm", "get"});
  EXPECT_EQ(a.error, "");
  EXPECT_EQ(a.selected(), "ksm get");
  EXPECT_TRUE(a.flags.json);
  EXPECT_EQ(a.flags.machine, "lab");
  Line b({"ksm", "get", "--json", "--timeout", "0.5", "--server", "h:1"});
  EXPECT_EQ(b.error, "");
  EXPECT_TRUE(b.flags.json);
  EXPECT_EQ(b.flags.timeout_seconds, 0.5);
  EXPECT_EQ(b.flags.server, "h:1");
  Line c({"block", "--machine", "m", "offline", "4", "--token-file", "/t", "--tls-ca", "/ca"});
  EXPECT_EQ(c.error, "");
  EXPECT_EQ(c.selected(), "block offline");
  EXPECT_EQ(c.flags.token_file, "/t");
  EXPECT_EQ(c.flags.tls_ca, "/ca");
}

TEST(Parse, ACommandWordAfterTheCommandIsAnArgument) {
  // A machine named like a command stays the ID of `machine get`.
  Line a({"machine", "get", "top"});
  EXPECT_EQ(a.error, "");
  EXPECT_EQ(a.selected(), "machine get");
  Line b({"help", "block", "offline"});
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(b.selected(), "help");
}

TEST(Parse, ArgumentsGoThroughTheDomainParsers) {
  EXPECT_EQ(Line({"mmap", "1", "1G", "--prot=r", "--address", "0x7f00_0000_0000"}).error, "");
  EXPECT_EQ(Line({"notifier", "inject", "MEM_GOING_OFFLINE", "-5", "ebusy"}).error, "");
  EXPECT_EQ(Line({"watch", "--kinds", "merge,COW_BREAK,EVENT_KIND_PRUNE"}).error, "");
  EXPECT_EQ(Line({"mempolicy", "set", "1", "interleave", "0,2-3"}).error, "");
  EXPECT_EQ(Line({"move-pages", "1", "0", "0x1000,8K", "--nodes", "0,1"}).error, "");
  EXPECT_EQ(Line({"block", "offline", "4", "--pause-after", "sideways"}).error, "ValidationError");
  EXPECT_EQ(Line({"watch", "--kinds", "dropped"}).error, "ValidationError");
  EXPECT_EQ(Line({"notifier", "inject", "offline", "1", "OK"}).error, "ValidationError");
  EXPECT_EQ(Line({"mmap", "1", "12Q"}).error, "ValidationError");
  EXPECT_EQ(Line({"fill", "1", "0", "4K", "--byte", "256"}).error, "ValidationError");
  EXPECT_EQ(Line({"process", "get", "2147483648"}).error, "ValidationError");
  EXPECT_EQ(Line({"mmap", "1"}).error, "RequiredError");
  EXPECT_EQ(Line({"mmap", "1", "4K", "--fixed"}).error, "RequiresError");
  EXPECT_EQ(Line({"top", "extra"}).error, "ExtrasError");
  EXPECT_EQ(Line({"ksm", "get", "--bogus"}).error, "ExtrasError");
}

TEST(Parse, FlagGroups) {
  Line none({"write", "1", "0x1000"});
  EXPECT_EQ(none.error, "");
  EXPECT_EQ(none.set.Selected()->CheckGroups(), "give exactly one of --hex, --text, --file");
  Line two({"write", "1", "0x1000", "--text", "a", "--hex", "00"});
  EXPECT_EQ(two.set.Selected()->CheckGroups(), "give exactly one of --hex, --text, --file");
  Line one({"write", "1", "0x1000", "--text", ""});
  EXPECT_EQ(one.set.Selected()->CheckGroups(), "");
  Line knobs({"ksm", "set"});
  EXPECT_EQ(knobs.set.Selected()->CheckGroups(),
            "give at least one of --run, --pages-to-scan, --sleep-millisecs");
}

// The command synopses of docs/CLI.md: "`PATH SYNOPSIS`" terms of its
// definition lists and command tables.
std::vector<std::string> DocumentedUsages() {
  std::ifstream in(std::string(MEMNODE_SOURCE_DIR) + "/docs/CLI.md");
  EXPECT_TRUE(in) << "cannot read docs/CLI.md";
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::vector<std::string> usages;
  bool in_commands = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (absl::StartsWith(lines[i], "## ")) in_commands = lines[i] == "## Commands";
    if (!in_commands) continue;
    const bool term = absl::StartsWith(lines[i], "`") && i + 1 < lines.size() &&
                      absl::StartsWith(lines[i + 1], ": ");
    const bool row = absl::StartsWith(lines[i], "| `");
    if (!term && !row) continue;
    std::vector<std::string> parts = absl::StrSplit(lines[i], '`');
    for (size_t p = 1; p < parts.size(); p += 2) {
      if (row && p > 1) break;  // a table's first column only
      usages.push_back(parts[p]);
    }
  }
  return usages;
}

TEST(Declarations, EveryCommandIsDocumentedWithItsGeneratedSynopsis) {
  Line line({"ksm", "get"});
  std::vector<std::string> documented = DocumentedUsages();
  ASSERT_GE(documented.size(), 40u);
  for (const auto& c : line.set.commands()) {
    if (c->is_group() || c->path() == "help") continue;
    SCOPED_TRACE(c->path());
    EXPECT_TRUE(c->handler() != nullptr);
    const std::string usage = c->Usage().substr(std::string("memnodectl ").size());
    EXPECT_THAT(documented, ::testing::Contains(usage));
  }
  // And nothing documented that is not declared so.
  for (const std::string& usage : documented) {
    bool found = false;
    for (const auto& c : line.set.commands()) {
      if (!c->is_group() && c->Usage() == "memnodectl " + usage) found = true;
    }
    EXPECT_TRUE(found) << "docs/CLI.md documents `" << usage << "`";
  }
}

TEST(Declarations, CompletionCoversEveryCommandAndValueFlag) {
  Line line({"completion", "bash"});
  ASSERT_EQ(line.error, "");
  testing::internal::CaptureStdout();
  Context ctx(line.flags, *line.set.Selected(), line.set);
  EXPECT_EQ(line.set.Selected()->handler()(ctx), 0);
  const std::string script = testing::internal::GetCapturedStdout();
  EXPECT_THAT(script, HasSubstr("complete -F _memnodectl memnodectl\n"));
  for (const auto& c : line.set.commands()) {
    for (const Param& p : c->params()) {
      if (p.positional || p.is_switch) continue;
      EXPECT_THAT(script, HasSubstr(p.name)) << c->path();
    }
    if (c->is_group() || c->path().empty()) continue;
    std::vector<std::string> words = absl::StrSplit(c->path(), ' ');
    EXPECT_THAT(script, HasSubstr(words.back())) << c->path();
  }
  EXPECT_THAT(script, HasSubstr("\"block offline --pause-after\") values=\"isolated "
                                "going-offline migrated\""));
  EXPECT_THAT(script, HasSubstr("\"notifier inject:2\") choices=\"EPERM ENOENT"));
}

}  // namespace
}  // namespace cli
}  // namespace memnode
