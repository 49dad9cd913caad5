// Integer products for a few tokens (decode, small batches) with AVX2, for
// CPUs without AVX-512 VNNI. Compiled with -mavx2 -mfma -mf16c.
//
// The scheme of int8_gemv_avx512.cpp with 256-bit vectors: 8 rows walked in
// step, each row's 32-element chunk unpacked in place (int8_unpack.inc, the
// panel kernel's unpacking) into centred signed integers, multiplied with
// vpmaddubsw(|w|, sign(x, w)) + vpmaddwd (|w| <= 128, |x| <= 127: no
// saturation, exact), and the 8 rows' partial sums reduced with horizontal
// adds to one vector with rows in lanes. The float work is shared
// (int8_gemv_common.inc), so results are bit-identical to the reference.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/x86/int8_x86.h"
#include "tensor/iq_grids.h"
#include "tensor/quant_iq_low.h"
#include "tensor/type_traits.h"

namespace volga::kernels::avx2 {

#include "kernels/x86/int8_unpack.inc"
#include "kernels/x86/int8_gemv_common.inc"

namespace gemv {

// The unpacked integers are centred: no offset to correct.
template <DType T>
constexpr int32_t kOffset = 0;

// Types whose scales are decoded for the 8 rows at once (gathers) rather
// than row by row with the integers.
template <DType T>
constexpr bool kGathered = T == DType::Q4_K || T == DType::Q5_K || T == DType::Q6_K;

namespace {

// 8 rows' chunks (w, and |w| in wa) against one token's 32 activations: each
// row's exact sums over elements 0-15 (lane0) and 16-31 (lane1), rows in lanes.
inline void row_sums(const __m256i* w, const __m256i* wa, __m256i x, __m256i* lane0, __m256i* lane1) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i p[kRows];
  for (int i = 0; i < kRows; ++i) p[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(wa[i], _mm256_sign_epi8(x, w[i])), ones);
  // hadd twice: 128-bit lane L of a = rows 0-3's sums over lane L, of b = rows 4-7's.
  const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
  const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
  *lane0 = _mm256_permute2x128_si256(a, b, 0x20);
  *lane1 = _mm256_permute2x128_si256(a, b, 0x31);
}

}  // namespace

#include "kernels/x86/int8_gemv_lattice_avx2.inc"

// Super-block u of a lattice i-quant: sub-block by sub-block, the 8 rows
// decoded at once (int8_gemv_lattice_avx2.inc).
template <DType T, int NT>
inline void lattice_unit(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  const int64_t o = u * kFacts<T>.block_bytes;
  const __m256 d = lattice::super_d<T>(rs, o);
  for (int j = 0; j < 8; ++j) {
    __m256i q[kRows], wa[kRows];
    __m256 sc0, sc1;
    lattice::sub_block8<T>(rs, o, d, j, q, &sc0, &sc1);
    for (int i = 0; i < kRows; ++i) wa[i] = _mm256_abs_epi8(q[i]);
    const int64_t c = 8 * u + j;
    for (int t = 0; t < NT; ++t) {
      __m256i l0, l1;
      row_sums(q, wa, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tk.q[t] + 32 * c)), &l0, &l1);
      if constexpr (kFacts<T>.int8_scale_group == 32) l0 = _mm256_add_epi32(l0, l1);
      accumulate<T>(l0, l1, tk.d[t][c], tk.s[t][c], sc0, sc1, _mm256_setzero_ps(), acc[t]);
    }
  }
}

template <DType T, int NT>
inline void gemv_unit(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  if constexpr (kFacts<T>.lattice) {
    lattice_unit<T, NT>(rs, u, tk, acc);
    return;
  }
  constexpr int U = kUnitChunks<T>;
  __m256i q[U][kRows];
  // Scales: the k-quants' are decoded for the 8 rows at once (gathers), the
  // others' one block per row as the panel kernel does.
  alignas(32) float s0[U][kRows], s1[U][kRows], mn[U][kRows], mn1[U][kRows];
  [[maybe_unused]] K45Scales k45;
  [[maybe_unused]] Q6Scales q6;
  if constexpr (T == DType::Q4_K || T == DType::Q5_K) k45 = k45_scales(rs, u * kFacts<T>.block_bytes);
  if constexpr (T == DType::Q6_K) q6 = q6_scales(rs, u * kFacts<T>.block_bytes);
  for (int i = 0; i < kRows; ++i)
    unpack_unit<T, !kGathered<T>>(rs.p[i], u, &q[0][i], kRows, &s0[0][i], &s1[0][i], &mn[0][i], kRows, &mn1[0][i]);
  for (int k = 0; k < U; ++k) {
    const int64_t c = u * U + k;
    __m256i wa[kRows];
    for (int i = 0; i < kRows; ++i) wa[i] = _mm256_abs_epi8(q[k][i]);
    __m256 sc0, sc1, m = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
    if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
      k45_scale_min(k45, k, &sc0, &m);
      sc1 = sc0;
    } else if constexpr (T == DType::Q6_K) {
      sc0 = q6_scale(q6, 2 * k);
      sc1 = q6_scale(q6, 2 * k + 1);
    } else if constexpr (T == DType::Q2_K || T == DType::Q3_K) {
      sc0 = _mm256_load_ps(s0[k]);
      sc1 = _mm256_load_ps(s1[k]);
      if constexpr (kFacts<T>.has_min) m = _mm256_load_ps(mn[k]), m1 = _mm256_load_ps(mn1[k]);
    } else {
      sc0 = sc1 = _mm256_load_ps(s0[k]);
      if constexpr (kFacts<T>.int8_scale_group == 16) sc1 = _mm256_load_ps(s1[k]);
      if constexpr (kFacts<T>.has_min) m = _mm256_load_ps(mn[k]);
    }
    for (int t = 0; t < NT; ++t) {
      __m256i l0, l1;
      row_sums(q[k], wa, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tk.q[t] + 32 * c)), &l0, &l1);
      if constexpr (kFacts<T>.int8_scale_group == 32) l0 = _mm256_add_epi32(l0, l1);
      if constexpr (kFacts<T>.has_min && kFacts<T>.int8_scale_group == 16)  // q2_k: sums per 16 elements
        accumulate<T>(l0, l1, tk.d[t][c], tk.s[t][2 * c], sc0, sc1, m, acc[t], tk.s[t][2 * c + 1], m1);
      else
        accumulate<T>(l0, l1, tk.d[t][c], tk.s[t][c], sc0, sc1, m, acc[t]);
    }
  }
}

}  // namespace gemv

#include "kernels/x86/int8_gemv_driver.inc"

}  // namespace volga::kernels::avx2
