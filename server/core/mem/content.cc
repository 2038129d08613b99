#include "server/core/mem/content.h"

#include "server/core/status.h"

namespace memnode {

uint64_t HashPage(const uint8_t* bytes) {
  // Four independent multiply-xorshift lanes over 64-bit words, then a
  // final mix: fast, deterministic across runs and hosts (little-endian).
  uint64_t lane[4] = {0x9e3779b97f4a7c15ULL, 0xc2b2ae3d27d4eb4fULL, 0x165667b19e3779f9ULL,
                      0x27d4eb2f165667c5ULL};
  for (size_t i = 0; i < kPageSize; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, bytes + i + 8 * l, 8);
      lane[l] = (lane[l] ^ w) * 0xff51afd7ed558ccdULL;
      lane[l] ^= lane[l] >> 29;
    }
  }
  uint64_t h = lane[0] ^ (lane[1] * 31) ^ (lane[2] * 131) ^ (lane[3] * 1031);
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

ContentStore::ContentStore() {
  zero_ = new Content;
  std::memset(zero_->bytes, 0, kPageSize);
  zero_->hash = HashPage(zero_->bytes);
  zero_->refs = 1;
  zero_->sha_valid = false;
  set_.insert(zero_);
  scratch_ = new Content;
}

ContentStore::~ContentStore() {
  for (Content* c : set_) delete c;
  delete scratch_;
}

Content* ContentStore::Intern(const uint8_t* bytes) {
  // The probe key is a scratch Content owned by the store; when the content
  // is new, the scratch object itself becomes the stored one.
  Content* scratch = scratch_;
  if (scratch->bytes != bytes) std::memcpy(scratch->bytes, bytes, kPageSize);
  scratch->hash = HashPage(scratch->bytes);
  auto it = set_.find(scratch);
  if (it != set_.end()) {
    Content* c = *it;
    Ref(c);
    return c;
  }
  Content* c = scratch;
  scratch_ = new Content;
  c->refs = 1;
  c->sha_valid = false;
  set_.insert(c);
  return c;
}

void ContentStore::Unref(Content* c) {
  if (c == zero_) return;
  MEMNODE_CHECK(c->refs > 0, "content refcount underflow");
  if (--c->refs == 0) {
    set_.erase(c);
    delete c;
  }
}

const Sha256::Digest& ContentStore::Digest(Content* c) {
  if (!c->sha_valid) {
    c->sha = Sha256::Of(c->bytes, kPageSize);
    c->sha_valid = true;
  }
  return c->sha;
}

std::string ContentStore::DigestHex(Content* c) { return Sha256::Hex(Digest(c)); }

}  // namespace memnode
