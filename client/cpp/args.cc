#include "client/cpp/args.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace memnode {
namespace cli {

absl::StatusOr<uint64_t> ParseUint(absl::string_view text) {
  absl::string_view digits = absl::StripAsciiWhitespace(text);
  int base = 10;
  if (absl::ConsumePrefix(&digits, "0x") || absl::ConsumePrefix(&digits, "0X")) {
    base = 16;
  }
  if (digits.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("not a number: \"", text, "\""));
  }
  uint64_t value = 0;
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  for (char c : digits) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && std::isxdigit(static_cast<unsigned char>(c))) {
      d = std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    } else if (c == '_' || c == '\'') {
      continue;  // Digit separators, e.g. 0x7f00_0000_0000.
    } else {
      return absl::InvalidArgumentError(absl::StrCat("not a number: \"", text, "\""));
    }
    if (value > (max - d) / base) {
      return absl::InvalidArgumentError(absl::StrCat("number out of range: \"", text, "\""));
    }
    value = value * base + d;
  }
  return value;
}

absl::StatusOr<uint64_t> ParseSize(absl::string_view text) {
  // Binary unit letters; none of them is a hex digit, so a trailing unit
  // after a 0x number is unambiguous.
  auto unit_shift = [](char c) {
    switch (c) {
      case 'k': return 10;
      case 'm': return 20;
      case 'g': return 30;
      case 't': return 40;
      default: return 0;
    }
  };
  std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  absl::string_view body = lower;
  // "KiB" / "KB": drop the trailing "ib"/"b" only when a unit letter precedes
  // it ('b' alone is a hex digit).
  absl::string_view trimmed = body;
  if (absl::ConsumeSuffix(&trimmed, "ib") || absl::ConsumeSuffix(&trimmed, "b")) {
    if (!trimmed.empty() && unit_shift(trimmed.back()) != 0) body = trimmed;
  }
  int shift = body.empty() ? 0 : unit_shift(body.back());
  if (shift != 0) body.remove_suffix(1);
  absl::StatusOr<uint64_t> value = ParseUint(body);
  if (!value.ok() && absl::StrContains(value.status().message(), "range")) {
    return value.status();
  }
  if (!value.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a size: \"", text, "\" (use e.g. 4096, 0x1000, 64K, 1M, 1G)"));
  }
  if (shift != 0 && *value > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return absl::InvalidArgumentError(absl::StrCat("size out of range: \"", text, "\""));
  }
  return *value << shift;
}

absl::StatusOr<uint32_t> ParseProt(absl::string_view text) {
  std::string p = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (p == "none" || p == "-" || p == "--" || p == "---") return 0;
  if (p == "r" || p == "r-" || p == "r--" || p == "read") return 1;
  if (p == "w" || p == "-w" || p == "-w-" || p == "write") return 2;
  if (p == "rw" || p == "rw-" || p == "wr") return 3;
  absl::StatusOr<uint64_t> mask = ParseUint(p);
  if (mask.ok() && *mask <= 3) return static_cast<uint32_t>(*mask);
  return absl::InvalidArgumentError(
      absl::StrCat("bad protection \"", text, "\" (use rw, r, w or none)"));
}

absl::StatusOr<std::string> ParseHexBytes(absl::string_view text) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  if (!absl::ConsumePrefix(&s, "0x")) absl::ConsumePrefix(&s, "0X");
  std::string digits;
  for (char c : s) {
    if (std::isxdigit(static_cast<unsigned char>(c))) {
      digits.push_back(c);
    } else if (!(std::isspace(static_cast<unsigned char>(c)) || c == ':' || c == '-')) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad hex byte string: unexpected '", std::string(1, c), "'"));
    }
  }
  if (digits.size() % 2 != 0) {
    return absl::InvalidArgumentError("bad hex byte string: odd number of digits");
  }
  std::string bytes;
  bytes.reserve(digits.size() / 2);
  for (size_t i = 0; i < digits.size(); i += 2) {
    auto nibble = [](char c) {
      return std::isdigit(static_cast<unsigned char>(c))
                 ? c - '0'
                 : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    };
    bytes.push_back(static_cast<char>(nibble(digits[i]) << 4 | nibble(digits[i + 1])));
  }
  return bytes;
}

absl::StatusOr<uint64_t> ParseNodeMask(absl::string_view text) {
  std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (t.empty() || t == "none" || t == "-") return 0;
  uint64_t mask = 0;
  for (absl::string_view part : absl::StrSplit(t, ',')) {
    part = absl::StripAsciiWhitespace(part);
    std::vector<absl::string_view> ends = absl::StrSplit(part, absl::MaxSplits('-', 1));
    uint64_t first = 0, last = 0;
    if (part.empty() || !absl::SimpleAtoi(ends[0], &first) ||
        !absl::SimpleAtoi(ends.size() > 1 ? ends[1] : ends[0], &last) || first > last ||
        last > 63) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad node list \"", text, "\" (use e.g. 0, 0,1, 0-3 or none; nodes 0..63)"));
    }
    for (uint64_t n = first; n <= last; ++n) mask |= uint64_t{1} << n;
  }
  return mask;
}

std::string NodeMaskString(uint64_t mask) {
  if (mask == 0) return "none";
  std::vector<std::string> parts;
  for (int n = 0; n < 64;) {
    if (!(mask >> n & 1)) {
      ++n;
      continue;
    }
    int end = n;
    while (end + 1 < 64 && (mask >> (end + 1) & 1)) ++end;
    parts.push_back(end == n       ? absl::StrCat(n)
                    : end == n + 1 ? absl::StrCat(n, ",", end)
                                   : absl::StrCat(n, "-", end));
    n = end + 1;
  }
  return absl::StrJoin(parts, ",");
}

