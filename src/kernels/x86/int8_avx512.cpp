// Integer matrix products with AVX-512 VNNI (vpdpbusd). Compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni; only called after CPUID says so.
//
// A task of 16 weight rows first packs them into a panel: per 32-element chunk,
// 8 vectors of 64 bytes, vector j holding elements 4j..4j+3 of each of the 16
// rows (the layout vpdpbusd multiplies against one broadcast 4-byte group of a
// token's activations, and the layout AMX's B tiles use), then the chunk's
// per-row scales, minima and -128 * (sum of the row's integers). The panel
// (16 x K bytes plus 1/8 of that in scales: L1 or L2) is reused by every
// token, in micro-tiles of up to 8 tokens: 8 dot products per weight vector
// load, and the float scale work (4-5 operations per token and chunk) is
// shared by 16 rows at once. Activations are used as unsigned q + 128 and the
// 128 * sum(w) term is subtracted (the dot products start from its negation),
// which leaves the exact integer dot product.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/x86/avx512_reduce.h"
#include "kernels/x86/int8_x86.h"
#include "tensor/iq_grids.h"
#include "tensor/quant_iq_low.h"
#include "tensor/type_traits.h"

namespace volga::kernels::avx512vnni {

#include "kernels/x86/int8_unpack.inc"

namespace {

// Rounds one chunk of 32 with the inverse scale id; returns the sum of its integers as 16 lanes.
inline __m512i quantize_chunk(const float* x, __m512 vid, int8_t* q, uint8_t* qu) {
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
  const __m512i ia = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(a, vid)), lo), hi);
  const __m512i ib = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(b, vid)), lo), hi);
  const __m256i q8 = _mm256_set_m128i(_mm512_cvtepi32_epi8(ib), _mm512_cvtepi32_epi8(ia));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), q8);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qu), _mm256_xor_si256(q8, _mm256_set1_epi8(-128)));
  return _mm512_add_epi32(ia, ib);
}

}  // namespace

// Sixteen chunks at a time: their maxima, scales and integer sums are reduced
// and computed as vectors (one lane per chunk) instead of one horizontal
// reduction and one division per chunk. Same operations per chunk, so the
// same bits as the reference.
void quantize_acts(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, float* s) {
  const int64_t nc = cols / 32;
  auto fmax = [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); };
  auto iadd = [](__m512 a, __m512 b) {
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  };
  int64_t c = 0;
  for (; c + 16 <= nc; c += 16) {
    __m512 m[16];
    for (int j = 0; j < 16; ++j) {
      const float* xc = x + 32 * (c + j);
      m[j] = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xc)), _mm512_abs_ps(_mm512_loadu_ps(xc + 16)));
    }
    const __m512 dc = _mm512_div_ps(x86::reduce16_transposed(m, fmax), _mm512_set1_ps(127.0f));
    const __mmask16 nz = _mm512_cmp_ps_mask(dc, _mm512_setzero_ps(), _CMP_NEQ_OQ);
    const __m512 id = _mm512_maskz_div_ps(nz, _mm512_set1_ps(1.0f), dc);
    alignas(64) float idv[16];
    _mm512_store_ps(idv, id);
    __m512 sums[16];
    for (int j = 0; j < 16; ++j)
      sums[j] = _mm512_castsi512_ps(quantize_chunk(x + 32 * (c + j), _mm512_set1_ps(idv[j]), q + 32 * (c + j), qu + 32 * (c + j)));
    const __m512 total = _mm512_cvtepi32_ps(_mm512_castps_si512(x86::reduce16_transposed(sums, iadd)));
    _mm512_storeu_ps(d + c, dc);
    _mm512_storeu_ps(s + c, _mm512_mul_ps(dc, total));
  }
  for (; c < nc; ++c) {
    const __m512 a = _mm512_loadu_ps(x + 32 * c), b = _mm512_loadu_ps(x + 32 * c + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    const float dc = amax / 127.0f;
    const float id = dc != 0.0f ? 1.0f / dc : 0.0f;
    d[c] = dc;
    s[c] = dc * static_cast<float>(_mm512_reduce_add_epi32(quantize_chunk(x + 32 * c, _mm512_set1_ps(id), q + 32 * c, qu + 32 * c)));
  }
}

