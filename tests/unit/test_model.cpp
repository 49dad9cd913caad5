#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "format/gguf.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "synth_model.h"
#include "util/error.h"

namespace volga {
namespace {

std::string temp_path(const std::string& tag) {
  return ::testing::TempDir() + "volga_" + tag + "_" + std::to_string(::getpid()) + ".gguf";
}

class ModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = temp_path(GetParam());
    synth::SynthOptions o;
    o.arch = GetParam();
    o.type = "q8_0";
    o.output = path_;
    o.quiet = true;
    synth::write_synthetic_model(o);
    file_ = GgufFile::open(path_);
    model_ = load_model(*file_, pool_);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  std::vector<float> run_alone(const std::vector<int32_t>& ids) {
    KvCache cache(model_->spec(), 1, 64);
    Batch b;
    for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], static_cast<int32_t>(i), 0, true);
    return model_->forward(b, cache).data;
  }

  std::string path_;
  ThreadPool pool_{2};
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Model> model_;
};

TEST_P(ModelTest, InterleavedSequencesGiveSameLogitsAsAlone) {
  const std::vector<int32_t> a = {5, 17, 300, 2, 99, 45}, b = {400, 3, 3, 12};
  std::vector<float> la = run_alone(a), lb = run_alone(b);
  KvCache cache(model_->spec(), 3, 64);
  Batch batch;  // sequence 2 gets `a`, sequence 0 gets `b`, interleaved
  size_t ia = 0, ib = 0;
  while (ia < a.size() || ib < b.size()) {
    if (ia < a.size()) batch.add(a[ia], static_cast<int32_t>(ia), 2, true), ++ia;
    if (ib < b.size()) batch.add(b[ib], static_cast<int32_t>(ib), 0, true), ++ib;
  }
  Logits l = model_->forward(batch, cache);
  const int64_t V = l.n_vocab;
  ASSERT_EQ(l.rows(), static_cast<int64_t>(a.size() + b.size()));
  for (int64_t r = 0; r < l.rows(); ++r) {
    const BatchToken& t = batch.tokens[static_cast<size_t>(l.batch_index[static_cast<size_t>(r)])];
    const std::vector<float>& alone = t.seq == 2 ? la : lb;
    for (int64_t v = 0; v < V; ++v)
      ASSERT_FLOAT_EQ(l.row(r)[v], alone[static_cast<size_t>(t.pos * V + v)]) << "seq " << t.seq << " pos " << t.pos;
  }
  EXPECT_EQ(cache.length(2), 6);
  EXPECT_EQ(cache.length(0), 4);
  EXPECT_EQ(cache.length(1), 0);
}

TEST_P(ModelTest, ChunkedPrefillMatchesWholePrefill) {
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<float> whole = run_alone(ids);
  KvCache cache(model_->spec(), 1, 64);
  std::vector<float> chunked;
  for (size_t i = 0; i < ids.size(); i += 4) {
    Batch b;
    for (size_t j = i; j < std::min(ids.size(), i + 4); ++j) b.add(ids[j], static_cast<int32_t>(j), 0, true);
    Logits l = model_->forward(b, cache);
    chunked.insert(chunked.end(), l.data.begin(), l.data.end());
  }
  ASSERT_EQ(chunked.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) ASSERT_NEAR(chunked[i], whole[i], 1e-5f * (1 + std::fabs(whole[i])));
}

TEST_P(ModelTest, OnlyRequestedLogitsAreReturned) {
  KvCache cache(model_->spec(), 1, 16);
  Batch b;
  b.add(1, 0, 0, false);
  b.add(2, 1, 0, false);
  b.add(3, 2, 0, true);
  Logits l = model_->forward(b, cache);
  ASSERT_EQ(l.rows(), 1);
  EXPECT_EQ(l.batch_index[0], 2);
  std::vector<float> all = run_alone({1, 2, 3});
  for (int64_t v = 0; v < l.n_vocab; ++v) ASSERT_FLOAT_EQ(l.row(0)[v], all[static_cast<size_t>(2 * l.n_vocab + v)]);
}

