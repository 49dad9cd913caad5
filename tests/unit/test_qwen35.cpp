// Qwen3.5 hybrids (qwen35, qwen35moe): the recurrent state makes a
// sequence's result independent of how its tokens are batched (decode ==
// prefill == chunked prefill == interleaved with others, bit for bit), the
// state restarts with the sequence, only the attention layers take KV cache,
// prefixes are reused from state snapshots bit for bit, the scheduler's continuous batching,
// preemption and cancellation stay exact, and hostile metadata is refused
// with the key named. Agreement with the float64 reference is tested in
// tests/e2e/test_reference.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "format/gguf.h"
#include "model/model.h"
#include "runtime/scheduler.h"
#include "synth_model.h"
#include "util/error.h"

namespace volga {
namespace {

std::string temp_path(const std::string& tag) {
  return ::testing::TempDir() + "volga_q35_" + tag + "_" + std::to_string(::getpid()) + ".gguf";
}

void write_synth(const std::string& arch, const std::string& path, int64_t n_layer = 0) {
  synth::SynthOptions o;
  o.arch = arch;
  o.type = "q8_0";
  o.output = path;
  o.quiet = true;
  o.n_layer = n_layer;
  synth::write_synthetic_model(o);
}

class Qwen35Test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = temp_path(GetParam());
    write_synth(GetParam(), path_);
    file_ = GgufFile::open(path_);
    model_ = load_model(*file_, pool_);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // All logits of `ids` as sequence `seq` of a fresh cache, fed `chunk` tokens per pass.
  std::vector<float> run(const std::vector<int32_t>& ids, size_t chunk, int seq = 0) {
    KvCache cache(model_->spec(), seq + 1, 128);
    std::vector<float> out;
    for (size_t i = 0; i < ids.size(); i += chunk) {
      Batch b;
      for (size_t j = i; j < std::min(ids.size(), i + chunk); ++j) b.add(ids[j], static_cast<int32_t>(j), seq, true);
      Logits l = model_->forward(b, cache);
      out.insert(out.end(), l.data.begin(), l.data.end());
    }
    return out;
  }

  std::string path_;
  ThreadPool pool_{2};
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Model> model_;
};

const std::vector<int32_t> kIds = {5, 17, 300, 2, 99, 45, 3, 3, 12, 400, 61};

TEST_P(Qwen35Test, DecodeAndChunkedPrefillEqualWholePrefillBitForBit) {
  const std::vector<float> whole = run(kIds, kIds.size());
  EXPECT_EQ(run(kIds, 1), whole);  // decode, one token per pass
  EXPECT_EQ(run(kIds, 4), whole);  // chunked prefill
  EXPECT_EQ(run(kIds, kIds.size(), 2), whole);  // another sequence slot
}

TEST_P(Qwen35Test, InterleavedSequencesEqualEachAloneBitForBit) {
  const std::vector<int32_t> a = kIds, b = {400, 3, 3, 12, 7};
  const std::vector<float> la = run(a, a.size()), lb = run(b, b.size());
  KvCache cache(model_->spec(), 3, 64);
  Batch batch;  // sequence 2 gets a, sequence 0 gets b, interleaved
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < a.size()) batch.add(a[i], static_cast<int32_t>(i), 2, true);
    if (i < b.size()) batch.add(b[i], static_cast<int32_t>(i), 0, true);
  }
  Logits l = model_->forward(batch, cache);
  const int64_t V = l.n_vocab;
  for (int64_t r = 0; r < l.rows(); ++r) {
    const BatchToken& t = batch.tokens[static_cast<size_t>(l.batch_index[static_cast<size_t>(r)])];
    const std::vector<float>& alone = t.seq == 2 ? la : lb;
    for (int64_t v = 0; v < V; ++v)
      ASSERT_EQ(l.row(r)[v], alone[static_cast<size_t>(t.pos * V + v)]) << "seq " << t.seq << " pos " << t.pos;
  }
}

