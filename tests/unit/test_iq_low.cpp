// The lattice i-quants (iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m).
//
// - The grids and sign tables are ggml's: counts, the levels each entry may
//   hold, and FNV-1a checksums computed in Python straight from ggml's
//   ggml-common.h (not through tools/gen_iq_grids.py).
// - An oracle written here from ggml's dequantize_row_iq* formulas (byte
//   offsets, (0.5 + ls) / 4 multipliers, deltas of 1/8, the parity sign bit
//   computed, not looked up) against the reference dequantizer, on
//   hand-built blocks and on blocks of random bytes (every index and sign
//   pattern the layout can hold).
// - Those random blocks through the integer products and the float path on
//   every ISA, bit-identical to the reference.
// - The quantizers: error bounds per type, and zero stays zero.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "kernel_fixtures.h"
#include "kernels/dispatch.h"
#include "kernels/ref/int8_ref.h"
#include "tensor/half.h"
#include "tensor/iq_grids.h"
#include "tensor/quant.h"
#include "tensor/type_traits.h"

namespace volga {
namespace {

const DType kLattice[] = {DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S, DType::IQ3_XXS,
                          DType::IQ3_S,   DType::IQ1_S,  DType::IQ1_M};

template <typename E, size_t N>
uint64_t fnv1a(const E (&table)[N]) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < N; ++i)
    for (size_t k = 0; k < sizeof(E); ++k) h = (h ^ ((static_cast<uint64_t>(table[i]) >> (8 * k)) & 0xFF)) * 0x100000001b3ULL;
  return h;
}

int byte_of(uint64_t entry, int k) { return static_cast<int>((entry >> (8 * k)) & 0xFF); }

template <typename E, size_t N>
void expect_levels(const E (&grid)[N], size_t entries, int width, const std::set<int>& allowed, const char* name) {
  EXPECT_EQ(N, entries) << name;
  std::set<uint64_t> distinct;
  for (size_t e = 0; e < N; ++e) {
    distinct.insert(grid[e]);
    for (int k = 0; k < width; ++k) ASSERT_TRUE(allowed.count(byte_of(grid[e], k))) << name << " entry " << e << " byte " << k;
    if (width == 4) ASSERT_EQ(static_cast<uint64_t>(grid[e]) >> 32, 0u);
  }
  EXPECT_EQ(distinct.size(), N) << name << ": entries repeat";
}

TEST(IqGrids, AreGgmlsTables) {
  // FNV-1a 64 of each table's little-endian bytes, from ggml's ggml-common.h.
  EXPECT_EQ(fnv1a(kIqSignMask), 0x0af7003a53c25e16ULL);
  EXPECT_EQ(fnv1a(kIqSigns), 0xf19ba8f8c3292ba5ULL);
  EXPECT_EQ(fnv1a(kIq2xxsGrid), 0xbb4ee025b5ac6e8eULL);
  EXPECT_EQ(fnv1a(kIq2xsGrid), 0xc9b1ee61e79909bdULL);
  EXPECT_EQ(fnv1a(kIq2sGrid), 0x123edd38a3b62b90ULL);
  EXPECT_EQ(fnv1a(kIq3xxsGrid), 0xdfa5dc83d6a155d5ULL);
  EXPECT_EQ(fnv1a(kIq3sGrid), 0xfa37020c25b44829ULL);
  EXPECT_EQ(fnv1a(kIq1sGrid), 0x6703ed863501ae2eULL);
}

TEST(IqGrids, EntriesHoldOnlyTheirTypesLevels) {
  const std::set<int> iq2{8, 25, 43}, iq3xxs{4, 12, 20, 28, 36, 44, 52, 62}, iq3s{1, 3, 5, 7, 9, 11, 13, 15};
  const std::set<int> iq1{0x00, 0x01, 0xFF};  // int8 -1, 0, 1
  expect_levels(kIq2xxsGrid, 256, 8, iq2, "iq2xxs");
  expect_levels(kIq2xsGrid, 512, 8, iq2, "iq2xs");
  expect_levels(kIq2sGrid, 1024, 8, iq2, "iq2s");
  expect_levels(kIq3xxsGrid, 256, 4, iq3xxs, "iq3xxs");
  expect_levels(kIq3sGrid, 512, 4, iq3s, "iq3s");
  expect_levels(kIq1sGrid, 2048, 8, iq1, "iq1s");
  for (int i = 0; i < 8; ++i) EXPECT_EQ(kIqSignMask[i], 1 << i);
  for (int i = 0; i < 128; ++i) {
    EXPECT_EQ(kIqSigns[i] & 127, i);
    EXPECT_EQ(std::popcount(static_cast<unsigned>(kIqSigns[i])) % 2, 0) << i;  // an even number of negatives
  }
}

