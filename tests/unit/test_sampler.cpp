#include <gtest/gtest.h>

#include <cmath>

#include "sampling/sampler.h"
#include "util/error.h"

namespace volga {
namespace {

SamplingParams plain(float temperature, uint64_t seed = 1) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

TEST(Sampler, GreedyPicksArgmaxFirstOnTies) {
  Sampler s(plain(0));
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.sample(l.data(), 4), 1);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferent) {
  std::vector<float> l(50);
  for (int i = 0; i < 50; ++i) l[static_cast<size_t>(i)] = std::sin(static_cast<float>(i));
  auto draw = [&](uint64_t seed) {
    Sampler s(plain(1.0f, seed));
    std::vector<int32_t> out;
    for (int i = 0; i < 40; ++i) out.push_back(s.sample(l.data(), 50));
    return out;
  };
  EXPECT_EQ(draw(5), draw(5));
  EXPECT_NE(draw(5), draw(6));
}

TEST(Sampler, FrequenciesFollowSoftmaxAtTemperature) {
  std::vector<float> l = {0.0f, 1.0f, 2.0f};
  for (float temp : {1.0f, 0.5f}) {
    Sampler s(plain(temp, 3));
    int counts[3] = {};
    const int n = 30000;
    for (int i = 0; i < n; ++i) ++counts[s.sample(l.data(), 3)];
    double z = 0;
    for (float x : l) z += std::exp(x / temp);
    for (int k = 0; k < 3; ++k)
      EXPECT_NEAR(counts[k] / double(n), std::exp(l[static_cast<size_t>(k)] / temp) / z, 0.015) << temp << " " << k;
  }
}

TEST(Sampler, TopKTopPMinPRestrictTheCandidates) {
  std::vector<float> l = {3.0f, 2.9f, 0.0f, -1.0f, 2.8f};
  {
    SamplingParams p = plain(5.0f);
    p.top_k = 2;
    Sampler s(p);
    for (int i = 0; i < 500; ++i) {
      int32_t t = s.sample(l.data(), 5);
      ASSERT_TRUE(t == 0 || t == 1) << t;
    }
  }
  {
    SamplingParams p = plain(5.0f);
    p.top_p = 0.01f;  // only the most likely token survives
    Sampler s(p);
    for (int i = 0; i < 200; ++i) ASSERT_EQ(s.sample(l.data(), 5), 0);
  }
  {
    SamplingParams p = plain(5.0f);
    p.min_p = 0.5f;  // p(x) >= 0.5 p(top): tokens 0, 1, 4 only
    Sampler s(p);
    for (int i = 0; i < 500; ++i) {
      int32_t t = s.sample(l.data(), 5);
      ASSERT_TRUE(t == 0 || t == 1 || t == 4) << t;
    }
  }
}

TEST(Sampler, RepetitionPenaltyDemotesSeenTokens) {
  SamplingParams p = plain(0);
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> l = {1.0f, 1.5f, -1.0f};
  EXPECT_EQ(s.sample(l.data(), 3), 1);
  s.accept(1);  // 1.5 -> 0.75 < 1.0
  EXPECT_EQ(s.sample(l.data(), 3), 0);
}

TEST(Sampler, RejectsBadParameters) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_THROW(p.validate(), Error);
  p = SamplingParams{};
  p.top_p = 0;
  EXPECT_THROW(p.validate(), Error);
  p = SamplingParams{};
  p.min_p = 2;
  EXPECT_THROW(Sampler{p}, Error);
}

}  // namespace
}  // namespace volga
