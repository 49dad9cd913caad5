// Pipeline stages without MPI: a model split into stage models (each bound to
// its own layers, with a KV cache of its own layers that mirrors the first
// stage's block tables) gives bit-identical logits to the whole model, through
// prefix sharing and copy-on-truncate; and the layer plans.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "format/gguf.h"
#include "model/model.h"
#include "runtime/pipeline_message.h"
#include "runtime/pipeline_plan.h"
#include "synth_model.h"
#include "util/error.h"

namespace volga {
namespace {

class PipelineStages : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "volga_pipe_" + GetParam() + "_" + std::to_string(::getpid()) + ".gguf";
    synth::SynthOptions o;
    o.arch = GetParam();
    o.n_layer = 5;
    o.type = "q8_0";
    o.output = path_;
    o.quiet = true;
    synth::write_synthetic_model(o);
    file_ = GgufFile::open(path_);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  std::string path_;
  ThreadPool pool_{2};
  std::unique_ptr<GgufFile> file_;
};

// Runs `batch` through the stages as the MPI pipeline does: stage 0 prepares
// its cache and sends the encoded message (batch, block tables, block copies,
// hidden states); each later stage decodes it, mirrors the tables into its
// own cache and runs its layers.
Logits staged_forward(std::vector<std::unique_ptr<Model>>& stages, std::vector<std::unique_ptr<KvCache>>& caches,
                      const Batch& batch) {
  KvCache& head_cache = *caches[0];
  const int64_t E = stages[0]->spec().n_embd;
  prepare_batch(stages[0]->spec(), batch, head_cache);
  head_cache.log_block_copies(true);
  std::vector<float> x;
  stages[0]->embed(batch, x);
  stages[0]->run_layers(batch, head_cache, x.data());
  std::vector<uint8_t> bytes = encode_stage_forward(batch, head_cache, x, E);
  for (size_t s = 1; s < stages.size(); ++s) {
    StageMessage m = decode_stage_message(bytes);
    EXPECT_EQ(m.header.n_blocks, head_cache.n_blocks());
    mirror_into(m, *caches[s]);
    stages[s]->run_layers(m.batch, *caches[s], m.x.data());
    std::memcpy(bytes.data() + m.x_offset, m.x.data(), m.x.size() * sizeof(float));
    x = m.x;
  }
  head_cache.commit(batch);
  return stages[0]->output(batch, x.data());
}

TEST_P(PipelineStages, SplitModelGivesBitIdenticalLogits) {
  auto whole = load_model(*file_, pool_);
  const ModelSpec& s = whole->spec();
  const std::vector<StageRange> ranges = {{0, 2, true}, {2, 3, false}, {3, 5, false}};
  std::vector<std::unique_ptr<Model>> stages;
  std::vector<std::unique_ptr<KvCache>> caches;
  KvCacheOptions ko;
  ko.n_seq = 2;
  ko.n_ctx = 96;
  ko.n_blocks = 8;
  ko.type_k = ko.type_v = DType::F16;
  for (const StageRange& r : ranges) {
    stages.push_back(load_model_stage(*file_, pool_, r));
    StageHeader h;
    h.n_seq = ko.n_seq, h.n_ctx = ko.n_ctx, h.n_blocks = ko.n_blocks;
    h.type_k = static_cast<int64_t>(ko.type_k), h.type_v = static_cast<int64_t>(ko.type_v);
    const KvCacheOptions o = r.first == 0 ? ko : stage_cache_options(h, r.first, r.end - r.first);
    caches.push_back(std::make_unique<KvCache>(s, o));
  }
  KvCache ref_cache(s, ko);
  // Sequence 0: 40 tokens; sequence 1 shares its first block (prefix cache),
  // then both are cut back inside a shared block (copy-on-truncate).
  std::vector<int32_t> prompt(40);
  for (int i = 0; i < 40; ++i) prompt[static_cast<size_t>(i)] = (i * 37 + 11) % static_cast<int32_t>(s.n_vocab);
  auto check = [&](const Batch& b) {
    Logits want = whole->forward(b, ref_cache);
    Logits got = staged_forward(stages, caches, b);
    ASSERT_EQ(got.batch_index, want.batch_index);
    ASSERT_EQ(got.data.size(), want.data.size());
    EXPECT_EQ(0, std::memcmp(got.data.data(), want.data.data(), want.data.size() * sizeof(float)));
  };
  Batch b;
  for (int i = 0; i < 40; ++i) b.add(prompt[static_cast<size_t>(i)], i, 0, i % 7 == 0 || i == 39);
  check(b);
  for (KvCache* c : {&ref_cache, caches[0].get()}) ASSERT_EQ(c->attach_prefix(1, prompt.data(), 40, 39), 32);
  b.clear();
  for (int i = 32; i < 40; ++i) b.add(prompt[static_cast<size_t>(i)] ^ 1, i, 1, true);
  b.add(prompt[0], 40, 0, true);
  check(b);
  for (KvCache* c : {&ref_cache, caches[0].get()}) {
    c->truncate(1, 0);
    c->attach_prefix(1, prompt.data(), 40, 39);
    ASSERT_EQ(c->truncate(1, 20), 20);  // inside the shared first block: copied
  }
  b.clear();
  for (int i = 20; i < 30; ++i) b.add(static_cast<int32_t>(i), i, 1, true);
  check(b);
}

INSTANTIATE_TEST_SUITE_P(Archs, PipelineStages, ::testing::Values("llama", "qwen2", "qwen3moe", "deepseek2"));

TEST(PipelineMessage, MalformedMessagesAreRefused) {
  ModelSpec spec;
  spec.n_layer = 2;
  spec.n_embd = 4;
  spec.n_head = spec.n_head_kv = 1;
  spec.head_dim_k = spec.head_dim_v = 32;
  spec.n_vocab = 10;
  KvCache cache(spec, 2, 64);
  Batch b;
  b.add(3, 0, 1, true);
  b.add(4, 1, 1, false);
  cache.prepare(b);
  const std::vector<float> x(8, 0.5f);
  const std::vector<uint8_t> good = encode_stage_forward(b, cache, x, 4);
  StageMessage m = decode_stage_message(good);
  EXPECT_EQ(m.batch.size(), 2u);
  EXPECT_EQ(m.x, x);
  EXPECT_EQ(decode_stage_message(encode_stage_stop()).header.op, static_cast<int64_t>(StageOp::Stop));
  for (size_t cut = 0; cut < good.size(); cut += 7) {  // every truncation
    std::vector<uint8_t> t(good.begin(), good.begin() + static_cast<long>(cut));
    EXPECT_THROW(decode_stage_message(t), Error) << cut;
  }
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_THROW(decode_stage_message(longer), Error);
  std::vector<uint8_t> bad_seq = good;  // the first token's sequence id
  const int32_t seq = 7;
  std::memcpy(bad_seq.data() + sizeof(StageHeader) + offsetof(BatchToken, seq), &seq, sizeof seq);
  EXPECT_THROW(decode_stage_message(bad_seq), Error);
  // A block table without the block a token needs.
  KvCache other(spec, 2, 64);
  StageMessage short_table = m;
  short_table.tables = {1, 0, 0};
  EXPECT_THROW(mirror_into(short_table, other), Error);
  StageMessage bad_block = m;
  bad_block.tables = {1, 0, 1, 9999};
  EXPECT_THROW(mirror_into(bad_block, other), Error);
}

// --mpi-hidden: f32 travels exactly; bf16 and f16 take half the bytes and
// round each value to their precision (8 and 11 significant bits).
TEST(PipelineMessage, SixteenBitHiddenStatesHalveTheBytes) {
  ModelSpec spec;
  spec.n_layer = 2;
  spec.n_embd = 4;
  spec.n_head = spec.n_head_kv = 1;
  spec.head_dim_k = spec.head_dim_v = 32;
  spec.n_vocab = 10;
  KvCache cache(spec, 2, 64);
  Batch b;
  b.add(3, 0, 1, true);
  b.add(4, 1, 1, false);
  cache.prepare(b);
  const std::vector<float> x = {0.5f, -3.0f, 1.0f / 3.0f, 1234.567f, 1e-3f, -2.75f, 0.1f, 65504.0f};
  const std::vector<uint8_t> f32 = encode_stage_forward(b, cache, x, 4, HiddenType::F32);
  EXPECT_EQ(decode_stage_message(f32).x, x);
  for (HiddenType t : {HiddenType::BF16, HiddenType::F16}) {
    const std::vector<uint8_t> half = encode_stage_forward(b, cache, x, 4, t);
    EXPECT_EQ(half.size(), f32.size() - x.size() * 2);
    const StageMessage m = decode_stage_message(half);
    EXPECT_EQ(m.header.hidden_type, static_cast<int64_t>(t));
    const double tol = t == HiddenType::BF16 ? 1.0 / 256 : 1.0 / 2048;
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(m.x[i], x[i], std::abs(x[i]) * tol) << hidden_type_name(t) << " " << i;
    EXPECT_EQ(m.x[0], 0.5f);  // exactly representable values stay exact
    EXPECT_EQ(m.x[1], -3.0f);
  }
  std::vector<uint8_t> bad = f32;  // an unknown wire type
  const int64_t nine = 9;
  std::memcpy(bad.data() + offsetof(StageHeader, hidden_type), &nine, sizeof nine);
  EXPECT_THROW(decode_stage_message(bad), Error);
  EXPECT_EQ(parse_hidden_type("bf16"), HiddenType::BF16);
  EXPECT_THROW(parse_hidden_type("f8"), Error);
}

TEST(PipelinePlan, ProportionalContiguousAndValidated) {
  ModelSpec spec;
  spec.n_layer = 6;
  ModelBytes bytes;
  bytes.layer = {10, 10, 10, 10, 10, 10};
  bytes.other = 20;  // rank 0's embedding and head: worth two layers
  PipelinePlan p = plan_by_capacity(bytes, spec, {1.0, 1.0});
  ASSERT_EQ(p.stages.size(), 2u);
  EXPECT_EQ(p.stages[0].first, 0);
  EXPECT_EQ(p.stages[0].end, 2);  // 20 + 2 x 10 = 40 of 80
  EXPECT_TRUE(p.stages[0].head);
  EXPECT_FALSE(p.stages[1].head);
  EXPECT_EQ(p.stages[1].end, 6);
  EXPECT_EQ(p.weight_bytes[0], 40);
  EXPECT_EQ(p.weight_bytes[1], 40);
  p = plan_by_capacity(bytes, spec, {3.0, 1.0});  // 60 of 80 on rank 0
  EXPECT_EQ(p.stages[0].end, 4);
  p = plan_by_capacity(bytes, spec, {1.0, 1000.0, 1000.0});  // every rank keeps a layer
  EXPECT_EQ(p.layers(0), 1);
  EXPECT_GE(p.layers(1), 1);
  EXPECT_GE(p.layers(2), 1);
  EXPECT_EQ(p.stages[2].end, 6);
  p = plan_from_counts(bytes, spec, {1, 3, 2}, 3);
  EXPECT_EQ(p.stages[1].first, 1);
  EXPECT_EQ(p.stages[1].end, 4);
  EXPECT_THROW(plan_from_counts(bytes, spec, {1, 3}, 3), Error);
  EXPECT_THROW(plan_from_counts(bytes, spec, {1, 3, 3}, 3), Error);
  EXPECT_THROW(plan_from_counts(bytes, spec, {0, 4, 2}, 3), Error);
  EXPECT_THROW(plan_by_capacity(bytes, spec, std::vector<double>(7, 1.0)), Error);
  EXPECT_THROW(plan_by_capacity(bytes, spec, {1.0, 0.0}), Error);
  EXPECT_EQ(parse_layer_split("20,22,19"), (std::vector<int64_t>{20, 22, 19}));
  EXPECT_THROW(parse_layer_split("20,,19"), Error);
  EXPECT_THROW(parse_layer_split("20,-1"), Error);
  EXPECT_THROW(parse_layer_split(""), Error);
  EXPECT_THROW(parse_layer_split("99999999999"), Error);
}

TEST(PipelineStagesErrors, RangeOutsideModelAndUnsplittableArchitectures) {
  const std::string path = ::testing::TempDir() + "volga_pipe_err_" + std::to_string(::getpid()) + ".gguf";
  synth::SynthOptions o;
  o.arch = "qwen35";
  o.output = path;
  o.quiet = true;
  synth::write_synthetic_model(o);
  auto f = GgufFile::open(path);
  ThreadPool pool(1);
  EXPECT_THROW(load_model_stage(*f, pool, StageRange{0, 1, true}), Error);
  std::remove(path.c_str());
  o.arch = "llama";
  synth::write_synthetic_model(o);
  f = GgufFile::open(path);
  EXPECT_THROW(load_model_stage(*f, pool, StageRange{0, 99, true}), Error);
  EXPECT_THROW(load_model_stage(*f, pool, StageRange{3, 2, false}), Error);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace volga
