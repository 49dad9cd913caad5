// Importance-weighted quantization (quantize_row with an importance vector).
//
// The measure is the one an importance matrix stands for: a row's output
// error sum_i imp[i] * (x[i] - y[i])^2, where y is what the reference
// dequantizer (checked against the format definitions in the per-type
// tests) reads back. For every type llama.cpp weights, quantizing with the
// importance must give a smaller weighted error than quantizing without it,
// on weights and importances shaped like a real model's (a few outlier
// columns with large activations); the blocks must still be valid
// (finite, dequantized the same through the row API), and a power-of-two
// factor on the importance must not change a single byte (only relative
// importance matters).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tensor/quant.h"
#include "tensor/type_traits.h"

namespace volga {
namespace {

constexpr int64_t kCols = 1024;
constexpr int64_t kRows = 6;

struct Data {
  std::vector<float> x;    // kRows x kCols weights
  std::vector<float> imp;  // kCols column importances
};

// Gaussian weights with a heavier tail; importances log-normal (spanning a
// few orders of magnitude, as mean squared activations do) with a few much
// larger outlier columns.
Data make_data(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  Data d;
  d.x.resize(static_cast<size_t>(kRows * kCols));
  for (float& v : d.x) v = 0.02f * normal(rng) * (unit(rng) < 0.02f ? 4.0f : 1.0f);
  d.imp.resize(static_cast<size_t>(kCols));
  for (float& v : d.imp) v = std::exp(1.5f * normal(rng)) * (unit(rng) < 0.01f ? 100.0f : 1.0f);
  return d;
}

std::vector<uint8_t> quantize(DType t, const Data& d, const float* imp) {
  const int64_t rb = row_bytes(t, kCols);
  std::vector<uint8_t> q(static_cast<size_t>(rb * kRows));
  for (int64_t r = 0; r < kRows; ++r) quantize_row(t, d.x.data() + r * kCols, q.data() + r * rb, kCols, imp);
  return q;
}

// sum over rows and columns of imp * err^2 (weights = null: plain squared error).
double weighted_error(DType t, const Data& d, const std::vector<uint8_t>& q, const float* weights) {
  const int64_t rb = row_bytes(t, kCols);
  std::vector<float> y(static_cast<size_t>(kCols));
  double err = 0;
  for (int64_t r = 0; r < kRows; ++r) {
    dequantize_row(t, q.data() + r * rb, y.data(), kCols);
    for (int64_t c = 0; c < kCols; ++c) {
      const double e = static_cast<double>(d.x[static_cast<size_t>(r * kCols + c)]) - y[static_cast<size_t>(c)];
      EXPECT_TRUE(std::isfinite(y[static_cast<size_t>(c)])) << dtype_name(t);
      err += (weights ? weights[c] : 1.0) * e * e;
    }
  }
  return err;
}

class ImportanceWeighted : public ::testing::TestWithParam<DType> {};

TEST_P(ImportanceWeighted, LowersTheImportanceWeightedError) {
  const DType t = GetParam();
  for (uint32_t seed : {1u, 2u, 3u}) {
    const Data d = make_data(seed);
    const double plain = weighted_error(t, d, quantize(t, d, nullptr), d.imp.data());
    const double weighted = weighted_error(t, d, quantize(t, d, d.imp.data()), d.imp.data());
    EXPECT_LT(weighted, 0.97 * plain) << dtype_name(t) << " seed " << seed << ": weighted " << weighted
                                       << ", plain " << plain;
  }
}

TEST_P(ImportanceWeighted, OnlyRelativeImportanceMatters) {
  const DType t = GetParam();
  const Data d = make_data(7);
  std::vector<float> scaled(d.imp);
  for (float& v : scaled) v *= 4.0f;
  EXPECT_EQ(quantize(t, d, d.imp.data()), quantize(t, d, scaled.data())) << dtype_name(t);
}

// Equal importance everywhere still quantizes well: the plain squared error
// stays near the unweighted quantizer's.
TEST_P(ImportanceWeighted, UniformImportanceKeepsThePlainError) {
  const DType t = GetParam();
  const Data d = make_data(9);
  const std::vector<float> ones(static_cast<size_t>(kCols), 1.0f);
  const double plain = weighted_error(t, d, quantize(t, d, nullptr), nullptr);
  const double uniform = weighted_error(t, d, quantize(t, d, ones.data()), nullptr);
  EXPECT_LT(uniform, 1.15 * plain) << dtype_name(t);
}

// Columns no calibration token reached have zero importance: a block of
// them is quantized as with equal importance, not zeroed.
TEST_P(ImportanceWeighted, AllZeroImportanceCountsAsUniform) {
  const DType t = GetParam();
  const Data d = make_data(11);
  const std::vector<float> zeros(static_cast<size_t>(kCols), 0.0f), ones(static_cast<size_t>(kCols), 1.0f);
  const std::vector<uint8_t> q = quantize(t, d, zeros.data());
  EXPECT_EQ(q, quantize(t, d, ones.data())) << dtype_name(t);
  EXPECT_LT(weighted_error(t, d, q, nullptr), 1.15 * weighted_error(t, d, quantize(t, d, nullptr), nullptr));
}

INSTANTIATE_TEST_SUITE_P(Types, ImportanceWeighted,
                         ::testing::Values(DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K,
                                           DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL,
                                           DType::IQ4_XS, DType::IQ3_S, DType::IQ3_XXS, DType::IQ2_S, DType::IQ2_XS,
                                           DType::IQ2_XXS, DType::IQ1_M, DType::IQ1_S),
                         [](const ::testing::TestParamInfo<DType>& i) { return std::string(dtype_name(i.param)); });

// Types llama.cpp does not weight ignore the importance.
TEST(ImportanceWeighted, FloatAndQ8_0IgnoreIt) {
  const Data d = make_data(5);
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0})
    EXPECT_EQ(quantize(t, d, nullptr), quantize(t, d, d.imp.data())) << dtype_name(t);
}

}  // namespace
}  // namespace volga
