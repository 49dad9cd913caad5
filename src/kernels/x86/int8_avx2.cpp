// Integer matrix products with AVX2 (any AVX2 CPU, and AVX-512 CPUs without
// VNNI). Compiled with -mavx2 -mfma -mf16c.
//
// Same scheme as int8_avx512.cpp with 8-row panels: vector j of a chunk holds
// elements 4j..4j+3 of each of the 8 rows. Without vpdpbusd, a product is
// vpmaddubsw(|w|, sign(x, w)) then vpmaddwd with ones: |w| <= 128 and
// |x| <= 127 keep the 16-bit pair sums below 32768, so nothing saturates and
// the integer dot product is exact.
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

void quantize_acts(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, float* s) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t c = 0; c < cols / 32; ++c) {
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + 32 * c + 8 * i);
      m = _mm256_max_ps(m, _mm256_and_ps(v[i], abs_mask));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float dc = amax / 127.0f;
    const float id = dc != 0.0f ? 1.0f / dc : 0.0f;
    __m256i iv[4];
    __m256i sum = _mm256_setzero_si256();
    for (int i = 0; i < 4; ++i) {
      iv[i] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[i], _mm256_set1_ps(id))), lo), hi);
      sum = _mm256_add_epi32(sum, iv[i]);
    }
    // packs work per 128-bit lane; the permutation restores element order.
    const __m256i q16a = _mm256_packs_epi32(iv[0], iv[1]), q16b = _mm256_packs_epi32(iv[2], iv[3]);
    const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * c), q8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qu + 32 * c), _mm256_xor_si256(q8, _mm256_set1_epi8(-128)));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    d[c] = dc;
    s[c] = dc * static_cast<float>(_mm_cvtsi128_si32(s4));
  }
}

// Block 256 (the k-quants): one scale per 256 elements and the integer sum
// of each 16. Same operations per element as the reference.
void quantize_acts_k(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, int16_t* bsum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  auto hsum = [](__m256i v) {
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    return _mm_cvtsi128_si32(s4);
  };
  for (int64_t b = 0; b < cols / 256; ++b) {
    const float* xb = x + 256 * b;
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 32; ++i) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(xb + 8 * i), abs_mask));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float db = _mm_cvtss_f32(m4) / 127.0f;
    const __m256 vid = _mm256_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
    for (int c = 0; c < 8; ++c) {
      __m256i iv[4];
      for (int i = 0; i < 4; ++i)
        iv[i] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 32 * c + 8 * i), vid)), lo), hi);
      const __m256i q16a = _mm256_packs_epi32(iv[0], iv[1]), q16b = _mm256_packs_epi32(iv[2], iv[3]);
      const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 256 * b + 32 * c), q8);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qu + 256 * b + 32 * c), _mm256_xor_si256(q8, _mm256_set1_epi8(-128)));
      bsum[16 * b + 2 * c] = static_cast<int16_t>(hsum(_mm256_add_epi32(iv[0], iv[1])));
      bsum[16 * b + 2 * c + 1] = static_cast<int16_t>(hsum(_mm256_add_epi32(iv[2], iv[3])));
    }
    d[b] = db;
  }
}