absl::StatusOr<std::vector<uint64_t>> ParseSizeList(absl::string_view text) {
  std::vector<uint64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    absl::StatusOr<uint64_t> v = ParseSize(part);
    if (!v.ok()) return v.status();
    out.push_back(*v);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The parsers as CLI11 transformers.

namespace {

// A transformer from `parse` (text -> canonical text or an error message).
CLI::Validator Transformer(std::function<absl::StatusOr<std::string>(const std::string&)> parse,
                           std::string description) {
  return CLI::Validator(
      [parse = std::move(parse)](std::string& text) -> std::string {
        absl::StatusOr<std::string> out = parse(text);
        if (!out.ok()) return std::string(out.status().message());
        text = *std::move(out);
        return "";
      },
      std::move(description));
}

// "a, b or c".
std::string OrList(const std::vector<std::string>& words) {
  if (words.size() < 2) return absl::StrJoin(words, "");
  return absl::StrCat(absl::StrJoin(words.begin(), words.end() - 1, ", "), " or ", words.back());
}

}  // namespace

ValueParser Uint(uint64_t min, uint64_t max) {
  return {
      Transformer(
          [min, max](const std::string& text) -> absl::StatusOr<std::string> {
            absl::StatusOr<uint64_t> v = ParseUint(text);
            if (!v.ok()) return v.status();
            if (*v < min) {
              return absl::InvalidArgumentError(absl::StrCat("must be at least ", min));
            }
            if (*v > max) {
              return absl::InvalidArgumentError(absl::StrCat("out of range (at most ", max, ")"));
            }
            return absl::StrCat(*v);
          },
          "UINT"),
      {}};
}

ValueParser Int32() {
  return {Transformer(
              [](const std::string& text) -> absl::StatusOr<std::string> {
                int32_t v = 0;
                if (!absl::SimpleAtoi(text, &v)) {
                  return absl::InvalidArgumentError(absl::StrCat("not an integer: \"", text, "\""));
                }
                return absl::StrCat(v);
              },
              "INT"),
          {}};
}

ValueParser Size(uint64_t max) {
  return {
      Transformer(
          [max](const std::string& text) -> absl::StatusOr<std::string> {
            absl::StatusOr<uint64_t> v = ParseSize(text);
            if (!v.ok()) return v.status();
            if (*v > max) {
              return absl::InvalidArgumentError(absl::StrCat("out of range (at most ", max, ")"));
            }
            return absl::StrCat(*v);
          },
          "SIZE"),
      {}};
}

ValueParser SizeList() {
  return {Transformer(
              [](const std::string& text) -> absl::StatusOr<std::string> {
                absl::StatusOr<std::vector<uint64_t>> v = ParseSizeList(text);
                if (!v.ok()) return v.status();
                return absl::StrJoin(*v, ",");
              },
              "SIZE[,SIZE...]"),
          {}};
}

ValueParser Prot() {
  return {Transformer(
              [](const std::string& text) -> absl::StatusOr<std::string> {
                absl::StatusOr<uint32_t> v = ParseProt(text);
                if (!v.ok()) return v.status();
                return absl::StrCat(*v);
              },
              "PROT"),
          {"rw", "r", "w", "none"}};
}

ValueParser NodeList() {
  return {Transformer(
              [](const std::string& text) -> absl::StatusOr<std::string> {
                absl::StatusOr<uint64_t> v = ParseNodeMask(text);
                if (!v.ok()) return v.status();
                return absl::StrCat(*v);
              },
              "NODES"),
          {"none", "0", "1", "0-1"}};
}

ValueParser HexBytes() {
  return {Transformer([](const std::string& text) { return ParseHexBytes(text); }, "HEX"), {}};
}

ValueParser Seconds(double min, double max) {
  return {CLI::Validator(
              [min, max](std::string& text) -> std::string {
                double v = 0;
                if (!absl::SimpleAtod(text, &v) || !(v >= min) || v > max) {
                  return absl::StrCat("seconds between ", min, " and ", max, ", not \"", text,
                                      "\"");
                }
                return "";
              },
              "SECONDS"),
          {}};
}

ValueParser Choice(std::vector<std::string> words) {
  ValueParser parser;
  parser.words = words;
  parser.transform = CLI::Validator(
      [words](std::string& text) -> std::string {
        if (std::find(words.begin(), words.end(), text) != words.end()) return "";
        return absl::StrCat("must be ", OrList(words), ", not \"", text, "\"");
      },
      "WORD");
  return parser;
}

ValueParser Words(std::vector<std::string> words) {
  return {CLI::Validator([](std::string&) { return std::string(); }, "TEXT"), std::move(words)};
}

ValueParser EnumParser(const google::protobuf::EnumDescriptor* e, NameStyle style,
                       std::function<bool(int)> allowed) {
  ValueParser parser;
  for (int number : EnumNumbers(e)) {
    if (allowed == nullptr || allowed(number)) parser.words.push_back(EnumName(e, number, style));
  }
  parser.transform = Transformer(
      [e, allowed, words = parser.words](const std::string& text) -> absl::StatusOr<std::string> {
        std::optional<int> number = ParseEnumName(e, text);
        if (!number.has_value() || (allowed != nullptr && !allowed(*number))) {
          return absl::InvalidArgumentError(
              absl::StrCat("must be ", OrList(words), ", not \"", text, "\""));
        }
        return absl::StrCat(*number);
      },
      std::string(e->name()));
  return parser;
}

}  // namespace cli
}  // namespace memnode
