// Page contents: each distinct 4 KiB content is stored once on the host,
// immutable and reference counted; the all-zero content is a permanent
// singleton. Linux analogue: none (the kernel stores every page's bytes);
// this is how memnode keeps 1 TiB machines in a few MiB of host memory.
// Thread safety: not thread-safe; owned by one Machine, used under its lock.
#ifndef MEMNODE_SERVER_CORE_MEM_CONTENT_H_
#define MEMNODE_SERVER_CORE_MEM_CONTENT_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "server/core/mem/sha256.h"
#include "server/core/types.h"

namespace memnode {

// One distinct page content. Immutable once interned.
struct Content {
  uint64_t hash;       // deterministic 64-bit hash of bytes
  uint32_t refs;       // frames (and other holders) referencing it
  bool sha_valid;      // sha is computed (lazily)
  Sha256::Digest sha;  // SHA-256 of bytes, valid when sha_valid
  uint8_t bytes[kPageSize];

  // KSM checksum of the content (jhash2 in Linux; the function is not
  // observable). Never 0, so a first visit (oldchecksum 0) always differs.
  uint32_t Checksum() const {
    uint32_t c = static_cast<uint32_t>(hash ^ (hash >> 32));
    return c == 0 ? 1 : c;
  }
};

// Byte-wise lexicographic order of two contents (memcmp), the key of both
// KSM trees.
inline int CompareContent(const Content* a, const Content* b) {
  if (a == b) return 0;
  return std::memcmp(a->bytes, b->bytes, kPageSize);
}

uint64_t HashPage(const uint8_t* bytes);

class ContentStore {
 public:
  ContentStore();
  ~ContentStore();
  ContentStore(const ContentStore&) = delete;
  ContentStore& operator=(const ContentStore&) = delete;

  // The all-zero content (never freed; Ref/Unref are no-ops on it).
  Content* zero() const { return zero_; }

  // Returns the stored content equal to `bytes` (4096 bytes), with one more
  // reference held by the caller.
  // `bytes` may be scratch_bytes() (filled in place, saving a copy).
  Content* Intern(const uint8_t* bytes);
  // A 4 KiB buffer the caller may build a page in before Intern().
  uint8_t* scratch_bytes() { return scratch_->bytes; }
  void Ref(Content* c) {
    if (c != zero_) ++c->refs;
  }
  void Unref(Content* c);

  // SHA-256 hex of a content (computed once, cached).
  std::string DigestHex(Content* c);
  const Sha256::Digest& Digest(Content* c);

  // Distinct contents stored, the zero content included.
  size_t distinct() const { return set_.size(); }
  // Host bytes held by contents.
  size_t host_bytes() const { return set_.size() * sizeof(Content); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(const Content* c) const { return c->hash; }
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(const Content* a, const Content* b) const {
      return a->hash == b->hash && std::memcmp(a->bytes, b->bytes, kPageSize) == 0;
    }
  };
  absl::flat_hash_set<Content*, Hash, Eq> set_;
  Content* zero_;
  Content* scratch_;  // next probe key; becomes the stored content when new
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MEM_CONTENT_H_
