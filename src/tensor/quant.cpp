#include "tensor/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/blocks.h"
#include "tensor/half.h"
#include "tensor/quant_weights.h"
#include "tensor/type_traits.h"
#include "util/error.h"

namespace volga {

namespace {
int nearest_int(float x) { return static_cast<int>(std::lrintf(x)); }
}  // namespace

// ---------------------------------------------------------------- float types

void dequantize_f32_ref(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
void quantize_f32_ref(const float* src, void* dst, int64_t n, const float* /*imp: not weighted*/) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void dequantize_f16_ref(const void* src, float* dst, int64_t n) {
  const auto* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
}
void dequantize_bf16_ref(const void* src, float* dst, int64_t n) {
  const auto* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
}
void quantize_f16_ref(const float* src, void* dst, int64_t n, const float* /*imp: not weighted*/) {
  auto* d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_fp16(src[i]);
}
void quantize_bf16_ref(const float* src, void* dst, int64_t n, const float* /*imp: not weighted*/) {
  auto* d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_bf16(src[i]);
}

// ----------------------------------------------------------------------- Q8_0

void dequantize_q8_0_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK; ++j) dst[i * kQK + j] = d * b[i].qs[j];
  }
}

void quantize_q8_0_ref(const float* src, void* dst, int64_t n, const float* /*imp: not weighted*/) {
  auto* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* x = src + i * kQK;
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    float d = amax / 127.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(nearest_int(x[j] * id));
  }
}

// ----------------------------------------------------------------------- Q4_0

void dequantize_q4_0_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[i * kQK + j] = d * ((b[i].qs[j] & 0xF) - 8);
      dst[i * kQK + j + kQK / 2] = d * ((b[i].qs[j] >> 4) - 8);
    }
  }
}

// The weighted legacy blocks: the scale (and offset) by fit_*_weighted, the
// integers nearest for them as stored.
namespace {

int clamp_round(float v, int lo, int hi) { return std::clamp(nearest_int(v), lo, hi); }

// Symmetric 32-element block: x ~ d * q, q in [qmin, qmax]; q + (-qmin) into n[32].
uint16_t weighted_symmetric32(const float* x, const float* imp, int qmin, int qmax, int* n) {
  float w[kQK];
  const uint16_t d16 = fp32_to_fp16(fit_symmetric_weighted(x, block_weights(x, imp, kQK, 1.0f, w), kQK, qmin, qmax));
  const float d = fp16_to_fp32(d16);
  for (int j = 0; j < kQK; ++j) n[j] = (d != 0 ? clamp_round(x[j] / d, qmin, qmax) : 0) - qmin;
  return d16;
}

// Asymmetric 32-element block: x ~ d * q + m, q in [0, qmax] into n[32].
void weighted_asymmetric32(const float* x, const float* imp, int qmax, uint16_t* d16, uint16_t* m16, int* n) {
  float w[kQK], s, lo;
  fit_asymmetric_weighted(x, block_weights(x, imp, kQK, 1.0f, w), kQK, qmax, false, &s, &lo);
  *d16 = fp32_to_fp16(s);
  *m16 = fp32_to_fp16(lo);
  const float d = fp16_to_fp32(*d16), m = fp16_to_fp32(*m16);
  for (int j = 0; j < kQK; ++j) n[j] = d > 0 ? clamp_round((x[j] - m) / d, 0, qmax) : 0;
}

void pack_nibbles(const int* n, uint8_t* qs) {
  for (int j = 0; j < kQK / 2; ++j) qs[j] = static_cast<uint8_t>((n[j] & 0xF) | ((n[j + kQK / 2] & 0xF) << 4));
}

uint32_t high_bits(const int* n) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK; ++j) qh |= static_cast<uint32_t>((n[j] >> 4) & 1) << j;
  return qh;
}

}  // namespace

