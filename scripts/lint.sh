#!/usr/bin/env bash
# Proto hygiene: `buf lint` (config: buf.yaml at the repo root) and
# `buf breaking` of protos/ against the released image
# protos/released/memnode-v1.binpb (see protos/README.md).
# buf comes from npm (@bufbuild/buf, pinned by tools/package-lock.json) and is
# installed into tools/node_modules: nothing global.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if ! command -v npm >/dev/null 2>&1; then
  echo "lint: npm not found (run scripts/deps.sh)" >&2
  exit 1
fi

BUF="$ROOT/tools/node_modules/.bin/buf"
# Install (or re-install) when buf is missing or the lock changed since.
if [ ! -x "$BUF" ] || [ tools/package-lock.json -nt tools/node_modules/.package-lock.json ]; then
  echo "lint: installing tools/ npm packages (npm ci)"
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "lint: buf $("$BUF" --version) lint"
"$BUF" lint
echo "lint: buf breaking against protos/released/memnode-v1.binpb"
"$BUF" breaking --against protos/released/memnode-v1.binpb
echo "lint: protos OK"

# C++ formatting: every tracked .cc/.h must match .clang-format (Google
# style, 100 columns). Fix with scripts/format.sh.
scripts/format.sh --check
