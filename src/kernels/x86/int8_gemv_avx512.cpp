// Integer products for a few tokens (decode, small batches) with AVX-512 VNNI.
// Compiled with the VNNI flags of int8_avx512.cpp; only called after CPUID
// says so.
//
// The panel kernel (int8_avx512.cpp) unpacks and transposes 16 weight rows
// so that many tokens can reuse them; with one token that work is never paid
// back and decode of the 4- to 6-bit types became compute-bound. Here the
// weights are used where they lie, 8 rows walked in step:
//   - a vector holds one 32-element chunk of two rows as unsigned bytes n
//     (row a in the low 256 bits, row b in the high), in element order, with
//     no transposition: the weight's value is scale * (n - offset) + min, the
//     offset being 128 for q8_0 (stored bytes with the sign bit flipped) and
//     for iq4_nl / iq4_xs (their levels looked up with 128 added),
//     8 / 16 / 32 / 4 for q4_0 / q5_0 / q6_k / q3_k and 0 for the types
//     with a minimum;
//   - vpdpbusd against the token's signed activations (32 bytes broadcast to
//     both halves) leaves 8 partial sums per row; four such vectors (8 rows)
//     are reduced with a fixed tree of shuffles and adds to the 8 rows' sums,
//     minus offset * (sum of the activations);
//   - scales of the 8 rows are gathered into vectors, and the float work
//     (int8_gemv_common.inc) is the panel kernel's, operation for operation,
//     so results stay bit-identical to matmul_rows_int8_ref.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "kernels/x86/int8_x86.h"
#include "tensor/iq_grids.h"
#include "tensor/quant_iq_low.h"
#include "tensor/type_traits.h"

namespace volga::kernels::avx512vnni {

#include "kernels/x86/int8_unpack.inc"
#include "kernels/x86/int8_gemv_common.inc"

namespace gemv {
namespace {

// Signed bytes (q8_0) are used with their sign bit flipped, n = q + 128, and
// so are the levels of the non-linear types and the lattice types' integers.
template <DType T>
constexpr int32_t kOffset = kFacts<T>.signed_quants || kFacts<T>.nonlinear || kFacts<T>.lattice ? 128 : kFacts<T>.offset;

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline __m256i load256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load128(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// Rows a and b's 32 bytes at p: a in the low half, b in the high half.
inline __m512i pair256(const uint8_t* a, const uint8_t* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(load256(a)), load256(b), 1);
}
// 16 bytes of packed nibbles per row: elements 0-15 are the low nibbles, 16-31 the high.
inline __m512i pair_nibbles(const uint8_t* a, const uint8_t* b) {
  __m512i v = _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(load128(a)), 0xFF00, load128(b));
  v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);  // 128-bit lanes 1 and 3: high nibbles
  return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
}
// Indices 0-15 replaced by values[idx] + 128 (as unsigned bytes): the levels of a non-linear type.
inline __m512i levels_u8(__m512i idx, const int8_t* values) {
  const __m128i table = _mm_xor_si128(load128(reinterpret_cast<const uint8_t*>(values)), _mm_set1_epi8(static_cast<char>(0x80)));
  return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(table), idx);
}
// Adds 16 to the elements whose bit is set in the 32-bit fields of rows a and b.
inline __m512i with_bit4(__m512i n, uint32_t bits_a, uint32_t bits_b) {
  const __mmask64 k = static_cast<__mmask64>(bits_a) | (static_cast<__mmask64>(bits_b) << 32);
  return _mm512_mask_add_epi8(n, k, n, _mm512_set1_epi8(0x10));  // n < 16: adding is or-ing
}
// Bits [s, s + width) of every byte of v moved to bits [4, 4 + width) (other bits: garbage).
inline __m512i bits_to_4(__m512i v, int s) {
  return s <= 4 ? _mm512_slli_epi16(v, static_cast<unsigned>(4 - s)) : _mm512_srli_epi16(v, static_cast<unsigned>(s - 4));
}

