#include "server/http/http_gateway.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <vector>

#include <civetweb.h>
#include <openssl/ssl.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/http/assets.h"
#include "server/service/status_mapping.h"

namespace memnode::http {

// server/http/openssl_shim, compiled in (embed_assets.py --blobs).
extern const unsigned char kSslShim[];
extern const size_t kSslShim_size;
extern const unsigned char kCryptoShim[];
extern const size_t kCryptoShim_size;

namespace {

// Loads a shared object from memory through a memfd, which stays open: glibc
// names the object by its path /proc/self/fd/N, and a later object loaded
// through a reused N would be taken for this one. The object stays loaded.
bool LoadFromMemory(const unsigned char* data, size_t size, const char* name, std::string* error) {
  const int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) {
    *error = absl::StrCat("memfd_create: ", std::strerror(errno));
    return false;
  }
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) {
      *error = absl::StrCat("write: ", std::strerror(errno));
      close(fd);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  const std::string path = absl::StrCat("/proc/self/fd/", fd);
  if (dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL) == nullptr) {
    const char* e = dlerror();
    *error = e != nullptr ? e : "dlopen failed";
    close(fd);
    return false;
  }
  return true;
}

// Makes civetweb's run-time loading of OpenSSL work with OpenSSL 3: civetweb
// 1.15 (Debian 12) dlopen()s "libssl.so" and "libcrypto.so" and calls
// SSL_get_peer_certificate, which OpenSSL 3 does not export. glibc's dlopen
// returns an already loaded object whose soname matches the name asked for,
// so the shims (sonames libssl.so and libcrypto.so, depending on the real
// libssl.so.3 / libcrypto.so.3) are loaded first. Once per process.
bool LoadShims(std::string* error) {
  static std::string* const result = [] {
    auto* e = new std::string;
    if (LoadFromMemory(kCryptoShim, kCryptoShim_size, "libcrypto.so", e) &&
        LoadFromMemory(kSslShim, kSslShim_size, "libssl.so", e))
      e->clear();
    else if (e->empty())
      *e = "unknown error";
    return e;
  }();
  *error = *result;
  return result->empty();
}

// Whether a host (no port) names the local machine only.
bool IsLoopbackHost(absl::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return absl::EqualsIgnoreCase(host, "localhost") || host == "::1" ||
         absl::StartsWith(host, "127.");
}

// The host of a Host header value ("127.0.0.1:8080" -> "127.0.0.1").
absl::string_view HostOfHeader(absl::string_view value) {
  if (!value.empty() && value.front() == '[') {
    const size_t close = value.find(']');
    return close == absl::string_view::npos ? value : value.substr(0, close + 1);
  }
  return value.substr(0, value.find(':'));
}

std::string Header(const mg_connection* conn, const char* name) {
  const char* v = mg_get_header(conn, name);
  return v == nullptr ? std::string() : std::string(v);
}

// The socket of this connection, found by its addresses among the process's
// descriptors (civetweb does not expose it): used only to poll for the
// client's hang-up while a stream is idle. -1 when not found.
int FindSocket(const mg_request_info* ri) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    int fd = 0;
    if (!absl::SimpleAtoi(e->d_name, &fd) || fd == dirfd(dir)) continue;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{}, local{};
    socklen_t plen = sizeof(peer), llen = sizeof(local);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0)
      continue;
    char addr[INET6_ADDRSTRLEN] = {0};
    int peer_port = -1, local_port = -1;
    if (peer.ss_family == AF_INET && local.ss_family == AF_INET) {
      const auto* p = reinterpret_cast<const sockaddr_in*>(&peer);
      inet_ntop(AF_INET, &p->sin_addr, addr, sizeof(addr));
      peer_port = ntohs(p->sin_port);
      local_port = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
    } else if (peer.ss_family == AF_INET6 && local.ss_family == AF_INET6) {
      const auto* p = reinterpret_cast<const sockaddr_in6*>(&peer);
      inet_ntop(AF_INET6, &p->sin6_addr, addr, sizeof(addr));
      peer_port = ntohs(p->sin6_port);
      local_port = ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
    } else {
      continue;
    }
    if (peer_port == ri->remote_port && local_port == ri->server_port &&
        std::strcmp(addr, ri->remote_addr) == 0) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

