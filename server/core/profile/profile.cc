#include "server/core/profile/profile.h"

namespace memnode {

const KsmSysfsFile* KernelProfile::FindKsmFile(absl::string_view name) const {
  for (const KsmSysfsFile& f : ksm_files())
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace memnode
