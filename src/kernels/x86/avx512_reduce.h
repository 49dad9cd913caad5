// Transposing reduction of 16 AVX-512 vectors, shared by the AVX-512
// translation units (include it only where AVX-512 is enabled). Internal
// linkage on purpose: each unit keeps its own copy, compiled with its flags.
#pragma once

#include <immintrin.h>

namespace volga::kernels::x86 {

// Lane i of the result = op over the 16 lanes of a[i], for 16 vectors at
// once: each stage combines lanes j and j+8, then j+4, j+2, j+1 (the tree of
// a horizontal sum written as 512→256→128→64→32 bits) while transposing,
// 45 instructions instead of 16 separate reductions.
template <typename Op>
static inline __m512 reduce16_transposed(const __m512* a, Op op) {
  __m512 b[8], c[4], d[2];
  for (int p = 0; p < 8; ++p)  // [a(L0 op L2) a(L1 op L3) | same for a+1], Lk = 128-bit lane k
    b[p] = op(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
              _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int p = 0; p < 4; ++p)  // 128-bit lane m of c[p]: 4 partial results of a[4p + m]
    c[p] = op(_mm512_shuffle_f32x4(b[2 * p], b[2 * p + 1], _MM_SHUFFLE(2, 0, 2, 0)),
              _mm512_shuffle_f32x4(b[2 * p], b[2 * p + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int p = 0; p < 2; ++p)  // lanes j, j+2
    d[p] = op(_mm512_shuffle_ps(c[2 * p], c[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
              _mm512_shuffle_ps(c[2 * p], c[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // lanes j, j+1; lane 4k + m now holds the result for a[4m + k]
  const __m512 e = op(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), e);
}

}  // namespace volga::kernels::x86
