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
//     offset being 128 for q8_0 (stored bytes with the sign bit flipped),
//     8 / 16 / 32 for q4_0 / q5_0 / q6_k and 0 for the types with a minimum;
//   - vpdpbusd against the token's signed activations (32 bytes broadcast to
//     both halves) leaves 8 partial sums per row; four such vectors (8 rows)
//     are reduced with a fixed tree of 9 shuffles and adds to one vector of
//     the 8 rows' sums, minus offset * (sum of the activations);
//   - per-row scales of the 8 rows are gathered into vectors.
// The float work afterwards (rows in lanes) is the panel kernel's, operation
// for operation, so results stay bit-identical to matmul_rows_int8_ref.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/x86/int8_x86.h"
#include "tensor/blocks.h"

namespace volga::kernels::avx512vnni {

namespace {

constexpr int kRows = 8;
// Blocks of 8 rows up to this size are prefetched into L1, larger ones into L2.
constexpr int64_t kL1Block = 16 << 10;

template <DType T>
constexpr int64_t kBlockBytes = T == DType::Q8_0 ? 34 : T == DType::Q4_0 ? 18 : T == DType::Q4_1 ? 20
                                : T == DType::Q5_0 ? 22 : T == DType::Q5_1 ? 24 : T == DType::Q4_K ? 144
                                : T == DType::Q5_K ? 176 : 210;
template <DType T>
constexpr bool kSuper = T == DType::Q4_K || T == DType::Q5_K || T == DType::Q6_K;
template <DType T>
constexpr int kGroup = T == DType::Q6_K ? 16 : 32;
template <DType T>
constexpr bool kMin = T == DType::Q4_1 || T == DType::Q5_1 || T == DType::Q4_K || T == DType::Q5_K;
template <DType T>
constexpr int32_t kOffset = T == DType::Q8_0 ? 128 : T == DType::Q4_0 ? 8 : T == DType::Q5_0 ? 16
                            : T == DType::Q6_K ? 32 : 0;

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

// The 8 rows being walked, and dword offsets of each from the first (for gathers).
struct RowSet {
  const uint8_t* p[kRows];
  __m256i gidx;
};

inline __m256i gather(const RowSet& rs, int64_t off) {
  return _mm256_i32gather_epi32(reinterpret_cast<const int*>(rs.p[0] + off), rs.gidx, 1);
}
inline __m256 f16_low(__m256i g) { return _mm256_cvtph_ps(_mm256_cvtepi32_epi16(g)); }
inline __m256 f16_high(__m256i g) { return _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(g, 16))); }
inline __m256 negate(__m256 v) { return _mm256_xor_ps(v, _mm256_set1_ps(-0.0f)); }

// Per-token activation data for NT tokens.
template <int NT>
struct Tokens {
  const int8_t* q[NT];
  const float* d[NT];
  const float* s[NT];
  const int32_t* corr[NT];  // offset * sum of q, per group
};

// One chunk's four pair vectors against the tokens: acc[t] += the chunk's
// float contribution, exactly as the panel kernel orders it.
template <DType T, int NT>
inline void chunk_step(const __m512i* v, int64_t c, const Tokens<NT>& tk, __m256 sc0, __m256 sc1, __m256 mn,
                       __m256* acc) {
  for (int t = 0; t < NT; ++t) {
    const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tk.q[t] + 32 * c)));
    __m512i a[4];
    for (int p = 0; p < 4; ++p) a[p] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[p], x);
    const __m512i h = reduce_halves(a);
    const __m256i lo = _mm512_castsi512_si256(h), hi = _mm512_extracti64x4_epi64(h, 1);
    const __m256 xd = _mm256_set1_ps(tk.d[t][c]);
    if constexpr (kGroup<T> == 32) {
      __m256i isum = _mm256_add_epi32(lo, hi);
      if constexpr (kOffset<T> != 0) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(tk.corr[t][c]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(sc0, xd), acc[t]);
    } else {
      const __m256i i0 = _mm256_sub_epi32(lo, _mm256_set1_epi32(tk.corr[t][2 * c]));
      const __m256i i1 = _mm256_sub_epi32(hi, _mm256_set1_epi32(tk.corr[t][2 * c + 1]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(sc0, xd), acc[t]);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(sc1, xd), acc[t]);
    }
    if constexpr (kMin<T>) acc[t] = _mm256_fmadd_ps(mn, _mm256_set1_ps(tk.s[t][c]), acc[t]);
  }
}

