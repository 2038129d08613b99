// SHA-256 (FIPS 180-4), used for content digests that any client can compute.
// Thread safety: a Sha256 object is used by one thread at a time.
#ifndef MEMNODE_SERVER_CORE_SHA256_H_
#define MEMNODE_SERVER_CORE_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace memnode {

class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;
  Sha256();
  void Update(const void* data, size_t len);
  Digest Finish();
  static Digest Of(const void* data, size_t len);
  static std::string Hex(const Digest& d);

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_SHA256_H_
