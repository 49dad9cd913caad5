// The integer matrix products (activations quantized to int8): every ISA's
// quantizer and product bit for bit against the scalar reference, the
// reference's weight integers against dequantization, and the product against
// float64 arithmetic within the bound the activation rounding allows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernel_fixtures.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/ref/int8_ref.h"
#include "kernels/ref/kquant_scales.h"
#include "tensor/quant.h"

using namespace volga;
using namespace volga::kernels;
using namespace volga::test;

namespace {

const DType kInt8Types[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                            DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS,
                            DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S, DType::IQ3_XXS, DType::IQ3_S,
                            DType::IQ1_S, DType::IQ1_M, DType::Q2_K, DType::Q3_K};

std::vector<int64_t> widths(DType t) {
  const int64_t bs = traits(t).block_size;
  return {bs, 3 * bs, 7 * bs};
}

struct Acts {
  std::vector<int8_t> q;
  std::vector<uint8_t> qu;
  std::vector<float> d, s;
  Int8Acts view;
};

// Block-32 activations (the legacy types' scheme).
Acts quantize(const KernelTable& k, const float* x, int64_t cols, int64_t tokens) {
  Acts a;
  const int64_t nc = cols / 32;
  a.q.resize(static_cast<size_t>(cols * tokens));
  a.qu.resize(a.q.size());
  a.d.resize(static_cast<size_t>(nc * tokens));
  a.s.resize(a.d.size());
  for (int64_t t = 0; t < tokens; ++t)
    k.quantize_acts(x + t * cols, cols, a.q.data() + t * cols, a.qu.data() + t * cols, a.d.data() + t * nc,
                    a.s.data() + t * nc);
  a.view = Int8Acts{cols, tokens, a.q.data(), a.qu.data(), a.d.data(), a.s.data()};
  return a;
}

// Token t0 of quantized activations, as a view of its own.
Int8Acts one_token(const Int8Acts& a, int64_t t0) {
  const int64_t cols = a.cols, nd = cols / a.block;
  Int8Acts one = a;
  one.n_tokens = 1;
  one.q += t0 * cols, one.qu += t0 * cols, one.d += t0 * nd;
  if (one.s) one.s += t0 * nd;
  if (one.bsum) one.bsum += t0 * (cols / 16);
  return one;
}

}  // namespace

TEST(Int8Kernels, ActivationQuantizationFollowsItsDefinitionOnEveryIsa) {
  // 41 chunks: the AVX-512 quantizer takes 16 chunks at a time (two blocks)
  // and then single chunks; the special chunks below fall in both.
  const int64_t cols = 32 * 41;
  auto x = random_floats(static_cast<size_t>(cols) + 1, 3, 2.0f);
  float* xp = x.data() + 1;  // unaligned
  for (int64_t c = 0; c < cols / 32; ++c)  // a different scale per chunk
    for (int i = 0; i < 32; ++i) xp[32 * c + i] *= std::ldexp(1.0f, static_cast<int>(c % 7) - 3);
  for (int base : {32, 32 * 21, 32 * 35}) {
    for (int i = 0; i < 32; ++i) xp[base + i] = 0.0f;  // an all-zero chunk
    xp[base + 32] = 1e30f, xp[base + 33] = -1e-30f;    // a huge outlier beside a tiny value
    for (int i = 0; i < 32; ++i) xp[base + 64 + i] = 127.0f * static_cast<float>(i - 16) / 254.0f * 2;  // exact .5 ties
  }
  const Acts want = quantize(ref_kernels(), xp, cols, 1);
  for (int64_t c = 0; c < cols / 32; ++c) {
    double amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(static_cast<double>(xp[32 * c + i])));
    const float d = want.d[static_cast<size_t>(c)];
    ASSERT_FLOAT_EQ(d, static_cast<float>(amax) / 127.0f);
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      const int q = want.q[static_cast<size_t>(32 * c + i)];
      ASSERT_LE(std::abs(q), 127);
      ASSERT_EQ(static_cast<int>(want.qu[static_cast<size_t>(32 * c + i)]), q + 128);
      ASSERT_LE(std::fabs(xp[32 * c + i] - static_cast<double>(d) * q), 0.5 * d * (1 + 1e-6) + 1e-30) << c << " " << i;
      sum += q;
    }
    ASSERT_EQ(want.s[static_cast<size_t>(c)], d * static_cast<float>(sum));
  }
  for (Isa isa : available_isas()) {
    const Acts got = quantize(kernel_table(isa), xp, cols, 1);
    EXPECT_EQ(got.q, want.q) << isa_name(isa);
    EXPECT_EQ(got.qu, want.qu) << isa_name(isa);
    EXPECT_EQ(got.d, want.d) << isa_name(isa);
    EXPECT_EQ(got.s, want.s) << isa_name(isa);
  }
}

