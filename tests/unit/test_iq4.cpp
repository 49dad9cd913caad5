// iq4_nl and iq4_xs: hand-built blocks against values worked out here from
// ggml's definition of the formats (the 16 levels are written again below,
// not taken from the code under test), the integer reference against the
// same blocks, and a GGUF file holding both types loaded and multiplied on
// every ISA.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "format/gguf.h"
#include "kernel_fixtures.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/ref/int8_ref.h"
#include "tensor/blocks.h"
#include "tensor/quant.h"

namespace volga {
namespace {

// ggml's kvalues_iq4nl.
constexpr int kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

TEST(Iq4, LevelsAreGgmls) {
  for (int i = 0; i < 16; ++i) EXPECT_EQ(kIq4nlValues[i], kLevels[i]) << i;
}

TEST(Iq4, KnownIq4NlBlock) {
  BlockIQ4_NL b{};
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(DType::IQ4_NL, &b, y, 32);
  EXPECT_EQ(y[0], -63.5f);   // level 0
  EXPECT_EQ(y[8], 0.5f);     // level 8
  EXPECT_EQ(y[15], 56.5f);   // level 15
  EXPECT_EQ(y[16], 56.5f);   // high nibble of qs[0]: 15
  EXPECT_EQ(y[31], -63.5f);  // high nibble of qs[15]: 0
  EXPECT_EQ(y[20], 0.5f * 38);  // high nibble of qs[4]: 11
}

// d = 2; sub-block j's 6-bit scale 32 + j - 3 (ls - 32 = j - 3), split into
// scales_l (low 4 bits) and scales_h (high 2 bits); every index 9 except a few.
BlockIQ4_XS known_xs_block() {
  BlockIQ4_XS b{};
  b.d = 0x4000;  // 2.0
  for (int j = 0; j < 8; ++j) {
    const int ls = 32 + j - 3;
    b.scales_l[j / 2] = static_cast<uint8_t>(b.scales_l[j / 2] | ((ls & 0xF) << (4 * (j % 2))));
    b.scales_h = static_cast<uint16_t>(b.scales_h | ((ls >> 4) << (2 * j)));
  }
  std::memset(b.qs, 0x99, sizeof b.qs);
  b.qs[0] = 0xF0;       // element 0: index 0, element 16: index 15
  b.qs[16 * 7 + 15] = 0x3C;  // sub-block 7: element 15 index 12, element 31 index 3
  return b;
}

TEST(Iq4, KnownIq4XsBlock) {
  const BlockIQ4_XS b = known_xs_block();
  // The packing above, read back by hand: 29 = 0b011101 -> low 13, high 1.
  EXPECT_EQ(b.scales_l[0] & 0xF, 13);
  EXPECT_EQ(b.scales_h & 3, 1);
  float y[256];
  dequantize_row(DType::IQ4_XS, &b, y, 256);
  EXPECT_EQ(y[0], 2.0f * -3 * -127);
  EXPECT_EQ(y[16], 2.0f * -3 * 113);
  EXPECT_EQ(y[1], 2.0f * -3 * 13);
  EXPECT_EQ(y[3 * 32 + 5], 0.0f);  // scale 0 in sub-block 3
  EXPECT_EQ(y[5 * 32 + 30], 2.0f * 2 * 13);
  EXPECT_EQ(y[7 * 32 + 15], 2.0f * 4 * 53);
  EXPECT_EQ(y[7 * 32 + 31], 2.0f * 4 * -65);
}

TEST(Iq4, IntegerReferenceChunksOfKnownBlocks) {
  const BlockIQ4_XS b = known_xs_block();
  kernels::Int8Chunk ch;
  kernels::int8_chunk_ref(DType::IQ4_XS, reinterpret_cast<const uint8_t*>(&b), 7, &ch);
  EXPECT_EQ(ch.group, 32);
  EXPECT_FALSE(ch.has_min);
  EXPECT_EQ(ch.scale[0], 8.0f);  // 2 * (36 - 32)
  EXPECT_EQ(ch.q[0], 13);
  EXPECT_EQ(ch.q[15], 53);
  EXPECT_EQ(ch.q[31], -65);
  BlockIQ4_NL nl{};
  nl.d = 0x3C00;  // 1
  nl.qs[3] = 0x70;
  kernels::int8_chunk_ref(DType::IQ4_NL, reinterpret_cast<const uint8_t*>(&nl), 0, &ch);
  EXPECT_EQ(ch.scale[0], 1.0f);
  EXPECT_EQ(ch.q[3], -127);
  EXPECT_EQ(ch.q[19], -10);
}

// A file with both types loads (sizes from the rows), and its matrices
// multiply: the integer products on every ISA bit-identical to the reference.
TEST(Iq4, GgufWithBothTypesLoadsAndMultiplies) {
  const int64_t cols = 512, rows = 12;
  auto src = test::random_floats(static_cast<size_t>(cols * rows), 3);
  GgufWriter w;
  for (DType t : {DType::IQ4_NL, DType::IQ4_XS}) {
    std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(t, cols) * rows));
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(t, src.data() + r * cols, bytes.data() + r * row_bytes(t, cols), cols);
    w.add_tensor(dtype_name(t), t, {cols, rows}, bytes);
  }
  const std::vector<uint8_t> file = w.to_bytes();
  auto f = GgufFile::parse(file.data(), file.size());
  auto x = test::random_floats(static_cast<size_t>(cols * 3), 5);
  for (DType t : {DType::IQ4_NL, DType::IQ4_XS}) {
    const TensorInfo* ti = f->find_tensor(dtype_name(t));
    ASSERT_NE(ti, nullptr);
    EXPECT_EQ(ti->type, t);
    EXPECT_EQ(ti->n_bytes, static_cast<uint64_t>(rows * (t == DType::IQ4_NL ? cols / 32 * 18 : cols / 256 * 136)));
    const WeightMatrix m{t, rows, cols, row_bytes(t, cols), ti->data};
    // Integer products: every ISA bit-identical to the reference.
    const kernels::KernelTable& ref = kernels::ref_kernels();
    std::vector<int8_t> q(static_cast<size_t>(cols * 3));
    std::vector<uint8_t> qu(q.size());
    std::vector<float> d(static_cast<size_t>(cols / 32 * 3)), s(d.size());
    for (int64_t tk = 0; tk < 3; ++tk)
      ref.quantize_acts(x.data() + tk * cols, cols, q.data() + tk * cols, qu.data() + tk * cols,
                        d.data() + tk * (cols / 32), s.data() + tk * (cols / 32));
    const kernels::Int8Acts acts{cols, 3, q.data(), qu.data(), d.data(), s.data()};
    std::vector<float> want(static_cast<size_t>(rows * 3)), got(want.size());
    ref.matmul_rows_int8(m, 0, rows, acts, want.data(), rows);
    for (kernels::Isa isa : test::available_isas()) {
      kernels::kernel_table(isa).matmul_rows_int8(m, 0, rows, acts, got.data(), rows);
      for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << kernels::isa_name(isa) << " " << i;
    }
    ref.matmul_rows(m, 0, rows, x.data(), 3, want.data(), rows);
    // The engine's product (the integer path for these types) agrees with the float reference.
    ThreadPool pool(2);
    kernels::matmul(m, x.data(), 3, got.data(), pool);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 0.5 + 0.02 * std::fabs(want[i])) << i;
  }
}

}  // namespace
}  // namespace volga
