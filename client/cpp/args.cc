#include "client/cpp/args.h"

#include <cctype>
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

const std::map<std::string, FlagKind>& KnownFlags() {
  static const auto* const kFlags = new std::map<std::string, FlagKind>{
      // Global.
      {"server", FlagKind::kValue},
      {"machine", FlagKind::kValue},
      {"json", FlagKind::kSwitch},
      {"timeout", FlagKind::kValue},
      {"token-file", FlagKind::kValue},
      {"tls-ca", FlagKind::kValue},
      {"help", FlagKind::kSwitch},
      // machine create.
      {"nodes", FlagKind::kValue},
      {"blocks-per-node", FlagKind::kValue},
      {"pages-per-block", FlagKind::kValue},
      {"clock", FlagKind::kValue},
      // page list.
      {"skip-free", FlagKind::kSwitch},
      // process create / list.
      {"uid", FlagKind::kValue},
      {"privileged", FlagKind::kSwitch},
      {"home-node", FlagKind::kValue},
      {"show-exited", FlagKind::kSwitch},
      // mmap.
      {"address", FlagKind::kValue},
      {"prot", FlagKind::kValue},
      {"shared", FlagKind::kSwitch},
      {"fixed", FlagKind::kSwitch},
      // write / fill / read.
      {"hex", FlagKind::kValue},
      {"text", FlagKind::kValue},
      {"file", FlagKind::kValue},
      {"byte", FlagKind::kValue},
      {"pattern", FlagKind::kValue},
      {"random", FlagKind::kValue},
      {"hexdump", FlagKind::kSwitch},
      {"raw", FlagKind::kSwitch},
      // ksm set / step.
      {"run", FlagKind::kValue},
      {"pages-to-scan", FlagKind::kValue},
      {"sleep-millisecs", FlagKind::kValue},
      {"visits", FlagKind::kValue},
      {"full-scans", FlagKind::kValue},
      {"max-visits", FlagKind::kValue},
      // block offline / resume / kernel-pages.
      {"pause-after", FlagKind::kValue},
      {"timeout-ms", FlagKind::kValue},
      {"pause-ttl", FlagKind::kValue},
      {"unmovable", FlagKind::kSwitch},
      // notifier inject, watch.
      {"count", FlagKind::kValue},
      // mempolicy get / mbind / move-pages.
      {"node", FlagKind::kSwitch},
      {"strict", FlagKind::kSwitch},
      {"move", FlagKind::kSwitch},
      {"move-all", FlagKind::kSwitch},
      // watch / top.
      {"kinds", FlagKind::kValue},
      {"interval", FlagKind::kValue},
      {"iterations", FlagKind::kValue},
  };
  return *kFlags;
}

const std::set<std::string>& GlobalFlags() {
  static const auto* const kGlobal = new std::set<std::string>{
      "server", "machine", "json", "timeout", "token-file", "tls-ca", "help"};
  return *kGlobal;
}

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

absl::StatusOr<Args> Args::Parse(int argc, const char* const* argv) {
  Args args;
  const auto& known = KnownFlags();
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      args.positionals_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h") {
      args.flags_["help"] = "true";
      continue;
    }
    if (arg[1] != '-') {
      // A single-dash token such as "-1" is a positional; the command will
      // reject it if it expects a number.
      args.positionals_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    // Accept --skip_free as well as --skip-free.
    for (char& c : name) {
      if (c == '_') c = '-';
    }
    auto it = known.find(name);
    if (it == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (it->second == FlagKind::kValue && !has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
      value = argv[++i];
      has_value = true;
    }
    if (it->second == FlagKind::kSwitch && !has_value) value = "true";
    args.flags_[name] = value;
  }
  return args;
}

std::string Args::Positional(size_t i) const {
  size_t index = consumed_ + i;
  return index < positionals_.size() ? positionals_[index] : "";
}

std::string Args::Shift() {
  if (consumed_ >= positionals_.size()) return "";
  return positionals_[consumed_++];
}

std::string Args::CommandPath() const {
  return absl::StrJoin(positionals_.begin(), positionals_.begin() + consumed_, " ");
}

std::string Args::FlagString(const std::string& name, const std::string& fallback) const {
  auto it = flags_.find(name);
  return it == flags_.end() ? fallback : it->second;
}

bool Args::FlagSwitch(const std::string& name) {
  auto it = flags_.find(name);
  if (it == flags_.end()) return false;
  std::string v = absl::AsciiStrToLower(it->second);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  Fail(absl::StrCat("flag --", name, " takes no value (or true/false), got \"", it->second, "\""));
  return false;
}

uint64_t Args::FlagUint(const std::string& name, uint64_t fallback) {
  auto it = flags_.find(name);
  if (it == flags_.end()) return fallback;
  absl::StatusOr<uint64_t> v = ParseUint(it->second);
  if (!v.ok()) {
    Fail(absl::StrCat("--", name, ": ", v.status().message()));
    return fallback;
  }
  return *v;
}

uint64_t Args::FlagSize(const std::string& name, uint64_t fallback) {
  auto it = flags_.find(name);
  if (it == flags_.end()) return fallback;
  absl::StatusOr<uint64_t> v = ParseSize(it->second);
  if (!v.ok()) {
    Fail(absl::StrCat("--", name, ": ", v.status().message()));
    return fallback;
  }
  return *v;
}

std::string Args::PosString(size_t i, const char* what) {
  if (i >= PositionalCount()) {
    Fail(absl::StrCat("missing ", what));
    return "";
  }
  return Positional(i);
}

uint64_t Args::PosUint(size_t i, const char* what) {
  if (i >= PositionalCount()) {
    Fail(absl::StrCat("missing ", what));
    return 0;
  }
  absl::StatusOr<uint64_t> v = ParseUint(Positional(i));
  if (!v.ok()) {
    Fail(absl::StrCat(what, ": ", v.status().message()));
    return 0;
  }
  return *v;
}

uint64_t Args::PosSize(size_t i, const char* what) {
  if (i >= PositionalCount()) {
    Fail(absl::StrCat("missing ", what));
    return 0;
  }
  absl::StatusOr<uint64_t> v = ParseSize(Positional(i));
  if (!v.ok()) {
    Fail(absl::StrCat(what, ": ", v.status().message()));
    return 0;
  }
  return *v;
}

int32_t Args::PosPid(size_t i) {
  uint64_t pid = PosUint(i, "PID");
  if (pid > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
    Fail(absl::StrCat("PID out of range: ", Positional(i)));
    return 0;
  }
  return static_cast<int32_t>(pid);
}

void Args::Fail(const std::string& message) {
  if (status_.ok()) status_ = absl::InvalidArgumentError(message);
}

void Args::Expect(size_t min_positionals, size_t max_positionals,
                  const std::set<std::string>& allowed) {
  size_t n = PositionalCount();
  if (n < min_positionals) {
    Fail(absl::StrCat("'", CommandPath(), "' needs ", min_positionals,
                      min_positionals == 1 ? " argument" : " arguments"));
  } else if (n > max_positionals) {
    Fail(absl::StrCat("'", CommandPath(), "': unexpected argument \"", Positional(max_positionals),
                      "\""));
  }
  for (const auto& [name, value] : flags_) {
    if (GlobalFlags().count(name) == 0 && allowed.count(name) == 0) {
      Fail(absl::StrCat("'", CommandPath(), "' does not take --", name));
    }
  }
}

}  // namespace cli
}  // namespace memnode
