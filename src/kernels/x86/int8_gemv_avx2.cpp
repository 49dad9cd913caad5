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

// The integer scales (and minima) of a k-quant super-block for the 8 rows,
// and its float factors.
struct KRowScales {
  __m256 d, dmin = _mm256_setzero_ps();
  K45Scales k45;
  Q6Scales q6;
  __m256i w[4];  // q2_k: the 16 scale bytes; q3_k: the 12 packed scale bytes
};

template <DType T>
inline KRowScales k_row_scales(const RowSet& rs, int64_t u) {
  KRowScales k{};
  const int64_t o = u * kFacts<T>.block_bytes;
  if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
    k.k45 = k45_scales(rs, o);
    k.d = k.k45.d, k.dmin = k.k45.dmin;
  } else if constexpr (T == DType::Q6_K) {
    k.q6 = q6_scales(rs, o);
    k.d = k.q6.d;
  } else if constexpr (T == DType::Q2_K) {
    const __m256i dm = gather(rs, o + offsetof(BlockQ2_K, d));
    k.d = f16_low(dm), k.dmin = f16_high(dm);
    for (int i = 0; i < 4; ++i) k.w[i] = gather(rs, o + offsetof(BlockQ2_K, scales) + 4 * i);
  } else {  // q3_k
    k.d = f16_high(gather(rs, o + offsetof(BlockQ3_K, d) - 2));  // the dword ending with d, not past the block
    for (int i = 0; i < 3; ++i) k.w[i] = gather(rs, o + offsetof(BlockQ3_K, scales) + 4 * i);
  }
  return k;
}

// Chunk k's scales of its two 16-element groups and its packed minima (pack16).
template <DType T>
inline void k_chunk_scales(const KRowScales& k, int c, __m256i* sc0, __m256i* sc1, __m256i* m01) {
  *m01 = _mm256_setzero_si256();
  if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
    __m256i mn;
    k45_scale_min(k.k45, c, sc0, &mn);
    *sc1 = *sc0;
    *m01 = _mm256_or_si256(mn, _mm256_slli_epi32(mn, 16));
  } else if constexpr (T == DType::Q6_K) {
    *sc0 = q6_scale(k.q6, 2 * c);
    *sc1 = q6_scale(k.q6, 2 * c + 1);
  } else if constexpr (T == DType::Q2_K) {
    const __m256i w = k.w[c / 2];
    const int b = 16 * (c % 2);
    *sc0 = q2k_field(w, b), *sc1 = q2k_field(w, b + 8);
    *m01 = pack16(q2k_field(w, b + 4), q2k_field(w, b + 12));
  } else {
    *sc0 = q3k_scale8(k.w[0], k.w[1], k.w[2], 2 * c);
    *sc1 = q3k_scale8(k.w[0], k.w[1], k.w[2], 2 * c + 1);
  }
}

// Super-block u of a k-quant (block 256, see Int8Acts in kernels/dispatch.h):
// each chunk's exact sums per 16 elements times the rows' integer scales,
// added as integers; one float step per super-block.
template <DType T, int NT>
inline void k_unit(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  __m256i q[8][kRows];
  for (int i = 0; i < kRows; ++i) unpack_unit<T, false>(rs.p[i], u, &q[0][i], kRows, nullptr, nullptr, nullptr, 0);
  const KRowScales ks = k_row_scales<T>(rs, u);
  __m256i I[NT], M[NT];
  for (int t = 0; t < NT; ++t) I[t] = M[t] = _mm256_setzero_si256();
  for (int c = 0; c < 8; ++c) {
    __m256i wa[kRows];
    for (int i = 0; i < kRows; ++i) wa[i] = _mm256_abs_epi8(q[c][i]);
    __m256i sc0, sc1, m01;
    k_chunk_scales<T>(ks, c, &sc0, &sc1, &m01);
    for (int t = 0; t < NT; ++t) {
      __m256i l0, l1;
      row_sums(q[c], wa, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tk.q[t] + 256 * u + 32 * c)), &l0, &l1);
      if constexpr (kFacts<T>.int8_scale_group == 32) {
        I[t] = _mm256_add_epi32(I[t], _mm256_mullo_epi32(_mm256_add_epi32(l0, l1), sc0));
      } else {
        I[t] = _mm256_add_epi32(I[t], _mm256_add_epi32(_mm256_mullo_epi32(l0, sc0), _mm256_mullo_epi32(l1, sc1)));
      }
      if constexpr (kFacts<T>.has_min)
        M[t] = _mm256_add_epi32(M[t], _mm256_madd_epi16(m01, _mm256_set1_epi32(bsum_pair(tk.bsum[t] + 16 * u, c))));
    }
  }
  for (int t = 0; t < NT; ++t) k_finish<T>(I[t], M[t], ks.d, ks.dmin, tk.d[t][u], acc[t]);
}

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

// Unit u of the block-32 types: one block of the legacy types, a
// super-block of iq4_xs and the lattice types.
template <DType T, int NT>
inline void block32_unit(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  constexpr int U = kUnitChunks<T>;
  __m256i q[U][kRows];
  alignas(32) float s0[U][kRows], s1[U][kRows], mn[U][kRows];
  for (int i = 0; i < kRows; ++i) unpack_unit<T>(rs.p[i], u, &q[0][i], kRows, &s0[0][i], &s1[0][i], &mn[0][i], kRows);
  for (int k = 0; k < U; ++k) {
    const int64_t c = u * U + k;
    __m256i wa[kRows];
    for (int i = 0; i < kRows; ++i) wa[i] = _mm256_abs_epi8(q[k][i]);
    __m256 sc0 = _mm256_load_ps(s0[k]), sc1 = sc0, m = _mm256_setzero_ps();
    if constexpr (kFacts<T>.int8_scale_group == 16) sc1 = _mm256_load_ps(s1[k]);
    if constexpr (kFacts<T>.has_min) m = _mm256_load_ps(mn[k]);
    for (int t = 0; t < NT; ++t) {
      __m256i l0, l1;
      row_sums(q[k], wa, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tk.q[t] + 32 * c)), &l0, &l1);
      if constexpr (kFacts<T>.int8_scale_group == 32) l0 = _mm256_add_epi32(l0, l1);
      accumulate<T>(l0, l1, tk.d[t][c], tk.s[t][c], sc0, sc1, m, acc[t]);
    }
  }
}

}  // namespace

template <DType T, int NT>
inline void gemv_unit(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  if constexpr (kBlock256<T>) k_unit<T, NT>(rs, u, tk, acc);
  else if constexpr (kFacts<T>.lattice) lattice_unit<T, NT>(rs, u, tk, acc);
  else block32_unit<T, NT>(rs, u, tk, acc);
}

}  // namespace gemv

#include "kernels/x86/int8_gemv_driver.inc"

}  // namespace volga::kernels::avx2
