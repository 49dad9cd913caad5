// Scheduler over the paged KV cache, for every architecture family and cache
// type: prefix reuse across requests and slots is exact (same tokens and
// log-probabilities as a cold engine), preempted sequences continue exactly,
// concurrent streams equal their solo runs, and the pool's limits are kept.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <tuple>

#include "format/gguf.h"
#include "model/model.h"
#include "runtime/scheduler.h"
#include "synth_model.h"

namespace volga {
namespace {

struct Output {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;  // chosen token, then the top 4 alternatives, per token
};

using Param = std::tuple<std::string, DType>;  // architecture, KV cache type

class SchedulerTest : public ::testing::TestWithParam<Param> {
 protected:
  static std::string arch() { return std::get<0>(GetParam()); }
  static DType type() { return std::get<1>(GetParam()); }
  void SetUp() override {
    path_ = ::testing::TempDir() + "volga_sched_" + arch() + "_" + dtype_name(type()) + "_" +
            std::to_string(::getpid()) + ".gguf";
    synth::SynthOptions o;
    o.arch = arch();
    o.type = "q8_0";
    o.output = path_;
    o.quiet = true;
    synth::write_synthetic_model(o);
    file_ = GgufFile::open(path_);
    model_ = load_model(*file_, pool_);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // Small step budget, so prompts are split into chunks at different places
  // in cold and warm runs.
  std::unique_ptr<Scheduler> make(int n_slots, int64_t kv_blocks = 0) {
    SchedulerOptions o;
    o.n_slots = n_slots;
    o.n_ctx = 160;
    o.step_tokens = 24;
    o.kv_blocks = kv_blocks;
    o.type_k = o.type_v = type();
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

  static Output run(Scheduler& s, const std::vector<int32_t>& prompt, int max_tokens) {
    return collect(*s.submit(request(prompt, max_tokens)));
  }

  // A request's tokens until it ends; an error or a stall fails the test.
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

  Output cold(const std::vector<int32_t>& prompt, int max_tokens) { return run(*make(1), prompt, max_tokens); }

  static void expect_same(const Output& a, const Output& b) {
    EXPECT_EQ(a.ids, b.ids);
    ASSERT_EQ(a.logprobs.size(), b.logprobs.size());
    for (size_t i = 0; i < a.logprobs.size(); ++i) EXPECT_EQ(a.logprobs[i], b.logprobs[i]) << "at " << i;
  }

  std::string path_;
  ThreadPool pool_{2};
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Model> model_;
};

std::vector<int32_t> seq(int32_t from, int n) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back((from + 37 * i) % 500 + 1);
  return v;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

constexpr int B = KvCache::kBlockTokens;

int64_t whole_blocks(size_t n) { return static_cast<int64_t>(n) / B * B; }

TEST_P(SchedulerTest, ReusedPrefixGivesTheColdResultExactly) {
  const std::vector<int32_t> system = seq(3, 2 * B + 6);
  const std::vector<int32_t> p1 = concat(system, seq(100, 5)), p2 = concat(system, seq(200, 7));
  const Output expected = cold(p2, 6);
  auto s = make(1);
  run(*s, p1, 4);
  const Output warm = run(*s, p2, 6);
  expect_same(warm, expected);
  const SchedulerStats st = s->stats();
  EXPECT_EQ(st.prefix_lookups, 2);
  EXPECT_EQ(st.prefix_hit_tokens, 2 * B);  // whole blocks of the shared system prompt
  // The same prompt again: every whole block but the one with its last token.
  expect_same(run(*s, p2, 6), expected);
  EXPECT_EQ(s->stats().prefix_hit_tokens, 2 * B + whole_blocks(p2.size() - 1));
}

TEST_P(SchedulerTest, NextTurnReusesGeneratedTokens) {
  // A chat's next turn: the previous prompt, the reply, a new message. The
  // reply's keys/values were computed one token at a time while decoding.
  const std::vector<int32_t> p1 = seq(5, 40);
  auto s = make(1);
  const Output reply = run(*s, p1, 30);
  ASSERT_EQ(reply.ids.size(), 30u);
  const std::vector<int32_t> p2 = concat(concat(p1, reply.ids), seq(300, 4));
  const Output warm = run(*s, p2, 5);
  expect_same(warm, cold(p2, 5));
  // The last reply token was sampled but never fed back: it is not cached.
  EXPECT_EQ(s->stats().prefix_hit_tokens, whole_blocks(p1.size() + reply.ids.size() - 1));
}

TEST_P(SchedulerTest, ReusesBlocksAcrossSlots) {
  const std::vector<int32_t> a = seq(1, B + 10), b = seq(50, 2 * B + 3);
  auto s = make(2);
  // Two at once, so each runs in its own slot.
  auto ha = s->submit(request(a, 2)), hb = s->submit(request(b, 2));
  for (auto* h : {&ha, &hb}) {
    TokenEvent ev;
    do ASSERT_TRUE((*h)->next(ev, 60000));
    while (ev.kind == TokenEvent::Kind::Token);
  }
  const int64_t before = s->stats().prefix_hit_tokens;
  const std::vector<int32_t> pb = concat(std::vector<int32_t>(b.begin(), b.begin() + 2 * B + 1), seq(400, 3));
  expect_same(run(*s, pb, 3), cold(pb, 3));
  EXPECT_EQ(s->stats().prefix_hit_tokens - before, 2 * B);
  const std::vector<int32_t> pa = concat(a, seq(600, 2));
  expect_same(run(*s, pa, 3), cold(pa, 3));
  EXPECT_EQ(s->stats().prefix_hit_tokens - before, 3 * B);
}

TEST_P(SchedulerTest, CancelledRequestLeavesAConsistentCache) {
  const std::vector<int32_t> p1 = seq(9, B + 8);
  auto s = make(1);
  auto h = s->submit(request(p1, 90));
  TokenEvent ev;
  ASSERT_TRUE(h->next(ev, 60000));  // decoding has started
  h->cancel();
  while (ev.kind == TokenEvent::Kind::Token && h->next(ev, 200)) {
  }
  const std::vector<int32_t> p2 = concat(std::vector<int32_t>(p1.begin(), p1.begin() + B + 3), seq(77, 6));
  expect_same(run(*s, p2, 6), cold(p2, 6));
  EXPECT_EQ(s->stats().prefix_hit_tokens, B);
  // Nothing runs: every block is cached or free (the engine publishes its
  // counters just after the last event of a request).
  for (int i = 0; i < 100 && s->stats().blocks_used != 0; ++i) ::usleep(10000);
  EXPECT_EQ(s->stats().blocks_used, 0);
}

// Three requests that together need more blocks than the pool has: the
// newest gives its blocks back and is computed again later, and every
// request still gets exactly its solo output.
TEST_P(SchedulerTest, PreemptedSequencesContinueExactly) {
  const std::vector<std::vector<int32_t>> prompts = {seq(11, 40), seq(22, 37), seq(33, 45)};
  std::vector<Output> solo;
  for (auto& p : prompts) solo.push_back(cold(p, 40));
  auto s = make(3, 7);  // each request needs 3 blocks at its end, 9 together
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (auto& p : prompts) handles.push_back(s->submit(request(p, 40)));
  for (size_t i = 0; i < handles.size(); ++i) expect_same(collect(*handles[i]), solo[i]);
  EXPECT_GT(s->stats().preemptions, 0);
}

TEST_P(SchedulerTest, EightConcurrentStreamsEqualTheirSoloRuns) {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 8; ++i) prompts.push_back(seq(13 * i + 1, 10 + 7 * i));
  std::vector<Output> solo;  // first: two engines must not share the model and its thread pool
  for (auto& p : prompts) solo.push_back(cold(p, 12));
  auto s = make(8);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (auto& p : prompts) handles.push_back(s->submit(request(p, 12)));
  for (size_t i = 0; i < handles.size(); ++i) expect_same(collect(*handles[i]), solo[i]);
}

TEST_P(SchedulerTest, RequestLargerThanThePoolIsRefusedWithTheNumbers) {
  const Output alone = cold(seq(1, 80), 16);
  auto s = make(2, 3);  // 96 positions
  EXPECT_EQ(s->kv_capacity_tokens(), 3 * B);
  try {
    s->submit(request(seq(1, 80), 20));
    ADD_FAILURE() << "a request larger than the KV cache was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("100 tokens"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("96 positions"), std::string::npos) << e.what();
  }
  expect_same(run(*s, seq(1, 80), 16), alone);  // one that fits still runs
}

TEST_P(SchedulerTest, EngineTasksRunBetweenStepsAndLeaveGenerationsUnchanged) {
  const std::vector<int32_t> prompt = seq(5, 40);
  const Output alone = cold(prompt, 24);
  auto s = make(2);
  int ran = 0;
  s->run_on_engine([&](Model&) { ++ran; });  // idle engine: runs at once
  EXPECT_EQ(ran, 1);
  auto handle = s->submit(request(prompt, 24));
  // Model work of its own (a forward pass in a private cache) while the request generates.
  std::vector<float> first;
  for (int i = 0; i < 6; ++i) {
    s->run_on_engine([&](Model& m) {
      KvCache cache(m.spec(), 1, 64);
      Batch b;
      for (int32_t p = 0; p < 8; ++p) b.add(seq(3, 8)[static_cast<size_t>(p)], p, 0, p == 7);
      std::vector<float> logits = m.forward(b, cache).data;
      if (first.empty()) first = logits;
      EXPECT_EQ(logits, first);
      ++ran;
    });
  }
  EXPECT_EQ(ran, 7);
  expect_same(collect(*handle), alone);
  try {
    s->run_on_engine([](Model&) { throw Error("task failed on purpose"); });
    ADD_FAILURE() << "the task's exception was lost";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "task failed on purpose");
  }
  expect_same(run(*s, prompt, 24), alone);  // the engine goes on
}

// A model with forward passes in flight, as a pipeline over MPI ranks
// presents itself (Model::pipeline_depth() > 1): each pass is computed when
// submitted and returned when collected, later. It checks what the
// scheduler promises: passes in flight hold different sequences.
class InFlightModel final : public Model {
 public:
  InFlightModel(Model& inner, int depth) : inner_(inner), depth_(depth) {}
  const ModelSpec& spec() const override { return inner_.spec(); }
  Logits forward(const Batch& batch, KvCache& cache) override { return inner_.forward(batch, cache); }
  int pipeline_depth() const override { return depth_; }
  void submit(const Batch& batch, KvCache& cache) override {
    std::vector<int> seqs;
    for (const BatchToken& t : batch.tokens) seqs.push_back(t.seq);
    for (const auto& pass : passes_)
      for (int s : pass.second)
        if (std::find(seqs.begin(), seqs.end(), s) != seqs.end()) ADD_FAILURE() << "sequence " << s << " in two passes";
    passes_.emplace_back(inner_.forward(batch, cache), seqs);
    max_in_flight = std::max(max_in_flight, passes_.size());
  }
  Logits collect() override {
    Logits l = std::move(passes_.front().first);
    passes_.pop_front();
    return l;
  }
  void abandon() override { passes_.clear(); }
  size_t max_in_flight = 0;

