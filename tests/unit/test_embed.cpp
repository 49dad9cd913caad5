// Embeddings and reranking at the model level: the bert encoder (a synthetic
// BGE-shaped model with the real bge WordPiece vocabulary), pooling, inputs
// the API must refuse, batch invariance, the cross-encoder's pair layout,
// and the LayerNorm / GELU kernels against their formulas in long double.
// The NumPy reference comparison is tests/e2e/test_embeddings.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "format/gguf.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "runtime/embed.h"
#include "synth_model.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace volga {
namespace {

const std::string kBgeVocab = std::string(VOLGA_TESTDATA_DIR) + "/vocab/ggml-vocab-bert-bge.gguf";

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(EmbedKernels, LayerNormAndGeluFollowTheirFormulas) {
  std::vector<float> x(97), w(97), b(97), y(97);
  for (int i = 0; i < 97; ++i) {
    x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f + 0.5f;
    w[i] = 1.0f + 0.01f * static_cast<float>(i % 7);
    b[i] = 0.1f * static_cast<float>(i % 5) - 0.2f;
  }
  kernels::layer_norm(x.data(), w.data(), b.data(), 1e-12f, 97, y.data());
  long double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= 97;
  for (float v : x) var += (v - mean) * (v - mean);
  var /= 97;
  for (int i = 0; i < 97; ++i) {
    const long double want = (x[i] - mean) / std::sqrt(var + 1e-12L) * w[i] + b[i];
    EXPECT_NEAR(y[i], static_cast<double>(want), 1e-6) << i;
  }
  kernels::layer_norm(x.data(), w.data(), nullptr, 1e-12f, 97, y.data());  // no bias, in place allowed
  EXPECT_NEAR(y[3], static_cast<double>((x[3] - mean) / std::sqrt(var + 1e-12L) * w[3]), 1e-6);
  for (float v : {-12.0f, -3.0f, -1.0f, -0.1f, 0.0f, 0.5f, 1.0f, 2.5f, 12.0f}) {
    float out;
    kernels::gelu(&v, 1, &out);
    const long double want = 0.5L * v * (1.0L + std::erf(static_cast<long double>(v) / std::sqrt(2.0L)));
    EXPECT_NEAR(out, static_cast<double>(want), 1e-7 * std::max(1.0f, std::fabs(v))) << v;
  }
}

TEST(EmbedPooling, NamesRoundTripAndBadNamesAreRefused) {
  for (Pooling p : {Pooling::None, Pooling::Mean, Pooling::Cls, Pooling::Last, Pooling::Rank})
    EXPECT_EQ(parse_pooling(pooling_name(p)), p);
  EXPECT_NE(error_of([] { parse_pooling("max"); }).find("none, mean, cls, last"), std::string::npos);
}

class BertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::ifstream(kBgeVocab)) GTEST_SKIP() << kBgeVocab << " is missing";
    path_ = ::testing::TempDir() + "volga_bert_" + std::to_string(::getpid()) + ".gguf";
    synth::SynthOptions o;
    o.arch = "bert";
    o.vocab_gguf = kBgeVocab;
    o.rerank = rerank_;
    o.output = path_;
    o.quiet = true;
    synth::write_synthetic_model(o);
    file_ = GgufFile::open(path_);
    tok_ = Tokenizer::from_gguf(*file_);
    model_ = load_model(*file_, pool_);
  }
  void TearDown() override {
    if (!path_.empty()) std::remove(path_.c_str());
  }

  bool rerank_ = false;
  std::string path_;
  ThreadPool pool_{2};
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<Model> model_;
};

TEST_F(BertTest, SpecComesFromTheFile) {
  const ModelSpec& s = model_->spec();
  EXPECT_STREQ(s.arch_name(), "bert");
  EXPECT_EQ(s.pooling, Pooling::Cls);
  EXPECT_FALSE(s.causal);
  EXPECT_FLOAT_EQ(s.norm_eps, 1e-12f);
  EXPECT_EQ(s.n_cls_out, 0);
  EXPECT_EQ(embedding_pooling(s, Pooling::Unspecified), Pooling::Cls);
  EXPECT_EQ(embedding_pooling(s, Pooling::Mean), Pooling::Mean);
  EXPECT_NE(error_of([&] { embedding_pooling(s, Pooling::Rank); }).find("classification head"), std::string::npos);
}

TEST_F(BertTest, VectorsDoNotDependOnTheBatch) {
  const std::vector<std::vector<int32_t>> inputs = {tok_->encode("hello world"), tok_->encode("Привет, мир"),
                                                    tok_->encode("a"), tok_->encode("今天天气很好")};
  for (Pooling p : {Pooling::Cls, Pooling::Mean, Pooling::Last, Pooling::None}) {
    EmbedOptions o;
    o.pooling = p;
    const auto together = embed_inputs(*model_, inputs, o);
    o.batch_tokens = 1;  // one input per forward pass
    const auto apart = embed_inputs(*model_, inputs, o);
    ASSERT_EQ(together.size(), inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      EXPECT_EQ(together[i], apart[i]) << pooling_name(p) << " input " << i;
      const size_t want = p == Pooling::None ? inputs[i].size() * 128 : 128;
      EXPECT_EQ(together[i].size(), want);
    }
  }
}

