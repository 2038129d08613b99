#!/usr/bin/env bash
# Installs the Debian packages memnode needs to build, test and run.
# (libcivetweb-dev, libssl-dev: memnoded's HTTP port. The browser test's
# packages are installed by scripts/deps-web.sh, run by scripts/test-web.sh.)
# Idempotent and quick when everything is already there.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config ccache
  libabsl-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-grpcio python3-protobuf python3-pytest python3-yaml
  python3-pip python3-setuptools python3-wheel python3-venv python3-matplotlib
  prometheus-cpp-dev prometheus openssl clang-format
  libcivetweb-dev libssl-dev
)
# Node.js and npm (client/node tests, buf via npm in tools/): Debian's
# packages only when the machine has no node / npm of its own (a node from
# elsewhere, e.g. nodesource's, already ships npm and must not be replaced).
if ! command -v node >/dev/null 2>&1; then PKGS+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then PKGS+=(npm); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "memnode: installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
