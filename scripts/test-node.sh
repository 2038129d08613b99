#!/usr/bin/env bash
# Runs the Node.js client's tests (client/node/test/*.test.js, node:test)
# against the real memnoded. The server binary is $MEMNODED (default
# build/release/server/memnoded); each test file starts its own server on a
# free loopback port and kills it at the end.
# npm packages are installed into client/node/node_modules (npm ci from the
# committed package-lock.json): nothing global.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/client/node"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test-node: $tool not found (run scripts/deps.sh)" >&2
    exit 1
  fi
done

export MEMNODED="${MEMNODED:-$ROOT/build/release/server/memnoded}"
if [ ! -x "$MEMNODED" ]; then
  echo "test-node: memnoded not found at $MEMNODED (build first, or set MEMNODED)" >&2
  exit 1
fi

# Install when node_modules is missing or older than the lock.
if [ -f package-lock.json ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "test-node: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi
else
  npm install --no-audit --no-fund --loglevel=error
fi

# Bounded: each test at most 120 s, the whole run at most 600 s; files run
# one at a time (each has its own server). Older Node releases (Debian's 18)
# lack some runner flags: use those the installed node knows.
flags=()
help="$(node --help)"
for f in --test-reporter=spec --test-concurrency=1 --test-timeout=120000; do
  if grep -q -- "${f%%=*}" <<<"$help"; then flags+=("$f"); fi
done
exec timeout --kill-after=10 600 node --test "${flags[@]}" test/*.test.js