// ------------------------------------------------ the oracle, from ggml's formulas

uint32_t rd16(const uint8_t* p) { return static_cast<uint32_t>(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) { return rd16(p) | (rd16(p + 2) << 16); }
double half(uint32_t h) { return fp16_to_fp32(static_cast<uint16_t>(h)); }
// 7 stored sign bits; the eighth makes the count of negatives even.
unsigned eight_signs(unsigned s7) { return s7 | ((std::popcount(s7) & 1u) << 7); }
double sgn(unsigned signs, int k) { return (signs >> k) & 1 ? -1.0 : 1.0; }

// The 256 values of super-block `b` of type t, in double.
std::vector<double> oracle(DType t, const uint8_t* b) {
  std::vector<double> y(256);
  auto put8 = [&](int at, uint64_t entry, double scale, unsigned signs) {
    for (int k = 0; k < 8; ++k) y[static_cast<size_t>(at + k)] = scale * byte_of(entry, k) * sgn(signs, k);
  };
  auto put4x2 = [&](int at, uint32_t e1, uint32_t e2, double scale, unsigned signs) {
    for (int k = 0; k < 4; ++k) {
      y[static_cast<size_t>(at + k)] = scale * byte_of(e1, k) * sgn(signs, k);
      y[static_cast<size_t>(at + 4 + k)] = scale * byte_of(e2, k) * sgn(signs, k + 4);
    }
  };
  auto put1 = [&](int at, uint64_t entry, double scale, double delta) {
    for (int k = 0; k < 8; ++k) y[static_cast<size_t>(at + k)] = scale * (static_cast<int8_t>(byte_of(entry, k)) + delta);
  };
  switch (t) {
    case DType::IQ2_XXS: {
      const double d = half(rd16(b));
      for (int ib = 0; ib < 8; ++ib) {
        const uint8_t* q = b + 2 + 8 * ib;
        const uint32_t a1 = rd32(q + 4);
        const double db = d * (0.5 + (a1 >> 28)) * 0.25;
        for (int l = 0; l < 4; ++l) put8(32 * ib + 8 * l, kIq2xxsGrid[q[l]], db, eight_signs((a1 >> (7 * l)) & 127));
      }
      break;
    }
    case DType::IQ2_XS: {
      const double d = half(rd16(b));
      for (int ib = 0; ib < 8; ++ib) {
        const int sc = b[2 + 64 + ib];
        for (int l = 0; l < 4; ++l) {
          const uint32_t v = rd16(b + 2 + 2 * (4 * ib + l));
          const double db = d * (0.5 + (l < 2 ? sc & 15 : sc >> 4)) * 0.25;
          put8(32 * ib + 8 * l, kIq2xsGrid[v & 511], db, eight_signs(v >> 9));
        }
      }
      break;
    }
    case DType::IQ2_S: {
      const double d = half(rd16(b));
      const uint8_t *qs = b + 2, *signs = b + 2 + 32, *qh = b + 2 + 64, *scales = b + 2 + 72;
      for (int ib = 0; ib < 8; ++ib)
        for (int l = 0; l < 4; ++l) {
          const int idx = qs[4 * ib + l] | (((qh[ib] >> (2 * l)) & 3) << 8);
          const double db = d * (0.5 + (l < 2 ? scales[ib] & 15 : scales[ib] >> 4)) * 0.25;
          put8(32 * ib + 8 * l, kIq2sGrid[idx], db, signs[4 * ib + l]);
        }
      break;
    }
    case DType::IQ3_XXS: {
      const double d = half(rd16(b));
      const uint8_t *qs = b + 2, *sas = b + 2 + 64;
      for (int ib = 0; ib < 8; ++ib) {
        const uint32_t aux = rd32(sas + 4 * ib);
        const double db = d * (0.5 + (aux >> 28)) * 0.5;
        for (int l = 0; l < 4; ++l)
          put4x2(32 * ib + 8 * l, kIq3xxsGrid[qs[8 * ib + 2 * l]], kIq3xxsGrid[qs[8 * ib + 2 * l + 1]], db,
                 eight_signs((aux >> (7 * l)) & 127));
      }
      break;
    }
    case DType::IQ3_S: {
      const double d = half(rd16(b));
      const uint8_t *qs = b + 2, *qh = b + 2 + 64, *signs = b + 2 + 72, *scales = b + 2 + 104;
      for (int ib = 0; ib < 8; ++ib) {
        const double db = d * (1 + 2 * ((scales[ib / 2] >> (4 * (ib % 2))) & 15));
        for (int l = 0; l < 4; ++l) {
          const int i1 = qs[8 * ib + 2 * l] | (((qh[ib] >> (2 * l)) & 1) << 8);
          const int i2 = qs[8 * ib + 2 * l + 1] | (((qh[ib] >> (2 * l + 1)) & 1) << 8);
          put4x2(32 * ib + 8 * l, kIq3sGrid[i1], kIq3sGrid[i2], db, signs[4 * ib + l]);
        }
      }
      break;
    }
    case DType::IQ1_S: {
      const double d = half(rd16(b));
      for (int ib = 0; ib < 8; ++ib) {
        const uint32_t qh = rd16(b + 2 + 32 + 2 * ib);
        const double dl = d * (2 * ((qh >> 12) & 7) + 1), delta = qh & 0x8000 ? -0.125 : 0.125;
        for (int l = 0; l < 4; ++l)
          put1(32 * ib + 8 * l, kIq1sGrid[b[2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)], dl, delta);
      }
      break;
    }
    case DType::IQ1_M: {
      const uint8_t *qs = b, *qh = b + 32, *sc = b + 48;
      uint32_t s[4];
      for (int k = 0; k < 4; ++k) s[k] = rd16(sc + 2 * k);
      const double d = half((s[0] >> 12) | ((s[1] >> 8) & 0xF0) | ((s[2] >> 4) & 0xF00) | (s[3] & 0xF000));
      for (int ib = 0; ib < 8; ++ib) {
        for (int l = 0; l < 4; ++l) {
          const int h = qh[2 * ib + l / 2] >> (4 * (l % 2));
          const int ls = (s[ib / 2] >> (6 * (ib % 2) + 3 * (l / 2))) & 7;
          put1(32 * ib + 8 * l, kIq1sGrid[qs[4 * ib + l] | ((h & 7) << 8)], d * (2 * ls + 1), h & 8 ? -0.125 : 0.125);
        }
      }
      break;
    }
    default: ADD_FAILURE() << "no oracle for " << dtype_name(t);
  }
  return y;
}

// Random bytes, with each super-block's fp16 scale replaced by a moderate
// one (random bits could be inf or NaN): every other bit pattern is valid.
std::vector<uint8_t> random_blocks(DType t, int64_t n_blocks, uint32_t seed) {
  const int64_t bb = traits(t).block_bytes;
  std::vector<uint8_t> out(static_cast<size_t>(bb * n_blocks));
  std::mt19937 rng(seed);
  for (auto& v : out) v = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < n_blocks; ++i) {
    uint8_t* b = out.data() + i * bb;
    const uint16_t d = fp32_to_fp16(std::ldexp(1.0f + static_cast<float>(rng() % 1000) / 1000.0f, -6 - static_cast<int>(rng() % 4)));
    if (t == DType::IQ1_M) {
      for (int k = 0; k < 4; ++k) b[48 + 2 * k + 1] = static_cast<uint8_t>((b[48 + 2 * k + 1] & 0x0F) | (((d >> (4 * k)) & 0xF) << 4));
    } else {
      std::memcpy(b, &d, 2);
    }
  }
  return out;
}

