// The kernel profiles a machine can be created with.
// Thread safety: immutable singletons.
#ifndef MEMNODE_SERVER_CORE_PROFILE_PROFILES_H_
#define MEMNODE_SERVER_CORE_PROFILE_PROFILES_H_

#include <vector>

#include "absl/strings/string_view.h"
#include "server/core/profile/profile.h"

namespace memnode {

inline constexpr char kDefaultProfile[] = "linux-2.6.33";

// Every profile, the default first.
const std::vector<const KernelProfile*>& AllProfiles();
// The profile named `name` (empty: the default), or null.
const KernelProfile* FindProfile(absl::string_view name);

// Implementations.
const KernelProfile& Linux2633Profile();

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_PROFILE_PROFILES_H_