// Block 256 (the k-quants): one scale per 256 elements, the integer sums
// of each 16, checked against the definition and across ISAs.
TEST(Int8Kernels, Block256QuantizationFollowsItsDefinitionOnEveryIsa) {
  const int64_t cols = 256 * 5;
  auto x = random_floats(static_cast<size_t>(cols) + 1, 4, 2.0f);
  float* xp = x.data() + 1;  // unaligned
  for (int64_t b = 0; b < cols / 256; ++b)  // a different scale per block
    for (int i = 0; i < 256; ++i) xp[256 * b + i] *= std::ldexp(1.0f, static_cast<int>(b) - 2);
  for (int i = 0; i < 256; ++i) xp[256 + i] = 0.0f;  // an all-zero block
  xp[512] = 1e30f, xp[513] = -1e-30f;               // a huge outlier beside a tiny value
  Int8ActsBuffer want_buf;
  const Int8Acts& want = quantize_int8_acts(ref_kernels(), DType::Q4_K, xp, cols, 1, want_buf);
  ASSERT_EQ(want.block, 256);
  for (int64_t b = 0; b < cols / 256; ++b) {
    double amax = 0;
    for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(static_cast<double>(xp[256 * b + i])));
    const float d = want.d[b];
    ASSERT_FLOAT_EQ(d, static_cast<float>(amax) / 127.0f);
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) {
        const int q = want.q[256 * b + i];
        ASSERT_LE(std::abs(q), 127);
        ASSERT_EQ(static_cast<int>(want.qu[256 * b + i]), q + 128);
        ASSERT_LE(std::fabs(xp[256 * b + i] - static_cast<double>(d) * q), 0.5 * d * (1 + 1e-6) + 1e-30) << b << " " << i;
        sum += q;
      }
      ASSERT_EQ(want.bsum[16 * b + g], sum);
    }
  }
  for (Isa isa : available_isas()) {
    Int8ActsBuffer got;
    quantize_int8_acts(kernel_table(isa), DType::Q6_K, xp, cols, 1, got);
    EXPECT_EQ(got.q, want_buf.q) << isa_name(isa);
    EXPECT_EQ(got.qu, want_buf.qu) << isa_name(isa);
    EXPECT_EQ(got.d, want_buf.d) << isa_name(isa);
    EXPECT_EQ(got.bsum, want_buf.bsum) << isa_name(isa);
  }
}

// The k-quants' integer sub-block scales and minima (kquant_scales) and the
// centred integers reproduce dequantization.
TEST(Int8Kernels, KQuantIntegerScalesReproduceDequantization) {
  for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const int64_t cols = 3 * 256;
    Matrix m = make_matrix(t, 1, cols, 41);
    std::vector<float> want(static_cast<size_t>(cols));
    dequantize_row(t, m.w.data, want.data(), cols);
    for (int64_t b = 0; b < cols / 256; ++b) {
      KScales ks;
      visit_dtype<int8_type>(t, [&]<DType T>() {
        if constexpr (kBlock256<T>) kquant_scales<T>(reinterpret_cast<const BlockOf<T>*>(m.w.data)[b], &ks);
      });
      Int8Chunk ch;
      for (int c = 0; c < 8; ++c) {
        int8_chunk_ref(t, m.w.data, 8 * b + c, &ch);
        for (int i = 0; i < 32; ++i) {
          const int g = (32 * c + i) / 16;
          const double v = static_cast<double>(ks.d) * ks.sc[g] * ch.q[i] - static_cast<double>(ks.dmin) * ks.m[g];
          const double w = want[static_cast<size_t>(256 * b + 32 * c + i)];
          ASSERT_NEAR(v, w, 1e-6 * (std::fabs(w) + std::fabs(ks.d) * 64 + std::fabs(ks.dmin) * 64))
              << dtype_name(t) << " block " << b << " element " << 32 * c + i;
        }
      }
    }
  }
}

TEST(Int8Kernels, WeightIntegersReproduceDequantization) {
  for (DType t : kInt8Types)
    for (int64_t cols : widths(t)) {
      Matrix m = make_matrix(t, 1, cols, static_cast<uint32_t>(cols + 17));
      std::vector<float> want(static_cast<size_t>(cols));
      dequantize_row(t, m.w.data, want.data(), cols);
      Int8Chunk ch;
      for (int64_t c = 0; c < cols / 32; ++c) {
        int8_chunk_ref(t, m.w.data, c, &ch);
        for (int i = 0; i < 32; ++i) {
          const float mn = ch.group == 16 && i >= 16 ? ch.min_hi : ch.min;  // q2_k: a minimum per 16
          const float v = ch.scale[i / ch.group] * static_cast<float>(ch.q[i]) + mn;
          ASSERT_EQ(v, want[static_cast<size_t>(32 * c + i)]) << dtype_name(t) << " chunk " << c << " i " << i;
        }
      }
    }
}

