// AVX2 + FMA + F16C kernels: 8 float lanes. Compiled with -mavx2 -mfma
// -mf16c; only called after CPUID says so.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/attend_tiled.h"
#include "kernels/dispatch.h"
#include "kernels/float_order.h"
#include "kernels/x86/int8_x86.h"
#include "tensor/blocks.h"
#include "tensor/quant.h"

namespace volga::kernels {
namespace avx2 {

constexpr int W = 8;
constexpr int kRows = 2;  // weight rows per tile
constexpr int kTok = 2;   // tokens per micro-tile: 2 x 2 x 2 accumulators (16 lanes in two) + 2 activations + 1 weight of 16 registers

using V = __m256;
using VI = __m256i;
static inline V vzero() { return _mm256_setzero_ps(); }
static inline V vset1(float a) { return _mm256_set1_ps(a); }
static inline V vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
static inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
static inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
static inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
static inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
static inline V vdiv(V a, V b) { return _mm256_div_ps(a, b); }
static inline V vmin(V a, V b) { return _mm256_min_ps(a, b); }
static inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
static inline V vfloor(V a) { return _mm256_floor_ps(a); }
static inline V vscale2(V p, V e) {
  VI bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(e), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}
static inline float vsum(V v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// [x1 x0 x3 x2 ...]: the two lanes of each adjacent pair swapped.
static inline V vswap_pairs(V x) { return _mm256_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)); }
// [p0 p0 p1 p1 p2 p2 p3 p3] from 4 floats.
static inline V vload_dup_pairs(const float* p) {
  return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
}
// [-1 1 -1 1 ...]
static inline V valt_sign() { return _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1); }
// out[i] = vsum(a[i]) for 8 vectors at once, adding the very lane pairs of
// vsum's tree (j and j+4, then j+2, then j+1) while transposing.
static inline void vsum_w(const V* a, float* out) {
  V b[4], c[2];
  for (int p = 0; p < 4; ++p)  // 128-bit lane m of b[p]: 4 partial sums of a[2p + m]
    b[p] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * p], a[2 * p + 1], 0x20),
                         _mm256_permute2f128_ps(a[2 * p], a[2 * p + 1], 0x31));
  for (int p = 0; p < 2; ++p)  // lanes j + j+2
    c[p] = _mm256_add_ps(_mm256_shuffle_ps(b[2 * p], b[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(b[2 * p], b[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // lanes j + j+1; lane 4k + m now holds the sum of a[2m + k]
  const V e = _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm256_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
  _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(e, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}
// a * b + c on lanes [0, n) (0 < n < 8), c's other lanes kept; reads only
// a[0 .. n) and b[0 .. n).
static inline V vfma_first(const float* a, const float* b, int n, V c) {
  const VI m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const V r = _mm256_fmadd_ps(_mm256_maskload_ps(a, m), _mm256_maskload_ps(b, m), c);
  return _mm256_blendv_ps(c, r, _mm256_castsi256_ps(m));
}
// The 8 double lanes of the canonical sums (kernels/float_order.h): 0-3, 4-7.
struct D8 {
  __m256d lo, hi;
};
static inline D8 d8_zero() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
// Adds p[0 .. 8) (squared when SQ; exact in double) into the lanes.
template <bool SQ>
static inline void d8_add(D8& acc, const float* p) {
  __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(p)), hi = _mm256_cvtps_pd(_mm_loadu_ps(p + 4));
  if constexpr (SQ) lo = _mm256_mul_pd(lo, lo), hi = _mm256_mul_pd(hi, hi);
  acc.lo = _mm256_add_pd(acc.lo, lo);
  acc.hi = _mm256_add_pd(acc.hi, hi);
}
static inline void d8_store(double* out, const D8& acc) {
  _mm256_storeu_pd(out, acc.lo);
  _mm256_storeu_pd(out + 4, acc.hi);
}
static inline VI vload_u8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
static inline VI vload_i8(const int8_t* p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
static inline V vload_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
static inline V vload_bf16(const uint16_t* p) {
  VI w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline V vcvt(VI a) { return _mm256_cvtepi32_ps(a); }
static inline VI vset1_i(int32_t a) { return _mm256_set1_epi32(a); }
static inline VI viota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
static inline VI vand_i(VI a, int32_t m) { return _mm256_and_si256(a, _mm256_set1_epi32(m)); }
static inline VI vor(VI a, VI b) { return _mm256_or_si256(a, b); }
static inline VI vadd_i(VI a, VI b) { return _mm256_add_epi32(a, b); }
static inline VI vsub_i(VI a, int32_t b) { return _mm256_sub_epi32(a, _mm256_set1_epi32(b)); }
static inline VI vsrl(VI a, int n) { return _mm256_srl_epi32(a, _mm_cvtsi32_si128(n)); }
static inline VI vsll(VI a, int n) { return _mm256_sll_epi32(a, _mm_cvtsi32_si128(n)); }
static inline VI vsrlv(VI a, VI n) { return _mm256_srlv_epi32(a, n); }

#include "kernels/x86/simd_kernels.inc"

}  // namespace avx2

const KernelTable& avx2_kernels() {
  static const KernelTable t{Isa::Avx2, "avx2", avx2::dequantize_simd, avx2::matmul_rows_simd, avx2::quantize_acts,
                             avx2::quantize_acts_k,
                             avx2::matmul_rows_int8, avx2::dot_simd,
                             avx2::axpy_simd, avx2::rms_norm_simd, avx2::softmax_simd, avx2::swiglu_simd, avx2::fma_probe_simd,
                             avx2::attend_simd, avx2::attend_chunk_simd, avx2::attend_merge_simd,
                             avx2::rope_simd};
  return t;
}

}  // namespace volga::kernels
