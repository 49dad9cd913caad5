// Every fast kernel against its scalar reference, on every ISA path this
// CPU can run (ref, avx2, avx512), bit for bit (the float reductions follow
// one canonical order, kernels/float_order.h), and the reference against a
// float64 computation within float rounding; over odd sizes, unaligned
// pointers and tails that are not a multiple of the vector width.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "kernel_fixtures.h"
#include "kernels/dispatch.h"
#include "tensor/quant.h"
#include "util/error.h"

using namespace volga;
using namespace volga::kernels;
using namespace volga::test;

namespace {

const DType kTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                        DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K,
                        DType::IQ4_NL, DType::IQ4_XS, DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S,
                        DType::IQ3_XXS, DType::IQ3_S, DType::IQ1_S, DType::IQ1_M, DType::Q2_K, DType::Q3_K};

// Column counts to try for a type: several blocks, including one-block rows
// and, for unblocked types, sizes that leave every possible vector tail.
std::vector<int64_t> widths(DType t) {
  int64_t bs = traits(t).block_size;
  if (bs == 1) return {1, 7, 8, 15, 16, 17, 33, 100, 257};
  return {bs, 3 * bs, 7 * bs};
}

// Lengths for the vector kernels: every tail of 8 and 16 lanes, several
// chunks, and model widths.
const int64_t kLengths[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 31, 33, 47, 63, 100, 255, 257, 896, 4099};

// Bitwise equality (tells -0 from +0, compares NaNs by their bits).
::testing::AssertionResult same_bits(const float* want, const float* got, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (std::bit_cast<uint32_t>(want[i]) != std::bit_cast<uint32_t>(got[i]))
      return ::testing::AssertionFailure() << "element " << i << ": " << got[i] << " (0x" << std::hex
                                           << std::bit_cast<uint32_t>(got[i]) << "), want " << std::dec << want[i]
                                           << " (0x" << std::hex << std::bit_cast<uint32_t>(want[i]) << ")";
  return ::testing::AssertionSuccess();
}

// Random values with exact zeros of both signs mixed in.
std::vector<float> with_zeros(std::vector<float> v, uint32_t seed) {
  std::mt19937 rng(seed);
  for (auto& x : v)
    if (rng() % 9 == 0) x = (rng() & 1) ? 0.0f : -0.0f;
  return v;
}

}  // namespace

TEST(Kernels, ReferenceIsAlwaysAvailableAndNamesParse) {
  EXPECT_TRUE(isa_available(Isa::Ref));
  EXPECT_EQ(parse_isa("avx512"), Isa::Avx512);
  EXPECT_THROW(parse_isa("sse9"), Error);
  EXPECT_EQ(std::string(kernel_table(Isa::Ref).name), "ref");
}

TEST(Kernels, DequantizeIsBitIdenticalToReference) {
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (DType t : kTypes)
      for (int64_t n : widths(t)) {
        Matrix m = make_matrix(t, 1, n, static_cast<uint32_t>(n));
        std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n) + 1);
        dequantize_row(t, m.w.data, want.data(), n);
        k.dequantize(t, m.w.data, got.data() + 1, n);  // unaligned destination
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(want[static_cast<size_t>(i)], got[static_cast<size_t>(i) + 1])
              << isa_name(isa) << " " << dtype_name(t) << " n=" << n << " i=" << i;
      }
  }
}

