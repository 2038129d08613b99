#!/usr/bin/env bash
# memnoded's HTTP port and web view (docs/API.md section 6), against the real
# memnoded ($MEMNODED, default build/release/server/memnoded):
#  1. web/dist/app.js is the bundle of web/src and protos/ (rebuilt and
#     compared: the committed bundle cannot go stale);
#  2. tests/web/test_http_gateway.py (pytest): gRPC/HTTP parity over every
#     RPC, security, limits, protocol errors;
#  3. tests/web/docs_curl.test.mjs: the curl examples of docs/API.md, run;
#  4. tests/web/connect.test.mjs: the official Connect client for Node in
#     JSON mode;
#  5. tests/web/browser.test.mjs: the web view in Debian's chromium
#     (headless, puppeteer-core); screenshots in $MEMNODE_SCREENSHOTS
#     (default build/release/web-screenshots).
# npm packages are installed into web/node_modules and tests/web/node_modules
# (npm ci from the committed package-lock.json files): nothing global.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

scripts/deps-web.sh

missing=()
for tool in node npm protoc curl /usr/bin/chromium /usr/bin/python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-web: missing ${missing[*]} (run scripts/deps.sh)" >&2
  exit 1
fi
export MEMNODED="${MEMNODED:-$ROOT/build/release/server/memnoded}"
if [ ! -x "$MEMNODED" ]; then
  echo "test-web: memnoded not found at $MEMNODED (build first, or set MEMNODED)" >&2
  exit 1
fi
BUILD_DIR="$(cd "$(dirname "$MEMNODED")/.." && pwd)"
export MEMNODE_SCREENSHOTS="${MEMNODE_SCREENSHOTS:-$BUILD_DIR/web-screenshots}"

# Install when node_modules is missing or older than the lock.
for dir in web tests/web; do
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "test-web: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

echo "test-web: checking web/dist/app.js"
(cd web && node scripts/build.mjs check)

# The Node tests' own stubs, generated from protos/ by protoc-gen-es.
rm -rf tests/web/gen && mkdir -p tests/web/gen
protoc -I protos --plugin=protoc-gen-es=tests/web/node_modules/.bin/protoc-gen-es \
  --es_out=tests/web/gen --es_opt=target=js,import_extension=js \
  protos/memnode/v1/*.proto protos/google/rpc/*.proto

MEMNODE_BUILD_DIR="$BUILD_DIR" /usr/bin/python3 -m pytest -q tests/web

# Bounded: each test at most 180 s, the whole run at most 900 s; files one
# at a time (each starts its own memnoded; one starts chromium).
flags=()
help="$(node --help)"
for f in --test-reporter=spec --test-concurrency=1 --test-timeout=180000; do
  if grep -q -- "${f%%=*}" <<<"$help"; then flags+=("$f"); fi
done
cd tests/web
exec timeout --kill-after=10 900 node --test "${flags[@]}" docs_curl.test.mjs connect.test.mjs browser.test.mjs