namespace {

constexpr int kPanelRows = 8;
constexpr int kMaxTok = 4;
constexpr int64_t kBlockChunks = 32;  // chunks of K per panel: 1024 elements, 16 KB

// The k-quants (block 256) store integer scales and minima in place of the
// float ones (scale_i, min_i: the same storage) and their super-blocks'
// float factors d, dmin.
struct Panel {
  __m256i* q;     // [chunks][8] weight integers
  __m256i* qa;    // [chunks][8] their absolute values
  float* scale;   // [groups][8]
  float* min;     // [groups][8] (one per chunk but for q2_k)
  int32_t* scale_i;  // k-quants: [groups][8]
  int32_t* min_i;    // k-quants: [groups][8]
  float* kd;         // k-quants: [super-blocks][8]
  float* kdmin;      // k-quants: [super-blocks][8]
};

Panel panel_for(int64_t chunks, int groups_per_chunk) {
  struct alignas(32) Line {
    uint8_t bytes[32];
  };
  thread_local std::vector<Line> buf;
  const int64_t groups = chunks * groups_per_chunk, supers = (chunks + 7) / 8;
  const size_t vecs = static_cast<size_t>(chunks * 16 + 2 * groups + 2 * supers);
  if (buf.size() < vecs) buf.resize(vecs);
  Panel p;
  p.q = reinterpret_cast<__m256i*>(buf.data());
  p.qa = reinterpret_cast<__m256i*>(buf.data() + chunks * 8);
  p.scale = reinterpret_cast<float*>(buf.data() + chunks * 16);
  p.min = reinterpret_cast<float*>(buf.data() + chunks * 16 + groups);
  p.scale_i = reinterpret_cast<int32_t*>(p.scale);
  p.min_i = reinterpret_cast<int32_t*>(p.min);
  p.kd = reinterpret_cast<float*>(buf.data() + chunks * 16 + 2 * groups);
  p.kdmin = reinterpret_cast<float*>(buf.data() + chunks * 16 + 2 * groups + supers);
  return p;
}

// Row i's super-block u of a k-quant: integers to the stage, integer scales
// and minima per group, d and dmin (stride: kPanelRows values per group).
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

// 8 rows x 8 dwords -> 8 vectors of the 8 rows' dword j.
inline void transpose_8x8(const __m256i* a, __m256i* out) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(a[i], a[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(a[i], a[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    out[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    out[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}

// Two passes, as in int8_avx512.cpp: rows read one after the other into a
// row-major stage in place, then each chunk transposed in place.
template <DType T>
void pack_panel(const WeightMatrix& w, int64_t r0, int nr, int64_t c0, int64_t chunks, const Panel& p) {
  constexpr int G = kFacts<T>.int8_scale_group;
  __m256i* stage = p.q;  // [chunks][8 rows]
  constexpr int U = kUnitChunks<T>;
  for (int i = 0; i < kPanelRows; ++i) {
    if (i < nr) {
      const uint8_t* row = w.row(r0 + i);
      for (int64_t c = 0; c < chunks; c += U) {
        if constexpr (kBlock256<T>) {
          pack_k_unit<T>(row, (c0 + c) / U, c, i, stage, p);
          continue;
        }
        float* s0 = p.scale + (32 / G) * 8 * c + i;
        float* m0 = p.min + (32 / G) * 8 * c + i;
        unpack_unit<T>(row, (c0 + c) / U, stage + c * kPanelRows + i, kPanelRows, s0, s0 + 8, m0, (32 / G) * 8, m0 + 8);
      }
    } else {
      for (int64_t c = 0; c < chunks; ++c) {
        _mm256_store_si256(stage + c * kPanelRows + i, _mm256_setzero_si256());
        for (int g = 0; g < 32 / G; ++g) p.scale[8 * (c * (32 / G) + g) + i] = 0;
        if constexpr (kFacts<T>.has_min)
          for (int g = 0; g < 32 / G; ++g) p.min[8 * (c * (32 / G) + g) + i] = 0;
        if constexpr (kBlock256<T>)
          if (c % 8 == 0) p.kd[8 * (c / 8) + i] = p.kdmin[8 * (c / 8) + i] = 0;
      }
    }
  }
  for (int64_t c = 0; c < chunks; ++c) {
    __m256i v[kPanelRows];
    for (int i = 0; i < kPanelRows; ++i) v[i] = _mm256_load_si256(stage + c * kPanelRows + i);
    __m256i* P = p.q + c * 8;
    transpose_8x8(v, P);
    for (int j = 0; j < 8; ++j) p.qa[c * 8 + j] = _mm256_abs_epi8(P[j]);
  }
}

template <int NT, int G, bool MIN>
void panel_tokens(const Panel& p, int64_t c0, int64_t chunks, const Int8Acts& x, int64_t t0, int64_t r0, int nr, float* y,
                  int64_t ldy) {
  const int64_t K = x.cols;
  const int8_t* xq = x.q + t0 * K;
  const int64_t xc = K / 32;  // chunks per activation row
  const float* xd = x.d + t0 * xc + c0;
  // Activation sums per scale group for the types with a minimum: per chunk
  // (Int8Acts::s), per 16 elements for q2_k (the driver's int8_group16_sums).
  const int64_t xg = K / G;
  const float* xs = x.s + t0 * xg + c0 * (32 / G);
  const __m256i ones = _mm256_set1_epi16(1);
  // Later blocks of K continue the sums stored by the earlier ones.
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) {
    if (c0 == 0) {
      acc[t] = _mm256_setzero_ps();
    } else {
      alignas(32) float in[8] = {};
      std::memcpy(in, y + (t0 + t) * ldy + r0, sizeof(float) * static_cast<size_t>(nr));
      acc[t] = _mm256_load_ps(in);
    }
  }
  for (int64_t c = 0; c < chunks; ++c) {
    for (int g = 0; g < 32 / G; ++g) {
      __m256i ia[NT];
      for (int t = 0; t < NT; ++t) ia[t] = _mm256_setzero_si256();
      for (int j = g * (G / 4); j < (g + 1) * (G / 4); ++j) {
        const __m256i wv = _mm256_load_si256(p.q + c * 8 + j), wa = _mm256_load_si256(p.qa + c * 8 + j);
        for (int t = 0; t < NT; ++t) {
          const __m256i xb = _mm256_set1_epi32(static_cast<int32_t>(load_u32(xq + t * K + 32 * (c0 + c) + 4 * j)));
          const __m256i prod = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(xb, wv));
          ia[t] = _mm256_add_epi32(ia[t], _mm256_madd_epi16(prod, ones));
        }
      }
      const int64_t grp = c * (32 / G) + g;
      const __m256 sw = _mm256_load_ps(p.scale + 8 * grp);
      for (int t = 0; t < NT; ++t)
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[t]), _mm256_mul_ps(sw, _mm256_set1_ps(xd[t * xc + c])), acc[t]);
    }
    if constexpr (MIN) {
      for (int g = 0; g < 32 / G; ++g) {
        const int64_t grp = c * (32 / G) + g;
        const __m256 mn = _mm256_load_ps(p.min + 8 * grp);
        for (int t = 0; t < NT; ++t) acc[t] = _mm256_fmadd_ps(mn, _mm256_set1_ps(xs[t * xg + grp]), acc[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    alignas(32) float out[8];
    _mm256_store_ps(out, acc[t]);
    std::memcpy(y + (t0 + t) * ldy + r0, out, sizeof(float) * static_cast<size_t>(nr));
  }
}

// The k-quants (block 256): each group's exact sum times the rows' integer
// scale, added as integers over the super-block; one float step per
// super-block (Int8Acts in kernels/dispatch.h).
template <int NT, int G, bool MIN>
void panel_tokens_k(const Panel& p, int64_t c0, int64_t chunks, const Int8Acts& x, int64_t t0, int64_t r0, int nr,
                    float* y, int64_t ldy) {
  const int64_t K = x.cols, nb = K / 256, ng = K / 16;
  const int8_t* xq = x.q + t0 * K;
  const float* xd = x.d + t0 * nb + c0 / 8;
  const int16_t* bs = x.bsum + t0 * ng + 2 * c0;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) {
    if (c0 == 0) {
      acc[t] = _mm256_setzero_ps();
    } else {
      alignas(32) float in[8] = {};
      std::memcpy(in, y + (t0 + t) * ldy + r0, sizeof(float) * static_cast<size_t>(nr));
      acc[t] = _mm256_load_ps(in);
    }
  }
  for (int64_t sb = 0; sb < chunks / 8; ++sb) {
    __m256i I[NT], M[NT];
    for (int t = 0; t < NT; ++t) I[t] = M[t] = _mm256_setzero_si256();
    for (int64_t c = 8 * sb; c < 8 * sb + 8; ++c) {
      for (int g = 0; g < 32 / G; ++g) {
        __m256i ia[NT];
        for (int t = 0; t < NT; ++t) ia[t] = _mm256_setzero_si256();
        for (int j = g * (G / 4); j < (g + 1) * (G / 4); ++j) {
          const __m256i wv = _mm256_load_si256(p.q + c * 8 + j), wa = _mm256_load_si256(p.qa + c * 8 + j);
          for (int t = 0; t < NT; ++t) {
            const __m256i xb = _mm256_set1_epi32(static_cast<int32_t>(load_u32(xq + t * K + 32 * (c0 + c) + 4 * j)));
            const __m256i prod = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(xb, wv));
            ia[t] = _mm256_add_epi32(ia[t], _mm256_madd_epi16(prod, ones));
          }
        }
        const int64_t grp = c * (32 / G) + g;
        const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.scale_i + 8 * grp));
        for (int t = 0; t < NT; ++t) I[t] = _mm256_add_epi32(I[t], _mm256_mullo_epi32(ia[t], sc));
        if constexpr (MIN) {
          const __m256i mn = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.min_i + 8 * grp));
          for (int t = 0; t < NT; ++t) {
            const int16_t* b = bs + t * ng + 2 * c;
            const int32_t bsum = G == 16 ? b[g] : b[0] + b[1];
            M[t] = _mm256_add_epi32(M[t], _mm256_mullo_epi32(mn, _mm256_set1_epi32(bsum)));
          }
        }
      }
    }
    const __m256 dv = _mm256_load_ps(p.kd + 8 * sb);
    [[maybe_unused]] const __m256 dmv = _mm256_load_ps(p.kdmin + 8 * sb);
    for (int t = 0; t < NT; ++t) {
      const __m256 D = _mm256_set1_ps(xd[t * nb + sb]);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(I[t]), _mm256_mul_ps(dv, D), acc[t]);
      if constexpr (MIN)
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(M[t]), _mm256_xor_ps(_mm256_mul_ps(dmv, D), _mm256_set1_ps(-0.0f)), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) {
    alignas(32) float out[8];
    _mm256_store_ps(out, acc[t]);
    std::memcpy(y + (t0 + t) * ldy + r0, out, sizeof(float) * static_cast<size_t>(nr));
  }
}

}  // namespace

#include "kernels/x86/int8_driver.inc"

void matmul_rows_int8(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy) {
  if (x.n_tokens <= kGemvMaxTokens) gemv_rows_int8(w, r0, r1, x, y, ldy);
  else panel_rows_int8(w, r0, r1, x, y, ldy);
}

}  // namespace volga::kernels::avx2
