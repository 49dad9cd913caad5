// libFuzzer target for SentencePiece's precompiled charsmap (untrusted file
// data from GGUF tokenizer.ggml.precompiled_charsmap or tokenizer.json) and
// the unigram normalization that walks it.
// Input: one byte N, then N bytes of text (fewer if the input ends), then the
// charsmap blob. Any blob must either load or throw volga::Error naming
// precompiled_charsmap — never crash, never read out of bounds (built with
// AddressSanitizer + UBSan); an accepted one must tokenize any text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/charsmap.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

#include "fuzz_check.h"

namespace {

volga::VocabData small_unigram(std::string charsmap, bool hf_metaspace) {
  volga::VocabData v;
  v.model = "t5";
  v.tokens = {"<pad>", "</s>", "<unk>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab", " ", "<u>"};
  v.scores = {0, 0, 0, -2, -3, -3, -1.5f, -2.5f, -4, 0};
  v.types.assign(v.tokens.size(), volga::TokenType::Normal);
  v.types[0] = v.types[1] = volga::TokenType::Control;
  v.types[2] = volga::TokenType::Unknown;
  v.types[9] = volga::TokenType::UserDefined;
  v.unk = 2;
  v.eos = 1;
  v.add_eos = true;
  v.add_space_prefix = true;
  v.remove_extra_whitespaces = !hf_metaspace;
  v.hf_metaspace = hf_metaspace;
  v.precompiled_charsmap = std::move(charsmap);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t text_len = std::min<size_t>(data[0], size - 1);
  const std::string text(reinterpret_cast<const char*>(data) + 1, text_len);
  const std::string blob(reinterpret_cast<const char*>(data) + 1 + text_len, size - 1 - text_len);
  volga::PrecompiledCharsmap map;
  try {
    map = volga::PrecompiledCharsmap(blob);
  } catch (const volga::Error& e) {
    FUZZ_CHECK(std::string(e.what()).rfind("precompiled_charsmap", 0) == 0);  // rejections name the key
    return 0;
  }
  volatile size_t sink = 0;
  for (size_t pos = 0; pos <= text.size(); ++pos) {
    std::string_view replacement;
    const size_t n = map.match(text, pos, &replacement);
    FUZZ_CHECK(n <= text.size() - pos);
    if (n > 0) sink = sink + replacement.size() + (replacement.empty() ? 0 : static_cast<unsigned char>(replacement[0]));
  }
  for (bool hf : {false, true}) {
    auto tok = volga::Tokenizer::create(small_unigram(blob, hf));
    const auto ids = tok->encode(text, true, (data[0] & 1) != 0);
    for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tok->n_vocab());
    sink = sink + tok->decode(ids).size();
  }
  return 0;
}