TEST_P(Qwen35Test, StateRestartsWithTheSequenceAndCannotRewind) {
  const std::vector<float> alone = run({7, 8, 9}, 3);
  KvCache cache(model_->spec(), 1, 64);
  Batch b;
  for (int i = 0; i < 5; ++i) b.add(100 + i, i, 0, false);
  model_->forward(b, cache);
  // A recurrent state holds all five tokens: going back to 3 starts over.
  EXPECT_EQ(cache.truncate(0, 3), 0);
  EXPECT_EQ(cache.length(0), 0);
  Batch c;
  for (int i = 0; i < 3; ++i) c.add(7 + i, i, 0, true);
  EXPECT_EQ(model_->forward(c, cache).data, alone);
  EXPECT_EQ(cache.truncate(0, 3), 3);  // keeping every position keeps the state
}

TEST_P(Qwen35Test, OnlyAttentionLayersTakeKvCache) {
  const ModelSpec& s = model_->spec();
  // The tiny preset: 4 layers, full attention in every 4th, 2 KV heads of 64.
  EXPECT_EQ(s.n_layer, 4);
  EXPECT_TRUE(s.is_recurrent_layer(0) && s.is_recurrent_layer(1) && s.is_recurrent_layer(2));
  EXPECT_FALSE(s.is_recurrent_layer(3));
  EXPECT_EQ(KvCache::block_bytes_for(s, DType::F32, DType::F32), 1 * KvCache::kBlockTokens * (2 * 64 * 2) * 4);
  KvCache cache(s, 2, 128);
  EXPECT_TRUE(cache.has_recurrent_state());
}

// The last logits of `ids` computed from a prefix restored by attach_prefix
// in slot 1 of `cache`; `reused` receives the positions taken.
std::vector<float> resume(Model& model, KvCache& cache, const std::vector<int32_t>& ids, int& reused) {
  const int n = static_cast<int>(ids.size());
  reused = cache.attach_prefix(1, ids.data(), n, n - 1);
  Batch b;
  for (int i = reused; i < n; ++i) b.add(ids[static_cast<size_t>(i)], i, 1, i + 1 == n);
  return model.forward(b, cache).data;
}

