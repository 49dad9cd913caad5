// libFuzzer target for importance-matrix files (volga quantize --imatrix, in
// llama.cpp's GGUF and legacy .dat layouts). Any input either parses or
// throws volga::Error naming the input; what parses has consistent entries
// whose per-column weights can be read without going out of bounds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/imatrix.h"
#include "util/error.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  volga::Imatrix m;
  try {
    m = volga::parse_imatrix(data, size, "fuzz");
  } catch (const volga::Error& e) {
    FUZZ_CHECK(std::string(e.what()).find("fuzz") != std::string::npos);
    return 0;
  }
  for (const auto& [name, e] : m.entries) {
    FUZZ_CHECK(e.cols > 0 && !e.counts.empty());
    FUZZ_CHECK(static_cast<int64_t>(e.sums.size()) >= e.cols);
    if (e.cols > (1 << 16)) continue;
    try {
      const std::vector<float> w = m.weights(name, 0, e.cols);
      FUZZ_CHECK(static_cast<int64_t>(w.size()) == e.cols);
    } catch (const volga::Error&) {
    }
  }
  return 0;
}