// Answers through civetweb: complete responses with Content-Length, streams
// with chunked transfer encoding.
class CivetResponder final : public Responder {
 public:
  CivetResponder(mg_connection* conn, const std::atomic<bool>& stopping)
      : conn_(conn), stopping_(stopping) {}

  void Send(const HttpResponse& r) override {
    mg_response_header_start(conn_, r.status);
    for (const auto& [k, v] : r.headers) mg_response_header_add(conn_, k.c_str(), v.c_str(), -1);
    const std::string length = absl::StrCat(r.body.size());
    mg_response_header_add(conn_, "Content-Length", length.c_str(), -1);
    mg_response_header_add(conn_, "Cache-Control", "no-store", -1);
    mg_response_header_send(conn_);
    if (!head_only_ && !r.body.empty()) mg_write(conn_, r.body.data(), r.body.size());
    status_ = r.status;
  }
  void StartStream(const Headers& headers) override {
    fd_ = FindSocket(mg_get_request_info(conn_));
    mg_response_header_start(conn_, 200);
    for (const auto& [k, v] : headers) mg_response_header_add(conn_, k.c_str(), v.c_str(), -1);
    mg_response_header_add(conn_, "Transfer-Encoding", "chunked", -1);
    mg_response_header_add(conn_, "Cache-Control", "no-store", -1);
    mg_response_header_add(conn_, "X-Accel-Buffering", "no", -1);
    mg_response_header_send(conn_);
    status_ = 200;
  }
  bool Write(absl::string_view bytes) override {
    if (broken_) return false;
    if (bytes.empty()) return true;
    if (mg_send_chunk(conn_, bytes.data(), static_cast<unsigned>(bytes.size())) < 0) broken_ = true;
    return !broken_;
  }
  void End() override {
    if (!broken_) mg_send_chunk(conn_, "", 0);
  }
  bool ClientGone() override {
    if (broken_ || stopping_.load()) return true;
    if (fd_ < 0) return false;
    pollfd p{fd_, POLLRDHUP, 0};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) broken_ = true;
    return broken_;
  }

  void set_head_only(bool h) { head_only_ = h; }
  int status() const { return status_; }

 private:
  mg_connection* const conn_;
  const std::atomic<bool>& stopping_;
  int fd_ = -1;
  bool broken_ = false;
  bool head_only_ = false;
  int status_ = 0;
};

}  // namespace