TEST_P(Qwen35Test, PrefixSnapshotsRestoreTheStateBitForBit) {
  std::vector<int32_t> ids;
  for (int i = 0; i < 70; ++i) ids.push_back((i * 37) % 500 + 1);
  std::vector<int32_t> other = ids;
  other[40] = 7;  // shares only the first block with ids
  const std::vector<float> cold = run(ids, ids.size()), cold_other = run(other, other.size());
  const size_t V = static_cast<size_t>(model_->spec().n_vocab);
  const std::vector<float> last(cold.end() - static_cast<std::ptrdiff_t>(V), cold.end());
  const std::vector<float> last_other(cold_other.end() - static_cast<std::ptrdiff_t>(V), cold_other.end());
  {  // one batch of 70 tokens: one snapshot, at 64 (the last boundary before the last token)
    KvCache cache(model_->spec(), 2, 128);
    Batch b;
    for (int i = 0; i < 70; ++i) b.add(ids[static_cast<size_t>(i)], i, 0, false);
    model_->forward(b, cache);
    EXPECT_EQ(cache.n_snapshots(), 1);
    EXPECT_EQ(cache.cached_prefix(ids.data(), 70, 69), 64);
    EXPECT_EQ(cache.cached_prefix(other.data(), 70, 69), 0);  // no snapshot at 32
    int reused = 0;
    EXPECT_EQ(resume(*model_, cache, ids, reused), last);
    EXPECT_EQ(reused, 64);
    // Going back inside the sequence stops at the snapshot, and continues exactly.
    EXPECT_EQ(cache.truncate(0, 69), 64);
    Batch again;
    for (int i = 64; i < 70; ++i) again.add(ids[static_cast<size_t>(i)], i, 0, i == 69);
    EXPECT_EQ(model_->forward(again, cache).data, last);
    EXPECT_EQ(cache.truncate(0, 50), 0);  // no snapshot at 32
  }
  {  // one token per pass: snapshots at 32 and 64
    KvCache cache(model_->spec(), 2, 128);
    for (int i = 0; i < 70; ++i) {
      Batch b;
      b.add(ids[static_cast<size_t>(i)], i, 0, false);
      model_->forward(b, cache);
    }
    EXPECT_EQ(cache.n_snapshots(), 2);
    int reused = 0;
    EXPECT_EQ(resume(*model_, cache, other, reused), last_other);
    EXPECT_EQ(reused, 32);
  }
  {  // bounded: the least recently used goes first; none kept when the bound is 0
    KvCacheOptions o;
    o.n_seq = 2;
    o.n_ctx = 128;
    o.type_k = o.type_v = DType::F32;
    o.n_snapshots = 1;
    KvCache one(model_->spec(), o);
    o.n_snapshots = 0;
    KvCache none(model_->spec(), o);
    for (int i = 0; i < 70; ++i) {
      Batch b;
      b.add(ids[static_cast<size_t>(i)], i, 0, false);
      model_->forward(b, one);
      model_->forward(b, none);
    }
    EXPECT_EQ(one.n_snapshots(), 1);
    EXPECT_EQ(one.cached_prefix(ids.data(), 70, 69), 64);
    EXPECT_EQ(one.cached_prefix(other.data(), 70, 69), 0);
    EXPECT_EQ(none.n_snapshots(), 0);
    EXPECT_EQ(none.cached_prefix(ids.data(), 70, 69), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, Qwen35Test, ::testing::Values("qwen35", "qwen35moe"));

// ------------------------------------------------------------- scheduler

struct Output {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
};

class Qwen35SchedulerTest : public Qwen35Test {
 protected:
  std::unique_ptr<Scheduler> make(int n_slots, int64_t kv_blocks = 0) {
    SchedulerOptions o;
    o.n_slots = n_slots;
    o.n_ctx = 160;
    o.step_tokens = 24;  // prompts are split into chunks at different places
    o.kv_blocks = kv_blocks;
    return std::make_unique<Scheduler>(*model_, o);
  }
  static GenerationRequest request(const std::vector<int32_t>& prompt, int max_tokens) {
    GenerationRequest r;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.sampling.temperature = 1.0f;  // sampled, seeded: a changed logit would show
    r.sampling.seed = 7;
    r.top_logprobs = 4;
    return r;
  }
  static Output collect(RequestHandle& h) {
    Output out;
    TokenEvent ev;
    while (true) {
      if (!h.next(ev, 60000)) {
        ADD_FAILURE() << "no event within a minute";
        break;
      }
      if (ev.kind == TokenEvent::Kind::Error) ADD_FAILURE() << ev.error;
      if (ev.kind != TokenEvent::Kind::Token) break;
      out.ids.push_back(ev.id);
      out.logprobs.push_back(ev.logprob);
      for (auto& [id, lp] : ev.top) out.logprobs.push_back(lp);
    }
    return out;
  }
  Output cold(const std::vector<int32_t>& prompt, int n) { return collect(*make(1)->submit(request(prompt, n))); }
  static void expect_same(const Output& a, const Output& b) {
    EXPECT_EQ(a.ids, b.ids);
    EXPECT_EQ(a.logprobs, b.logprobs);
  }
};

std::vector<int32_t> seq(int32_t from, int n) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back((from + 37 * i) % 500 + 1);
  return v;
}

TEST_P(Qwen35SchedulerTest, ConcurrentStreamsEqualTheirSoloRuns) {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(seq(13 * i + 1, 10 + 9 * i));
  std::vector<Output> solo;  // first: two engines must not share the model and its thread pool
  for (auto& p : prompts) solo.push_back(cold(p, 10));
  auto s = make(6);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (auto& p : prompts) handles.push_back(s->submit(request(p, 10)));
  for (size_t i = 0; i < handles.size(); ++i) expect_same(collect(*handles[i]), solo[i]);
}

TEST_P(Qwen35SchedulerTest, SharedPrefixIsReusedExactly) {
  std::vector<int32_t> p1 = seq(3, 70), p2 = p1;
  p1.push_back(9);
  p2.push_back(11);
  const Output expected = cold(p2, 6), expected_again = cold(p1, 4);
  auto s = make(1);
  collect(*s->submit(request(p1, 4)));
  // Chunks of 24: snapshots at 32 and 64; p2 shares 70 tokens, 64 of them in whole blocks.
  expect_same(collect(*s->submit(request(p2, 6))), expected);
  EXPECT_EQ(s->stats().prefix_hit_tokens, 64);
  expect_same(collect(*s->submit(request(p1, 4))), expected_again);  // the same prompt again
  EXPECT_EQ(s->stats().prefix_hit_tokens, 128);
}

TEST_P(Qwen35SchedulerTest, PreemptedSequencesContinueExactly) {
  const std::vector<std::vector<int32_t>> prompts = {seq(11, 40), seq(22, 37), seq(33, 45)};
  std::vector<Output> solo;
  for (auto& p : prompts) solo.push_back(cold(p, 40));
  auto s = make(3, 7);  // each request needs 3 blocks at its end, 9 together
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (auto& p : prompts) handles.push_back(s->submit(request(p, 40)));
  for (size_t i = 0; i < handles.size(); ++i) expect_same(collect(*handles[i]), solo[i]);
  EXPECT_GT(s->stats().preemptions, 0);
}

TEST_P(Qwen35SchedulerTest, CancelledRequestLeavesItsSlotClean) {
  const std::vector<int32_t> p1 = seq(9, 40), p2 = seq(19, 30);
  const Output expected = cold(p2, 6);
  auto s = make(1);
  auto h = s->submit(request(p1, 90));
  TokenEvent ev;
  ASSERT_TRUE(h->next(ev, 60000));  // decoding has started
  h->cancel();
  while (ev.kind == TokenEvent::Kind::Token && h->next(ev, 200)) {
  }
  expect_same(collect(*s->submit(request(p2, 6))), expected);  // same slot, fresh state
  for (int i = 0; i < 100 && s->stats().blocks_used != 0; ++i) ::usleep(10000);
  EXPECT_EQ(s->stats().blocks_used, 0);
}

INSTANTIATE_TEST_SUITE_P(Archs, Qwen35SchedulerTest, ::testing::Values("qwen35", "qwen35moe"));

// ------------------------------------------------------- refused models

// The tiny qwen35 file with one metadata value replaced (or removed) or one tensor dropped.
std::string load_error(const std::string& key, const GgufValue* value, const std::string& drop = "",
                       const std::string& arch = "qwen35") {
  const std::string path = temp_path("variant");
  write_synth(arch, path);
  auto f = GgufFile::open(path);
  GgufWriter w;
  for (const auto& [k, v] : f->metadata())
    if (k != key || value) w.set(k, k == key ? *value : v);
  if (value && !f->find(key)) w.set(key, *value);
  for (const auto& t : f->tensors()) {
    if (t.name == drop) continue;
    w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                 std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  }
  std::remove(path.c_str());
  const std::vector<uint8_t> bytes = w.to_bytes();
  ThreadPool pool(1);
  try {
    auto g = GgufFile::parse(bytes.data(), bytes.size(), "m.gguf");
    load_model(*g, pool);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string with_u32(const std::string& key, uint32_t v, const std::string& arch = "qwen35") {
  const GgufValue value = GgufValue::make_u32(v);
  return load_error(arch + "." + key, &value, "", arch);
}

std::string with_sections(std::vector<int32_t> sections) {
  std::vector<GgufValue> a;
  for (int32_t s : sections) a.push_back(GgufValue::make_i32(s));
  const GgufValue value = GgufValue::make_array(GgufType::INT32, a);
  return load_error("qwen35.rope.dimension_sections", &value);
}

#define EXPECT_MENTIONS(msg, needle) EXPECT_NE((msg).find(needle), std::string::npos) << (msg)

TEST(Qwen35Load, UnmodifiedFilesLoad) {
  EXPECT_EQ(with_u32("ssm.conv_kernel", 4), "");
  EXPECT_EQ(with_u32("ssm.conv_kernel", 4, "qwen35moe"), "");
}

TEST(Qwen35Load, HostileDeltaNetSizesAreRefusedNamingTheKey) {
  EXPECT_MENTIONS(with_u32("ssm.state_size", 0), "qwen35.ssm.state_size");
  EXPECT_MENTIONS(with_u32("ssm.group_count", 0), "qwen35.ssm.group_count");
  EXPECT_MENTIONS(with_u32("ssm.time_step_rank", 3), "qwen35.ssm.time_step_rank");  // not a multiple of 2 key heads
  EXPECT_MENTIONS(with_u32("ssm.inner_size", 100), "qwen35.ssm.inner_size");
  EXPECT_MENTIONS(with_u32("ssm.conv_kernel", 0), "qwen35.ssm.conv_kernel");
  EXPECT_MENTIONS(with_u32("ssm.conv_kernel", 100000), "qwen35.ssm.conv_kernel");
  EXPECT_MENTIONS(with_u32("full_attention_interval", 0), "qwen35.full_attention_interval");
  EXPECT_MENTIONS(with_u32("full_attention_interval", 9), "qwen35.full_attention_interval");
  EXPECT_MENTIONS(with_u32("attention.value_length", 32), "value_length");
  EXPECT_MENTIONS(with_u32("expert_shared_feed_forward_length", 0, "qwen35moe"), "expert_shared_feed_forward_length");
  EXPECT_MENTIONS(load_error("qwen35.ssm.state_size", nullptr), "qwen35.ssm.state_size");  // missing
  // Sizes that pass the checks but disagree with the tensors: the tensor is named.
  EXPECT_MENTIONS(with_u32("ssm.group_count", 4), "has shape");
}

TEST(Qwen35Load, RopeSectionsMustCoverTheRotatedPairs) {
  EXPECT_EQ(with_sections({3, 3, 2, 0}), "");  // 8 pairs = rope.dimension_count 16 / 2
  EXPECT_MENTIONS(with_sections({3, 3, 3, 0}), "rope.dimension_sections");
  EXPECT_MENTIONS(with_sections({-1, 3, 6, 0}), "rope.dimension_sections");
  EXPECT_MENTIONS(with_sections({}), "rope.dimension_sections");
  EXPECT_MENTIONS(load_error("qwen35.rope.dimension_sections", nullptr), "rope.dimension_sections");
}

TEST(Qwen35Load, MissingTensorsAreNamed) {
  EXPECT_MENTIONS(load_error("", nullptr, "blk.0.ssm_a"), "missing tensor 'blk.0.ssm_a'");
  EXPECT_MENTIONS(load_error("", nullptr, "blk.2.ssm_conv1d.weight"), "missing tensor 'blk.2.ssm_conv1d.weight'");
  EXPECT_MENTIONS(load_error("", nullptr, "blk.3.attn_q_norm.weight"), "missing tensor 'blk.3.attn_q_norm.weight'");
  EXPECT_MENTIONS(load_error("", nullptr, "blk.1.post_attention_norm.weight"),
                  "missing tensor 'blk.1.post_attention_norm.weight'");
  EXPECT_MENTIONS(load_error("", nullptr, "blk.0.ffn_gate_inp_shexp.weight", "qwen35moe"),
                  "missing tensor 'blk.0.ffn_gate_inp_shexp.weight'");
}

// Multi-token-prediction layers after the decoder stack are not run: a file
// of 5 layers whose last is declared nextn gives the 4-layer model's logits.
TEST(Qwen35Load, NextnLayersAreSkipped) {
  const std::string p4 = temp_path("l4"), p5 = temp_path("l5");
  write_synth("qwen35", p4);
  write_synth("qwen35", p5, 5);
  auto f5 = GgufFile::open(p5);
  GgufWriter w;
  for (const auto& [k, v] : f5->metadata()) w.set(k, v);
  w.set_u32("qwen35.nextn_predict_layers", 1);
  for (const auto& t : f5->tensors())
    w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                 std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  const std::vector<uint8_t> bytes = w.to_bytes();
  ThreadPool pool(1);
  auto g5 = GgufFile::parse(bytes.data(), bytes.size(), "m5.gguf");
  auto f4 = GgufFile::open(p4);
  auto m5 = load_model(*g5, pool);
  auto m4 = load_model(*f4, pool);
  EXPECT_EQ(m5->spec().n_layer, 4);
  auto logits = [](Model& m) {
    KvCache cache(m.spec(), 1, 16);
    Batch b;
    for (int i = 0; i < 6; ++i) b.add(10 + i, i, 0, true);
    return m.forward(b, cache).data;
  };
  EXPECT_EQ(logits(*m5), logits(*m4));
  std::remove(p4.c_str());
  std::remove(p5.c_str());
}

}  // namespace
}  // namespace volga
