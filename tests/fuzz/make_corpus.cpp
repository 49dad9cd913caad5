// Writes the fuzzer's seed corpus: the malformed-file corpus of the unit
// tests plus a small valid file. Usage: make_corpus DIR
#include <cstdio>
#include <string>

#include "gguf_corpus.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    std::string path = std::string(argv[1]) + "/" + name + ".gguf";
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return false;
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    return std::fclose(f) == 0;
  };
  int n = 0;
  if (!write("valid_small", volga::testing::valid_small_gguf())) return 1;
  for (const auto& c : volga::testing::malformed_corpus()) n += write(c.name, c.bytes);
  std::printf("wrote %d seed files to %s\n", n + 1, argv[1]);
  return 0;
}