TEST(IqLow, ReferenceDequantizationMatchesTheOracleOnRandomBlocks) {
  for (DType t : kLattice) {
    const int64_t n = 40;
    const auto bytes = random_blocks(t, n, 7 + static_cast<uint32_t>(t));
    std::vector<float> y(static_cast<size_t>(256 * n));
    dequantize_row(t, bytes.data(), y.data(), 256 * n);
    for (int64_t i = 0; i < n; ++i) {
      const auto want = oracle(t, bytes.data() + i * traits(t).block_bytes);
      for (int k = 0; k < 256; ++k)  // products of few-bit integers and an fp16: exact in float
        ASSERT_EQ(y[static_cast<size_t>(256 * i + k)], static_cast<float>(want[static_cast<size_t>(k)]))
            << dtype_name(t) << " block " << i << " element " << k;
    }
  }
}

// Blocks built field by field, read back at a few elements worked out by hand.
TEST(IqLow, KnownIq2XxsBlock) {
  BlockIQ2_XXS b{};
  b.d = 0x4000;  // 2
  // Sub-block 1: grid entries 0 (all 8) and 255; sign index 1 for l = 0 (element 0
  // and, for parity, element 7 negative); ls = 3: scale 2 * 3.5 / 4 = 1.75.
  const uint32_t aux[2] = {0x0000FF00u, (3u << 28) | 1u};
  std::memcpy(b.qs + 4, aux, 8);
  float y[256];
  dequantize_row(DType::IQ2_XXS, &b, y, 256);
  EXPECT_EQ(y[0], 2 * 0.5f * 0.25f * 8);  // sub-block 0: ls 0, entry 0, no signs
  EXPECT_EQ(y[32], -1.75f * 8);
  EXPECT_EQ(y[33], 1.75f * 8);
  EXPECT_EQ(y[39], -1.75f * 8);
  for (int k = 0; k < 8; ++k) EXPECT_EQ(y[40 + k], 1.75f * static_cast<float>(byte_of(kIq2xxsGrid[255], k))) << k;
}

