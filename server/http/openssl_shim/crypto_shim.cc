// A shared object named (DT_SONAME) "libcrypto.so" whose only content is its
// dependency on libcrypto.so.3: civetweb loads OpenSSL's libcrypto by the
// development name "libcrypto.so" (a symbolic link only libssl-dev installs);
// with this shim loaded first, memnoded needs just the runtime library. See
// http_gateway.cc (LoadShims). Linux analogue: none. Thread safety: stateless.
extern "C" {
__attribute__((visibility("default"))) int memnode_crypto_shim = 1;
}
