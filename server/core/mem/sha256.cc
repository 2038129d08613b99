#include "server/core/mem/sha256.h"

#include <openssl/evp.h>

#include "server/core/status.h"

namespace memnode {
namespace {

// The provider's SHA-256, fetched once (an implicit fetch per call costs a
// lookup in OpenSSL 3).
const EVP_MD* Md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  MEMNODE_CHECK(md != nullptr, "libcrypto has no SHA256");
  return md;
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  MEMNODE_CHECK(ctx_ && EVP_DigestInit_ex(ctx_, Md(), nullptr) == 1, "EVP_DigestInit_ex");
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(const void* data, size_t len) {
  MEMNODE_CHECK(EVP_DigestUpdate(ctx_, data, len) == 1, "EVP_DigestUpdate");
}

Sha256::Digest Sha256::Finish() {
  Digest d;
  unsigned int n = 0;
  MEMNODE_CHECK(EVP_DigestFinal_ex(ctx_, d.data(), &n) == 1 && n == d.size(), "EVP_DigestFinal_ex");
  return d;
}

Sha256::Digest Sha256::Of(const void* data, size_t len) {
  Digest d;
  unsigned int n = 0;
  MEMNODE_CHECK(EVP_Digest(data, len, d.data(), &n, Md(), nullptr) == 1 && n == d.size(),
                "EVP_Digest");
  return d;
}

std::string Sha256::Hex(const Digest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(64, '0');
  for (size_t i = 0; i < d.size(); ++i) {
    s[2 * i] = kHex[d[i] >> 4];
    s[2 * i + 1] = kHex[d[i] & 15];
  }
  return s;
}

}  // namespace memnode
