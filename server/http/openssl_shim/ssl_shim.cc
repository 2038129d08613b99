// A shared object named (DT_SONAME) "libssl.so" that civetweb loads in place
// of OpenSSL's libssl: everything resolves to libssl.so.3 (its DT_NEEDED)
// except SSL_get_peer_certificate, which OpenSSL 3 no longer exports (it is
// a macro for SSL_get1_peer_certificate) and which Debian 12's civetweb 1.15
// calls for every TLS connection: without this shim memnoded would jump to a
// null pointer on the first HTTPS request. See http_gateway.cc (LoadShims).
// Linux analogue: none. Thread safety: stateless.
extern "C" {
typedef struct ssl_st SSL;
typedef struct x509_st X509;
X509* SSL_get1_peer_certificate(const SSL* s);
// OpenSSL 1.1's SSL_get_peer_certificate returned a new reference too.
__attribute__((visibility("default"))) X509* SSL_get_peer_certificate(const SSL* s) {
  return SSL_get1_peer_certificate(s);
}
}