void quantize_q4_0_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* x = src + i * kQK;
    if (imp) {
      int q[kQK];
      b[i].d = weighted_symmetric32(x, imp + i * kQK, -8, 7, q);
      pack_nibbles(q, b[i].qs);
      continue;
    }
    float amax = 0, max = 0;  // max keeps the sign of the largest-magnitude value
    for (int j = 0; j < kQK; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    float d = max / -8.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      int q1 = std::min(15, static_cast<int>(x[j + kQK / 2] * id + 8.5f));
      q0 = std::max(0, q0);
      q1 = std::max(0, q1);
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// ------------------------------------------------------- Q4_1, Q5_0, Q5_1

namespace {
uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
void min_max(const float* x, int n, float* lo, float* hi) {
  *lo = x[0];
  *hi = x[0];
  for (int j = 1; j < n; ++j) {
    *lo = std::min(*lo, x[j]);
    *hi = std::max(*hi, x[j]);
  }
}
}  // namespace

void dequantize_q4_1_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ4_1*>(src);
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[i * kQK + j] = d * (b[i].qs[j] & 0xF) + m;
      dst[i * kQK + j + kQK / 2] = d * (b[i].qs[j] >> 4) + m;
    }
  }
}

void quantize_q4_1_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockQ4_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* x = src + i * kQK;
    if (imp) {
      int q[kQK];
      weighted_asymmetric32(x, imp + i * kQK, 15, &b[i].d, &b[i].m, q);
      pack_nibbles(q, b[i].qs);
      continue;
    }
    float lo, hi;
    min_max(x, kQK, &lo, &hi);
    float d = (hi - lo) / 15.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    b[i].m = fp32_to_fp16(lo);
    for (int j = 0; j < kQK / 2; ++j) {
      int q0 = std::clamp(static_cast<int>((x[j] - lo) * id + 0.5f), 0, 15);
      int q1 = std::clamp(static_cast<int>((x[j + kQK / 2] - lo) * id + 0.5f), 0, 15);
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void dequantize_q5_0_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ5_0*>(src);
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d = fp16_to_fp32(b[i].d);
    uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
      dst[i * kQK + j] = d * (((b[i].qs[j] & 0xF) | h0) - 16);
      dst[i * kQK + j + kQK / 2] = d * (((b[i].qs[j] >> 4) | h1) - 16);
    }
  }
}

void quantize_q5_0_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockQ5_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* x = src + i * kQK;
    if (imp) {
      int q[kQK];
      b[i].d = weighted_symmetric32(x, imp + i * kQK, -16, 15, q);
      pack_nibbles(q, b[i].qs);
      const uint32_t qh = high_bits(q);
      std::memcpy(b[i].qh, &qh, 4);
      continue;
    }
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    float d = max / -16.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      int q0 = std::clamp(static_cast<int>(x[j] * id + 16.5f), 0, 31);
      int q1 = std::clamp(static_cast<int>(x[j + kQK / 2] * id + 16.5f), 0, 31);
      b[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

void dequantize_q5_1_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ5_1*>(src);
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
    uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
      dst[i * kQK + j] = d * ((b[i].qs[j] & 0xF) | h0) + m;
      dst[i * kQK + j + kQK / 2] = d * ((b[i].qs[j] >> 4) | h1) + m;
    }
  }
}