// The float products (F32, F16, BF16 rows; every other type dequantized to
// float, the VOLGA_MATMUL=float path) on every ISA: the reference's bits,
// and the reference within float rounding of a float64 product.
TEST(Kernels, MatmulRowsAreBitIdenticalAcrossIsas) {
  const KernelTable& ref = ref_kernels();
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (DType t : kTypes)
      for (int64_t cols : widths(t))
        for (int64_t rows : {1, 5, 13})
          for (int64_t tokens : {1, 2, 3, 5, 9}) {
            Matrix m = make_matrix(t, rows, cols, static_cast<uint32_t>(rows * 131 + cols));
            auto x = with_zeros(random_floats(static_cast<size_t>(tokens * cols) + 1, 7), 8);
            const float* xp = x.data() + 1;  // unaligned activations
            const int64_t ldy = rows + 3;
            std::vector<float> want(static_cast<size_t>(tokens * ldy), -1), got(want.size(), -1);
            // A sub-range of rows, as the thread pool hands out.
            const int64_t r0 = rows > 2 ? 1 : 0;
            ref.matmul_rows(m.w, r0, rows, xp, tokens, want.data(), ldy);
            k.matmul_rows(m.w, r0, rows, xp, tokens, got.data(), ldy);
            ASSERT_TRUE(same_bits(want.data(), got.data(), static_cast<int64_t>(want.size())))
                << isa_name(isa) << " " << dtype_name(t) << " rows=" << rows << " cols=" << cols
                << " tokens=" << tokens;
            if (isa != Isa::Ref) continue;
            std::vector<float> wrow(static_cast<size_t>(cols));
            for (int64_t r = 0; r < rows + 3; ++r)
              for (int64_t tk = 0; tk < tokens; ++tk) {
                size_t i = static_cast<size_t>(tk * ldy + r);
                if (r < r0 || r >= rows) {
                  ASSERT_EQ(got[i], -1.0f) << "wrote outside its rows";
                  continue;
                }
                // Tolerance: float rounding of a length-`cols` dot product.
                dequantize_row(t, m.w.row(r), wrow.data(), cols);
                double exact = 0, mag = 0;
                for (int64_t c = 0; c < cols; ++c) {
                  const double p = static_cast<double>(wrow[static_cast<size_t>(c)]) * xp[tk * cols + c];
                  exact += p;
                  mag += std::fabs(p);
                }
                ASSERT_NEAR(got[i], exact, 1e-5 * mag + 1e-6)
                    << dtype_name(t) << " rows=" << rows << " cols=" << cols << " tokens=" << tokens;
              }
          }
  }
}

// Decode (one or two tokens) may take a fused path that skips the tile
// buffer; a token's result must not depend on how many tokens share the call,
// or a sequence's output would change with the batch it is scheduled in.
TEST(Kernels, MatmulResultDoesNotDependOnTokenCount) {
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (DType t : kTypes)
      for (int64_t cols : widths(t)) {
        const int64_t rows = 7, tokens = 6;
        Matrix m = make_matrix(t, rows, cols, static_cast<uint32_t>(cols * 7 + 3));
        auto x = random_floats(static_cast<size_t>(tokens * cols), 11);
        std::vector<float> all(static_cast<size_t>(tokens * rows));
        k.matmul_rows(m.w, 0, rows, x.data(), tokens, all.data(), rows);
        for (int64_t n : {1, 2}) {
          for (int64_t t0 = 0; t0 + n <= tokens; t0 += n) {
            std::vector<float> part(static_cast<size_t>(n * rows));
            k.matmul_rows(m.w, 0, rows, x.data() + t0 * cols, n, part.data(), rows);
            for (int64_t i = 0; i < n * rows; ++i)
              ASSERT_EQ(part[static_cast<size_t>(i)], all[static_cast<size_t>(t0 * rows + i)])
                  << isa_name(isa) << " " << dtype_name(t) << " cols=" << cols << " tokens=" << n;
          }
        }
      }
  }
}

// dot, axpy, rms_norm, softmax and swiglu: every ISA gives the reference's
// bits on every length; the reference follows float64 within float rounding.
TEST(Kernels, DotIsBitIdenticalAcrossIsas) {
  const KernelTable& ref = ref_kernels();
  for (int64_t n : kLengths) {
    auto a = with_zeros(random_floats(static_cast<size_t>(n) + 1, 1, 3.0f), 3);
    auto b = with_zeros(random_floats(static_cast<size_t>(n) + 1, 2), 4);
    const float* ap = a.data() + 1;  // unaligned
    const float* bp = b.data() + 1;
    const float want = ref.dot(ap, bp, n);
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(ap[i]) * bp[i], mag += std::fabs(ap[i] * bp[i]);
    EXPECT_NEAR(want, exact, 2e-6 * mag + 1e-9) << "n=" << n;
    for (Isa isa : available_isas()) {
      const float got = kernel_table(isa).dot(ap, bp, n);
      EXPECT_TRUE(same_bits(&want, &got, 1)) << isa_name(isa) << " n=" << n;
    }
  }
  // Products of zeros: the sign of the zero sum is the same everywhere too.
  const std::vector<float> nz(37, -0.0f), pz(37, 0.0f);
  for (Isa isa : available_isas())
    for (int64_t n : {0, 5, 16, 37}) {
      const float want = ref.dot(nz.data(), pz.data(), n), got = kernel_table(isa).dot(nz.data(), pz.data(), n);
      EXPECT_TRUE(same_bits(&want, &got, 1)) << isa_name(isa) << " zeros n=" << n;
    }
}