// 32-element block c of the legacy types (q8_0, q4_0, q4_1, q5_0, q5_1).
template <DType T, int NT>
inline void legacy_block(const RowSet& rs, int64_t c, const Tokens<NT>& tk, __m256* acc) {
  constexpr int64_t B = kBlockBytes<T>;
  const int64_t o = c * B;
  __m512i v[4];
  for (int p = 0; p < 4; ++p) {
    const uint8_t* a = rs.p[2 * p] + o;
    const uint8_t* b = rs.p[2 * p + 1] + o;
    if constexpr (T == DType::Q8_0) {
      v[p] = _mm512_xor_si512(pair256(a + 2, b + 2), _mm512_set1_epi8(static_cast<char>(0x80)));
    } else if constexpr (T == DType::Q4_0) {
      v[p] = pair_nibbles(a + 2, b + 2);
    } else if constexpr (T == DType::Q4_1) {
      v[p] = pair_nibbles(a + 4, b + 4);
    } else if constexpr (T == DType::Q5_0) {
      v[p] = with_bit4(pair_nibbles(a + 6, b + 6), load_u32(a + 2), load_u32(b + 2));
    } else {
      v[p] = with_bit4(pair_nibbles(a + 8, b + 8), load_u32(a + 4), load_u32(b + 4));
    }
  }
  const __m256i g = gather(rs, o);  // d, and m in the high 16 bits for q4_1 / q5_1
  const __m256 sc = f16_low(g);
  __m256 mn = _mm256_setzero_ps();
  if constexpr (kMin<T>) mn = f16_high(g);
  chunk_step<T, NT>(v, c, tk, sc, sc, mn, acc);
}

// Super-block u (256 elements, 8 chunks) of q4_k / q5_k.
template <DType T, int NT>
inline void k45_block(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  constexpr int64_t B = kBlockBytes<T>;
  const int64_t o = u * B;
  const __m256i D = gather(rs, o), S0 = gather(rs, o + 4), S1 = gather(rs, o + 8), S2 = gather(rs, o + 12);
  const __m256 d = f16_low(D), dmin = f16_high(D);
  const __m256i m63 = _mm256_set1_epi32(63), m15 = _mm256_set1_epi32(15), m3 = _mm256_set1_epi32(3);
  constexpr int64_t qs_at = T == DType::Q4_K ? 16 : 48;
  __m512i qh[4];
  if constexpr (T == DType::Q5_K)
    for (int p = 0; p < 4; ++p) qh[p] = pair256(rs.p[2 * p] + o + 16, rs.p[2 * p + 1] + o + 16);
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
          v[p] = _mm512_ternarylogic_epi32(v[p], bits_to_4(qh[p], j), _mm512_set1_epi8(0x10), 0xF8);
      }
      // The 6-bit scale and min of sub-block j (unpack_scale_min_k4, 8 rows at once).
      __m256i sc, m;
      if (j < 4) {
        sc = _mm256_and_si256(_mm256_srli_epi32(S0, 8 * j), m63);
        m = _mm256_and_si256(_mm256_srli_epi32(S1, 8 * j), m63);
      } else {
        const int k = 8 * (j - 4);
        sc = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(S2, k), m15),
                             _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(S0, k + 6), m3), 4));
        m = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(S2, k + 4), m15),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(S1, k + 6), m3), 4));
      }
      const __m256 scale = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc));
      const __m256 mn = negate(_mm256_mul_ps(dmin, _mm256_cvtepi32_ps(m)));
      chunk_step<T, NT>(v, 8 * u + j, tk, scale, scale, mn, acc);
    }
  }
}

