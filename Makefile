# memnode: the two set-up commands are `make run` and `make test`.
# Both install what they need (Debian packages), configure and build.

BUILD_DIR   ?= build/release
ASAN_DIR    ?= build/asan
JOBS        ?= $(shell nproc)
CMAKE_FLAGS ?=
LISTEN      ?= 127.0.0.1:50051

SOAK_SECONDS ?= 60
FUZZ_SECONDS ?= 60

.PHONY: all deps deps-build build run test test-unit test-asan test-sanitizers test-container soak fuzz bench lint clean

all: build

# Debian packages by purpose (scripts/deps.sh build|run|clang|test|container|all):
# `make deps` installs build, run and test; each target below installs the
# sets it uses.
deps:
	@scripts/deps.sh all

deps-build:
	@scripts/deps.sh build

$(BUILD_DIR)/build.ninja: | deps-build
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps-build $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Starts memnoded on the built-in default machine (REALTIME, 2 nodes x 8 blocks
# x 32768 pages) and prints how to reach it.
run: build
	@scripts/run.sh $(BUILD_DIR) $(LISTEN)

# Builds everything and runs every test: C++ unit and service tests (CTest),
# the Python integration tests against the real memnoded, the Node client's
# tests, the HTTP port and web view (scripts/test-web.sh: Connect client,
# curl examples of docs/API.md, headless chromium), then the core tests
# again under ASan+UBSan. pytest's -rs lists every skip with its reason in
# the summary.
test: build
	@scripts/deps.sh test
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600
	MEMNODE_BUILD_DIR=$(abspath $(BUILD_DIR)) /usr/bin/python3 -m pytest -q -rs tests/integration
	MEMNODE_BUILD_DIR=$(abspath $(BUILD_DIR)) /usr/bin/python3 -m pytest -q -rs tests/deploy
	scripts/lint.sh
	MEMNODED=$(abspath $(BUILD_DIR))/server/memnoded scripts/test-node.sh
	MEMNODED=$(abspath $(BUILD_DIR))/server/memnoded scripts/test-web.sh
	$(MAKE) test-asan
	$(MAKE) test-sanitizers
	FUZZ_SEED=1 scripts/fuzz.sh 15

test-asan: deps-build
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMEMNODE_SANITIZE=ON -DMEMNODE_BUILD_SERVICE=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

# TSan build of the core's concurrency test (build/tsan) and clang's
# -Wthread-safety -Werror=thread-safety over server/core and server/service.
test-sanitizers: deps-build
	scripts/sanitizers.sh tsan
	scripts/sanitizers.sh tsa

# The model-based driver on fresh seeds for SOAK_SECONDS (a failure prints
# the seed and step; `memnode_soak --replay SEED` reproduces it), then
# memnoded under RPC load with --state_dir, killed (SIGKILL) and stopped
# (SIGTERM) over and over for SOAK_SECONDS (tests/soak/fault_soak.py).
soak: build
	$(BUILD_DIR)/tests/soak/memnode_soak --seconds $(SOAK_SECONDS)
	/usr/bin/python3 tests/soak/fault_soak.py --build-dir $(abspath $(BUILD_DIR)) --seconds $(SOAK_SECONDS)

# The image of deploy/docker/Dockerfile built by a real Docker engine
# (Debian's docker.io; started here and stopped again if it was not running)
# on a Debian base image made locally with debootstrap, then run, probed,
# stopped and restarted (tests/deploy/container_e2e.py).
test-container: build
	@scripts/deps.sh test container
	MEMNODE_BUILD_DIR=$(abspath $(BUILD_DIR)) /usr/bin/python3 -m pytest -q -rs -s tests/deploy/container_e2e.py

# Each libFuzzer target (clang, build/fuzz) for FUZZ_SECONDS.
fuzz: deps-build
	scripts/fuzz.sh $(FUZZ_SECONDS)

bench: build
	@scripts/deps.sh test
	@scripts/bench.sh $(BUILD_DIR)

# Proto hygiene: buf lint + buf breaking against protos/released (buf from
# npm, installed into tools/node_modules).
lint:
	@scripts/deps.sh test
	@scripts/lint.sh

clean:
	rm -rf build

# RPC load: memnode_loadgen starts memnoded and an echo server from
# BUILD_DIR, drives LOAD_CLIENTS clients (own REALTIME machine each, ksmd
# running) for LOAD_SECONDS, prints throughput, latency per method, errors,
# server RSS and the ratio to echo (docs/RELIABILITY.md).
LOAD_SECONDS ?= 30
LOAD_CLIENTS ?= 4
.PHONY: load
load: build
	$(BUILD_DIR)/bench/memnode_loadgen --clients $(LOAD_CLIENTS) --seconds $(LOAD_SECONDS)