TEST(IqLow, KnownIq1MBlock) {
  BlockIQ1_M b{};
  const uint16_t d = 0x3C00;  // 1.0, spread over the top nibbles of the four scale words
  uint16_t sc[4] = {0, 0, 0, 0};
  for (int k = 0; k < 4; ++k) sc[k] = static_cast<uint16_t>(((d >> (4 * k)) & 0xF) << 12);
  sc[0] |= 2 | (5 << 3);  // sub-block 0: first 16 elements ls 2 (x5), last 16 ls 5 (x11)
  std::memcpy(b.scales, sc, 8);
  b.qs[0] = 0x34;
  b.qh[0] = 0x0A | 0x80;  // index 0: high bits 2 (0x234), delta -1/8; index 1: delta -1/8
  float y[256];
  dequantize_row(DType::IQ1_M, &b, y, 256);
  for (int k = 0; k < 8; ++k)
    EXPECT_EQ(y[k], 5.0f * (static_cast<float>(static_cast<int8_t>(byte_of(kIq1sGrid[0x234], k))) - 0.125f)) << k;
  EXPECT_EQ(y[16], 11.0f * (static_cast<float>(static_cast<int8_t>(byte_of(kIq1sGrid[0], 0))) + 0.125f));
}

// ------------------------------------------------------------- kernels

test::Matrix random_matrix(DType t, int64_t rows, int64_t cols, uint32_t seed, std::vector<uint8_t>& storage) {
  const int64_t stride = row_bytes(t, cols);
  const auto bytes = random_blocks(t, rows * cols / 256, seed);
  storage.assign(bytes.size() + 2, 0);
  std::memcpy(storage.data() + 2, bytes.data(), bytes.size());  // misaligned for vector loads
  return test::Matrix{{}, WeightMatrix{t, rows, cols, stride, storage.data() + 2}};
}

