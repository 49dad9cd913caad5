// q2_k and q3_k: hand-built blocks, written byte by byte at the offsets of
// ggml's block_q2_K / block_q3_K, against values worked out here from ggml's
// definition of the formats; the integer reference against the same blocks;
// quantize -> dequantize error bounds; and a GGUF file holding both types
// loaded and multiplied on every ISA.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "format/gguf.h"
#include "kernel_fixtures.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/ref/int8_ref.h"
#include "tensor/blocks.h"
#include "tensor/quant.h"
#include "util/error.h"

namespace volga {
namespace {

// block_q2_K: scales[16] (scale | min << 4), qs[64], d, dmin: 84 bytes.
// Sub-block i: scale i, minimum 15 - i; d = 1, dmin = 0.5.
std::vector<uint8_t> known_q2k_block() {
  std::vector<uint8_t> b(84, 0);
  for (int i = 0; i < 16; ++i) b[i] = static_cast<uint8_t>(i | ((15 - i) << 4));
  b[16 + 0] = 0xE4;       // elements 0, 32, 64, 96: 0, 1, 2, 3
  b[16 + 32 + 17] = 0x1B;  // elements 145, 177, 209, 241: 3, 2, 1, 0
  b[80] = 0x00, b[81] = 0x3C;  // d = 1
  b[82] = 0x00, b[83] = 0x38;  // dmin = 0.5
  return b;
}

TEST(KLow, KnownQ2KBlock) {
  static_assert(sizeof(BlockQ2_K) == 84);
  const std::vector<uint8_t> b = known_q2k_block();
  float y[256];
  dequantize_row(DType::Q2_K, b.data(), y, 256);
  // y = d * scale * q - dmin * min of the element's sub-block (element / 16).
  EXPECT_EQ(y[0], -7.5f);    // sub-block 0: 0 * 0 - 0.5 * 15
  EXPECT_EQ(y[1], -7.5f);
  EXPECT_EQ(y[16], -7.0f);   // sub-block 1, q 0: -0.5 * 14
  EXPECT_EQ(y[32], -4.5f);   // sub-block 2: 2 * 1 - 0.5 * 13
  EXPECT_EQ(y[64], 2.5f);    // sub-block 4: 4 * 2 - 0.5 * 11
  EXPECT_EQ(y[96], 13.5f);   // sub-block 6: 6 * 3 - 0.5 * 9
  EXPECT_EQ(y[145], 24.0f);  // sub-block 9: 9 * 3 - 0.5 * 6
  EXPECT_EQ(y[177], 20.0f);  // sub-block 11: 11 * 2 - 0.5 * 4
  EXPECT_EQ(y[209], 12.0f);  // sub-block 13: 13 * 1 - 0.5 * 2
  EXPECT_EQ(y[241], 0.0f);   // sub-block 15: 15 * 0 - 0
  EXPECT_EQ(y[255], 0.0f);
}

// block_q3_K: hmask[32], qs[64], scales[12], d: 110 bytes. d = 0.5.
std::vector<uint8_t> known_q3k_block() {
  std::vector<uint8_t> b(110, 0);
  uint8_t* hmask = b.data();
  uint8_t* qs = b.data() + 32;
  uint8_t* sc = b.data() + 96;
  // 6-bit scales: low nibbles in sc[0..8) (sub-blocks 0-7 low, 8-15 high
  // nibble), high pairs in sc[8..12) (sub-block i: bits 2 (i / 4) of sc[8 + i % 4]).
  sc[0] = 0x5A;  // sub-block 0 low 10, sub-block 8 low 5
  sc[3] = 0x0F;  // sub-block 3 low 15, sub-block 11 low 0
  sc[8] = 0xE4;  // high pairs: sub-block 0: 0, 4: 1, 8: 2, 12: 3
  sc[11] = 0x02;  // sub-block 3: 2
  // So sub-block 0: 10 -> -22; 3: 47 -> 15; 4: 16 -> -16; 8: 37 -> 5;
  // 11: 0 -> -32; 12: 48 -> 16; the others 0 -> -32.
  // Element e = 128 h + 32 j + l: low bits 2j of qs[32 h + l], bit 2 from bit e / 32 of hmask[l].
  hmask[5] |= 1, qs[5] |= 3;         // element 5: n 7
  hmask[3] |= 4, qs[3] |= 2 << 4;    // element 67: n 6
  qs[32 + 8] |= 1;                   // element 136: n 1
  hmask[8] |= 0x40, qs[32 + 8] |= 1 << 4;  // element 200: n 5
  b[108] = 0x00, b[109] = 0x38;      // d = 0.5
  return b;
}

TEST(KLow, KnownQ3KBlock) {
  static_assert(sizeof(BlockQ3_K) == 110);
  const std::vector<uint8_t> b = known_q3k_block();
  float y[256];
  dequantize_row(DType::Q3_K, b.data(), y, 256);
  // y = d * (scale - 32) * (n - 4).
  EXPECT_EQ(y[0], 44.0f);     // 0.5 * -22 * -4
  EXPECT_EQ(y[5], -33.0f);    // 0.5 * -22 * 3
  EXPECT_EQ(y[16], 64.0f);    // 0.5 * -32 * -4
  EXPECT_EQ(y[49], -30.0f);   // 0.5 * 15 * -4
  EXPECT_EQ(y[67], -16.0f);   // 0.5 * -16 * 2
  EXPECT_EQ(y[136], -7.5f);   // 0.5 * 5 * -3
  EXPECT_EQ(y[180], 64.0f);   // 0.5 * -32 * -4
  EXPECT_EQ(y[200], 8.0f);    // 0.5 * 16 * 1
  EXPECT_EQ(y[255], 64.0f);   // sub-block 15: 0.5 * -32 * -4
  EXPECT_EQ(q3k_scale(b.data() + 96, 12), 48);
  EXPECT_EQ(q3k_scale(b.data() + 96, 3), 47);
}

// The integer reference's chunks of the same blocks: q2_k's chunk 3 is
// elements 96-127 (sub-blocks 6 and 7), q3_k's chunk 4 elements 128-159
// (sub-blocks 8 and 9).
TEST(KLow, IntegerReferenceChunksOfKnownBlocks) {
  kernels::Int8Chunk ch;
  const std::vector<uint8_t> q2 = known_q2k_block();
  kernels::int8_chunk_ref(DType::Q2_K, q2.data(), 3, &ch);
  EXPECT_EQ(ch.group, 16);
  EXPECT_TRUE(ch.has_min);
  EXPECT_EQ(ch.q[0], 3);
  EXPECT_EQ(ch.q[1], 0);
  EXPECT_EQ(ch.scale[0], 6.0f);
  EXPECT_EQ(ch.scale[1], 7.0f);
  EXPECT_EQ(ch.min, -4.5f);
  EXPECT_EQ(ch.min_hi, -4.0f);
  const std::vector<uint8_t> q3 = known_q3k_block();
  kernels::int8_chunk_ref(DType::Q3_K, q3.data(), 4, &ch);
  EXPECT_EQ(ch.group, 16);
  EXPECT_FALSE(ch.has_min);
  EXPECT_EQ(ch.q[8], -3);
  EXPECT_EQ(ch.q[0], -4);
  EXPECT_EQ(ch.scale[0], 2.5f);    // 0.5 * 5
  EXPECT_EQ(ch.scale[1], -16.0f);  // 0.5 * -32
  kernels::int8_chunk_ref(DType::Q3_K, q3.data(), 6, &ch);  // elements 192-223
  EXPECT_EQ(ch.q[8], 1);  // element 200
  EXPECT_EQ(ch.scale[0], 8.0f);  // sub-block 12: 0.5 * 16
}

// One row of each block against 256 activations, with the product worked
// out from the dequantized values in double: the integer products (which
// for q2_k add the minima against the activations' 16-element sums) agree
// on every ISA within the activations' rounding.
TEST(KLow, ProductOfKnownBlocksOnEveryIsa) {
  auto x = test::random_floats(256, 11);
  for (DType t : {DType::Q2_K, DType::Q3_K}) {
    const std::vector<uint8_t> b = t == DType::Q2_K ? known_q2k_block() : known_q3k_block();
    float w[256];
    dequantize_row(t, b.data(), w, 256);
    double want = 0, bound = 0;
    for (int i = 0; i < 256; ++i) want += static_cast<double>(w[i]) * x[i];
    {  // half a step of the activations' scale (one per 256 for the k-quants) per element
      float amax = 0;
      for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(x[i]));
      for (int i = 0; i < 256; ++i) bound += 0.5 * amax / 127.0 * std::fabs(w[i]);
    }
    const WeightMatrix m{t, 1, 256, static_cast<int64_t>(b.size()), b.data()};
    for (kernels::Isa isa : test::available_isas()) {
      const kernels::KernelTable& k = kernels::kernel_table(isa);
      kernels::Int8ActsBuffer buf;
      const kernels::Int8Acts& acts = kernels::quantize_int8_acts(k, t, x.data(), 256, 1, buf);
      float y = 0;
      k.matmul_rows_int8(m, 0, 1, acts, &y, 1);
      EXPECT_NEAR(y, want, bound + 1e-3 * std::fabs(want)) << dtype_name(t) << " " << kernels::isa_name(isa);
    }
  }
}

struct ErrorOf {
  double rel_rms, max_abs;
};
ErrorOf round_trip(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(static_cast<size_t>(row_bytes(t, static_cast<int64_t>(x.size()))));
  std::vector<float> y(x.size());
  quantize_row(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
  dequantize_row(t, q.data(), y.data(), static_cast<int64_t>(x.size()));
  double err = 0, ref = 0, mx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (x[i] - y[i]) * (x[i] - y[i]);
    ref += x[i] * x[i];
    mx = std::max(mx, static_cast<double>(std::fabs(x[i] - y[i])));
  }
  return {std::sqrt(err / ref), mx};
}

// Normal data: relative RMS errors near what 2 and 3 bits allow (an optimal
// uniform 4-level quantizer of a normal variable leaves about 0.34 of its
// RMS, an 8-level one about 0.19; local scales per 16 do better), and no
// element off by more than about one step.
TEST(KLow, QuantizeDequantizeErrorBounds) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(256 * 64);
  for (float& v : x) v = nd(rng);
  const ErrorOf e2 = round_trip(DType::Q2_K, x), e3 = round_trip(DType::Q3_K, x);
  EXPECT_LT(e2.rel_rms, 0.29);  // measured 0.263
  EXPECT_LT(e3.rel_rms, 0.16);  // measured 0.144
  EXPECT_LT(e2.max_abs, 1.3);
  EXPECT_LT(e3.max_abs, 0.8);
  // More bits, less error: q3_k beats q2_k, q4_k beats q3_k.
  EXPECT_LT(e3.rel_rms, e2.rel_rms);
  EXPECT_LT(round_trip(DType::Q4_K, x).rel_rms, e3.rel_rms);
  // Values a block can hold exactly come back exactly: q3_k's -4..3 steps, q2_k's 0..3 steps.
  std::vector<float> exact3(256), exact2(256);
  for (int i = 0; i < 256; ++i) {
    exact3[static_cast<size_t>(i)] = 0.25f * static_cast<float>(i % 8 - 4);
    exact2[static_cast<size_t>(i)] = 0.5f * static_cast<float>(i % 4) - 0.75f;
  }
  EXPECT_LT(round_trip(DType::Q3_K, exact3).max_abs, 1e-6);
  EXPECT_LT(round_trip(DType::Q2_K, exact2).max_abs, 2e-3);  // the 4-bit minimum rounds 0.75 under dmin
}

