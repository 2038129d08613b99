// Display names of proto enum values, derived from the enum's descriptor by
// the one rule every memnode client follows (docs/API.md, "Enum display
// names"): drop the prefix all the enum's value names share (cut after an
// underscore; when all values share none, the prefix the non-zero values
// share), then lower-case the rest.
//
//   OFFLINE_PHASE_GOING_OFFLINE -> "going_offline"   (prefix OFFLINE_PHASE_)
//   MPOL_BIND                   -> "bind"            (prefix MPOL_)
//   MEM_GOING_OFFLINE           -> "going_offline"   (prefix MEM_, non-zero values)
//   ERRNO_EFAULT                -> "efault"
//
// memnodectl shows these names in three spellings of the same rule: the name
// ("memory_offline"), upper case for states, phases and errnos as the kernel
// writes them ("GOING_OFFLINE", "EFAULT"), and as a command-line word with
// '-' for '_' ("cow-break"). A number the descriptor does not know shows as
// its decimal value. Nothing here lists enum values by hand, so a value added
// to a proto needs no change in the client.
//
// Thread safety: stateless functions over the (immutable) generated pool.

#ifndef MEMNODE_CLIENT_CPP_ENUM_NAMES_H_
#define MEMNODE_CLIENT_CPP_ENUM_NAMES_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/generated_enum_reflection.h"

namespace memnode {
namespace cli {

// The prefix the rule strips from the value names of `e` ("OFFLINE_PHASE_",
// "MPOL_", "MEM_", or "" when the values share none).
std::string EnumPrefix(const google::protobuf::EnumDescriptor* e);

// The display name of value `number` of `e`: "going_offline".
std::string EnumDisplayName(const google::protobuf::EnumDescriptor* e, int number);

// Spellings of the display name.
enum class NameStyle {
  kName,   // "going_offline"
  kUpper,  // "GOING_OFFLINE"
  kWord,   // "going-offline"
};
std::string EnumName(const google::protobuf::EnumDescriptor* e, int number, NameStyle style);

// The value whose display name (in any case, with '-' or '_'), proto value
// name, or decimal number is `text`; nullopt when there is none.
std::optional<int> ParseEnumName(const google::protobuf::EnumDescriptor* e, absl::string_view text);

// The values of `e` in declaration order.
std::vector<int> EnumNumbers(const google::protobuf::EnumDescriptor* e);

template <typename E>
std::string DisplayName(E value) {
  return EnumDisplayName(google::protobuf::GetEnumDescriptor<E>(), static_cast<int>(value));
}
template <typename E>
std::string UpperName(E value) {
  return EnumName(google::protobuf::GetEnumDescriptor<E>(), static_cast<int>(value),
                  NameStyle::kUpper);
}
template <typename E>
std::string WordName(E value) {
  return EnumName(google::protobuf::GetEnumDescriptor<E>(), static_cast<int>(value),
                  NameStyle::kWord);
}

// The proto value name itself ("MEM_GOING_OFFLINE"), or the decimal number.
template <typename E>
std::string ProtoName(E value) {
  const auto* v =
      google::protobuf::GetEnumDescriptor<E>()->FindValueByNumber(static_cast<int>(value));
  return v != nullptr ? v->name() : std::to_string(static_cast<int>(value));
}

}  // namespace cli
}  // namespace memnode

#endif  // MEMNODE_CLIENT_CPP_ENUM_NAMES_H_
