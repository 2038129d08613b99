// The web view's static files (web/static and the bundle web/dist/app.js),
// compiled into memnoded by server/http/embed_assets.py at build time.
// Linux analogue: none (an initramfs: files carried inside the binary).
// Thread safety: immutable data.
#ifndef MEMNODE_SERVER_HTTP_ASSETS_H_
#define MEMNODE_SERVER_HTTP_ASSETS_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace memnode::http {

struct Asset {
  const char* path;          // "/index.html"
  const char* content_type;  // "text/html; charset=utf-8"
  const unsigned char* data;
  size_t size;
};

// The asset served at `path` ("/" is "/index.html"), or nullptr.
const Asset* FindAsset(absl::string_view path);

}  // namespace memnode::http

#endif  // MEMNODE_SERVER_HTTP_ASSETS_H_
