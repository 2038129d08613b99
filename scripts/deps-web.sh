#!/usr/bin/env bash
# Installs the Debian packages of the web view's tests (scripts/test-web.sh):
# chromium (driven headless by puppeteer-core, which never downloads a
# browser), a font for its screenshots, and curl for the docs/API.md
# examples. Kept apart from scripts/deps.sh so that builds (the container
# image's builder stage) do not fetch a browser. Idempotent.
set -euo pipefail
PKGS=(chromium fonts-dejavu-core curl protobuf-compiler)
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
