// Scheduler: prefix reuse across requests is exact (same tokens and
// log-probabilities as a cold engine), picks the slot with the longest common
// prefix, and stays consistent after a cancelled request.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

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

class SchedulerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "volga_sched_" + GetParam() + "_" + std::to_string(::getpid()) + ".gguf";
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

  // Small step budget, so prompts are split into chunks at different places
  // in cold and warm runs.
  std::unique_ptr<Scheduler> make(int n_slots) {
    SchedulerOptions o;
    o.n_slots = n_slots;
    o.n_ctx = 128;
    o.step_tokens = 8;
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
    auto h = s.submit(request(prompt, max_tokens));
    Output out;
    TokenEvent ev;
    while (true) {
      if (!h->next(ev, 60000)) ADD_FAILURE() << "no event within a minute";
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

TEST_P(SchedulerTest, ReusedPrefixGivesTheColdResultExactly) {
  const std::vector<int32_t> system = seq(3, 21);
  const std::vector<int32_t> p1 = concat(system, seq(100, 5)), p2 = concat(system, seq(200, 7));
  const Output expected = cold(p2, 6);
  auto s = make(1);
  run(*s, p1, 4);
  const Output warm = run(*s, p2, 6);
  expect_same(warm, expected);
  const SchedulerStats st = s->stats();
  EXPECT_EQ(st.prefix_lookups, 2);
  EXPECT_EQ(st.prefix_hit_tokens, static_cast<int64_t>(system.size()));
  // The same prompt again: all but its last token come from the cache.
  expect_same(run(*s, p2, 6), expected);
  EXPECT_EQ(s->stats().prefix_hit_tokens, static_cast<int64_t>(system.size() + p2.size() - 1));
}

TEST_P(SchedulerTest, NextTurnReusesGeneratedTokens) {
  // A chat's next turn: the previous prompt, the reply, a new message. The
  // reply's keys/values were computed one token at a time while decoding.
  const std::vector<int32_t> p1 = seq(5, 12);
  auto s = make(1);
  const Output reply = run(*s, p1, 6);
  const std::vector<int32_t> p2 = concat(concat(p1, reply.ids), seq(300, 4));
  const Output warm = run(*s, p2, 5);
  expect_same(warm, cold(p2, 5));
  // The last reply token was sampled but never fed back: it is recomputed.
  EXPECT_EQ(s->stats().prefix_hit_tokens, static_cast<int64_t>(p1.size() + reply.ids.size() - 1));
}

TEST_P(SchedulerTest, PicksTheSlotWithTheLongestCommonPrefix) {
  const std::vector<int32_t> a = seq(1, 10), b = seq(50, 16);
  auto s = make(2);
  // Two at once so that each takes its own slot.
  auto ha = s->submit(request(a, 2)), hb = s->submit(request(b, 2));
  for (auto* h : {&ha, &hb}) {
    TokenEvent ev;
    do ASSERT_TRUE((*h)->next(ev, 60000));
    while (ev.kind == TokenEvent::Kind::Token);
  }
  const int64_t before = s->stats().prefix_hit_tokens;
  const std::vector<int32_t> p = concat(std::vector<int32_t>(b.begin(), b.begin() + 12), seq(400, 3));
  expect_same(run(*s, p, 3), cold(p, 3));
  EXPECT_EQ(s->stats().prefix_hit_tokens - before, 12);
  // `a`'s slot was left alone: its whole prompt but the last token is still there.
  run(*s, a, 2);
  EXPECT_EQ(s->stats().prefix_hit_tokens - before, 12 + static_cast<int64_t>(a.size()) - 1);
}

TEST_P(SchedulerTest, CancelledRequestLeavesAConsistentCache) {
  const std::vector<int32_t> p1 = seq(9, 30);
  auto s = make(1);
  auto h = s->submit(request(p1, 90));
  TokenEvent ev;
  ASSERT_TRUE(h->next(ev, 60000));  // decoding has started
  h->cancel();
  while (ev.kind == TokenEvent::Kind::Token && h->next(ev, 200)) {
  }
  const std::vector<int32_t> p2 = concat(std::vector<int32_t>(p1.begin(), p1.begin() + 25), seq(77, 6));
  expect_same(run(*s, p2, 6), cold(p2, 6));
  EXPECT_EQ(s->stats().prefix_hit_tokens, 25);
  EXPECT_LE(s->stats().cached_tokens, 128);
}

INSTANTIATE_TEST_SUITE_P(Archs, SchedulerTest, ::testing::Values("qwen3", "deepseek2"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace volga