TEST(Int8Kernels, ProductIsBitIdenticalToReferenceOnEveryIsa) {
  const KernelTable& ref = ref_kernels();
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (DType t : kInt8Types)
      for (int64_t cols : widths(t))
        for (int64_t rows : {1, 5, 16, 19, 35}) {
          const Matrix m = make_matrix(t, rows, cols, static_cast<uint32_t>(rows * 131 + cols));
          for (int64_t tokens : {1, 2, 3, 4, 5, 7, 8, 9, 13}) {  // every micro-tile and small-batch path
            auto x = random_floats(static_cast<size_t>(tokens * cols), static_cast<uint32_t>(tokens));
            Int8ActsBuffer a;
            quantize_int8_acts(ref, t, x.data(), cols, tokens, a);
            const int64_t ldy = rows + 3;
            std::vector<float> want(static_cast<size_t>(tokens * ldy), -1), got(want.size(), -1);
            const int64_t r0 = rows > 2 ? 1 : 0;  // a sub-range, as the thread pool hands out
            ref.matmul_rows_int8(m.w, r0, rows, a.view, want.data(), ldy);
            k.matmul_rows_int8(m.w, r0, rows, a.view, got.data(), ldy);
            for (int64_t r = 0; r < ldy; ++r)
              for (int64_t tk = 0; tk < tokens; ++tk) {
                const size_t i = static_cast<size_t>(tk * ldy + r);
                if (r < r0 || r >= rows) ASSERT_EQ(got[i], -1.0f) << "wrote outside its rows";
                else ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " " << dtype_name(t) << " rows=" << rows
                                                << " cols=" << cols << " tokens=" << tokens << " r=" << r << " t=" << tk;
              }
          }
        }
  }
}

// The lattice i-quants from random bytes: every grid index (with its high
// bits), sign pattern and scale field occurs, not only those the quantizers
// pick. Only each super-block's scale d is set to a finite fp16 (iq1_m: in
// the top nibbles of its scale words). Every ISA, 1 token to panels.
TEST(Int8Kernels, LatticeBlocksOfRandomBytesMatchReferenceOnEveryIsa) {
  const KernelTable& ref = ref_kernels();
  std::mt19937 rng(77);
  for (DType t : {DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S, DType::IQ3_XXS, DType::IQ3_S, DType::IQ1_S, DType::IQ1_M}) {
    const int64_t bs = traits(t).block_size, rows = 23, cols = 3 * bs, bb = traits(t).block_bytes, stride = row_bytes(t, cols);
    std::vector<uint8_t> bytes(static_cast<size_t>(stride * rows));  // no slack after the last row
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    for (int64_t blk = 0; blk < rows * (cols / bs); ++blk) {
      uint8_t* b = bytes.data() + blk * bb;
      const uint16_t d = static_cast<uint16_t>(0x3000 + rng() % 0x0C00);  // 0.125 .. 1.5
      if (t == DType::IQ1_M) {
        for (int k = 0; k < 4; ++k) b[48 + 2 * k + 1] = static_cast<uint8_t>((b[48 + 2 * k + 1] & 0x0F) | (((d >> (4 * k)) & 0xF) << 4));
      } else {
        std::memcpy(b, &d, 2);
      }
    }
    const WeightMatrix w{t, rows, cols, stride, bytes.data()};
    for (Isa isa : available_isas())
      for (int64_t tokens : {1, 2, 3, 8, 9, 17}) {
        auto x = random_floats(static_cast<size_t>(tokens * cols), static_cast<uint32_t>(tokens + 3));
        const Acts a = quantize(ref, x.data(), cols, tokens);
        std::vector<float> want(static_cast<size_t>(tokens * rows)), got(want.size());
        ref.matmul_rows_int8(w, 0, rows, a.view, want.data(), rows);
        kernel_table(isa).matmul_rows_int8(w, 0, rows, a.view, got.data(), rows);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " " << dtype_name(t) << " tokens=" << tokens << " at " << i;
      }
  }
}

