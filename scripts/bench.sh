#!/usr/bin/env bash
# Runs every memnode benchmark from an already built tree and prints a report.
# Usage: scripts/bench.sh <build_dir>     (`make bench` builds, then calls this)
# Builds nothing. Figures only: no benchmark asserts a timing; the exit status
# is non-zero only when a benchmark binary is missing or fails to run.
# See docs/BENCHMARKS.md.
set -uo pipefail

BUILD_DIR="${1:-}"
if [ -z "$BUILD_DIR" ]; then
  echo "usage: $0 <build_dir>" >&2
  exit 2
fi
CORE="$BUILD_DIR/bench/memnode_core_bench"
KSM="$BUILD_DIR/bench/memnode_ksm_bench"
HOTPLUG="$BUILD_DIR/bench/memnode_hotplug_bench"
for b in "$CORE" "$KSM" "$HOTPLUG"; do
  if [ ! -x "$b" ]; then
    echo "bench.sh: $b not found; build first (make bench builds it; Google Benchmark" >&2
    echo "          must be installed: libbenchmark-dev)" >&2
    exit 2
  fi
done

build_type="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null)"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
mem="$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
start=$(date +%s)

echo "=================================================================="
echo "memnode benchmarks  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "host: $(uname -sr), ${cpu:-unknown CPU}, $(nproc) cores, $mem RAM"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "build: $BUILD_DIR (${build_type:-unknown build type})"
echo "git: $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "=================================================================="

status=0
echo
echo "### 1/3 memnode_core_bench: fill/read/digest throughput, host memory"
echo
"$CORE" --benchmark_color=false 2>&1 || { echo "memnode_core_bench FAILED (exit $?)"; status=1; }

echo
echo "### 2/3 memnode_ksm_bench: ksmd emulation vs the host kernel's ksmd"
echo
"$KSM" 2>&1
rc=$?
if [ $rc -eq 130 ]; then
  echo "memnode_ksm_bench interrupted"
  exit 130
elif [ $rc -ne 0 ]; then
  echo "memnode_ksm_bench FAILED (exit $rc)"
  status=1
fi

echo
echo "### 3/3 memnode_hotplug_bench: offline of a full block; MEM_OFFLINE prune, kpfn index vs rescan"
echo
"$HOTPLUG" 2>&1 || { echo "memnode_hotplug_bench FAILED (exit $?)"; status=1; }

# --- RPC load (memnode_loadgen): a short run, 4 clients for 5 s, against a
# memnoded and an echo server it starts itself; `make load` runs longer
# (LOAD_SECONDS). See docs/RELIABILITY.md. Inserted before the final summary
# (an appended section would sit after `exit` and never run).
LOADGEN="$BUILD_DIR/bench/memnode_loadgen"
echo
echo "### RPC load: memnode_loadgen, 4 clients x 5 s, vs a bare gRPC echo server"
echo
if [ -x "$LOADGEN" ]; then
  "$LOADGEN" --clients 4 --seconds 5 --small_seconds 3 2>&1 || { echo "memnode_loadgen FAILED (exit $?)"; status=1; }
else
  echo "memnode_loadgen not built ($LOADGEN): skipped"
fi

# --- Cost of metrics and event streams (memnode_metrics_cost_bench): KSM scan
# with/without the metrics observer and a drained event queue, and a 3 s
# memnode_loadgen run against memnoded with/without metrics and a stream.
# See docs/OBSERVABILITY.md ("Cost"). Inserted before the final summary.
METRICS_COST="$BUILD_DIR/bench/memnode_metrics_cost_bench"
echo
echo "### Cost of metrics and events: memnode_metrics_cost_bench (target: under 5%)"
echo
if [ -x "$METRICS_COST" ]; then
  "$METRICS_COST" --blocks 2 --rpc_rounds 1 --rpc_seconds 3 --rpc_small_seconds 2 2>&1 \
    || { echo "memnode_metrics_cost_bench FAILED (exit $?)"; status=1; }
else
  echo "memnode_metrics_cost_bench not built ($METRICS_COST): skipped"
fi

echo
echo "benchmarks done in $(( $(date +%s) - start )) s"
exit $status
