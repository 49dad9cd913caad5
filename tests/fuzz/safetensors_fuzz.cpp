// libFuzzer target for the safetensors reader (volga convert's input).
// Any input must either parse or throw volga::Error naming the file; an
// accepted file never points a tensor outside the input, and decoding every
// tensor either succeeds or throws volga::Error (unsupported dtype).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "format/safetensors.h"
#include "util/error.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<volga::SafetensorsModel> m;
  try {
    m = volga::SafetensorsModel::parse(data, size, "fuzz");
  } catch (const volga::Error& e) {
    FUZZ_CHECK(std::string(e.what()).rfind("'fuzz'", 0) == 0);
    return 0;
  }
  for (const auto& [name, t] : m->tensors()) {
    FUZZ_CHECK(t.data >= data && t.n_bytes <= size && t.data + t.n_bytes <= data + size);
    if (t.n_elements() > (1 << 20)) continue;  // keep runs fast; sizes were validated above
    try {
      std::vector<float> v = t.to_f32();
      FUZZ_CHECK(static_cast<int64_t>(v.size()) == t.n_elements());
    } catch (const volga::Error&) {
    }
  }
  return 0;
}