// Super-block u of q6_k.
template <int NT>
inline void q6k_block(const RowSet& rs, int64_t u, const Tokens<NT>& tk, __m256* acc) {
  constexpr int64_t B = kBlockBytes<DType::Q6_K>;
  const int64_t o = u * B;
  const __m256 d = f16_high(gather(rs, o + 206));
  __m256i S[4];
  for (int i = 0; i < 4; ++i) S[i] = gather(rs, o + 192 + 4 * i);
  const __m512i low4 = _mm512_set1_epi8(0x0F), b45 = _mm512_set1_epi8(0x30);
  for (int h = 0; h < 2; ++h) {
    __m512i qh[4], ql[2][4];
    for (int p = 0; p < 4; ++p) {
      qh[p] = pair256(rs.p[2 * p] + o + 128 + 32 * h, rs.p[2 * p + 1] + o + 128 + 32 * h);
      for (int s = 0; s < 2; ++s)
        ql[s][p] = pair256(rs.p[2 * p] + o + 64 * h + 32 * s, rs.p[2 * p + 1] + o + 64 * h + 32 * s);
    }
    for (int q = 0; q < 4; ++q) {  // chunk 4 h + q
      __m512i v[4];
      for (int p = 0; p < 4; ++p) {
        const __m512i raw = ql[q % 2][p];
        const __m512i lo = _mm512_and_si512(q < 2 ? raw : _mm512_srli_epi16(raw, 4), low4);
        v[p] = _mm512_ternarylogic_epi32(lo, bits_to_4(qh[p], 2 * q), b45, 0xF8);
      }
      const int g0 = 8 * h + 2 * q, g1 = g0 + 1;  // the chunk's two 16-element groups
      auto scale_of = [&](int g) {
        const __m256i b = _mm256_srai_epi32(_mm256_slli_epi32(S[g / 4], 24 - 8 * (g % 4)), 24);
        return _mm256_mul_ps(d, _mm256_cvtepi32_ps(b));
      };
      chunk_step<DType::Q6_K, NT>(v, 8 * u + 4 * h + q, tk, scale_of(g0), scale_of(g1), _mm256_setzero_ps(), acc);
    }
  }
}

template <DType T, int NT>
void rows8(const WeightMatrix& w, int64_t r0, int nr, const Tokens<NT>& tk, float* y, int64_t ldy) {
  RowSet rs;
  alignas(32) int32_t idx[kRows];
  for (int i = 0; i < kRows; ++i) {
    rs.p[i] = w.row(r0 + std::min(i, nr - 1));  // missing rows repeat the last (not stored)
    idx[i] = static_cast<int32_t>(rs.p[i] - rs.p[0]);
  }
  rs.gidx = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx));
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const int64_t chunks = w.cols / 32;
  // The next 8 rows (contiguous bytes) are prefetched in a linear sweep spread
  // over this block's iterations: 8 rows walked in step are 8 streams, which
  // the hardware prefetchers follow badly.
  const int64_t units = kSuper<T> ? chunks / 8 : chunks;
  const int64_t next_rows = std::clamp<int64_t>(w.rows - (r0 + kRows), 0, kRows);
  const char* pf = reinterpret_cast<const char*>(w.row(r0 + kRows));
  const int64_t pf_step = (next_rows * w.row_stride / units + 63) & ~int64_t{63};
  const char* pf_end = pf + next_rows * w.row_stride;
  const bool to_l1 = next_rows * w.row_stride <= kL1Block;
  for (int64_t u = 0; u < units; ++u) {
    if (to_l1)
      for (int64_t b = 0; b < pf_step && pf < pf_end; b += 64, pf += 64) _mm_prefetch(pf, _MM_HINT_T0);
    else
      for (int64_t b = 0; b < pf_step && pf < pf_end; b += 64, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    if constexpr (T == DType::Q6_K) q6k_block<NT>(rs, u, tk, acc);
    else if constexpr (kSuper<T>) k45_block<T, NT>(rs, u, tk, acc);
    else legacy_block<T, NT>(rs, u, tk, acc);
  }
  const __mmask8 mask = static_cast<__mmask8>((1u << nr) - 1);
  // y is [token][row]: 8 consecutive rows of one token per store.
  for (int t = 0; t < NT; ++t) _mm256_mask_storeu_ps(y + t * ldy + r0, mask, acc[t]);
}

