#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tensor/blocks.h"
#include "tensor/half.h"
#include "tensor/quant.h"
#include "util/error.h"

namespace volga {
namespace {

TEST(Half, KnownFp16Values) {
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7C00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
  EXPECT_EQ(std::signbit(fp16_to_fp32(0x8000)), true);
}

TEST(Half, Fp32ToFp16RoundsToNearestEven) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie -> even
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // overflows to inf
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -26)), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  // Every half value survives a round trip exactly.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue;  // NaN payloads
    ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(Half, Bf16) {
  EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0xC040), -3.0f);
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F808000)), 0x3F80);  // tie -> even
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F818000)), 0x3F82);  // tie -> even (up)
}

// ----------------------------------------------------- known blocks, by hand

TEST(Dequantize, KnownQ8_0Block) {
  BlockQ8_0 b{};
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
  float y[32];
  dequantize_q8_0_ref(&b, y, 32);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[31], 60.0f);
}

TEST(Dequantize, KnownQ4_0Block) {
  BlockQ4_0 b{};
  b.d = 0x4000;  // 2.0
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  dequantize_q4_0_ref(&b, y, 32);
  EXPECT_EQ(y[0], -16.0f);   // 2 * (0 - 8)
  EXPECT_EQ(y[15], 14.0f);   // 2 * (15 - 8)
  EXPECT_EQ(y[16], 14.0f);   // high nibble of qs[0] = 15
  EXPECT_EQ(y[31], -16.0f);  // high nibble of qs[15] = 0
}

TEST(Dequantize, KnownQ4_1Q5_0Q5_1Blocks) {
  BlockQ4_1 a{};
  a.d = 0x3800;  // 0.5
  a.m = 0xBC00;  // -1.0
  for (int j = 0; j < 16; ++j) a.qs[j] = static_cast<uint8_t>(j | (15 << 4));
  float y[32];
  dequantize_q4_1_ref(&a, y, 32);
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[3], 0.5f);   // 0.5 * 3 - 1
  EXPECT_EQ(y[16], 6.5f);  // 0.5 * 15 - 1

  BlockQ5_0 b{};
  b.d = 0x4000;  // 2.0
  for (int j = 0; j < 16; ++j) b.qs[j] = 0x00;
  b.qh[0] = 0x01;  // element 0 gets bit 4 -> q = 16 -> 0
  b.qh[2] = 0x02;  // bit 17: element 17 -> q = 16 -> 0
  dequantize_q5_0_ref(&b, y, 32);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], -32.0f);  // 2 * (0 - 16)
  EXPECT_EQ(y[16], -32.0f);
  EXPECT_EQ(y[17], 0.0f);

  BlockQ5_1 c{};
  c.d = 0x3C00;  // 1.0
  c.m = 0x4000;  // 2.0
  for (int j = 0; j < 16; ++j) c.qs[j] = 0xF1;
  c.qh[3] = 0x80;  // bit 31: element 31 -> 15 | 16 = 31
  dequantize_q5_1_ref(&c, y, 32);
  EXPECT_EQ(y[0], 3.0f);    // 1 + 2
  EXPECT_EQ(y[16], 17.0f);  // 15 + 2
  EXPECT_EQ(y[31], 33.0f);  // 31 + 2
}

TEST(Dequantize, KnownQ4_KBlock) {
  BlockQ4_K b{};
  b.d = 0x3C00;     // 1.0
  b.dmin = 0x3800;  // 0.5
  // Sub-block scales 1..8 and mins 0,2,..,14 (all below 16, so no high bits);
  // sub-blocks 4..7 keep scale/min nibbles in bytes 8..11.
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = static_cast<uint8_t>(j + 1);
    b.scales[j + 4] = static_cast<uint8_t>(2 * j);
  }
  for (int j = 4; j < 8; ++j) b.scales[j + 4] = static_cast<uint8_t>((j + 1) | ((2 * j) << 4));
  // Byte l of chunk c holds element 64c+l (low nibble) and 64c+32+l (high nibble).
  for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>(0x3 | (0x5 << 4));
  float y[256];
  dequantize_q4_k_ref(&b, y, 256);
  EXPECT_EQ(y[0], 3.0f);          // 1*1*3 - 0.5*0
  EXPECT_EQ(y[32], 2 * 5 - 1.0f);  // sub-block 1: scale 2, min 2 -> 10 - 1
  EXPECT_EQ(y[64], 3 * 3 - 2.0f);  // sub-block 2: scale 3, min 4
  EXPECT_EQ(y[255], 8 * 5 - 7.0f); // sub-block 7: scale 8, min 14
  // A six-bit scale with high bits: sub-block 0 scale 63 (low 6 bits of byte 0).
  b.scales[0] = 63;
  dequantize_q4_k_ref(&b, y, 256);
  EXPECT_EQ(y[0], 63 * 3.0f);
  // Sub-block 4 scale = low nibble of byte 8 | (top 2 bits of byte 0) << 4.
  b.scales[0] = static_cast<uint8_t>(63 | (2 << 6));  // 63 stays for sub-block 0
  dequantize_q4_k_ref(&b, y, 256);
  EXPECT_EQ(y[128], (5 | (2 << 4)) * 3.0f - 0.5f * 8);
}

