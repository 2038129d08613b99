#include "client/cpp/enum_names.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace memnode {
namespace cli {

namespace {

using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;

// The longest prefix ending in '_' that every name in `names` starts with.
std::string CommonPrefix(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string prefix = names[0];
  for (const std::string& n : names) {
    size_t i = 0;
    while (i < prefix.size() && i < n.size() && prefix[i] == n[i]) ++i;
    prefix.resize(i);
  }
  size_t cut = prefix.rfind('_');
  return cut == std::string::npos ? "" : prefix.substr(0, cut + 1);
}

// "GOING_OFFLINE" for OFFLINE_PHASE_GOING_OFFLINE.
std::string ShortName(const EnumValueDescriptor* v, const std::string& prefix) {
  absl::string_view name = v->name();
  if (!prefix.empty() && absl::StartsWith(name, prefix) && name.size() > prefix.size()) {
    name.remove_prefix(prefix.size());
  }
  return std::string(name);
}

// Upper case with '_' for '-': the form names are compared in.
std::string Canonical(absl::string_view text) {
  std::string t = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  std::replace(t.begin(), t.end(), '-', '_');
  return t;
}

}  // namespace

std::string EnumPrefix(const EnumDescriptor* e) {
  std::vector<std::string> all, nonzero;
  for (int i = 0; i < e->value_count(); ++i) {
    all.push_back(e->value(i)->name());
    if (e->value(i)->number() != 0) nonzero.push_back(e->value(i)->name());
  }
  std::string prefix = CommonPrefix(all);
  return prefix.empty() ? CommonPrefix(nonzero) : prefix;
}

std::string EnumDisplayName(const EnumDescriptor* e, int number) {
  return EnumName(e, number, NameStyle::kName);
}

std::string EnumName(const EnumDescriptor* e, int number, NameStyle style) {
  const EnumValueDescriptor* v = e->FindValueByNumber(number);
  if (v == nullptr) return absl::StrCat(number);
  std::string name = ShortName(v, EnumPrefix(e));
  switch (style) {
    case NameStyle::kUpper: return name;
    case NameStyle::kName: return absl::AsciiStrToLower(name);
    case NameStyle::kWord:
      name = absl::AsciiStrToLower(name);
      std::replace(name.begin(), name.end(), '_', '-');
      return name;
  }
  return name;
}

std::optional<int> ParseEnumName(const EnumDescriptor* e, absl::string_view text) {
  const std::string want = Canonical(text);
  if (want.empty()) return std::nullopt;
  const std::string prefix = EnumPrefix(e);
  for (int i = 0; i < e->value_count(); ++i) {
    const EnumValueDescriptor* v = e->value(i);
    if (want == v->name() || want == ShortName(v, prefix)) return v->number();
  }
  int number = 0;
  if (absl::SimpleAtoi(text, &number) && e->FindValueByNumber(number) != nullptr) return number;
  return std::nullopt;
}

std::vector<int> EnumNumbers(const EnumDescriptor* e) {
  std::vector<int> numbers;
  for (int i = 0; i < e->value_count(); ++i) numbers.push_back(e->value(i)->number());
  return numbers;
}

}  // namespace cli
}  // namespace memnode
