// Shared by the fuzz targets: `--write-corpus=DIR` (seen in
// LLVMFuzzerInitialize, before libFuzzer parses its flags) writes the
// target's deterministic seed corpus to DIR and exits.
#ifndef MEMNODE_TESTS_FUZZ_CORPUS_UTIL_H_
#define MEMNODE_TESTS_FUZZ_CORPUS_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace memnode::fuzz {

// Returns DIR when argv has --write-corpus=DIR, else "".
inline std::string WriteCorpusDir(int* argc, char*** argv) {
  for (int i = 1; i < *argc; ++i)
    if (std::strncmp((*argv)[i], "--write-corpus=", 15) == 0) return (*argv)[i] + 15;
  return "";
}

inline void WriteCorpus(const std::string& dir, const std::vector<std::string>& inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "/seed-%03zu", i);
    std::string path = dir + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) {
      std::perror(path.c_str());
      std::exit(1);
    }
    std::fwrite(inputs[i].data(), 1, inputs[i].size(), f);
    std::fclose(f);
  }
  std::printf("wrote %zu seeds to %s\n", inputs.size(), dir.c_str());
  std::exit(0);
}

}  // namespace memnode::fuzz

#endif  // MEMNODE_TESTS_FUZZ_CORPUS_UTIL_H_