// A file with both types loads (sizes from the rows) and its matrices
// multiply: the integer products on every ISA bit-identical to the
// reference, the engine's product close to the float reference.
TEST(KLow, GgufWithBothTypesLoadsAndMultiplies) {
  const int64_t cols = 512, rows = 12;
  auto src = test::random_floats(static_cast<size_t>(cols * rows), 3);
  GgufWriter w;
  for (DType t : {DType::Q2_K, DType::Q3_K}) {
    std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(t, cols) * rows));
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(t, src.data() + r * cols, bytes.data() + r * row_bytes(t, cols), cols);
    w.add_tensor(dtype_name(t), t, {cols, rows}, bytes);
  }
  const std::vector<uint8_t> file = w.to_bytes();
  auto f = GgufFile::parse(file.data(), file.size());
  auto x = test::random_floats(static_cast<size_t>(cols * 3), 5);
  for (DType t : {DType::Q2_K, DType::Q3_K}) {
    const TensorInfo* ti = f->find_tensor(dtype_name(t));
    ASSERT_NE(ti, nullptr);
    EXPECT_EQ(ti->type, t);
    EXPECT_EQ(ti->n_bytes, static_cast<uint64_t>(rows * cols / 256 * (t == DType::Q2_K ? 84 : 110)));
    const WeightMatrix m{t, rows, cols, row_bytes(t, cols), ti->data};
    const kernels::KernelTable& ref = kernels::ref_kernels();
    kernels::Int8ActsBuffer buf;
    const kernels::Int8Acts& acts = kernels::quantize_int8_acts(ref, t, x.data(), cols, 3, buf);
    std::vector<float> want(static_cast<size_t>(rows * 3)), got(want.size());
    ref.matmul_rows_int8(m, 0, rows, acts, want.data(), rows);
    for (kernels::Isa isa : test::available_isas()) {
      kernels::kernel_table(isa).matmul_rows_int8(m, 0, rows, acts, got.data(), rows);
      for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << kernels::isa_name(isa) << " " << i;
    }
    ref.matmul_rows(m, 0, rows, x.data(), 3, want.data(), rows);
    ThreadPool pool(2);
    kernels::matmul(m, x.data(), 3, got.data(), pool);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 0.5 + 0.02 * std::fabs(want[i])) << i;
  }
}

// A truncated tensor of either type is refused at load, not read past the end.
TEST(KLow, TruncatedTensorIsRefused) {
  for (DType t : {DType::Q2_K, DType::Q3_K}) {
    GgufWriter w;
    std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(t, 256) * 2), 0);
    w.add_tensor("w", t, {256, 2}, bytes);
    std::vector<uint8_t> file = w.to_bytes();
    file.resize(file.size() - 40);
    EXPECT_THROW(GgufFile::parse(file.data(), file.size()), Error) << dtype_name(t);
  }
}

}  // namespace
}  // namespace volga
