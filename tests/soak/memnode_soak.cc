// memnode_soak: runs the model-based driver (tests/testing/model_driver.h)
// on fresh seeds until the time is up, printing operations per second; on a
// failure prints the seed, the step and the failed check, and exits 1.
//
//   memnode_soak --seconds 60 [--seed S] [--steps N]   soak from seed S
//   memnode_soak --replay SEED [--steps N]             rerun one seed (same
//                                                      steps -> same failure)
// Determinism: the machine is MANUAL and the driver's clock is emulated, so a
// seed and a step count fully determine the run.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/testing/model_driver.h"

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: memnode_soak [--seconds N] [--seed S] [--steps N]\n"
               "       memnode_soak --replay SEED [--steps N]\n");
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 60;
  uint64_t seed = 0;
  bool have_seed = false, replay = false;
  int steps = 500;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") {
      seconds = std::strtod(next(), nullptr);
    } else if (a == "--seed") {
      seed = std::strtoull(next(), nullptr, 0);
      have_seed = true;
    } else if (a == "--replay") {
      seed = std::strtoull(next(), nullptr, 0);
      replay = true;
    } else if (a == "--steps") {
      steps = std::atoi(next());
    } else {
      Usage();
      return 2;
    }
  }
  memnode::testing::DriverOptions opts;
  opts.steps = steps;
  opts.history = replay ? 40 : 12;
  memnode::testing::Coverage cov;

  if (replay) {
    memnode::testing::PrngSource src(seed);
    memnode::testing::ModelDriver d(&src, &cov, opts);
    if (d.Run()) {
      std::printf("seed %llu: %d steps, no failure\n", (unsigned long long)seed, steps);
      return 0;
    }
    std::printf("seed %llu FAILED at %s\n", (unsigned long long)seed, d.Report().c_str());
    return 1;
  }

  if (!have_seed)
    seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  auto last_report = start;
  uint64_t runs = 0, last_ops = 0;
  std::printf("memnode_soak: seeds from %llu, %d steps each, %.0f s\n", (unsigned long long)seed,
              steps, seconds);
  std::fflush(stdout);
  for (uint64_t s = seed; Clock::now() < end; ++s) {
    memnode::testing::PrngSource src(s);
    memnode::testing::ModelDriver d(&src, &cov, opts);
    if (!d.Run()) {
      std::printf(
          "FAILED: seed %llu step %d\n%s\nreproduce: memnode_soak --replay %llu --steps %d\n",
          (unsigned long long)s, d.step(), d.Report().c_str(), (unsigned long long)s, steps);
      return 1;
    }
    ++runs;
    auto now = Clock::now();
    if (now - last_report >= std::chrono::seconds(10)) {
      double dt = std::chrono::duration<double>(now - last_report).count();
      std::printf("  %.0f s: %llu seeds, %.0f ops/s\n",
                  std::chrono::duration<double>(now - start).count(), (unsigned long long)runs,
                  (cov.ops - last_ops) / dt);
      std::fflush(stdout);
      last_report = now;
      last_ops = cov.ops;
    }
  }
  double total = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "memnode_soak: OK, %llu seeds (%llu..%llu), %llu ops in %.1f s = %.0f ops/s\n"
      "coverage: %s\n",
      (unsigned long long)runs, (unsigned long long)seed, (unsigned long long)(seed + runs - 1),
      (unsigned long long)cov.ops, total, cov.ops / total, cov.ToString().c_str());
  return 0;
}