// Block 256 (the k-quants): one scale per 256 elements, the integer sums of
// each 16 reduced for all 16 groups at once. Same operations per element as
// the reference.
void quantize_acts_k(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, int16_t* bsum) {
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  auto iadd = [](__m512 a, __m512 b) {
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  };
  for (int64_t b = 0; b < cols / 256; ++b) {
    const float* xb = x + 256 * b;
    __m512 m = _mm512_setzero_ps();
    for (int g = 0; g < 16; ++g) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(xb + 16 * g)));
    const float db = _mm512_reduce_max_ps(m) / 127.0f;
    const __m512 vid = _mm512_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
    __m512 sums[16];
    for (int g = 0; g < 16; ++g) {
      const __m512i iv = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16 * g), vid)), lo), hi);
      const __m128i q8 = _mm512_cvtepi32_epi8(iv);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 256 * b + 16 * g), q8);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qu + 256 * b + 16 * g), _mm_xor_si128(q8, _mm_set1_epi8(-128)));
      sums[g] = _mm512_castsi512_ps(iv);
    }
    const __m512i total = _mm512_castps_si512(x86::reduce16_transposed(sums, iadd));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(bsum + 16 * b), _mm512_cvtepi32_epi16(total));
    d[b] = db;
  }
}

namespace {

constexpr int kPanelRows = 16;
constexpr int64_t kPrefetchAhead = 2048;  // bytes: about two rows ahead in the stream
constexpr int kMaxTok = 8;  // tokens per micro-tile: 8 int + 8 float accumulators
// Chunks of K per panel: 1024 elements, a 16 KB panel that stays in L1.
constexpr int64_t kBlockChunks = 32;

// Views into a thread's panel buffer for K columns.
// The k-quants (block 256) store integer scales and minima in place of the
// float ones (scale_i, min_i: the same storage) and their super-blocks'
// float factors d, dmin.
struct Panel {
  __m512i* q;      // [chunks][8]
  int32_t* w128;   // [groups][16], negated: -128 * sum(w), where the dot products start
  float* scale;    // [groups][16]
  float* min;      // [groups][16] (one per chunk but for q2_k)
  int32_t* scale_i;  // k-quants: [groups][16]
  int32_t* min_i;    // k-quants: [groups][16]
  float* kd;         // k-quants: [super-blocks][16]
  float* kdmin;      // k-quants: [super-blocks][16]
};

Panel panel_for(int64_t chunks, int groups_per_chunk) {
  struct alignas(64) Line {
    uint8_t bytes[64];
  };
  thread_local std::vector<Line> buf;
  const int64_t groups = chunks * groups_per_chunk, supers = (chunks + 7) / 8;
  const size_t vecs = static_cast<size_t>(chunks * 8 + groups * 3 + 2 * supers);  // 16 x 4 bytes per extra vector
  if (buf.size() < vecs) buf.resize(vecs);
  Panel p;
  p.q = reinterpret_cast<__m512i*>(buf.data());
  p.w128 = reinterpret_cast<int32_t*>(buf.data() + chunks * 8);
  p.scale = reinterpret_cast<float*>(buf.data() + chunks * 8 + groups);
  p.min = reinterpret_cast<float*>(buf.data() + chunks * 8 + 2 * groups);
  p.scale_i = reinterpret_cast<int32_t*>(p.scale);
  p.min_i = reinterpret_cast<int32_t*>(p.min);
  p.kd = reinterpret_cast<float*>(buf.data() + chunks * 8 + 3 * groups);
  p.kdmin = reinterpret_cast<float*>(buf.data() + chunks * 8 + 3 * groups + supers);
  return p;
}

// Row i's super-block u of a k-quant: integers to the stage, integer scales
// and minima per group, d and dmin (stride: kPanelRows floats per group).
template <DType T>
inline void pack_k_unit(const uint8_t* row, int64_t u, int64_t c, int i, __m256i* stage, const Panel& p) {
  constexpr int G = kFacts<T>.int8_scale_group;
  unpack_unit<T, false>(row, u, stage + c * kPanelRows + i, kPanelRows, nullptr, nullptr, nullptr, 0);
  KScales ks;
  kquant_scales<T>(reinterpret_cast<const BlockOf<T>*>(row)[u], &ks);
  for (int g = 0; g < 256 / G; ++g) {
    p.scale_i[kPanelRows * ((32 / G) * c + g) + i] = ks.sc[g * G / 16];
    p.min_i[kPanelRows * ((32 / G) * c + g) + i] = ks.m[g * G / 16];
  }
  p.kd[kPanelRows * (c / 8) + i] = ks.d;
  p.kdmin[kPanelRows * (c / 8) + i] = ks.dmin;
}

// 16 rows x 8 dwords (one __m256i per row) -> 8 vectors of the 16 rows' dword j.
inline void transpose_16x8(const __m256i* v, __m512i* out) {
  __m512i a[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm512_inserti64x4(_mm512_castsi256_si512(v[i]), v[i + 8], 1);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm512_unpacklo_epi32(a[i], a[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(a[i], a[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // u[i] (i < 4) holds dwords i and i + 4 of rows 0-3 / 8-11; u[i + 4] of rows 4-7 / 12-15.
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i second = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int i = 0; i < 4; ++i) {
    out[i] = _mm512_permutex2var_epi64(u[i], first, u[i + 4]);
    out[i + 4] = _mm512_permutex2var_epi64(u[i], second, u[i + 4]);
  }
}

// Two passes. The first reads the rows one after the other (one sequential
// stream, which the hardware prefetcher follows; reading 16 rows chunk by
// chunk in step defeats it) and writes each chunk's 32 integers in place in
// the panel, row-major, with the scales. The second transposes each chunk's
// 16 x 32 bytes in place into the 8 vectors of the panel layout.
template <DType T>
void pack_panel(const WeightMatrix& w, int64_t r0, int nr, int64_t c0, int64_t chunks, const Panel& p) {
  constexpr int G = kFacts<T>.int8_scale_group;
  auto* stage = reinterpret_cast<__m256i*>(p.q);  // [chunks][16 rows]
  constexpr int U = kUnitChunks<T>;
  for (int i = 0; i < kPanelRows; ++i) {
    if (i < nr) {
      const uint8_t* row = w.row(r0 + i);
      for (int64_t c = 0; c < chunks; c += U) {
        _mm_prefetch(reinterpret_cast<const char*>(row + (c0 + c) / U * kFacts<T>.block_bytes + kPrefetchAhead), _MM_HINT_T0);
        if constexpr (kBlock256<T>) {
          pack_k_unit<T>(row, (c0 + c) / U, c, i, stage, p);
          continue;
        }
        float* s0 = p.scale + (32 / G) * 16 * c + i;
        float* m0 = p.min + (32 / G) * 16 * c + i;
        unpack_unit<T>(row, (c0 + c) / U, stage + c * kPanelRows + i, kPanelRows, s0, s0 + 16, m0, (32 / G) * 16,
                       m0 + 16);
      }
    } else {
      for (int64_t c = 0; c < chunks; ++c) {
        _mm256_store_si256(stage + c * kPanelRows + i, _mm256_setzero_si256());
        for (int g = 0; g < 32 / G; ++g) p.scale[16 * (c * (32 / G) + g) + i] = 0;
        if constexpr (kFacts<T>.has_min)
          for (int g = 0; g < 32 / G; ++g) p.min[16 * (c * (32 / G) + g) + i] = 0;
        if constexpr (kBlock256<T>)
          if (c % 8 == 0) p.kd[16 * (c / 8) + i] = p.kdmin[16 * (c / 8) + i] = 0;
      }
    }
  }
  const __m512i ones128 = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t c = 0; c < chunks; ++c) {
    __m256i v[kPanelRows];
    for (int i = 0; i < kPanelRows; ++i) v[i] = _mm256_load_si256(stage + c * kPanelRows + i);
    __m512i* P = p.q + c * 8;
    transpose_16x8(v, P);
    if constexpr (G == 32) {
      __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();  // two chains: dpbusd latency
      for (int j = 0; j < 8; j += 2) {
        a0 = _mm512_dpbusd_epi32(a0, ones128, P[j]);
        a1 = _mm512_dpbusd_epi32(a1, ones128, P[j + 1]);
      }
      _mm512_store_si512(p.w128 + 16 * c, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_add_epi32(a0, a1)));
    } else {
      __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
      for (int j = 0; j < 4; ++j) a0 = _mm512_dpbusd_epi32(a0, ones128, P[j]);
      for (int j = 4; j < 8; ++j) a1 = _mm512_dpbusd_epi32(a1, ones128, P[j]);
      _mm512_store_si512(p.w128 + 32 * c, _mm512_sub_epi32(_mm512_setzero_si512(), a0));
      _mm512_store_si512(p.w128 + 32 * c + 16, _mm512_sub_epi32(_mm512_setzero_si512(), a1));
    }
  }
}

// Tokens t0 .. t0 + NT of x against the panel: y[t][r0 + i] for i < nr.
template <int NT, int G, bool MIN>
void panel_tokens(const Panel& p, int64_t c0, int64_t chunks, const Int8Acts& x, int64_t t0, int64_t r0, int nr, float* y,
                  int64_t ldy) {
  // Independent accumulator chains per token: vpdpbusd has a latency of 5.
  constexpr int S = NT == 1 ? 4 : NT <= 3 ? 2 : 1;
  const int64_t K = x.cols;
  const uint8_t* xu = x.qu + t0 * K;
  const int64_t xc = K / 32;  // chunks per activation row
  const float* xd = x.d + t0 * xc + c0;
  // Activation sums per scale group for the types with a minimum: per chunk
  // (Int8Acts::s), per 16 elements for q2_k (the driver's int8_group16_sums).
  const int64_t xg = K / G;
  const float* xs = x.s + t0 * xg + c0 * (32 / G);
  // Later blocks of K continue the sums stored by the earlier ones (a float
  // stored and reloaded is unchanged: the result does not depend on blocking).
  const __mmask16 mask = static_cast<__mmask16>((1u << nr) - 1);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t)
    acc[t] = c0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y + (t0 + t) * ldy + r0);
  for (int64_t c = 0; c < chunks; ++c) {
    const __m512i* P = p.q + c * 8;
    for (int g = 0; g < 32 / G; ++g) {
      const int64_t grp = c * (32 / G) + g;
      const __m512i neg_w128 = _mm512_load_si512(p.w128 + 16 * grp);
      __m512i ia[S][NT];
      for (int t = 0; t < NT; ++t) ia[0][t] = neg_w128;
      for (int h = 1; h < S; ++h)
        for (int t = 0; t < NT; ++t) ia[h][t] = _mm512_setzero_si512();
      for (int j = g * (G / 4); j < (g + 1) * (G / 4); ++j) {
        const __m512i wv = _mm512_load_si512(P + j);
        for (int t = 0; t < NT; ++t)
          ia[j % S][t] = _mm512_dpbusd_epi32(ia[j % S][t], _mm512_set1_epi32(static_cast<int32_t>(load_u32(xu + t * K + 32 * (c0 + c) + 4 * j))), wv);
      }
      const __m512 sw = _mm512_load_ps(p.scale + 16 * grp);
      for (int t = 0; t < NT; ++t) {
        __m512i isum = ia[0][t];
        for (int h = 1; h < S; ++h) isum = _mm512_add_epi32(isum, ia[h][t]);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(sw, _mm512_set1_ps(xd[t * xc + c])), acc[t]);
      }
    }
    if constexpr (MIN) {
      for (int g = 0; g < 32 / G; ++g) {
        const int64_t grp = c * (32 / G) + g;
        const __m512 mn = _mm512_load_ps(p.min + 16 * grp);
        for (int t = 0; t < NT; ++t) acc[t] = _mm512_fmadd_ps(mn, _mm512_set1_ps(xs[t * xg + grp]), acc[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * ldy + r0, mask, acc[t]);
}

// The k-quants (block 256): each group's exact sum times the rows' integer
// scale, added as integers over the super-block; one float step per
// super-block (Int8Acts in kernels/dispatch.h). The minima's sum M takes the
// activations' 16-element sums.
template <int NT, int G, bool MIN>
void panel_tokens_k(const Panel& p, int64_t c0, int64_t chunks, const Int8Acts& x, int64_t t0, int64_t r0, int nr,
                    float* y, int64_t ldy) {
  constexpr int S = NT == 1 ? 4 : NT <= 3 ? 2 : 1;  // independent accumulator chains per token
  const int64_t K = x.cols, nb = K / 256, ng = K / 16;
  const uint8_t* xu = x.qu + t0 * K;
  const float* xd = x.d + t0 * nb + c0 / 8;
  const int16_t* bs = x.bsum + t0 * ng + 2 * c0;
  const __mmask16 mask = static_cast<__mmask16>((1u << nr) - 1);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t)
    acc[t] = c0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y + (t0 + t) * ldy + r0);
  for (int64_t sb = 0; sb < chunks / 8; ++sb) {
    __m512i I[NT], M[NT];
    for (int t = 0; t < NT; ++t) I[t] = M[t] = _mm512_setzero_si512();
    for (int64_t c = 8 * sb; c < 8 * sb + 8; ++c) {
      const __m512i* P = p.q + c * 8;
      for (int g = 0; g < 32 / G; ++g) {
        const int64_t grp = c * (32 / G) + g;
        const __m512i neg_w128 = _mm512_load_si512(p.w128 + 16 * grp);
        __m512i ia[S][NT];
        for (int t = 0; t < NT; ++t) ia[0][t] = neg_w128;
        for (int h = 1; h < S; ++h)
          for (int t = 0; t < NT; ++t) ia[h][t] = _mm512_setzero_si512();
        for (int j = g * (G / 4); j < (g + 1) * (G / 4); ++j) {
          const __m512i wv = _mm512_load_si512(P + j);
          for (int t = 0; t < NT; ++t)
            ia[j % S][t] = _mm512_dpbusd_epi32(ia[j % S][t], _mm512_set1_epi32(static_cast<int32_t>(load_u32(xu + t * K + 32 * (c0 + c) + 4 * j))), wv);
        }
        const __m512i sc = _mm512_load_si512(p.scale_i + 16 * grp);
        for (int t = 0; t < NT; ++t) {
          __m512i isum = ia[0][t];
          for (int h = 1; h < S; ++h) isum = _mm512_add_epi32(isum, ia[h][t]);
          I[t] = _mm512_add_epi32(I[t], _mm512_mullo_epi32(isum, sc));
        }
        if constexpr (MIN) {
          const __m512i mn = _mm512_load_si512(p.min_i + 16 * grp);
          for (int t = 0; t < NT; ++t) {
            const int16_t* b = bs + t * ng + 2 * c;
            const int32_t bsum = G == 16 ? b[g] : b[0] + b[1];
            M[t] = _mm512_add_epi32(M[t], _mm512_mullo_epi32(mn, _mm512_set1_epi32(bsum)));
          }
        }
      }
    }
    const __m512 dv = _mm512_load_ps(p.kd + 16 * sb);
    [[maybe_unused]] const __m512 dmv = _mm512_load_ps(p.kdmin + 16 * sb);
    for (int t = 0; t < NT; ++t) {
      const __m512 D = _mm512_set1_ps(xd[t * nb + sb]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[t]), _mm512_mul_ps(dv, D), acc[t]);
      if constexpr (MIN)
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(M[t]), _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_mul_ps(dmv, D)), _mm512_set1_epi32(INT32_MIN))), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * ldy + r0, mask, acc[t]);
}

}  // namespace

#include "kernels/x86/int8_driver.inc"

void matmul_rows_int8(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy) {
  if (x.n_tokens <= kGemvMaxTokens) gemv_rows_int8(w, r0, r1, x, y, ldy);
  else panel_rows_int8(w, r0, r1, x, y, ldy);
}

}  // namespace volga::kernels::avx512vnni
