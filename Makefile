# memnode: the two set-up commands are `make run` and `make test`.
# Both install what they need (Debian packages), configure and build.

BUILD_DIR   ?= build/release
ASAN_DIR    ?= build/asan
JOBS        ?= $(shell nproc)
CMAKE_FLAGS ?=
LISTEN      ?= 127.0.0.1:50051

SOAK_SECONDS ?= 60
FUZZ_SECONDS ?= 60

.PHONY: all deps build run test test-unit test-asan test-sanitizers soak fuzz bench lint clean

all: build

deps:
	@scripts/deps.sh

$(BUILD_DIR)/build.ninja: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Starts memnoded on the built-in default machine (REALTIME, 2 nodes x 8 blocks
# x 32768 pages) and prints how to reach it.
run: build
	@scripts/run.sh $(BUILD_DIR) $(LISTEN)

# Builds everything and runs every test: C++ unit and service tests (CTest),
# the Python integration tests against the real memnoded, the Node client's
# tests, the HTTP port and web view (scripts/test-web.sh: Connect client,
# curl examples of docs/API.md, headless chromium), then the core tests
# again under ASan+UBSan.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600
	MEMNODE_BUILD_DIR=$(abspath $(BUILD_DIR)) /usr/bin/python3 -m pytest -q tests/integration
	/usr/bin/python3 -m pytest -q tests/deploy
	scripts/lint.sh
	MEMNODED=$(abspath $(BUILD_DIR))/server/memnoded scripts/test-node.sh
	MEMNODED=$(abspath $(BUILD_DIR))/server/memnoded scripts/test-web.sh
	$(MAKE) test-asan
	$(MAKE) test-sanitizers
	FUZZ_SEED=1 scripts/fuzz.sh 15

test-asan: deps
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMEMNODE_SANITIZE=ON -DMEMNODE_BUILD_SERVICE=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

# TSan build of the core's concurrency test (build/tsan) and clang's
# -Wthread-safety -Werror=thread-safety over server/core and server/service.
test-sanitizers: deps
	scripts/sanitizers.sh tsan
	scripts/sanitizers.sh tsa

# The model-based driver on fresh seeds for SOAK_SECONDS (a failure prints
# the seed and step; `memnode_soak --replay SEED` reproduces it).
soak: build
	$(BUILD_DIR)/tests/soak/memnode_soak --seconds $(SOAK_SECONDS)

# Each libFuzzer target (clang, build/fuzz) for FUZZ_SECONDS.
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

bench: build
	@scripts/bench.sh $(BUILD_DIR)

# Proto hygiene: buf lint + buf breaking against protos/released (buf from
# npm, installed into tools/node_modules).
lint: deps
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
