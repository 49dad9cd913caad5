// libFuzzer target for the GGUF reader and everything that reads a parsed
// file before inference: model hyper-parameters, tokenizer, weight binding.
// Any input must either load or throw volga::Error — never crash, never read
// out of bounds (built with AddressSanitizer + UBSan).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "format/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<volga::GgufFile> f;
  try {
    f = volga::GgufFile::parse(data, size, "fuzz");
  } catch (const volga::Error& e) {
    FUZZ_CHECK(std::string(e.what()).rfind("GGUF 'fuzz': ", 0) == 0);  // rejections name the file and problem
    return 0;
  }
  volatile uint8_t sink = 0;
  for (const auto& t : f->tensors()) {
    // An accepted file never points a tensor outside the input.
    FUZZ_CHECK(t.data >= data && t.n_bytes <= size && t.data + t.n_bytes <= data + size);
    FUZZ_CHECK(t.n_bytes == static_cast<uint64_t>(volga::row_bytes(t.type, t.ne[0])) * static_cast<uint64_t>(t.n_elements() / t.ne[0]));
    if (t.n_bytes > 0) sink = static_cast<uint8_t>(sink + t.data[0] + t.data[t.n_bytes - 1]);
  }
  for (const auto& [k, v] : f->metadata()) sink = static_cast<uint8_t>(sink + v.to_display_string().size());
  try {
    auto tok = volga::Tokenizer::from_gguf(*f);
    auto ids = tok->encode("Hello, мир! 你好", true, true);
    (void)tok->decode(ids);
  } catch (const volga::Error&) {
  }
  try {
    volga::ThreadPool pool(1);
    auto model = volga::load_model(*f, pool);
  } catch (const volga::Error&) {
  }
  return 0;
}