int HttpGateway::HandleRequest(mg_connection* conn, void* cbdata) {
  auto* self = static_cast<HttpGateway*>(cbdata);
  {
    absl::MutexLock lock(&self->mu_);
    ++self->active_;
  }
  struct Done {
    HttpGateway* g;
    ~Done() {
      absl::MutexLock lock(&g->mu_);
      --g->active_;
    }
  } done{self};
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string path = ri->local_uri != nullptr ? ri->local_uri : "";
  const std::string verb = ri->request_method != nullptr ? ri->request_method : "";
  CivetResponder out(conn, self->stopping_);

  if (self->check_host_) {
    const std::string host = Header(conn, "Host");
    if (!host.empty() && !IsLoopbackHost(HostOfHeader(host))) {
      out.Send(ConnectGateway::ErrorResponse(service::Error(
          grpc::StatusCode::PERMISSION_DENIED, Reason::kHostNotAllowed,
          absl::StrCat("this server listens on a loopback address without tokens and only "
                       "answers requests for localhost, 127.0.0.1 or [::1], not ",
                       host),
          {{"host", host}})));
      return out.status();
    }
  }

  if (ConnectGateway::IsRpcPath(path)) {
    HttpRequest req;
    req.method = verb;
    req.path = path;
    req.content_type = Header(conn, "Content-Type");
    req.content_encoding = Header(conn, "Content-Encoding");
    req.connect_content_encoding = Header(conn, "Connect-Content-Encoding");
    req.authorization = Header(conn, "Authorization");
    req.timeout_ms = Header(conn, "Connect-Timeout-Ms");
    req.protocol_version = Header(conn, "Connect-Protocol-Version");
    const uint64_t limit = self->connect_->max_body_bytes();
    auto too_large = [&]() {
      out.Send(ConnectGateway::ErrorResponse(service::OverLimit(
          Reason::kRequestTooLarge, "body", ri->content_length < 0 ? limit + 1 : ri->content_length,
          limit, "bytes")));
      mg_disable_connection_keep_alive(conn);  // the rest of the body is not read
      return out.status();
    };
    if (ri->content_length > 0 && static_cast<uint64_t>(ri->content_length) > limit)
      return too_large();
    if (verb == "POST") {
      char buf[16384];
      for (;;) {
        const int n = mg_read(conn, buf, sizeof(buf));
        if (n <= 0) break;
        req.body.append(buf, static_cast<size_t>(n));
        if (req.body.size() > limit) return too_large();
      }
    }
    self->connect_->Serve(req, &out);
    return out.status();
  }

  // The web view.
  if (verb != "GET" && verb != "HEAD") {
    HttpResponse r;
    r.status = 405;
    r.headers = {{"Allow", "GET, HEAD"}, {"Content-Type", "text/plain; charset=utf-8"}};
    r.body = "the web view is read with GET\n";
    out.Send(r);
    return out.status();
  }
  out.set_head_only(verb == "HEAD");
  const Asset* asset = FindAsset(path);
  HttpResponse r;
  if (asset == nullptr) {
    r.status = 404;
    r.headers = {{"Content-Type", "text/plain; charset=utf-8"}};
    r.body = absl::StrCat(path, " not found\n");
  } else {
    r.headers = {
        {"Content-Type", asset->content_type},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"Content-Security-Policy",
         "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
         "form-action 'none'"},
    };
    r.body.assign(reinterpret_cast<const char*>(asset->data), asset->size);
  }
  out.Send(r);
  return out.status();
}

int HttpGateway::InitSsl(void* ssl_ctx, void* user_data) {
  auto* self = static_cast<HttpGateway*>(user_data);
  SSL_CTX* c = static_cast<SSL_CTX*>(ssl_ctx);
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(c, self->tls_cert_.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(c, self->tls_key_.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(c) != 1) {
    std::cerr << "memnoded: http: cannot use --tls_cert " << self->tls_cert_ << " / --tls_key "
              << self->tls_key_ << "\n";
    return -1;
  }
  if (!self->tls_client_ca_.empty()) {
    if (SSL_CTX_load_verify_locations(c, self->tls_client_ca_.c_str(), nullptr) != 1) {
      std::cerr << "memnoded: http: cannot use --tls_client_ca " << self->tls_client_ca_ << "\n";
      return -1;
    }
    SSL_CTX_set_client_CA_list(c, SSL_load_client_CA_file(self->tls_client_ca_.c_str()));
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return 1;  // civetweb: the callback set everything up
}

HttpGateway::~HttpGateway() {
  Stop();
  if (library_initialized_) mg_exit_library();
}

void HttpGateway::Stop() {
  if (ctx_ == nullptr) return;
  {
    // Streams end on their own once the event service shut down, each with
    // its end-stream message; civetweb stops writing once stopping.
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](int* active) { return *active == 0; }, &active_),
                         absl::Seconds(5));
  }
  stopping_.store(true);
  mg_stop(ctx_);
  ctx_ = nullptr;
}

