// A deterministic 64-bit digest accumulator (order sensitive) for the state
// digest of Machine::Check(): equal states give equal digests on every host.
// Thread safety: one object per computation.
#ifndef MEMNODE_SERVER_CORE_STATE_DIGEST_H_
#define MEMNODE_SERVER_CORE_STATE_DIGEST_H_

#include <cstdint>

namespace memnode {

class Digester {
 public:
  void Add(uint64_t v) {
    h_ ^= v + 0x9e3779b97f4a7c15ULL + (h_ << 6) + (h_ >> 2);
    h_ *= 0xff51afd7ed558ccdULL;
    h_ ^= h_ >> 32;
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_STATE_DIGEST_H_