void quantize_q5_1_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockQ5_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* x = src + i * kQK;
    if (imp) {
      int q[kQK];
      weighted_asymmetric32(x, imp + i * kQK, 31, &b[i].d, &b[i].m, q);
      pack_nibbles(q, b[i].qs);
      const uint32_t qh = high_bits(q);
      std::memcpy(b[i].qh, &qh, 4);
      continue;
    }
    float lo, hi;
    min_max(x, kQK, &lo, &hi);
    float d = (hi - lo) / 31.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    b[i].m = fp32_to_fp16(lo);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      int q0 = std::clamp(static_cast<int>((x[j] - lo) * id + 0.5f), 0, 31);
      int q1 = std::clamp(static_cast<int>((x[j + kQK / 2] - lo) * id + 0.5f), 0, 31);
      b[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

// ------------------------------------------------------------- Q4_K and Q5_K

namespace {

// Packs 8 six-bit scales and 8 six-bit mins into the 12-byte k4 layout.
void pack_scale_min_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* q) {
  std::memset(q, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      q[j] = ls[j];
      q[j + 4] = lm[j];
    } else {
      q[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      q[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      q[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
}

// Asymmetric quantization of a 256-element super-block into 8 sub-blocks of 32
// with `nmax`+1 levels: x ~= d*ls[j]*q - dmin*lm[j]. Fills levels L[256].
void quantize_k4_superblock(const float* x, int nmax, uint16_t* d_out, uint16_t* dmin_out,
                            uint8_t* scales_out, uint8_t* L) {
  float scale[8], minv[8];
  for (int j = 0; j < 8; ++j) {
    float lo = x[j * 32], hi = x[j * 32];
    for (int l = 1; l < 32; ++l) {
      lo = std::min(lo, x[j * 32 + l]);
      hi = std::max(hi, x[j * 32 + l]);
    }
    lo = std::min(lo, 0.0f);  // the format stores a non-negative min to subtract
    scale[j] = (hi - lo) / nmax;
    minv[j] = -lo;
  }
  float max_scale = *std::max_element(scale, scale + 8);
  float max_min = *std::max_element(minv, minv + 8);
  float d = max_scale / 63.0f, dmin = max_min / 63.0f;
  *d_out = fp32_to_fp16(d);
  *dmin_out = fp32_to_fp16(dmin);
  float dq = fp16_to_fp32(*d_out), dminq = fp16_to_fp32(*dmin_out);
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    // Round the scale up so the top level still reaches the sub-block maximum.
    ls[j] = static_cast<uint8_t>(dq > 0 ? std::min(63, static_cast<int>(std::ceil(scale[j] / dq - 1e-4f))) : 0);
    lm[j] = static_cast<uint8_t>(dminq > 0 ? std::min(63, nearest_int(minv[j] / dminq)) : 0);
  }
  pack_scale_min_k4(ls, lm, scales_out);
  for (int j = 0; j < 8; ++j) {
    float sd = dq * ls[j], sm = dminq * lm[j];
    for (int l = 0; l < 32; ++l) {
      int q = sd > 0 ? nearest_int((x[j * 32 + l] + sm) / sd) : 0;
      L[j * 32 + l] = static_cast<uint8_t>(std::clamp(q, 0, nmax));
    }
  }
}

// The same with weights w[256]: each sub-block's scale and minimum by
// weighted least squares, then the 6-bit scales and minimums under d and dmin
// fitted with each sub-block's weight (sum w q^2 for the scale, sum w for
// the minimum), the levels nearest for them as stored.
void quantize_k4_superblock_weighted(const float* x, const float* w, int nmax, uint16_t* d_out, uint16_t* dmin_out,
                                     uint8_t* scales_out, uint8_t* L) {
  float scale[8], minv[8], wscale[8], wmin[8];
  for (int j = 0; j < 8; ++j) {
    float lo;
    fit_asymmetric_weighted(x + 32 * j, w + 32 * j, 32, nmax, true, &scale[j], &lo);
    minv[j] = -lo;
    wscale[j] = wmin[j] = 0;
    for (int l = 0; l < 32; ++l) {
      const float q = scale[j] > 0 ? static_cast<float>(clamp_round((x[32 * j + l] - lo) / scale[j], 0, nmax)) : 0;
      wscale[j] += w[32 * j + l] * q * q;
      wmin[j] += w[32 * j + l];
    }
  }
  int ls[8], lm[8];
  *d_out = quantize_group_scales(scale, wscale, 8, 0, 63, ls);
  *dmin_out = quantize_group_scales(minv, wmin, 8, 0, 63, lm);
  uint8_t ls8[8], lm8[8];
  for (int j = 0; j < 8; ++j) ls8[j] = static_cast<uint8_t>(ls[j]), lm8[j] = static_cast<uint8_t>(lm[j]);
  pack_scale_min_k4(ls8, lm8, scales_out);
  const float dq = fp16_to_fp32(*d_out), dminq = fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float sd = dq * ls[j], sm = dminq * lm[j];
    for (int l = 0; l < 32; ++l)
      L[j * 32 + l] = static_cast<uint8_t>(sd > 0 ? clamp_round((x[j * 32 + l] + sm) / sd, 0, nmax) : 0);
  }
}

// The k4 super-block i of a row, weighted when imp is given.
void quantize_k4(const float* src, const float* imp, int64_t i, int nmax, uint16_t* d, uint16_t* dmin,
                 uint8_t* scales, uint8_t* L) {
  const float* x = src + i * kQKK;
  if (!imp) return quantize_k4_superblock(x, nmax, d, dmin, scales, L);
  float w[kQKK];
  quantize_k4_superblock_weighted(x, block_weights(x, imp + i * kQKK, kQKK, 2.0f, w), nmax, d, dmin, scales, L);
}

}  // namespace

void dequantize_q4_k_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ4_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    float* y = dst + i * kQKK;
    for (int j = 0, is = 0; j < kQKK; j += 64, is += 2, q += 32) {
      uint8_t sc, m;
      unpack_scale_min_k4(is, b[i].scales, &sc, &m);
      float d1 = d * sc, m1 = dmin * m;
      unpack_scale_min_k4(is + 1, b[i].scales, &sc, &m);
      float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) y[j + l] = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[j + 32 + l] = d2 * (q[l] >> 4) - m2;
    }
  }
}

