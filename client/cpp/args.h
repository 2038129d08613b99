// Command-line parsing for memnodectl: splits argv into positionals and
// --flags (flags may come before or after the subcommand), and parses the
// number, size, protection and byte-string syntaxes the commands accept.
//
// Thread safety: not thread-safe; used from main() only.

#ifndef MEMNODE_CLIENT_CPP_ARGS_H_
#define MEMNODE_CLIENT_CPP_ARGS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace memnode {
namespace cli {

// Whether a flag takes a value (`--name=V` or `--name V`) or is a switch.
enum class FlagKind { kSwitch, kValue };

// Every flag memnodectl knows, global or per command.
const std::map<std::string, FlagKind>& KnownFlags();

// Flags accepted by every command.
const std::set<std::string>& GlobalFlags();

// Parses an unsigned integer: decimal or 0x-prefixed hex.
absl::StatusOr<uint64_t> ParseUint(absl::string_view text);

// Parses a byte count or address: decimal or 0x hex, optionally followed by a
// binary suffix K, M, G or T (also KiB, MiB, ... and lower case).
absl::StatusOr<uint64_t> ParseSize(absl::string_view text);

// Parses a protection: "none", "r", "w", "rw" (also "-", "r-", "-w", "rw-"),
// or a PROT_* bit mask as a number 0..3.
absl::StatusOr<uint32_t> ParseProt(absl::string_view text);

// Parses a NUMA node list into a bit mask (bit n = node n): "0", "0,1",
// "0-3", "0,2-3"; "none" or "" is the empty mask. Nodes are 0..63.
absl::StatusOr<uint64_t> ParseNodeMask(absl::string_view text);

// The inverse of ParseNodeMask: "0-3", "0,2", "none".
std::string NodeMaskString(uint64_t mask);

// Parses a comma-separated list of sizes/addresses (ParseSize syntax).
absl::StatusOr<std::vector<uint64_t>> ParseSizeList(absl::string_view text);

// Parses a hex byte string. Whitespace, ':' and '-' separators and a leading
// 0x are ignored; the digit count must be even.
absl::StatusOr<std::string> ParseHexBytes(absl::string_view text);

// The parsed command line. Typed accessors record the first problem they meet
// instead of returning it, so a command can read all of its arguments and
// then check status() once.
class Args {
 public:
  // Splits argv[1..argc). Returns INVALID_ARGUMENT on an unknown flag or a
  // value flag without a value. `--` ends flag parsing.
  static absl::StatusOr<Args> Parse(int argc, const char* const* argv);

  // Positionals not consumed by the command dispatch.
  size_t PositionalCount() const { return positionals_.size() - consumed_; }
  // Positional i (0-based, after the consumed ones); "" when absent.
  std::string Positional(size_t i) const;
  // Consumes the next positional (the command word) and returns it.
  std::string Shift();
  // Command words consumed so far, joined by spaces (for messages).
  std::string CommandPath() const;

  bool HasFlag(const std::string& name) const { return flags_.count(name) > 0; }
  // Raw value of a flag, or `fallback` when absent.
  std::string FlagString(const std::string& name, const std::string& fallback) const;
  // Switch flags: true when given (or given as =true/=1).
  bool FlagSwitch(const std::string& name);
  uint64_t FlagUint(const std::string& name, uint64_t fallback);
  uint64_t FlagSize(const std::string& name, uint64_t fallback);

  // Positional i as a number / size / pid; records an error when missing.
  uint64_t PosUint(size_t i, const char* what);
  uint64_t PosSize(size_t i, const char* what);
  int32_t PosPid(size_t i);
  std::string PosString(size_t i, const char* what);

  // Records a usage error (the first one wins).
  void Fail(const std::string& message);

  // Checks that positionals number in [min, max] and that every flag given is
  // global or in `allowed`; records an error otherwise.
  void Expect(size_t min_positionals, size_t max_positionals, const std::set<std::string>& allowed);

  // OK, or INVALID_ARGUMENT with the first recorded usage error.
  absl::Status status() const { return status_; }

 private:
  std::vector<std::string> positionals_;
  size_t consumed_ = 0;
  std::map<std::string, std::string> flags_;
  absl::Status status_;
};

}  // namespace cli
}  // namespace memnode

#endif  // MEMNODE_CLIENT_CPP_ARGS_H_
