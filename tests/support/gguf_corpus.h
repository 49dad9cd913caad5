// A byte-level GGUF builder for crafting valid and malformed files, and the
// malformed-file corpus used by the unit tests and as the fuzzer's seed.
// Deliberately independent of volga::GgufWriter.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace volga::testing {

class Bytes {
 public:
  template <typename T>
  Bytes& put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    data.insert(data.end(), b, b + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    data.insert(data.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& pad(size_t alignment) {
    while (data.size() % alignment) data.push_back(0);
    return *this;
  }
  std::vector<uint8_t> data;
};

struct CorpusCase {
  std::string name;
  std::vector<uint8_t> bytes;
  std::string expect;  // substring the error message must contain
};

// A small valid GGUF v3 file: a few metadata values and two f32 tensors.
std::vector<uint8_t> valid_small_gguf();

// Malformed files, each with the error it must produce.
std::vector<CorpusCase> malformed_corpus();

}  // namespace volga::testing
