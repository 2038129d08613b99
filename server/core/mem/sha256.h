// SHA-256 (FIPS 180-4) over OpenSSL's libcrypto (EVP; SHA-NI accelerated
// where the CPU has it), for content digests any client can compute.
// Thread safety: a Sha256 object is used by one thread at a time; the
// static helpers are thread-safe.
#ifndef MEMNODE_SERVER_CORE_MEM_SHA256_H_
#define MEMNODE_SERVER_CORE_MEM_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

struct evp_md_ctx_st;

namespace memnode {

class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t len);
  Digest Finish();
  static Digest Of(const void* data, size_t len);
  static std::string Hex(const Digest& d);

 private:
  evp_md_ctx_st* ctx_;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_MEM_SHA256_H_
