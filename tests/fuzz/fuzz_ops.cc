// fuzz_ops: the bytes of an input are the choices of the model-based driver
// (tests/testing/model_driver.h): a sequence of core operations on a small
// MANUAL machine, each followed by the shadow-memory comparison and
// Machine::Check(). A failed check aborts with the driver's report.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tests/fuzz/corpus_util.h"
#include "tests/testing/model_driver.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  std::string dir = memnode::fuzz::WriteCorpusDir(argc, argv);
  if (!dir.empty()) {
    // Deterministic seeds: pseudo-random choice strings of several lengths.
    std::vector<std::string> seeds;
    std::mt19937_64 rng(20240601);
    for (size_t len : {16, 32, 64, 128, 256, 384, 512, 512}) {
      std::string s(len, '\0');
      for (char& c : s) c = static_cast<char>(rng());
      seeds.push_back(s);
    }
    memnode::fuzz::WriteCorpus(dir, seeds);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // keep runs short (a few bytes per operation)
  memnode::testing::BytesSource src(data, size);
  memnode::testing::Coverage cov;
  memnode::testing::DriverOptions opts;
  opts.steps = 400;
  memnode::testing::ModelDriver d(&src, &cov, opts);
  if (!d.Run()) {
    std::fprintf(stderr, "fuzz_ops: model check failed at %s\n", d.Report().c_str());
    std::abort();
  }
  return 0;
}
