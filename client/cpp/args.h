// The syntaxes of memnodectl's arguments: numbers (decimal or 0x hex), sizes
// and addresses with binary suffixes, protections, NUMA node lists, hex byte
// strings and enum names. Each exists twice: as a parse function returning a
// StatusOr, and as a ValueParser, the CLI11 transformer a command declaration
// plugs into an argument or flag (the text is replaced by the canonical text
// CLI11 then converts into the target, e.g. "1M" -> "1048576"), with the words
// shell completion offers for it.
//
// Thread safety: stateless functions; ValueParsers are plain values.

#ifndef MEMNODE_CLIENT_CPP_ARGS_H_
#define MEMNODE_CLIENT_CPP_ARGS_H_

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/cpp/enum_names.h"

namespace memnode {
namespace cli {

// Parses an unsigned integer: decimal or 0x-prefixed hex ('_' may separate
// digits).
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

// How the text of one argument or flag becomes its value.
struct ValueParser {
  // Checks the text and rewrites it into the text CLI11 converts to the
  // target type; its message (CLI11 prefixes the argument's name) is the
  // usage error.
  CLI::Validator transform;
  // Words offered by shell completion (empty: free text).
  std::vector<std::string> words;
};

// ParseUint within [min, max] -> decimal.
ValueParser Uint(uint64_t min = 0, uint64_t max = std::numeric_limits<uint64_t>::max());
// A signed decimal int32.
ValueParser Int32();
// ParseSize, at most `max` -> decimal.
ValueParser Size(uint64_t max = std::numeric_limits<uint64_t>::max());
// ParseSizeList -> "n,n,...".
ValueParser SizeList();
// ParseProt -> mask.
ValueParser Prot();
// ParseNodeMask -> mask.
ValueParser NodeList();
// ParseHexBytes -> the bytes.
ValueParser HexBytes();
// A number of seconds in [min, max] (the text is kept).
ValueParser Seconds(double min, double max);
// Exactly one of `words`.
ValueParser Choice(std::vector<std::string> words);
// Any text; `words` are completion hints only.
ValueParser Words(std::vector<std::string> words);

// A value of enum `e` whose number passes `allowed` (all when null), given
// by display name (any case, '-' or '_'), proto name or number -> the number.
// Completion offers the allowed values in `style`.
ValueParser EnumParser(const google::protobuf::EnumDescriptor* e, NameStyle style,
                       std::function<bool(int)> allowed = nullptr);

template <typename E>
ValueParser EnumValue(NameStyle style = NameStyle::kWord,
                      std::function<bool(E)> allowed = nullptr) {
  std::function<bool(int)> filter;
  if (allowed != nullptr) filter = [allowed](int n) { return allowed(static_cast<E>(n)); };
  return EnumParser(google::protobuf::GetEnumDescriptor<E>(), style, std::move(filter));
}

}  // namespace cli
}  // namespace memnode

#endif  // MEMNODE_CLIENT_CPP_ARGS_H_