absl::StatusOr<std::unique_ptr<HttpGateway>> StartHttpGateway(grpc::Server& server,
                                                              const HttpGatewayOptions& options) {
  const std::string& address = options.address;
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(address).substr(colon + 1), &port) || port < 0 ||
      port > 65535)
    return absl::InvalidArgumentError(
        absl::StrCat("--http_address must be host:port (IPv4 or localhost), got '", address, "'"));
  std::string host = address.substr(0, colon);
  if (absl::EqualsIgnoreCase(host, "localhost")) host = "127.0.0.1";
  in_addr ignored;
  if (inet_pton(AF_INET, host.c_str(), &ignored) != 1)
    return absl::InvalidArgumentError(
        absl::StrCat("--http_address: '", host, "' is not an IPv4 address (or localhost)"));
  const bool tls = !options.tls_cert.empty();
  if (options.tls_cert.empty() != options.tls_key.empty())
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  if (!options.tls_client_ca.empty() && !tls)
    return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
  const bool loopback = IsLoopbackHost(host);
  if (!loopback && !tls && !options.tokens && !options.allow_insecure_remote)
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve HTTP on ", address,
        " (not a loopback address) without TLS (--tls_cert/--tls_key) or tokens (--token_file); "
        "pass --allow_insecure_remote to do it anyway"));

  std::unique_ptr<HttpGateway> g(new HttpGateway());
  g->tls_ = tls;
  g->check_host_ = loopback && !options.tokens;
  g->tls_cert_ = options.tls_cert;
  g->tls_key_ = options.tls_key;
  g->tls_client_ca_ = options.tls_client_ca;

  const uint64_t message_limit = options.max_request_bytes + (1 << 20);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(message_limit));
  args.SetMaxSendMessageSize(static_cast<int>(message_limit));
  ConnectGateway::Options copts;
  // JSON carries bytes as base64 (4/3) plus field names and punctuation.
  copts.max_body_bytes = message_limit * 3 / 2 + (64 << 10);
  g->connect_ = std::make_unique<ConnectGateway>(server.InProcessChannel(args), copts);

  // Reference-counted (prometheus-cpp's exposer uses civetweb too); OpenSSL
  // is loaded here for TLS, after the shims (a failure shows in mg_start2).
  if (tls) {
    std::string error;
    if (!LoadShims(&error))
      return absl::FailedPreconditionError(
          absl::StrCat("the HTTP port cannot speak TLS: loading OpenSSL for civetweb: ", error));
  }
  mg_init_library(tls ? MG_FEATURES_SSL : 0);
  g->library_initialized_ = true;

  const std::string ports = absl::StrCat(host, ":", port, tls ? "s" : "");
  // Each WatchEvents stream holds a worker thread for its lifetime.
  const std::string threads = absl::StrCat(std::max(options.max_streams, 0) + 16);
  const char* civet_options[] = {"listening_ports",
                                 ports.c_str(),
                                 "num_threads",
                                 threads.c_str(),
                                 "enable_keep_alive",
                                 "yes",
                                 "keep_alive_timeout_ms",
                                 "2000",
                                 "request_timeout_ms",
                                 "30000",
                                 "max_request_size",
                                 "65536",
                                 nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  if (tls) callbacks.init_ssl = &HttpGateway::InitSsl;
  callbacks.log_message = [](const mg_connection*, const char* message) {
    std::cerr << "memnoded: http: " << message << "\n";
    return 1;
  };
  mg_init_data init;
  std::memset(&init, 0, sizeof(init));
  init.callbacks = &callbacks;
  init.user_data = g.get();
  init.configuration_options = civet_options;
  char error_text[256] = {0};
  unsigned error_code = 0;
  mg_error_data error;
  std::memset(&error, 0, sizeof(error));
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  // (civetweb also sets SIGPIPE to SIG_IGN: a client closing its connection
  // must not kill the process.)
  g->ctx_ = mg_start2(&init, &error);
  if (g->ctx_ == nullptr)
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", address, ": ", error_text[0] ? error_text : "?", ""));
  mg_set_request_handler(g->ctx_, "/", &HttpGateway::HandleRequest, g.get());
  mg_server_port sp;
  std::memset(&sp, 0, sizeof(sp));
  if (mg_get_server_ports(g->ctx_, 1, &sp) < 1)
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", address));
  g->address_ = absl::StrCat(host, ":", sp.port);
  return g;
}

}  // namespace memnode::http