TEST(Dequantize, KnownQ5_KBlock) {
  BlockQ5_K b{};
  b.d = 0x3C00;
  b.dmin = 0x0000;
  for (int j = 0; j < 4; ++j) b.scales[j] = 1;
  for (int j = 4; j < 8; ++j) b.scales[j + 4] = 1;
  for (int i = 0; i < 128; ++i) b.qs[i] = 0x21;  // low nibble 1, high nibble 2
  b.qh[0] = 0x01 | 0x02 | 0x40;  // fifth bit for element 0, element 32, element 192
  float y[256];
  dequantize_q5_k_ref(&b, y, 256);
  EXPECT_EQ(y[0], 17.0f);
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[32], 18.0f);
  EXPECT_EQ(y[33], 2.0f);
  EXPECT_EQ(y[192], 17.0f);  // chunk 3 low nibble uses qh bit 6
}

TEST(Dequantize, KnownQ6_KBlock) {
  BlockQ6_K b{};
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j - 8);
  for (int i = 0; i < 128; ++i) b.ql[i] = 0x00;
  for (int i = 0; i < 64; ++i) b.qh[i] = 0x00;
  float y[256];
  dequantize_q6_k_ref(&b, y, 256);
  EXPECT_EQ(y[0], 0.5f * -8 * -32);   // q = 0 - 32, scale -8
  EXPECT_EQ(y[16], 0.5f * -7 * -32);  // second half of the first 32 uses scale 1
  EXPECT_EQ(y[32], 0.5f * -6 * -32);  // scale index 2
  b.ql[0] = 0x0F;
  b.qh[0] = 0x03;  // element 0 -> 15 | 3<<4 = 63 -> 31
  dequantize_q6_k_ref(&b, y, 256);
  EXPECT_EQ(y[0], 0.5f * -8 * 31);
  EXPECT_EQ(y[128], 0.5f * 0 * -32);  // second 128-group starts at scale 8
}

// --------------------------------------------------- round-trip error bounds

struct RoundTrip {
  DType type;
  double max_rel_rms;  // RMS error / RMS of the data, on Gaussian data
};

class QuantRoundTrip : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(QuantRoundTrip, ErrorWithinBound) {
  const RoundTrip p = GetParam();
  const int64_t n = 256 * 16;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n)), y(x.size());
  for (float& v : x) v = nd(rng);
  x[5] = 9.0f;  // an outlier
  std::vector<uint8_t> q(static_cast<size_t>(row_bytes(p.type, n)));
  quantize_row(p.type, x.data(), q.data(), n);
  dequantize_row(p.type, q.data(), y.data(), n);
  double err = 0, ref = 0, max_err = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += (x[i] - y[i]) * (x[i] - y[i]);
    ref += x[i] * x[i];
    max_err = std::max(max_err, static_cast<double>(std::fabs(x[i] - y[i])));
  }
  double rel = std::sqrt(err / ref);
  EXPECT_LT(rel, p.max_rel_rms) << dtype_name(p.type);
  EXPECT_LT(max_err, 1.2) << dtype_name(p.type);  // no level wildly off
  // Quantizing the dequantized data again is (nearly) idempotent.
  std::vector<uint8_t> q2(q.size());
  std::vector<float> z(x.size());
  quantize_row(p.type, y.data(), q2.data(), n);
  dequantize_row(p.type, q2.data(), z.data(), n);
  double drift = 0;
  for (int64_t i = 0; i < n; ++i) drift = std::max(drift, static_cast<double>(std::fabs(z[i] - y[i])));
  EXPECT_LT(drift, 0.6) << dtype_name(p.type);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantRoundTrip,
                         ::testing::Values(RoundTrip{DType::F16, 1e-3}, RoundTrip{DType::BF16, 5e-3},
                                           RoundTrip{DType::Q8_0, 0.012}, RoundTrip{DType::Q6_K, 0.04},
                                           RoundTrip{DType::Q5_K, 0.06}, RoundTrip{DType::Q4_K, 0.12},
                                           RoundTrip{DType::Q4_0, 0.14}, RoundTrip{DType::Q4_1, 0.12},
                                           RoundTrip{DType::Q5_0, 0.07}, RoundTrip{DType::Q5_1, 0.06},
                                           RoundTrip{DType::IQ4_NL, 0.12}, RoundTrip{DType::IQ4_XS, 0.12}),
                         [](const auto& info) { return std::string(dtype_name(info.param.type)); });

TEST(Quantize, AllZeroBlocksStayZero) {
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K,
                 DType::IQ4_NL, DType::IQ4_XS, DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S, DType::IQ3_XXS, DType::IQ3_S,
                 DType::IQ1_S, DType::IQ1_M, DType::Q2_K, DType::Q3_K}) {
    std::vector<float> x(256, 0.0f), y(256, 1.0f);
    std::vector<uint8_t> q(static_cast<size_t>(row_bytes(t, 256)));
    quantize_row(t, x.data(), q.data(), 256);
    dequantize_row(t, q.data(), y.data(), 256);
    for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  }
}

TEST(Quantize, RejectsPartialBlocks) {
  std::vector<float> x(100);
  std::vector<uint8_t> q(1000);
  EXPECT_THROW(quantize_row(DType::Q4_K, x.data(), q.data(), 100), Error);
}

}  // namespace
}  // namespace volga