TEST_P(ModelTest, TruncatedSequenceIsReusable) {
  std::vector<float> first = run_alone({7, 8, 9});
  KvCache cache(model_->spec(), 1, 16);
  Batch b;
  for (int i = 0; i < 5; ++i) b.add(100 + i, i, 0, false);
  model_->forward(b, cache);
  cache.truncate(0, 0);
  Batch c;
  for (int i = 0; i < 3; ++i) c.add(7 + i, i, 0, true);
  EXPECT_EQ(model_->forward(c, cache).data, first);
}

TEST_P(ModelTest, InvalidBatchesAreRejected) {
  KvCache cache(model_->spec(), 2, 4);
  auto fails = [&](Batch b, const std::string& what) {
    try {
      model_->forward(b, cache);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  Batch gap;
  gap.add(1, 1, 0, true);
  fails(gap, "does not continue");
  Batch bad_seq;
  bad_seq.add(1, 0, 5, true);
  fails(bad_seq, "sequence id 5");
  Batch bad_tok;
  bad_tok.add(static_cast<int32_t>(model_->spec().n_vocab), 0, 0, true);
  fails(bad_tok, "outside the vocabulary");
  Batch full;
  for (int i = 0; i < 5; ++i) full.add(1, i, 1, false);
  fails(full, "exceeds the context");
  fails(Batch{}, "empty batch");
  EXPECT_EQ(cache.length(0), 0);  // nothing was written by rejected batches
  EXPECT_EQ(cache.length(1), 0);
}

TEST_P(ModelTest, GreedyGenerationIsDeterministicAndSeededSamplingReproducible) {
  GenerateOptions o;
  o.max_tokens = 12;
  o.sampling.temperature = 0;
  KvCache c1(model_->spec(), 1, 32), c2(model_->spec(), 1, 32);
  auto g1 = generate(*model_, c1, {1, 2, 3}, o), g2 = generate(*model_, c2, {1, 2, 3}, o);
  EXPECT_EQ(g1.ids, g2.ids);
  EXPECT_EQ(g1.ids.size(), 12u);
  o.sampling.temperature = 1.0f;
  o.sampling.seed = 99;
  KvCache c3(model_->spec(), 1, 32), c4(model_->spec(), 1, 32);
  EXPECT_EQ(generate(*model_, c3, {1, 2, 3}, o).ids, generate(*model_, c4, {1, 2, 3}, o).ids);
}

INSTANTIATE_TEST_SUITE_P(Archs, ModelTest, ::testing::Values("llama", "qwen2", "qwen3", "qwen3moe", "deepseek2", "qwen35",
                                                          "qwen35moe"));

// ---------------------------------------------------------- refused models

std::string load_error(const std::vector<uint8_t>& bytes) {
  ThreadPool pool(1);
  try {
    auto f = GgufFile::parse(bytes.data(), bytes.size(), "m.gguf");
    load_model(*f, pool);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Rewrites a synthetic model, dropping or reshaping one tensor or changing a key.
std::vector<uint8_t> variant(const std::string& drop, const std::string& arch_override = "",
                             const std::string& reshape = "", const std::string& u32_key = "",
                             uint32_t u32_value = 0, const std::string& base_arch = "qwen2") {
  std::string path = temp_path("variant");
  synth::SynthOptions o;
  o.arch = base_arch;
  o.output = path;
  o.quiet = true;
  synth::write_synthetic_model(o);
  auto f = GgufFile::open(path);
  GgufWriter w;
  for (const auto& [k, v] : f->metadata()) w.set(k, v);
  if (!arch_override.empty()) w.set_string("general.architecture", arch_override);
  if (!u32_key.empty()) w.set_u32(u32_key, u32_value);
  for (const auto& t : f->tensors()) {
    if (t.name == drop) continue;
    std::vector<int64_t> dims(t.ne, t.ne + t.n_dims);
    if (t.name == reshape) std::swap(dims[0], dims[1]);
    w.add_tensor(t.name, t.type, dims, std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  }
  std::remove(path.c_str());
  return w.to_bytes();
}

TEST(ModelLoad, MissingTensorIsNamed) {
  std::string msg = load_error(variant("blk.1.ffn_up.weight"));
  EXPECT_NE(msg.find("missing tensor 'blk.1.ffn_up.weight'"), std::string::npos) << msg;
  msg = load_error(variant("blk.0.attn_k.bias"));  // qwen2 requires q/k/v biases
  EXPECT_NE(msg.find("missing tensor 'blk.0.attn_k.bias'"), std::string::npos) << msg;
}

TEST(ModelLoad, UnknownArchitectureIsNamed) {
  std::string msg = load_error(variant("", "mamba"));
  EXPECT_NE(msg.find("unknown architecture 'mamba'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("supported: llama, qwen2, qwen3"), std::string::npos) << msg;
}

TEST(ModelLoad, HostileHyperParametersAreRefusedBeforeAllocating) {
  // Found by the fuzzer: a huge block count used to size allocations up front.
  std::string msg = load_error(variant("", "", "", "qwen2.block_count", 2000000000u));
  EXPECT_NE(msg.find("block_count 2000000000 is more than"), std::string::npos) << msg;
  msg = load_error(variant("", "", "", "qwen2.attention.key_length", 1u << 30));
  EXPECT_NE(msg.find("has shape"), std::string::npos) << msg;
  msg = load_error(variant("", "", "", "qwen2.block_count", 5u));  // more layers than the file has
  EXPECT_NE(msg.find("missing tensor 'blk.2.attn_norm.weight'"), std::string::npos) << msg;
}

TEST(ModelLoad, InconsistentDeepseek2MetadataIsRefused) {
  auto ds = [](const std::string& key, uint32_t v) { return load_error(variant("", "", "", key, v, "deepseek2")); };
  EXPECT_EQ(ds("deepseek2.block_count", 3u), "");  // the unmodified model loads
  std::string msg = ds("deepseek2.attention.key_length", 999u);
  EXPECT_NE(msg.find("do not match kv_lora_rank"), std::string::npos) << msg;
  msg = ds("deepseek2.expert_gating_func", 3u);
  EXPECT_NE(msg.find("expert_gating_func 3 is not supported"), std::string::npos) << msg;
  msg = ds("deepseek2.expert_group_count", 3u);  // 8 experts do not split into 3 groups
  EXPECT_NE(msg.find("do not fit"), std::string::npos) << msg;
  msg = ds("deepseek2.leading_dense_block_count", 7u);
  EXPECT_NE(msg.find("leading_dense_block_count is out of range"), std::string::npos) << msg;
  msg = ds("deepseek2.attention.key_length_mla", 32u);  // all rope, no room for the no-position part
  EXPECT_NE(msg.find("must exceed the rope dimension count"), std::string::npos) << msg;
  msg = load_error(variant("blk.2.attn_k_b.weight", "", "", "", 0, "deepseek2"));
  EXPECT_NE(msg.find("missing tensor 'blk.2.attn_k_b.weight'"), std::string::npos) << msg;
  // A multi-token-prediction layer counted in block_count is not run; here the
  // last decoder layer stands in for it, so only two layers need binding.
  EXPECT_EQ(ds("deepseek2.nextn_predict_layers", 1u), "");
  msg = ds("deepseek2.nextn_predict_layers", 3u);
  EXPECT_NE(msg.find("nextn_predict_layers is out of range"), std::string::npos) << msg;
  msg = load_error(variant("blk.1.exp_probs_b.bias", "", "", "", 0, "deepseek2"));
  EXPECT_EQ(msg, "");  // the selection bias is optional
}

TEST(ModelLoad, MisshapenTensorIsNamed) {
  std::string msg = load_error(variant("", "", "blk.0.ffn_gate.weight"));
  EXPECT_NE(msg.find("'blk.0.ffn_gate.weight' has shape [512, 256], expected [256, 512]"), std::string::npos) << msg;
}

}  // namespace
}  // namespace volga