// Four pair vectors' dword partial sums (pair p: rows 2p and 2p + 1) reduced
// to one vector: lanes 0-7 the 8 rows' sums over the chunk's first 16
// elements, lanes 8-15 over its last 16.
inline __m512i reduce_halves(const __m512i* a) {
  const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[0], a[1]), _mm512_unpackhi_epi32(a[0], a[1]));
  const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2], a[3]), _mm512_unpackhi_epi32(a[2], a[3]));
  // u: 128-bit lane 0 = rows 0,2,4,6 first halves; 1 = the same rows' second
  // halves; 2 and 3 = rows 1,3,5,7.
  const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
  const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  return _mm512_permutexvar_epi32(order, u);
}

// One chunk's four pair vectors against the tokens.
template <DType T, int NT>
inline void chunk_step(const __m512i* v, int64_t c, const Tokens<NT>& tk, __m256 sc0, __m256 sc1, __m256 mn,
                       __m256* acc, [[maybe_unused]] __m256 mn1 = _mm256_setzero_ps()) {
  for (int t = 0; t < NT; ++t) {
    const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tk.q[t] + 32 * c)));
    __m512i a[4];
    for (int p = 0; p < 4; ++p) a[p] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[p], x);
    const __m512i h = reduce_halves(a);
    __m256i lo = _mm512_castsi512_si256(h), hi = _mm512_extracti64x4_epi64(h, 1);
    if constexpr (kFacts<T>.int8_scale_group == 32) {
      lo = _mm256_add_epi32(lo, hi);
      if constexpr (kOffset<T> != 0) lo = _mm256_sub_epi32(lo, _mm256_set1_epi32(tk.corr[t][c]));
    } else if constexpr (kOffset<T> != 0) {
      lo = _mm256_sub_epi32(lo, _mm256_set1_epi32(tk.corr[t][2 * c]));
      hi = _mm256_sub_epi32(hi, _mm256_set1_epi32(tk.corr[t][2 * c + 1]));
    }
    if constexpr (kFacts<T>.has_min && kFacts<T>.int8_scale_group == 16)  // q2_k: sums per 16 elements
      accumulate<T>(lo, hi, tk.d[t][c], tk.s[t][2 * c], sc0, sc1, mn, acc[t], tk.s[t][2 * c + 1], mn1);
    else
      accumulate<T>(lo, hi, tk.d[t][c], tk.s[t][c], sc0, sc1, mn, acc[t]);
  }
}

// 32-element block c of the legacy types (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl).
template <DType T, int NT>
inline void legacy_block(const RowSet& rs, int64_t c, const Tokens<NT>& tk, __m256* acc) {
  const int64_t o = c * kFacts<T>.block_bytes;
  using B = BlockOf<T>;
  constexpr int64_t qs_at = offsetof(B, qs);
  __m512i v[4];
  for (int p = 0; p < 4; ++p) {
    const uint8_t* a = rs.p[2 * p] + o;
    const uint8_t* b = rs.p[2 * p + 1] + o;
    if constexpr (kFacts<T>.signed_quants) {
      v[p] = _mm512_xor_si512(pair256(a + qs_at, b + qs_at), _mm512_set1_epi8(static_cast<char>(0x80)));
    } else if constexpr (requires(const B& blk) { blk.qh; }) {
      constexpr int64_t qh_at = offsetof(B, qh);
      v[p] = with_bit4(pair_nibbles(a + qs_at, b + qs_at), load_u32(a + qh_at), load_u32(b + qh_at));
    } else {
      v[p] = pair_nibbles(a + qs_at, b + qs_at);
      if constexpr (kFacts<T>.nonlinear) v[p] = levels_u8(v[p], kFacts<T>.values);
    }
  }
  static_assert(offsetof(B, d) == 0);
  if constexpr (kFacts<T>.has_min) static_assert(offsetof(B, m) == 2);
  const __m256i g = gather(rs, o);  // d, and m in the high 16 bits for q4_1 / q5_1
  const __m256 sc = f16_low(g);
  __m256 mn = _mm256_setzero_ps();
  if constexpr (kFacts<T>.has_min) mn = f16_high(g);
  chunk_step<T, NT>(v, c, tk, sc, sc, mn, acc);
}