TEST(IqLow, RandomBlocksMultiplyBitIdenticallyOnEveryIsa) {
  const kernels::KernelTable& ref = kernels::ref_kernels();
  for (DType t : kLattice)
    for (int64_t rows : {3, 17})
      for (int64_t cols : {256, 768}) {
        std::vector<uint8_t> storage;
        const test::Matrix m = random_matrix(t, rows, cols, static_cast<uint32_t>(rows * cols), storage);
        for (int64_t tokens : {1, 2, 5, 9}) {
          auto x = test::random_floats(static_cast<size_t>(tokens * cols), static_cast<uint32_t>(tokens));
          std::vector<int8_t> q(x.size());
          std::vector<uint8_t> qu(x.size());
          std::vector<float> d(static_cast<size_t>(tokens * cols / 32)), s(d.size());
          for (int64_t k = 0; k < tokens; ++k)
            ref.quantize_acts(x.data() + k * cols, cols, q.data() + k * cols, qu.data() + k * cols,
                              d.data() + k * (cols / 32), s.data() + k * (cols / 32));
          const kernels::Int8Acts acts{cols, tokens, q.data(), qu.data(), d.data(), s.data()};
          std::vector<float> want(static_cast<size_t>(rows * tokens)), got(want.size()), fwant(want.size());
          ref.matmul_rows_int8(m.w, 0, rows, acts, want.data(), rows);
          ref.matmul_rows(m.w, 0, rows, x.data(), tokens, fwant.data(), rows);
          std::vector<std::vector<float>> floats;  // each ISA's float product
          for (kernels::Isa isa : test::available_isas()) {
            const kernels::KernelTable& k = kernels::kernel_table(isa);
            k.matmul_rows_int8(m.w, 0, rows, acts, got.data(), rows);
            for (size_t i = 0; i < want.size(); ++i)
              ASSERT_EQ(got[i], want[i]) << kernels::isa_name(isa) << " " << dtype_name(t) << " tokens " << tokens << " " << i;
            // The float path: dequantized weights bit-identical, sums in the ISA's own order.
            std::vector<float> w0(static_cast<size_t>(cols)), w1(w0.size());
            ref.dequantize(t, m.w.row(rows - 1), w0.data(), cols);
            k.dequantize(t, m.w.row(rows - 1), w1.data(), cols);
            ASSERT_EQ(w0, w1) << kernels::isa_name(isa) << " " << dtype_name(t);
            floats.emplace_back(want.size());
            k.matmul_rows(m.w, 0, rows, x.data(), tokens, floats.back().data(), rows);
          }
          // The integer product is the float one up to the activations' rounding
          // (at most half a chunk's scale per element) times the weights' magnitudes.
          std::vector<float> w(static_cast<size_t>(cols));
          for (int64_t r = 0; r < rows; ++r) {
            ref.dequantize(t, m.w.row(r), w.data(), cols);
            for (int64_t k = 0; k < tokens; ++k) {
              double bound = 1e-4, mag = 0;
              for (int64_t c = 0; c < cols; ++c) {
                const double wc = std::fabs(w[static_cast<size_t>(c)]);
                bound += 0.5 * d[static_cast<size_t>(k * (cols / 32) + c / 32)] * wc;
                mag += wc * std::fabs(x[static_cast<size_t>(k * cols + c)]);
              }
              const size_t i = static_cast<size_t>(k * rows + r);
              EXPECT_NEAR(want[i], fwant[i], bound * 1.001) << dtype_name(t) << " row " << r << " token " << k;
              for (const auto& f : floats) ASSERT_NEAR(f[i], fwant[i], 1e-5 * mag + 1e-6) << "float path " << dtype_name(t);
            }
          }
        }
      }
}

// ------------------------------------------------------------- quantizers

TEST(IqLow, QuantizersStayWithinTheirErrorBounds) {
  struct Bound {
    DType t;
    double rel_rms;
  };
  // Gaussian weights; llama.cpp's imatrix search does better, these are the
  // simple search's figures with a margin.
  for (Bound b : {Bound{DType::IQ3_S, 0.25}, Bound{DType::IQ3_XXS, 0.3}, Bound{DType::IQ2_S, 0.4},
                  Bound{DType::IQ2_XS, 0.45}, Bound{DType::IQ2_XXS, 0.5}, Bound{DType::IQ1_M, 0.65},
                  Bound{DType::IQ1_S, 0.7}}) {
    const int64_t n = 256 * 8;
    auto x = test::random_floats(static_cast<size_t>(n), 11);
    std::vector<uint8_t> q(static_cast<size_t>(row_bytes(b.t, n)));
    std::vector<float> y(x.size());
    quantize_row(b.t, x.data(), q.data(), n);
    dequantize_row(b.t, q.data(), y.data(), n);
    double err = 0, ref = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err += (x[i] - y[i]) * (x[i] - y[i]);
      ref += x[i] * x[i];
    }
    const double rel = std::sqrt(err / ref);
    EXPECT_LT(rel, b.rel_rms) << dtype_name(b.t);
    // Blocks the quantizer wrote are read by the oracle as by the reference.
    for (int64_t i = 0; i < n / 256; ++i) {
      const auto want = oracle(b.t, q.data() + i * traits(b.t).block_bytes);
      for (int k = 0; k < 256; ++k)
        ASSERT_EQ(y[static_cast<size_t>(256 * i + k)], static_cast<float>(want[static_cast<size_t>(k)])) << dtype_name(b.t);
    }
    std::printf("%-8s rel rms error %.3f\n", dtype_name(b.t), rel);
  }
}

}  // namespace
}  // namespace volga