TEST(Kernels, AxpyIsBitIdenticalAcrossIsas) {
  const KernelTable& ref = ref_kernels();
  for (int64_t n : kLengths) {
    auto x = random_floats(static_cast<size_t>(n) + 1, 1, 3.0f), y = random_floats(static_cast<size_t>(n) + 1, 2);
    std::vector<float> want(y);
    ref.axpy(0.37f, x.data() + 1, want.data() + 1, n);
    for (int64_t i = 1; i <= n; ++i)  // one rounding of the exact a x + y
      EXPECT_NEAR(want[static_cast<size_t>(i)], static_cast<double>(0.37f) * x[static_cast<size_t>(i)] + y[static_cast<size_t>(i)],
                  1e-7 * (1 + std::fabs(want[static_cast<size_t>(i)])));
    for (Isa isa : available_isas()) {
      std::vector<float> got(y);
      kernel_table(isa).axpy(0.37f, x.data() + 1, got.data() + 1, n);
      EXPECT_TRUE(same_bits(want.data(), got.data(), n + 1)) << isa_name(isa) << " n=" << n;
    }
  }
}

TEST(Kernels, RmsNormIsBitIdenticalAcrossIsas) {
  const KernelTable& ref = ref_kernels();
  for (int64_t n : kLengths) {
    auto x = random_floats(static_cast<size_t>(n) + 1, 5, 3.0f), w = random_floats(static_cast<size_t>(n) + 1, 6);
    const float* xp = x.data() + 1;
    const float* wp = w.data() + 1;
    std::vector<float> want(static_cast<size_t>(n));
    ref.rms_norm(xp, wp, 1e-6f, n, want.data());
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xp[i]) * xp[i];
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-6f);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(want[static_cast<size_t>(i)], xp[i] * scale * wp[i], 5e-7 * (1 + std::fabs(xp[i] * scale * wp[i])));
    for (Isa isa : available_isas()) {
      std::vector<float> got(static_cast<size_t>(n));
      kernel_table(isa).rms_norm(xp, wp, 1e-6f, n, got.data());
      EXPECT_TRUE(same_bits(want.data(), got.data(), n)) << isa_name(isa) << " n=" << n;
      std::vector<float> in_place(x.begin() + 1, x.end());  // y may alias x
      kernel_table(isa).rms_norm(in_place.data(), wp, 1e-6f, n, in_place.data());
      EXPECT_TRUE(same_bits(want.data(), in_place.data(), n)) << isa_name(isa) << " in place, n=" << n;
    }
  }
}

TEST(Kernels, SoftmaxIsBitIdenticalAcrossIsas) {
  const KernelTable& ref = ref_kernels();
  for (int64_t n : kLengths) {
    // A wide range of logits, including very negative ones.
    auto x = random_floats(static_cast<size_t>(n), 7, 30.0f);
    std::vector<float> want(x);
    ref.softmax(want.data(), n);
    const double mx = *std::max_element(x.begin(), x.end());
    double sum = 0;
    for (float v : x) sum += std::exp(v - mx);
    for (int64_t i = 0; i < n; ++i) {
      const double p = std::exp(x[static_cast<size_t>(i)] - mx) / sum;
      // The kernels' exp polynomial is within 5.6e-6 of exp (relative).
      EXPECT_NEAR(want[static_cast<size_t>(i)], p, 1.5e-5 * p + 1e-30) << "n=" << n << " i=" << i;
    }
    for (Isa isa : available_isas()) {
      std::vector<float> got(x);
      kernel_table(isa).softmax(got.data(), n);
      EXPECT_TRUE(same_bits(want.data(), got.data(), n)) << isa_name(isa) << " n=" << n;
    }
  }
}