// ---- the k-quants (block 256, see Int8Acts in kernels/dispatch.h). Per
// super-block and token, the integer sums stay in four pair vectors S[p]
// (rows 2p, 2p + 1; a dword per 4 elements): each chunk adds
// vpmaddubsw(n, x) (n unsigned, at most 63: the 16-bit pair sums cannot
// saturate) times its rows' sub-block scales with vpdpwssd, so the scales
// apply to integer sums and the reduction to 8 rows runs once per super-block.
// The offset (q3_k, q6_k) or the minimum (q2_k, q4_k, q5_k) is a second
// integer sum O, rows in lanes: sum_g a[g] * bsum[g] with vpmaddwd.

template <int NT>
struct KSums {
  __m512i S[NT][4];
  __m256i O[NT];
};

template <int NT>
inline void k_start(KSums<NT>& a) {
  for (int t = 0; t < NT; ++t) {
    for (int p = 0; p < 4; ++p) a.S[t][p] = _mm512_setzero_si512();
    a.O[t] = _mm256_setzero_si256();
  }
}

// Chunk k of super-block u: the four pair vectors v of unsigned integers n,
// the rows' scales of its two 16-element groups sc0, sc1 (equal for the
// 32-element sub-blocks) and the packed pair o01 (pack16) of the minima or
// scales the O sum takes.
template <DType T, int NT>
inline void k_chunk(const __m512i* v, int64_t u, int k, const Tokens<NT>& tk, __m256i sc0, __m256i sc1, __m256i o01,
                    KSums<NT>& a) {
  __m512i w;  // dword lanes 0-7: sc0 of the 8 rows in both 16-bit halves; 8-15: sc1
  if constexpr (kFacts<T>.int8_scale_group == 32) {
    w = _mm512_castsi256_si512(_mm256_or_si256(sc0, _mm256_slli_epi32(sc0, 16)));
  } else {
    w = _mm512_inserti64x4(_mm512_castsi256_si512(pack16(sc0, sc0)), pack16(sc1, sc1), 1);
  }
  __m512i scw[4];  // per pair: the scale of each dword's 4 elements
  for (int p = 0; p < 4; ++p) {
    const __m512i idx = kFacts<T>.int8_scale_group == 32
                            ? _mm512_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p + 1, 2 * p + 1,
                                                2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1)
                            : _mm512_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 8 + 2 * p, 8 + 2 * p, 8 + 2 * p, 8 + 2 * p, 2 * p + 1,
                                                2 * p + 1, 2 * p + 1, 2 * p + 1, 9 + 2 * p, 9 + 2 * p, 9 + 2 * p, 9 + 2 * p);
    scw[p] = _mm512_permutexvar_epi32(idx, w);
  }
  const int64_t c = 8 * u + k;
  for (int t = 0; t < NT; ++t) {
    const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tk.q[t] + 32 * c)));
    for (int p = 0; p < 4; ++p) a.S[t][p] = _mm512_dpwssd_epi32(a.S[t][p], _mm512_maddubs_epi16(v[p], x), scw[p]);
    a.O[t] = _mm256_add_epi32(a.O[t], _mm256_madd_epi16(o01, _mm256_set1_epi32(bsum_pair(tk.bsum[t] + 16 * u, k))));
  }
}

