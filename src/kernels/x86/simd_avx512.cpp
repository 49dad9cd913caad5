// AVX-512 (F, BW, VL) kernels: 16 float lanes. Compiled with -mavx512f
// -mavx512bw -mavx512vl -mfma -mf16c; only called after CPUID says so.
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
#include "kernels/x86/avx512_reduce.h"
#include "kernels/x86/int8_x86.h"
#include "util/cpu_features.h"
#include "tensor/blocks.h"
#include "tensor/quant.h"

namespace volga::kernels {
namespace avx512 {

constexpr int W = 16;
constexpr int kRows = 4;  // weight rows per tile
constexpr int kTok = 4;   // tokens per micro-tile: 16 accumulators + 4 activations + 1 weight of 32 registers

using V = __m512;
using VI = __m512i;
static inline V vzero() { return _mm512_setzero_ps(); }
static inline V vset1(float a) { return _mm512_set1_ps(a); }
static inline V vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, V v) { _mm512_storeu_ps(p, v); }
static inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
static inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
static inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
static inline V vdiv(V a, V b) { return _mm512_div_ps(a, b); }
static inline V vmin(V a, V b) { return _mm512_min_ps(a, b); }
static inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
static inline V vfloor(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
static inline V vscale2(V p, V e) {
  VI bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(e), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}
// Sum of the 16 lanes by a fixed tree (lanes j and j+8, then j+4, j+2, j+1),
// spelled out so that vsum_w below reproduces it exactly whatever the compiler.
static inline float vsum(V v) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v),
                                  _mm512_castps512_ps256(_mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(3, 2, 3, 2))));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// [x1 x0 x3 x2 ...]: the two lanes of each adjacent pair swapped.
static inline V vswap_pairs(V x) { return _mm512_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)); }
// [p0 p0 p1 p1 ... p7 p7] from 8 floats.
static inline V vload_dup_pairs(const float* p) {
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                               _mm512_castps256_ps512(_mm256_loadu_ps(p)));
}
// [-1 1 -1 1 ...]
static inline V valt_sign() { return _mm512_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1); }
// out[i] = vsum(a[i]) for 16 vectors at once: the transposing tree adds the
// very lane pairs of vsum's tree, so each sum is bit-identical to vsum.
static inline void vsum_w(const V* a, float* out) {
  _mm512_storeu_ps(out, x86::reduce16_transposed(a, [](V x, V y) { return _mm512_add_ps(x, y); }));
}
// a * b + c on lanes [0, n) (0 < n < 16), c's other lanes kept; reads only
// a[0 .. n) and b[0 .. n).
static inline V vfma_first(const float* a, const float* b, int n, V c) {
  const __mmask16 m = static_cast<__mmask16>((1u << n) - 1);
  return _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, a), _mm512_maskz_loadu_ps(m, b), c, m);
}
// The 8 double lanes of the canonical sums (kernels/float_order.h).
struct D8 {
  __m512d v;
};
static inline D8 d8_zero() { return {_mm512_setzero_pd()}; }
// Adds p[0 .. 8) (squared when SQ; exact in double) into the lanes.
template <bool SQ>
static inline void d8_add(D8& acc, const float* p) {
  __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(p));
  if constexpr (SQ) x = _mm512_mul_pd(x, x);
  acc.v = _mm512_add_pd(acc.v, x);
}
static inline void d8_store(double* out, const D8& acc) { _mm512_storeu_pd(out, acc.v); }
static inline VI vload_u8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
static inline VI vload_i8(const int8_t* p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
static inline V vload_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
static inline V vload_bf16(const uint16_t* p) {
  VI w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline V vcvt(VI a) { return _mm512_cvtepi32_ps(a); }
static inline VI vset1_i(int32_t a) { return _mm512_set1_epi32(a); }
static inline VI viota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
static inline VI vand_i(VI a, int32_t m) { return _mm512_and_si512(a, _mm512_set1_epi32(m)); }
static inline VI vor(VI a, VI b) { return _mm512_or_si512(a, b); }
static inline VI vadd_i(VI a, VI b) { return _mm512_add_epi32(a, b); }
static inline VI vsub_i(VI a, int32_t b) { return _mm512_sub_epi32(a, _mm512_set1_epi32(b)); }
static inline VI vsrl(VI a, int n) { return _mm512_srl_epi32(a, _mm_cvtsi32_si128(n)); }
static inline VI vsll(VI a, int n) { return _mm512_sll_epi32(a, _mm_cvtsi32_si128(n)); }
static inline VI vsrlv(VI a, VI n) { return _mm512_srlv_epi32(a, n); }

#include "kernels/x86/simd_kernels.inc"

}  // namespace avx512

__attribute__((target("avx512vnni,avx512f,avx512bw"))) static double vnni_loop(int64_t iters) {
  constexpr int kAcc = 10;
  __m512i acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
  __m512i s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_epi32(s, acc[i]);
  // The sums wrap by design (only the work matters): add them as unsigned,
  // not with _mm512_reduce_add_epi32, whose signed adds overflow.
  alignas(64) uint32_t lanes[16];
  _mm512_store_si512(lanes, s);
  uint32_t total = 0;
  for (uint32_t v : lanes) total += v;
  volatile uint32_t sink = total;
  (void)sink;
  return 2.0 * 64 * kAcc * static_cast<double>(iters);  // 64 int8 multiply-adds per instruction
}

double int8_probe(int64_t iters) {
  const CpuFeatures& f = cpu_features();
  if (!(f.avx512f && f.avx512bw && f.avx512vnni)) return 0;
  return vnni_loop(iters);
}

const KernelTable& avx512_kernels() {
  // Integer products need VNNI; AVX-512 CPUs without it (Skylake-SP) use the
  // AVX2 ones, which give the same results.
  static const bool vnni = cpu_features().avx512vnni;
  static const KernelTable t{Isa::Avx512, "avx512", avx512::dequantize_simd, avx512::matmul_rows_simd,
                             vnni ? avx512vnni::quantize_acts : avx2::quantize_acts,
                             vnni ? avx512vnni::quantize_acts_k : avx2::quantize_acts_k,
                             vnni ? avx512vnni::matmul_rows_int8 : avx2::matmul_rows_int8,
                             avx512::dot_simd, avx512::axpy_simd, avx512::rms_norm_simd, avx512::softmax_simd,
                             avx512::swiglu_simd, avx512::fma_probe_simd, avx512::attend_simd,
                             avx512::attend_chunk_simd, avx512::attend_merge_simd,
                             avx512::rope_simd};
  return t;
}

}  // namespace volga::kernels