 private:
  Model& inner_;
  int depth_;
  std::deque<std::pair<Logits, std::vector<int>>> passes_;
};

// Eight streams spread over three passes in flight: each gets its solo output.
TEST_P(SchedulerTest, PassesInFlightGiveTheSoloOutputs) {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 8; ++i) prompts.push_back(seq(13 * i + 1, 10 + 7 * i));
  std::vector<Output> solo;
  for (auto& p : prompts) solo.push_back(cold(p, 12));
  InFlightModel pipelined(*model_, 3);
  SchedulerOptions o;
  o.n_slots = 8;
  o.n_ctx = 160;
  o.step_tokens = 24;
  o.type_k = o.type_v = type();
  {
    Scheduler s(pipelined, o);
    std::vector<std::shared_ptr<RequestHandle>> handles;
    for (auto& p : prompts) handles.push_back(s.submit(request(p, 12)));
    for (size_t i = 0; i < handles.size(); ++i) expect_same(collect(*handles[i]), solo[i]);
  }
  EXPECT_GE(pipelined.max_in_flight, 2u);
  EXPECT_LE(pipelined.max_in_flight, 3u);
}

// A pool too small for three requests with passes in flight: preemption
// takes only sequences that are not in flight, and every output is exact.
TEST_P(SchedulerTest, PassesInFlightSurvivePreemption) {
  const std::vector<std::vector<int32_t>> prompts = {seq(11, 40), seq(22, 37), seq(33, 45)};
  std::vector<Output> solo;
  for (auto& p : prompts) solo.push_back(cold(p, 40));
  InFlightModel pipelined(*model_, 2);
  SchedulerOptions o;
  o.n_slots = 3;
  o.n_ctx = 160;
  o.step_tokens = 24;
  o.kv_blocks = 7;
  o.type_k = o.type_v = type();
  Scheduler s(pipelined, o);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (auto& p : prompts) handles.push_back(s.submit(request(p, 40)));
  for (size_t i = 0; i < handles.size(); ++i) expect_same(collect(*handles[i]), solo[i]);
  EXPECT_GT(s.stats().preemptions, 0);
}

INSTANTIATE_TEST_SUITE_P(Archs, SchedulerTest,
                         ::testing::Combine(::testing::Values("qwen3", "deepseek2"),
                                            ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q8_0)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + dtype_name(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace volga