// The end of super-block u: I = the rows' sums minus offset * O.
template <DType T, int NT>
inline void k_end(KSums<NT>& a, int64_t u, const Tokens<NT>& tk, __m256 d, __m256 dmin, __m256* acc) {
  for (int t = 0; t < NT; ++t) {
    const __m512i h = reduce_halves(a.S[t]);
    __m256i I = _mm256_add_epi32(_mm512_castsi512_si256(h), _mm512_extracti64x4_epi64(h, 1));
    if constexpr (kFacts<T>.offset != 0) I = _mm256_sub_epi32(I, _mm256_mullo_epi32(a.O[t], _mm256_set1_epi32(kFacts<T>.offset)));
    k_finish<T>(I, a.O[t], d, dmin, tk.d[t][u], acc[t]);
  }
}

// Super-block u (256 elements, 8 chunks) of q4_k / q5_k.
template <DType T, int NT>
inline void k45_block(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  const int64_t o = u * kFacts<T>.block_bytes;
  const K45Scales ks = k45_scales(rs, o);
  constexpr int64_t qs_at = offsetof(BlockOf<T>, qs);
  __m512i qh[4];
  if constexpr (T == DType::Q5_K) {
    constexpr int64_t qh_at = offsetof(BlockQ5_K, qh);
    for (int p = 0; p < 4; ++p) qh[p] = pair256(rs.p[2 * p] + o + qh_at, rs.p[2 * p + 1] + o + qh_at);
  }
  KSums<NT> a;
  k_start(a);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int jp = 0; jp < 4; ++jp) {  // chunks 2 jp and 2 jp + 1 share their bytes
    __m512i raw[4];
    for (int p = 0; p < 4; ++p) raw[p] = pair256(rs.p[2 * p] + o + qs_at + 32 * jp, rs.p[2 * p + 1] + o + qs_at + 32 * jp);
    for (int h = 0; h < 2; ++h) {
      const int j = 2 * jp + h;
      __m512i v[4];
      for (int p = 0; p < 4; ++p) {
        v[p] = _mm512_and_si512(h ? _mm512_srli_epi16(raw[p], 4) : raw[p], low4);
        if constexpr (T == DType::Q5_K)
          v[p] = _mm512_ternarylogic_epi32(v[p], bits_to_4(qh[p], j), _mm512_set1_epi8(0x10), 0xF8);  // a | (b & c)
      }
      __m256i sc, mn;
      k45_scale_min(ks, j, &sc, &mn);
      k_chunk<T, NT>(v, u, j, tk, sc, sc, _mm256_or_si256(mn, _mm256_slli_epi32(mn, 16)), a);
    }
  }
  k_end<T, NT>(a, u, tk, ks.d, ks.dmin, acc);
}

// Super-block u of q6_k.
template <int NT>
inline void q6k_block(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  const int64_t o = u * kFacts<DType::Q6_K>.block_bytes;
  const Q6Scales qs = q6_scales(rs, o);
  const __m512i low4 = _mm512_set1_epi8(0x0F), b45 = _mm512_set1_epi8(0x30);
  KSums<NT> a;
  k_start(a);
  for (int h = 0; h < 2; ++h) {
    __m512i qh[4], ql[2][4];
    for (int p = 0; p < 4; ++p) {
      const int64_t qh_at = offsetof(BlockQ6_K, qh) + 32 * h;
      qh[p] = pair256(rs.p[2 * p] + o + qh_at, rs.p[2 * p + 1] + o + qh_at);
      for (int s = 0; s < 2; ++s) {
        const int64_t ql_at = offsetof(BlockQ6_K, ql) + 64 * h + 32 * s;
        ql[s][p] = pair256(rs.p[2 * p] + o + ql_at, rs.p[2 * p + 1] + o + ql_at);
      }
    }
    for (int q = 0; q < 4; ++q) {  // chunk 4 h + q: low nibbles (q < 2) or high, high bits 2q and 2q + 1
      __m512i v[4];
      for (int p = 0; p < 4; ++p) {
        const __m512i raw = ql[q % 2][p];
        const __m512i lo = _mm512_and_si512(q < 2 ? raw : _mm512_srli_epi16(raw, 4), low4);
        v[p] = _mm512_ternarylogic_epi32(lo, bits_to_4(qh[p], 2 * q), b45, 0xF8);
      }
      const int g0 = 8 * h + 2 * q;  // the chunk's two 16-element groups
      const __m256i sc0 = q6_scale(qs, g0), sc1 = q6_scale(qs, g0 + 1);
      k_chunk<DType::Q6_K, NT>(v, u, 4 * h + q, tk, sc0, sc1, pack16(sc0, sc1), a);
    }
  }
  k_end<DType::Q6_K, NT>(a, u, tk, qs.d, _mm256_setzero_ps(), acc);
}