TEST_F(BertTest, PoolingsDifferAndVectorsAreUnitLength) {
  const std::vector<std::vector<int32_t>> in = {tok_->encode("the quick brown fox")};
  std::vector<std::vector<float>> seen;
  for (Pooling p : {Pooling::Cls, Pooling::Mean, Pooling::Last}) {
    EmbedOptions o;
    o.pooling = p;
    auto v = embed_inputs(*model_, in, o)[0];
    double n = 0;
    for (float f : v) n += static_cast<double>(f) * f;
    EXPECT_NEAR(n, 1.0, 1e-5);
    for (const auto& s : seen) EXPECT_NE(s, v);
    seen.push_back(v);
  }
  EmbedOptions raw;
  raw.normalize = false;
  auto v = embed_inputs(*model_, in, raw)[0];
  double n = 0;
  for (float f : v) n += static_cast<double>(f) * f;
  EXPECT_GT(std::fabs(n - 1.0), 1e-3);  // the CLS state of a LayerNorm'd model has norm about sqrt(E)
}

TEST_F(BertTest, BadInputsAreRefusedWithTheNumbers) {
  EmbedOptions o;
  EXPECT_NE(error_of([&] { embed_inputs(*model_, {{101, 102}, {}}, o); }).find("input 1 is empty"), std::string::npos);
  std::vector<int32_t> long_input(513, 1037);
  const std::string msg = error_of([&] { embed_inputs(*model_, {long_input}, o); });
  EXPECT_NE(msg.find("513 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("512"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { embed_inputs(*model_, {{101, 40000}}, o); }).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(error_of([&] { rerank_scores(*model_, {{101, 102}}); }).find("no classification head"), std::string::npos);
  // A batch whose sequence does not start at position 0, or is split.
  Batch b;
  b.add(101, 1, 0, false);
  EXPECT_NE(error_of([&] { model_->token_states(b); }).find("position 1"), std::string::npos);
  Batch split;
  split.add(101, 0, 0, false);
  split.add(101, 0, 1, false);
  split.add(102, 1, 0, false);
  EXPECT_NE(error_of([&] { model_->token_states(split); }).find("split"), std::string::npos);
  KvCache cache(model_->spec(), 1, 32);
  EXPECT_NE(error_of([&] { model_->forward(b, cache); }).find("cannot generate"), std::string::npos);
}

TEST_F(BertTest, CrossEncoderPairIsClsQuerySepDocumentSep) {
  const std::vector<int32_t> q = tok_->encode("what is it", false), d = tok_->encode("a fox", false);
  std::vector<int32_t> want = {101};
  want.insert(want.end(), q.begin(), q.end());
  want.push_back(102);
  want.insert(want.end(), d.begin(), d.end());
  want.push_back(102);
  EXPECT_EQ(rerank_pair(*tok_, "what is it", "a fox"), want);
}

TEST(RerankPair, XlmRobertaPairIsSQueryEndEndDocumentEnd) {
  // A unigram vocabulary laid out as XLM-RoBERTa's: <s> 0, </s> 2 (also the separator).
  VocabData v;
  v.model = "t5";
  const std::string ws = "\xe2\x96\x81";  // U+2581
  v.tokens = {"<s>", "<pad>", "</s>", "<unk>", ws + "a", ws + "b", ws};
  v.scores = {0, 0, 0, 0, -1.0f, -1.0f, -5.0f};
  v.types.assign(v.tokens.size(), TokenType::Normal);
  v.types[0] = v.types[1] = v.types[2] = TokenType::Control;
  v.types[3] = TokenType::Unknown;
  v.bos = 0;
  v.pad = 1;
  v.eos = v.sep = 2;
  v.unk = 3;
  v.add_bos = v.add_eos = true;
  v.add_space_prefix = true;
  auto tok = Tokenizer::create(v);
  ASSERT_EQ(tok->encode("a", true), (std::vector<int32_t>{0, 4, 2}));
  EXPECT_EQ(rerank_pair(*tok, "a", "b"), (std::vector<int32_t>{0, 4, 2, 2, 5, 2}));
}

class RerankTest : public BertTest {
 protected:
  void SetUp() override {
    rerank_ = true;
    BertTest::SetUp();
  }
};

TEST_F(RerankTest, ScoresComeFromTheHeadAndDoNotDependOnTheBatch) {
  EXPECT_EQ(model_->spec().pooling, Pooling::Rank);
  EXPECT_EQ(model_->spec().n_cls_out, 1);
  std::vector<std::vector<int32_t>> pairs;
  for (const char* doc : {"Paris is the capital of France", "bananas are yellow", "a"})
    pairs.push_back(rerank_pair(*tok_, "capital of France", doc));
  const auto together = rerank_scores(*model_, pairs);
  const auto apart = rerank_scores(*model_, pairs, 1);
  EXPECT_EQ(together, apart);
  EXPECT_NE(together[0], together[1]);
  EXPECT_NE(error_of([&] { embed_inputs(*model_, pairs, EmbedOptions{}); }).find("reranker"), std::string::npos);
}

}  // namespace
}  // namespace volga