TEST(Kernels, SwigluIsBitIdenticalAcrossIsas) {
  const KernelTable& ref = ref_kernels();
  for (int64_t n : kLengths) {
    auto g = with_zeros(random_floats(static_cast<size_t>(n) + 1, 8, 4.0f), 9), u = random_floats(static_cast<size_t>(n) + 1, 10);
    std::vector<float> want(static_cast<size_t>(n));
    ref.swiglu(g.data() + 1, u.data() + 1, n, want.data());
    for (int64_t i = 0; i < n; ++i) {
      const double gi = g[static_cast<size_t>(i) + 1], e = gi / (1 + std::exp(-gi)) * u[static_cast<size_t>(i) + 1];
      EXPECT_NEAR(want[static_cast<size_t>(i)], e, 1e-5 * (1 + std::fabs(e)));  // exp within 5.6e-6
    }
    for (Isa isa : available_isas()) {
      std::vector<float> got(static_cast<size_t>(n));
      kernel_table(isa).swiglu(g.data() + 1, u.data() + 1, n, got.data());
      EXPECT_TRUE(same_bits(want.data(), got.data(), n)) << isa_name(isa) << " n=" << n;
    }
  }
}

TEST(Kernels, ExpHandlesExtremeInputs) {
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    std::vector<float> x = {-1000.f, -100.f, -87.f, 0.f, 1e-8f, 50.f, 88.f, 1000.f, -3.f, 2.f, 7.f, -0.5f,
                            10.f, 20.f, -20.f, 0.25f, 30.f};
    std::vector<float> gate(x), up(x.size(), 1.0f), out(x.size());
    k.swiglu(gate.data(), up.data(), static_cast<int64_t>(x.size()), out.data());
    for (size_t i = 0; i < x.size(); ++i) {
      double want = x[i] / (1.0 + std::exp(-static_cast<double>(x[i])));
      EXPECT_TRUE(std::isfinite(out[i])) << isa_name(isa) << " x=" << x[i];
      EXPECT_NEAR(out[i], want, 1e-5 * (1 + std::fabs(want))) << isa_name(isa) << " x=" << x[i];
    }
  }
}

// RoPE on every ISA equals the reference bit for bit, in both pair layouts,
// for head sizes with and without a vector tail.
TEST(Kernels, RopeMatchesReference) {
  const KernelTable& ref = ref_kernels();
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (bool neox : {true, false})
      for (int n_pairs : {1, 3, 4, 8, 13, 32, 64}) {
        auto head = random_floats(static_cast<size_t>(2 * n_pairs) + 1, 5, 3.0f);
        auto ang = random_floats(static_cast<size_t>(n_pairs), 6, 3.0f);
        std::vector<float> c(ang.size()), s(ang.size());
        for (size_t i = 0; i < ang.size(); ++i) c[i] = std::cos(ang[i]), s[i] = std::sin(ang[i]);
        std::vector<float> want(head), got(head);
        ref.rope(want.data() + 1, c.data(), s.data(), n_pairs, neox);  // +1: unaligned
        k.rope(got.data() + 1, c.data(), s.data(), n_pairs, neox);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(got[i], want[i]) << isa_name(isa) << (neox ? " neox" : " adjacent") << " n_pairs " << n_pairs
                                     << " at " << i;
        // And it is a rotation: each pair keeps its length.
        for (int i = 0; i < n_pairs; ++i) {
          const int a = neox ? i : 2 * i, b = neox ? i + n_pairs : 2 * i + 1;
          const double r0 = std::hypot(head[static_cast<size_t>(a + 1)], head[static_cast<size_t>(b + 1)]);
          const double r1 = std::hypot(got[static_cast<size_t>(a + 1)], got[static_cast<size_t>(b + 1)]);
          ASSERT_NEAR(r1, r0, 1e-5 * (1 + r0));
        }
      }
  }
}
