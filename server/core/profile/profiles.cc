#include "server/core/profile/profiles.h"

namespace memnode {

const std::vector<const KernelProfile*>& AllProfiles() {
  static const auto* all = new std::vector<const KernelProfile*>{&Linux2633Profile()};
  return *all;
}

const KernelProfile* FindProfile(absl::string_view name) {
  if (name.empty()) name = kDefaultProfile;
  for (const KernelProfile* p : AllProfiles())
    if (p->name() == name) return p;
  return nullptr;
}

}  // namespace memnode