void quantize_q4_k_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockQ4_K*>(dst);
  uint8_t L[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i) {
    quantize_k4(src, imp, i, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
    uint8_t* q = b[i].qs;
    for (int j = 0; j < kQKK; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
  }
}

void dequantize_q5_k_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ5_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    const uint8_t* qh = b[i].qh;
    float* y = dst + i * kQKK;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < kQKK; j += 64, is += 2, ql += 32) {
      uint8_t sc, m;
      unpack_scale_min_k4(is, b[i].scales, &sc, &m);
      float d1 = d * sc, m1 = dmin * m;
      unpack_scale_min_k4(is + 1, b[i].scales, &sc, &m);
      float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) y[j + l] = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) y[j + 32 + l] = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void quantize_q5_k_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockQ5_K*>(dst);
  uint8_t L[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i) {
    quantize_k4(src, imp, i, 31, &b[i].d, &b[i].dmin, b[i].scales, L);
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    uint8_t* ql = b[i].qs;
    uint8_t m1 = 1, m2 = 2;
    for (int j = 0; j < kQKK; j += 64, ql += 32) {
      for (int l = 0; l < 32; ++l) {
        int l1 = L[j + l], l2 = L[j + l + 32];
        if (l1 > 15) {
          l1 -= 16;
          b[i].qh[l] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          b[i].qh[l] |= m2;
        }
        ql[l] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
      m1 = static_cast<uint8_t>(m1 << 2);
      m2 = static_cast<uint8_t>(m2 << 2);
    }
  }
}

// ----------------------------------------------------------------------- Q6_K

void dequantize_q6_k_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ6_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    float d = fp16_to_fp32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    float* y = dst + i * kQKK;
    for (int n0 = 0; n0 < kQKK; n0 += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        int is = l / 16;
        int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

namespace {

// Levels L[256] (0..63, 32 the zero) into the ql/qh bit planes.
void pack_q6_k(const uint8_t* L, BlockQ6_K* b) {
  uint8_t* ql = b->ql;
  uint8_t* qh = b->qh;
  for (int j = 0; j < kQKK; j += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
      uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
      ql[l] = static_cast<uint8_t>(q1 | (q3 << 4));
      ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
      qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                   ((L[j + l + 96] >> 4) << 6));
    }
  }
}