// Super-block u of q2_k: eighth k (chunk 8 u + k) takes bits 2 (k % 4),
// 2 (k % 4) + 1 of the 32 bytes qs[32 (k / 4) ..]; its sub-blocks 2k and
// 2k + 1 have their 4-bit scale and minimum in bytes 2k, 2k + 1 of scales,
// gathered for the 8 rows as 4 dwords.
template <int NT>
inline void q2k_block(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  using B = BlockQ2_K;
  static_assert(offsetof(B, dmin) == offsetof(B, d) + 2 && offsetof(B, d) + 4 == sizeof(B), "d, dmin end the block");
  const int64_t o = u * kFacts<DType::Q2_K>.block_bytes;
  const __m256i dm = gather(rs, o + offsetof(B, d));
  __m256i sc[4];
  for (int i = 0; i < 4; ++i) sc[i] = gather(rs, o + offsetof(B, scales) + 4 * i);
  const __m512i three = _mm512_set1_epi8(3);
  KSums<NT> a;
  k_start(a);
  for (int h = 0; h < 2; ++h) {
    __m512i raw[4];
    const int64_t at = o + offsetof(B, qs) + 32 * h;
    for (int p = 0; p < 4; ++p) raw[p] = pair256(rs.p[2 * p] + at, rs.p[2 * p + 1] + at);
    for (int j = 0; j < 4; ++j) {
      const int k = 4 * h + j, b = 16 * (k % 2);
      __m512i v[4];
      for (int p = 0; p < 4; ++p) v[p] = _mm512_and_si512(_mm512_srli_epi16(raw[p], static_cast<unsigned>(2 * j)), three);
      const __m256i w = sc[k / 2];
      k_chunk<DType::Q2_K, NT>(v, u, k, tk, q2k_field(w, b), q2k_field(w, b + 8),
                               pack16(q2k_field(w, b + 4), q2k_field(w, b + 12)), a);
    }
  }
  k_end<DType::Q2_K, NT>(a, u, tk, f16_low(dm), f16_high(dm), acc);
}

