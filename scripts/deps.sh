#!/usr/bin/env bash
# Installs the Debian packages memnode needs, by purpose:
#
#   scripts/deps.sh build       compile memnoded and memnodectl (the Dockerfile's
#                               builder stage; `make build`)
#   scripts/deps.sh run         the shared libraries the two programs load (the
#                               Dockerfile's runtime stage; a host running the
#                               systemd unit)
#   scripts/deps.sh clang       clang and its sanitizer/fuzzer runtimes
#                               (scripts/fuzz.sh, scripts/sanitizers.sh)
#   scripts/deps.sh test        everything `make test` uses: build + clang + the
#                               test tools (Python, Node.js, openssl, systemd's
#                               systemd-analyze, iproute2, promtool ...)
#   scripts/deps.sh container   Docker and debootstrap (`make test-container`)
#   scripts/deps.sh all         build, run and test (default; `make deps`)
#
# Several sets may be named at once. Idempotent: installs only what is
# missing, after `apt-get update`, and is quick when nothing is.
# `scripts/deps.sh --list SET...` prints the packages instead.
#
# The web view's browser test installs its own packages (chromium ...):
# scripts/deps-web.sh, run by scripts/test-web.sh.
set -euo pipefail

BUILD=(
  build-essential cmake ninja-build pkg-config ccache
  libabsl-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  # memnodectl parses its command line with CLI11.
  libcli11-dev
  prometheus-cpp-dev
  # server/core hashes with OpenSSL's libcrypto; memnoded's HTTP port is
  # civetweb (with OpenSSL for TLS), its web view embedded by a Python script
  # at build time.
  libssl-dev libcivetweb-dev python3
  # CMakeLists.txt finds GoogleTest (and Google Benchmark, for bench/) at
  # configure time: the tests and benchmarks are part of the build tree even
  # when only the programs are built.
  libgtest-dev libgmock-dev libbenchmark-dev
)
# The runtime halves of the -dev packages above, as named on Debian 12
# (tests/deploy checks them against what `ldd` reports for the binaries).
RUN=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libssl3 libcivetweb1
)
CLANG=(clang libclang-rt-14-dev)
TEST=(
  python3 python3-grpcio python3-protobuf python3-pytest python3-yaml
  python3-pip python3-setuptools python3-wheel python3-venv python3-matplotlib
  # promtool (Prometheus rules), TLS certificates (test_security.py),
  # systemd-analyze (tests/deploy/test_systemd.py), `ip netns`
  # (tests/deploy start the shipped configs in their own network namespace),
  # unshare/mount (util-linux), clang-format (make lint).
  prometheus openssl systemd iproute2 util-linux clang-format
)
CONTAINER=(docker.io debootstrap)

sets=("$@")
list=0
if [ "${sets[0]:-}" = "--list" ]; then
  list=1
  sets=("${sets[@]:1}")
fi
[ ${#sets[@]} -gt 0 ] || sets=(all)

PKGS=()
for s in "${sets[@]}"; do
  case $s in
    build) PKGS+=("${BUILD[@]}") ;;
    run) PKGS+=("${RUN[@]}") ;;
    clang) PKGS+=("${CLANG[@]}") ;;
    test) PKGS+=("${BUILD[@]}" "${CLANG[@]}" "${TEST[@]}") ;;
    container) PKGS+=("${CONTAINER[@]}") ;;
    all) PKGS+=("${BUILD[@]}" "${RUN[@]}" "${CLANG[@]}" "${TEST[@]}") ;;
    *)
      echo "usage: $0 [--list] [build|run|clang|test|container|all]..." >&2
      exit 2
      ;;
  esac
  case $s in
    test | all)
      # Node.js and npm (client/node tests, buf via npm in tools/, the
      # Kubernetes schema validation in tests/deploy): Debian's packages
      # only when the machine has no node / npm of its own (a node from
      # elsewhere, e.g. nodesource's, already ships npm and must not be
      # replaced).
      if ! command -v node >/dev/null 2>&1; then PKGS+=(nodejs); fi
      if ! command -v npm >/dev/null 2>&1; then PKGS+=(npm); fi
      ;;
  esac
done

if [ $list -eq 1 ]; then
  printf '%s\n' "${PKGS[@]}" | awk '!seen[$0]++'
  exit 0
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
  echo "memnode: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  # Waits for another apt/dpkg (another build on this machine) instead of failing.
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
fi

# What `make test` needs that is not a Debian 12 package: a kustomize that
# understands the kustomizations in deploy/k8s (components, patches), to
# compare with tests/deploy/kustomize_lite.py. Debian 12's kubernetes-client
# (kubectl 1.20, kustomize v2) is too old. Not installed here: said now, and
# tests/deploy/test_k8s.py fails naming it.
for s in "${sets[@]}"; do
  case $s in
    test | all)
      if ! command -v kustomize >/dev/null 2>&1 && ! command -v kubectl >/dev/null 2>&1; then
        echo "memnode: warning: neither kustomize nor kubectl (>= 1.21) is on PATH; they are not" \
          "Debian 12 packages: install one (tests/deploy/test_k8s.py fails without it)" >&2
      fi
      break
      ;;
  esac
done