// Weighted q6_k super-block: each 16-element scale by weighted least
// squares, the int8 scales under d fitted with weights sum w q^2, the levels
// nearest for the scales as stored.
void quantize_q6_k_weighted(const float* x, const float* imp, BlockQ6_K* b, uint8_t* L) {
  float w[kQKK], scale[16], wscale[16];
  block_weights(x, imp, kQKK, 2.0f, w);
  for (int j = 0; j < 16; ++j) {
    scale[j] = fit_symmetric_weighted(x + 16 * j, w + 16 * j, 16, -32, 31);
    wscale[j] = 0;
    for (int l = 0; l < 16; ++l) {
      const float q = scale[j] != 0 ? static_cast<float>(clamp_round(x[16 * j + l] / scale[j], -32, 31)) : 0;
      wscale[j] += w[16 * j + l] * q * q;
    }
  }
  int ls[16];
  b->d = quantize_group_scales(scale, wscale, 16, -128, 127, ls);
  const float d = fp16_to_fp32(b->d);
  for (int j = 0; j < 16; ++j) {
    b->scales[j] = static_cast<int8_t>(ls[j]);
    const float sd = d * static_cast<float>(ls[j]);
    for (int l = 0; l < 16; ++l)
      L[16 * j + l] = static_cast<uint8_t>((sd != 0 ? clamp_round(x[16 * j + l] / sd, -32, 31) : 0) + 32);
  }
}

}  // namespace

void quantize_q6_k_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockQ6_K*>(dst);
  uint8_t L[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float* x = src + i * kQKK;
    if (imp) {
      quantize_q6_k_weighted(x, imp + i * kQKK, &b[i], L);
      pack_q6_k(L, &b[i]);
      continue;
    }
    float scale[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < 16; ++j) {
      float amax = 0, mx = 0;
      for (int l = 0; l < 16; ++l)
        if (std::fabs(x[j * 16 + l]) > amax) {
          amax = std::fabs(x[j * 16 + l]);
          mx = x[j * 16 + l];
        }
      scale[j] = mx / -32.0f;  // the extreme value maps to level -32
      if (std::fabs(scale[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(scale[j]);
        max_scale = scale[j];
      }
    }
    float iscale = max_scale != 0 ? -128.0f / max_scale : 0.0f;
    b[i].d = fp32_to_fp16(iscale != 0 ? 1.0f / iscale : 0.0f);
    float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < 16; ++j) {
      b[i].scales[j] = static_cast<int8_t>(std::clamp(nearest_int(iscale * scale[j]), -128, 127));
      float sd = d * b[i].scales[j];
      for (int l = 0; l < 16; ++l) {
        int q = sd != 0 ? nearest_int(x[j * 16 + l] / sd) : 0;
        L[j * 16 + l] = static_cast<uint8_t>(std::clamp(q, -32, 31) + 32);
      }
    }
    pack_q6_k(L, &b[i]);
  }
}

// ------------------------------------------------------------------- dispatch

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  if (!visit_dtype(type, [&]<DType T>() { TypeRow<T>::dequantize(src, dst, n); }))
    throw Error("dequantize: unsupported type");
}

void quantize_row(DType type, const float* src, void* dst, int64_t n, const float* imp) {
  if (n % traits(type).block_size != 0)
    throw Error(std::string("quantize: row length ") + std::to_string(n) +
                " is not a multiple of the " + dtype_name(type) + " block size " +
                std::to_string(traits(type).block_size));
  if (!visit_dtype(type, [&]<DType T>() { TypeRow<T>::quantize(src, dst, n, imp); }))
    throw Error("quantize: unsupported type");
}

}  // namespace volga
