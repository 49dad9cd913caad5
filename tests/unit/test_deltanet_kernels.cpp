// The Gated DeltaNet kernels (kernels/deltanet.h) on every ISA this CPU runs:
// bit for bit equal to the scalar reference over several tokens, on sizes
// that leave every vector tail and unaligned pointers, and within float
// rounding of a float64 evaluation of the published recurrence (written
// here from the definition, not from the kernels).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernel_fixtures.h"
#include "kernels/deltanet.h"

using namespace volga;
using namespace volga::kernels;
using namespace volga::test;

namespace {

std::vector<float> random_vec(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// S = decay S + beta k (v - decay S^T k)^T, o = S^T q, in float64.
void delta_step_f64(std::vector<double>& S, const float* q, const float* k, const float* v, double decay, double beta,
                    int64_t dk, int64_t dv, std::vector<double>& o) {
  for (double& s : S) s *= decay;
  for (int64_t j = 0; j < dv; ++j) {
    double kv = 0;
    for (int64_t i = 0; i < dk; ++i) kv += k[i] * S[static_cast<size_t>(i * dv + j)];
    const double u = (v[j] - kv) * beta;
    for (int64_t i = 0; i < dk; ++i) S[static_cast<size_t>(i * dv + j)] += k[i] * u;
  }
  for (int64_t j = 0; j < dv; ++j) {
    double acc = 0;
    for (int64_t i = 0; i < dk; ++i) acc += q[i] * S[static_cast<size_t>(i * dv + j)];
    o[static_cast<size_t>(j)] = acc;
  }
}

struct Shape {
  int64_t dk, dv;
};

}  // namespace

TEST(DeltaNetKernels, DeltaStepIsBitIdenticalAcrossIsasAndFollowsFloat64) {
  const Shape shapes[] = {{128, 128}, {16, 16}, {7, 5}, {33, 37}, {64, 200}, {128, 192}};
  const int kTokens = 5;
  for (Isa isa : available_isas()) {
    const DeltaNetKernels& ref = deltanet_ref_kernels();
    const DeltaNetKernels& fast = deltanet_kernels(isa);
    for (const Shape& sh : shapes) {
      std::mt19937 rng(static_cast<uint32_t>(sh.dk * 1000 + sh.dv));
      const size_t n = static_cast<size_t>(sh.dk * sh.dv);
      std::vector<float> S0 = random_vec(n, rng, 0.5f);
      std::vector<float> s_ref = S0, s_fast(n + 1);  // unaligned copy for the fast path
      std::copy(S0.begin(), S0.end(), s_fast.begin() + 1);
      std::vector<double> s64(S0.begin(), S0.end());
      std::vector<float> scratch(static_cast<size_t>(sh.dv)), o_ref(scratch.size()), o_fast(scratch.size() + 1);
      std::vector<double> o64(scratch.size());
      for (int t = 0; t < kTokens; ++t) {
        std::vector<float> q = random_vec(static_cast<size_t>(sh.dk), rng), k = random_vec(q.size(), rng),
                           v = random_vec(static_cast<size_t>(sh.dv), rng);
        for (float& x : k) x /= std::sqrt(static_cast<float>(sh.dk));  // L2-normalised-sized keys
        const float decay = std::exp(-0.1f * static_cast<float>(t + 1)), beta = 0.3f + 0.1f * static_cast<float>(t);
        ref.delta_step(s_ref.data(), q.data(), k.data(), v.data(), decay, beta, sh.dk, sh.dv, scratch.data(),
                       o_ref.data());
        fast.delta_step(s_fast.data() + 1, q.data(), k.data(), v.data(), decay, beta, sh.dk, sh.dv, scratch.data(),
                        o_fast.data() + 1);
        delta_step_f64(s64, q.data(), k.data(), v.data(), decay, beta, sh.dk, sh.dv, o64);
        for (size_t j = 0; j < o_ref.size(); ++j) {
          ASSERT_EQ(o_ref[j], o_fast[j + 1]) << isa_name(isa) << " dk=" << sh.dk << " dv=" << sh.dv << " t=" << t;
          ASSERT_NEAR(o_ref[j], o64[j], 1e-5 * (1 + std::abs(o64[j])) * static_cast<double>(sh.dk))
              << "dk=" << sh.dk << " dv=" << sh.dv << " t=" << t << " j=" << j;
        }
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(s_ref[i], s_fast[i + 1]) << isa_name(isa) << " state, dk=" << sh.dk << " dv=" << sh.dv;
          ASSERT_NEAR(s_ref[i], s64[i], 1e-5 * (1 + std::abs(s64[i])));
        }
      }
    }
  }
}

TEST(DeltaNetKernels, ConvStepIsBitIdenticalAcrossIsasAndFollowsFloat64) {
  const int64_t channels[] = {6144, 7, 40, 77};
  const int64_t taps[] = {2, 4, 5};
  for (Isa isa : available_isas()) {
    for (int64_t C : channels)
      for (int64_t K : taps) {
        std::mt19937 rng(static_cast<uint32_t>(C * 10 + K));
        const std::vector<float> wt = random_vec(static_cast<size_t>(K * C), rng);
        const std::vector<float> h0 = random_vec(static_cast<size_t>((K - 1) * C), rng);
        std::vector<float> h_ref = h0, h_fast = h0, y_ref(static_cast<size_t>(C)), y_fast(y_ref.size() + 1);
        std::vector<std::vector<float>> inputs;  // every input so far, oldest first, for the float64 check
        for (int64_t i = 0; i < K - 1; ++i) inputs.emplace_back(h0.begin() + i * C, h0.begin() + (i + 1) * C);
        for (int t = 0; t < 4; ++t) {
          const std::vector<float> cur = random_vec(static_cast<size_t>(C), rng);
          inputs.push_back(cur);
          deltanet_ref_kernels().conv_step(wt.data(), h_ref.data(), cur.data(), C, K, y_ref.data());
          deltanet_kernels(isa).conv_step(wt.data(), h_fast.data(), cur.data(), C, K, y_fast.data() + 1);
          ASSERT_EQ(h_ref, h_fast) << isa_name(isa) << " C=" << C << " K=" << K;
          for (int64_t c = 0; c < C; ++c) {
            ASSERT_EQ(y_ref[static_cast<size_t>(c)], y_fast[static_cast<size_t>(c) + 1])
                << isa_name(isa) << " C=" << C << " K=" << K << " c=" << c;
            double want = 0;  // tap i sees the input K-1-i tokens back
            for (int64_t i = 0; i < K; ++i)
              want += static_cast<double>(wt[static_cast<size_t>(i * C + c)]) *
                      inputs[inputs.size() - static_cast<size_t>(K) + static_cast<size_t>(i)][static_cast<size_t>(c)];
            ASSERT_NEAR(y_ref[static_cast<size_t>(c)], want, 1e-5 * static_cast<double>(K));
          }
        }
      }
  }
}

TEST(DeltaNetKernels, EveryIsaHasItsOwnSet) {
  for (Isa isa : available_isas()) EXPECT_STREQ(deltanet_kernels(isa).name, isa_name(isa));
}