TEST(Int8Kernels, ResultDoesNotDependOnTokenCount) {
  for (Isa isa : available_isas()) {
    const KernelTable& k = kernel_table(isa);
    for (DType t : kInt8Types) {
      const int64_t rows = 21, cols = 2 * traits(t).block_size * (traits(t).block_size == 32 ? 4 : 1), tokens = 11;
      Matrix m = make_matrix(t, rows, cols, 5);
      auto x = random_floats(static_cast<size_t>(tokens * cols), 9);
      Int8ActsBuffer a;
      quantize_int8_acts(k, t, x.data(), cols, tokens, a);
      std::vector<float> all(static_cast<size_t>(tokens * rows));
      k.matmul_rows_int8(m.w, 0, rows, a.view, all.data(), rows);
      for (int64_t t0 = 0; t0 < tokens; ++t0) {
        const Int8Acts one = one_token(a.view, t0);
        std::vector<float> part(static_cast<size_t>(rows));
        k.matmul_rows_int8(m.w, 0, rows, one, part.data(), rows);
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_EQ(part[static_cast<size_t>(r)], all[static_cast<size_t>(t0 * rows + r)]) << isa_name(isa) << " " << dtype_name(t);
      }
    }
  }
}

// Independent of the integer scheme: against float64 sums of the dequantized
// weights times the unquantized activations. Rounding an activation moves it
// by at most half its chunk's scale, which bounds the error.
TEST(Int8Kernels, ProductApproximatesFloat64WithinTheRoundingBound) {
  const KernelTable& ref = ref_kernels();
  for (DType t : kInt8Types) {
    const int64_t rows = 9, cols = 4 * traits(t).block_size, tokens = 3;
    Matrix m = make_matrix(t, rows, cols, 23);
    auto x = random_floats(static_cast<size_t>(tokens * cols), 29);
    Int8ActsBuffer a;
    quantize_int8_acts(ref, t, x.data(), cols, tokens, a);
    const int64_t block = a.view.block;
    std::vector<float> y(static_cast<size_t>(tokens * rows));
    ref.matmul_rows_int8(m.w, 0, rows, a.view, y.data(), rows);
    std::vector<float> wrow(static_cast<size_t>(cols));
    double worst = 0;
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(t, m.w.row(r), wrow.data(), cols);
      for (int64_t tk = 0; tk < tokens; ++tk) {
        double exact = 0, bound = 0, mag = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double w = wrow[static_cast<size_t>(c)], xv = x[static_cast<size_t>(tk * cols + c)];
          exact += w * xv;
          mag += std::fabs(w * xv);
          bound += std::fabs(w) * 0.5 * a.d[static_cast<size_t>(tk * (cols / block) + c / block)];
        }
        const double err = std::fabs(y[static_cast<size_t>(tk * rows + r)] - exact);
        ASSERT_LE(err, bound + 1e-5 * mag) << dtype_name(t) << " r=" << r << " t=" << tk;
        worst = std::max(worst, err / mag);
      }
    }
    // And the rounding is real (a float path would be ~1e-7): the test sees the scheme.
    EXPECT_GT(worst, 1e-5) << dtype_name(t);
  }
}

// The grouped front (one matrix per attention head) slices the quantized
// activations per group: each group's result equals a plain product.
TEST(Int8Kernels, GroupedProductEqualsOneProductPerGroup) {
  ThreadPool pool(2);
  for (DType t : {DType::Q8_0, DType::Q4_K}) {
    const int64_t groups = 3, rows = 40, cols = traits(t).block_size * 2, tokens = 5;
    std::vector<Matrix> ms;
    std::vector<WeightMatrix> ws;
    for (int64_t g = 0; g < groups; ++g) ms.push_back(make_matrix(t, rows, cols, static_cast<uint32_t>(g + 1)));
    for (auto& m : ms) ws.push_back(m.w);
    auto x = random_floats(static_cast<size_t>(groups * tokens * cols), 4);
    std::vector<float> y(static_cast<size_t>(groups * tokens * rows)), one(static_cast<size_t>(tokens * rows));
    matmul_grouped(ws.data(), groups, x.data(), tokens, y.data(), pool);
    for (int64_t g = 0; g < groups; ++g) {
      matmul(ws[static_cast<size_t>(g)], x.data() + g * tokens * cols, tokens, one.data(), pool);
      for (int64_t i = 0; i < tokens * rows; ++i)
        ASSERT_EQ(y[static_cast<size_t>(g * tokens * rows + i)], one[static_cast<size_t>(i)]) << dtype_name(t) << " group " << g;
    }
  }
}