// Super-block u of q3_k: as q2_k's integers, plus bit k of hmask[0 .. 32)
// as bit 2 (n in [0, 7], offset 4); two 6-bit scales per chunk.
template <int NT>
inline void q3k_block(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  using B = BlockQ3_K;
  static_assert(offsetof(B, d) + 2 == sizeof(B), "d is the block's last 2 bytes");
  const int64_t o = u * kFacts<DType::Q3_K>.block_bytes;
  const __m256 d = f16_high(gather(rs, o + offsetof(B, d) - 2));  // the dword ending with d, not past the block
  const int64_t sc_at = o + offsetof(B, scales);
  const __m256i s0 = gather(rs, sc_at), s1 = gather(rs, sc_at + 4), s2 = gather(rs, sc_at + 8);
  __m512i hm[4];
  for (int p = 0; p < 4; ++p) hm[p] = pair256(rs.p[2 * p] + o + offsetof(B, hmask), rs.p[2 * p + 1] + o + offsetof(B, hmask));
  const __m512i three = _mm512_set1_epi8(3), bit2 = _mm512_set1_epi8(4);
  KSums<NT> a;
  k_start(a);
  for (int h = 0; h < 2; ++h) {
    __m512i raw[4];
    const int64_t at = o + offsetof(B, qs) + 32 * h;
    for (int p = 0; p < 4; ++p) raw[p] = pair256(rs.p[2 * p] + at, rs.p[2 * p + 1] + at);
    for (int j = 0; j < 4; ++j) {
      const int k = 4 * h + j;
      __m512i v[4];
      for (int p = 0; p < 4; ++p) {
        const __m512i lo = _mm512_and_si512(_mm512_srli_epi16(raw[p], static_cast<unsigned>(2 * j)), three);
        const __m512i hb = k >= 2 ? _mm512_srli_epi16(hm[p], static_cast<unsigned>(k - 2))
                                  : _mm512_slli_epi16(hm[p], static_cast<unsigned>(2 - k));  // bit k to bit 2
        v[p] = _mm512_ternarylogic_epi32(lo, hb, bit2, 0xF8);  // lo | (hb & 4)
      }
      const __m256i sc0 = q3k_scale8(s0, s1, s2, 2 * k), sc1 = q3k_scale8(s0, s1, s2, 2 * k + 1);
      k_chunk<DType::Q3_K, NT>(v, u, k, tk, sc0, sc1, pack16(sc0, sc1), a);
    }
  }
  k_end<DType::Q3_K, NT>(a, u, tk, d, _mm256_setzero_ps(), acc);
}

// Super-block u of iq4_xs: sub-block j's levels from 16 bytes of nibbles,
// its scale d * (ls - 32) from the packed 6-bit scales, 8 rows at once.
template <int NT>
inline void iq4xs_block(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  using B = BlockIQ4_XS;
  static_assert(offsetof(B, d) == 0 && offsetof(B, scales_h) == 2, "d and scales_h share the first dword");
  const int64_t o = u * kFacts<DType::IQ4_XS>.block_bytes;
  const __m256i dh = gather(rs, o), sl = gather(rs, o + offsetof(B, scales_l));
  const __m256 d = f16_low(dh);
  const __m256i sh = _mm256_srli_epi32(dh, 16);
  const __m256i m15 = _mm256_set1_epi32(15), m3 = _mm256_set1_epi32(3), bias = _mm256_set1_epi32(32);
  for (int j = 0; j < 8; ++j) {
    __m512i v[4];
    const int64_t at = o + offsetof(B, qs) + 16 * j;
    for (int p = 0; p < 4; ++p)
      v[p] = levels_u8(pair_nibbles(rs.p[2 * p] + at, rs.p[2 * p + 1] + at), kFacts<DType::IQ4_XS>.values);
    const __m256i ls = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(sl, 4 * j), m15),
                                       _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(sh, 2 * j), m3), 4));
    const __m256 scale = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(ls, bias)));
    chunk_step<DType::IQ4_XS, NT>(v, 8 * u + j, tk, scale, scale, _mm256_setzero_ps(), acc);
  }
}

#include "kernels/x86/int8_gemv_lattice_avx512.inc"

}  // namespace

template <DType T, int NT>
inline void gemv_unit(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  if constexpr (T == DType::Q6_K) q6k_block<NT>(rs, u, tk, acc);
  else if constexpr (T == DType::Q2_K) q2k_block<NT>(rs, u, tk, acc);
  else if constexpr (T == DType::Q3_K) q3k_block<NT>(rs, u, tk, acc);
  else if constexpr (T == DType::IQ4_XS) iq4xs_block<NT>(rs, u, tk, acc);
  else if constexpr (kFacts<T>.lattice) lattice_block<T, NT>(rs, u, tk, acc);
  else if constexpr (kFacts<T>.super_block) k45_block<T, NT>(rs, u, tk, acc);
  else legacy_block<T, NT>(rs, u, tk, acc);
}

}  // namespace gemv

#include "kernels/x86/int8_gemv_driver.inc"

}  // namespace volga::kernels::avx512vnni