// offset * (sum of q) per group of each token, for types stored with an offset.
void offsets_times_sums(const Int8Acts& x, int32_t offset, int group, int32_t* out) {
  const int64_t groups = x.cols / group;
  for (int64_t t = 0; t < x.n_tokens; ++t) {
    const uint8_t* qu = x.qu + t * x.cols;
    for (int64_t g = 0; g < groups; ++g) {
      // Sum of the unsigned q + 128 bytes with vpsadbw, minus 128 per element.
      const __m128i a = _mm_sad_epu8(load128(qu + group * g), _mm_setzero_si128());
      int32_t s = _mm_cvtsi128_si32(a) + _mm_extract_epi32(a, 2);
      if (group == 32) {
        const __m128i b = _mm_sad_epu8(load128(qu + group * g + 16), _mm_setzero_si128());
        s += _mm_cvtsi128_si32(b) + _mm_extract_epi32(b, 2);
      }
      out[t * groups + g] = offset * (s - 128 * group);
    }
  }
}

template <DType T, int NT>
void run_rows(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, int64_t t0, const int32_t* corr,
              float* y, int64_t ldy) {
  Tokens<NT> tk;
  const int64_t chunks = x.cols / 32, groups = x.cols / kGroup<T>;
  for (int t = 0; t < NT; ++t) {
    tk.q[t] = x.q + (t0 + t) * x.cols;
    tk.d[t] = x.d + (t0 + t) * chunks;
    tk.s[t] = x.s + (t0 + t) * chunks;
    tk.corr[t] = corr + (t0 + t) * groups;
  }
  for (int64_t r = r0; r < r1; r += kRows)
    rows8<T, NT>(w, r, static_cast<int>(std::min<int64_t>(kRows, r1 - r)), tk, y + t0 * ldy, ldy);
}

}  // namespace

void gemv_rows_int8(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy) {
  auto go = [&]<DType T>() {
    thread_local std::vector<int32_t> corr_buf;
    const int64_t groups = x.cols / kGroup<T>;
    if (corr_buf.size() < static_cast<size_t>(groups * x.n_tokens)) corr_buf.resize(static_cast<size_t>(groups * x.n_tokens));
    int32_t* corr = corr_buf.data();
    if constexpr (kOffset<T> != 0) offsets_times_sums(x, kOffset<T>, kGroup<T>, corr);
    int64_t t = 0;
    for (; t + 4 <= x.n_tokens; t += 4) run_rows<T, 4>(w, r0, r1, x, t, corr, y, ldy);
    for (; t + 2 <= x.n_tokens; t += 2) run_rows<T, 2>(w, r0, r1, x, t, corr, y, ldy);
    if (t < x.n_tokens) run_rows<T, 1>(w, r0, r1, x, t, corr, y, ldy);
  };
  switch (w.type) {
    case DType::Q8_0: go.template operator()<DType::Q8_0>(); return;
    case DType::Q4_0: go.template operator()<DType::Q4_0>(); return;
    case DType::Q4_1: go.template operator()<DType::Q4_1>(); return;
    case DType::Q5_0: go.template operator()<DType::Q5_0>(); return;
    case DType::Q5_1: go.template operator()<DType::Q5_1>(); return;
    case DType::Q4_K: go.template operator()<DType::Q4_K>(); return;
    case DType::Q5_K: go.template operator()<DType::Q5_K>(); return;
    case DType::Q6_K: go.template operator()<DType::Q6_K>(); return;
    default: return;
  }
}

}  // namespace volga::kernels::avx512vnni