// Several products of one input (q/k/v, gate/up) share one quantization and
// one pass of the pool; each result equals its own plain product, whether
// the matrices all take the integer path, the float path, or a mix of both.
TEST(Int8Kernels, MultiProductEqualsSeparateProducts) {
  ThreadPool pool(2);
  const std::vector<std::vector<DType>> sets = {
      {DType::Q8_0, DType::Q5_0, DType::Q6_K}, {DType::F16, DType::F16}, {DType::Q4_K, DType::F16, DType::Q8_0}};
  const int64_t cols = 512, rows[3] = {40, 7, 130};
  for (const auto& types : sets)
    for (int64_t tokens : {1, 5, 20}) {
      const int n = static_cast<int>(types.size());
      std::vector<Matrix> ms;
      for (int i = 0; i < n; ++i) ms.push_back(make_matrix(types[static_cast<size_t>(i)], rows[i], cols, static_cast<uint32_t>(i + 7)));
      auto x = random_floats(static_cast<size_t>(tokens * cols), 9);
      std::vector<std::vector<float>> y(static_cast<size_t>(n));
      std::vector<const WeightMatrix*> w;
      std::vector<float*> yp;
      for (int i = 0; i < n; ++i) {
        y[static_cast<size_t>(i)].assign(static_cast<size_t>(tokens * rows[i]), -1.0f);
        w.push_back(&ms[static_cast<size_t>(i)].w);
        yp.push_back(y[static_cast<size_t>(i)].data());
      }
      matmul_multi(w.data(), yp.data(), n, x.data(), tokens, pool);
      for (int i = 0; i < n; ++i) {
        std::vector<float> one(static_cast<size_t>(tokens * rows[i]));
        matmul(ms[static_cast<size_t>(i)].w, x.data(), tokens, one.data(), pool);
        for (size_t j = 0; j < one.size(); ++j)
          ASSERT_EQ(y[static_cast<size_t>(i)][j], one[j])
              << dtype_name(types[static_cast<size_t>(i)]) << " matrix " << i << " tokens " << tokens << " at " << j;
      }
    }
}

// A batch of independent products (the experts of a mixture of experts) in
// one pass of the pool: each result equals its own plain product, with
// inputs shared by some jobs and not others, different widths and token
// counts (none, one, many), integer and float paths mixed, and a job whose
// tiles cross the ranges the pool hands out.
TEST(Int8Kernels, BatchProductEqualsSeparateProducts) {
  ThreadPool pool(2);
  struct Spec {
    DType type;
    int64_t rows, cols, tokens;
    int input;  // jobs with the same input index share one x pointer
  };
  const std::vector<Spec> specs = {{DType::Q4_K, 300, 512, 1, 0}, {DType::Q4_K, 300, 512, 1, 0},
                                   {DType::Q6_K, 17, 256, 3, 1},  {DType::F16, 40, 512, 1, 0},
                                   {DType::Q8_0, 64, 96, 0, 2},   {DType::Q5_0, 129, 96, 7, 3},
                                   {DType::F32, 5, 256, 3, 1},    {DType::Q2_K, 33, 256, 3, 1}};
  std::vector<std::vector<float>> inputs(4);
  for (const Spec& s : specs) {
    auto& in = inputs[static_cast<size_t>(s.input)];
    if (in.empty()) in = random_floats(static_cast<size_t>(std::max<int64_t>(1, s.tokens) * s.cols), 20 + static_cast<uint32_t>(s.input));
  }
  std::vector<Matrix> ms;
  std::vector<std::vector<float>> ys;
  std::vector<MatmulJob> jobs;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec& s = specs[i];
    ms.push_back(make_matrix(s.type, s.rows, s.cols, static_cast<uint32_t>(i + 30)));
    ys.emplace_back(static_cast<size_t>(std::max<int64_t>(1, s.tokens) * s.rows), -7.0f);
  }
  for (size_t i = 0; i < specs.size(); ++i)
    jobs.push_back({&ms[i].w, inputs[static_cast<size_t>(specs[i].input)].data(), specs[i].tokens, ys[i].data()});
  matmul_batch(jobs.data(), static_cast<int>(jobs.size()), pool);
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec& s = specs[i];
    if (s.tokens == 0) {
      for (float v : ys[i]) ASSERT_EQ(v, -7.0f) << "job " << i << " has no tokens and must not write";
      continue;
    }
    std::vector<float> one(static_cast<size_t>(s.tokens * s.rows));
    matmul(ms[i].w, inputs[static_cast<size_t>(s.input)].data(), s.tokens, one.data(), pool);
    for (size_t j = 0; j < one.size(); ++j) ASSERT_EQ(ys[i][j], one[j]) << dtype_name(s.type) << " job " << i << " at " << j;
  }
}
