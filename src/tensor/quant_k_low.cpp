// Scalar reference (de)quantization of the low-bit k-quants q2_k and q3_k
// (layouts in tensor/blocks.h). Both cut a 256-element super-block into 16
// sub-blocks of 16 elements:
//   q2_k: x = d * sc * q - dmin * m, q in [0, 3], sc and m 4-bit;
//   q3_k: x = d * (sc - 32) * q,     q in [-4, 3], sc 6-bit.
//
// The quantizers fit each sub-block by least squares (a few candidate scales
// around the range's, each refined by refitting scale and minimum to the
// integers it chose, the best by squared error kept), then quantize the
// sub-block scales under the fp16 super-block scales and choose the integers
// again for the scales as stored. With an importance vector every fit is
// the weighted one (tensor/quant_weights.h). Any block they write dequantizes
// exactly as llama.cpp's would.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/blocks.h"
#include "tensor/half.h"
#include "tensor/quant.h"
#include "tensor/quant_weights.h"

namespace volga {

namespace {

constexpr int kSub = 16;  // elements per sub-block

int clamp_round(float v, int lo, int hi) {
  const int r = static_cast<int>(std::lrintf(v));
  return std::min(hi, std::max(lo, r));
}

// Position of element e of a super-block in the 2-bit field layout shared by
// both types: byte 32 * (e / 128) + e % 32 of qs, bits 2 * ((e % 128) / 32).
void put2(uint8_t* qs, int e, int v) {
  qs[32 * (e / 128) + e % 32] = static_cast<uint8_t>(qs[32 * (e / 128) + e % 32] | (v << (2 * ((e % 128) / 32))));
}
int get2(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

// ------------------------------------------------------------------ q2_k

// Scale s >= 0 and minimum lo <= 0 for 16 values, x ~ s * q + lo, q in [0, 3].
void fit_asymmetric(const float* x, float* s_out, float* lo_out) {
  float mn = 0, mx = 0;
  for (int i = 0; i < kSub; ++i) mn = std::min(mn, x[i]), mx = std::max(mx, x[i]);
  *s_out = 0;
  *lo_out = mn;
  if (mx <= mn) return;
  double best = INFINITY;
  for (int step = -4; step <= 4; ++step) {
    float s = (mx - mn) / (3.0f + 0.1f * static_cast<float>(step)), lo = mn;
    for (int iter = 0; iter < 3; ++iter) {
      // Integers for (s, lo), then the least-squares (s, lo) for those integers.
      double sq = 0, sq2 = 0, sx = 0, sqx = 0;
      for (int i = 0; i < kSub; ++i) {
        const int q = clamp_round((x[i] - lo) / s, 0, 3);
        sq += q, sq2 += q * q, sx += x[i], sqx += q * x[i];
      }
      const double det = kSub * sq2 - sq * sq;
      if (det <= 0) break;
      double ns = (kSub * sqx - sq * sx) / det, nlo = (sx - ns * sq) / kSub;
      if (nlo > 0) nlo = 0, ns = sq2 > 0 ? sqx / sq2 : 0;  // the minimum cannot be positive
      if (ns <= 0) break;
      s = static_cast<float>(ns), lo = static_cast<float>(nlo);
    }
    double err = 0;
    for (int i = 0; i < kSub; ++i) {
      const double d = s * clamp_round((x[i] - lo) / s, 0, 3) + lo - x[i];
      err += d * d;
    }
    if (err < best) best = err, *s_out = s, *lo_out = lo;
  }
}

// The weights of a sub-block's scale and minimum when the super-block scales
// are fitted: sum w q^2 and sum w over the sub-block (q for scale s, offset lo).
void group_weights(const float* x, const float* w, float s, float lo, int qmin, int qmax, float* ws, float* wm) {
  *ws = *wm = 0;
  for (int i = 0; i < kSub; ++i) {
    const float q = s != 0 ? static_cast<float>(clamp_round((x[i] - lo) / s, qmin, qmax)) : 0.0f;
    *ws += w[i] * q * q;
    *wm += w[i];
  }
}

// q2_k's sub-block scales s and minimums m as 4-bit sc[] and mq[] under the
// stored d and dmin: with weights w, fitted by weighted least squares;
// without, the largest at 15.
void q2_k_scales(const float* x, const float* w, BlockQ2_K* b, int* sc, int* mq) {
  float s[16], m[16], ws[16], wm[16], max_s = 0, max_m = 0;
  for (int j = 0; j < 16; ++j) {
    float lo;
    if (w) {
      fit_asymmetric_weighted(x + kSub * j, w + kSub * j, kSub, 3, true, &s[j], &lo);
      group_weights(x + kSub * j, w + kSub * j, s[j], lo, 0, 3, &ws[j], &wm[j]);
    } else {
      fit_asymmetric(x + kSub * j, &s[j], &lo);
    }
    m[j] = -lo;
    max_s = std::max(max_s, s[j]);
    max_m = std::max(max_m, m[j]);
  }
  if (w) {
    b->d = quantize_group_scales(s, ws, 16, 0, 15, sc);
    b->dmin = quantize_group_scales(m, wm, 16, 0, 15, mq);
    return;
  }
  b->d = fp32_to_fp16(max_s / 15.0f);
  b->dmin = fp32_to_fp16(max_m / 15.0f);
  const float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
  for (int j = 0; j < 16; ++j) {
    sc[j] = d > 0 ? clamp_round(s[j] / d, 0, 15) : 0;
    mq[j] = dmin > 0 ? clamp_round(m[j] / dmin, 0, 15) : 0;
  }
}

void quantize_q2_k_block(const float* x, const float* w, BlockQ2_K* b) {
  int scs[16], mqs[16];
  q2_k_scales(x, w, b, scs, mqs);
  const float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
  std::memset(b->qs, 0, sizeof b->qs);
  for (int j = 0; j < 16; ++j) {
    const int sc = scs[j], mq = mqs[j];
    b->scales[j] = static_cast<uint8_t>(sc | (mq << 4));
    const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(mq);
    for (int i = 0; i < kSub; ++i) {
      const int e = kSub * j + i;
      put2(b->qs, e, dl > 0 ? clamp_round((x[e] + ml) / dl, 0, 3) : 0);
    }
  }
}

// ------------------------------------------------------------------ q3_k

// Scale s (either sign) for 16 values, x ~ s * q, q in [-4, 3]: the value of
// largest magnitude maps to -4 (the side with four levels).
float fit_symmetric(const float* x) {
  float amax = 0, max = 0;
  for (int i = 0; i < kSub; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax == 0) return 0;
  double best = INFINITY;
  float best_s = max / -4.0f;
  for (int step = -4; step <= 4; ++step) {
    float s = max / (-4.0f + 0.1f * static_cast<float>(step));
    for (int iter = 0; iter < 2; ++iter) {
      double sqx = 0, sq2 = 0;
      for (int i = 0; i < kSub; ++i) {
        const int q = clamp_round(x[i] / s, -4, 3);
        sqx += q * x[i], sq2 += q * q;
      }
      if (sq2 <= 0) break;
      s = static_cast<float>(sqx / sq2);
    }
    double err = 0;
    for (int i = 0; i < kSub; ++i) {
      const double d = s * clamp_round(x[i] / s, -4, 3) - x[i];
      err += d * d;
    }
    if (err < best) best = err, best_s = s;
  }
  return best_s;
}

// q3_k's sub-block scales as 6-bit sc[] - 32 under the stored d: with
// weights w, fitted by weighted least squares; without, the largest at -32.
void q3_k_scales(const float* x, const float* w, BlockQ3_K* b, int* sc) {
  float s[16], ws[16], wm, max_s = 0;
  for (int j = 0; j < 16; ++j) {
    if (w) {
      s[j] = fit_symmetric_weighted(x + kSub * j, w + kSub * j, kSub, -4, 3);
      group_weights(x + kSub * j, w + kSub * j, s[j], 0.0f, -4, 3, &ws[j], &wm);
    } else {
      s[j] = fit_symmetric(x + kSub * j);
    }
    if (std::fabs(s[j]) > std::fabs(max_s)) max_s = s[j];
  }
  if (w) {
    b->d = quantize_group_scales(s, ws, 16, -32, 31, sc);
    for (int j = 0; j < 16; ++j) sc[j] += 32;
    return;
  }
  // The largest scale maps to -32, the end of [-32, 31] with room for it.
  b->d = fp32_to_fp16(max_s / -32.0f);
  const float d = fp16_to_fp32(b->d);
  for (int j = 0; j < 16; ++j) sc[j] = (d != 0 ? clamp_round(s[j] / d, -32, 31) : 0) + 32;
}

void quantize_q3_k_block(const float* x, const float* w, BlockQ3_K* b) {
  int scs[16];
  q3_k_scales(x, w, b, scs);
  const float d = fp16_to_fp32(b->d);
  std::memset(b->hmask, 0, sizeof b->hmask);
  std::memset(b->qs, 0, sizeof b->qs);
  std::memset(b->scales, 0, sizeof b->scales);
  for (int j = 0; j < 16; ++j) {
    const int sc = scs[j];
    b->scales[j % 8] = static_cast<uint8_t>(b->scales[j % 8] | ((sc & 0xF) << (4 * (j / 8))));
    b->scales[8 + j % 4] = static_cast<uint8_t>(b->scales[8 + j % 4] | ((sc >> 4) << (2 * (j / 4))));
    const float dl = d * static_cast<float>(sc - 32);
    for (int i = 0; i < kSub; ++i) {
      const int e = kSub * j + i;
      const int n = (dl != 0 ? clamp_round(x[e] / dl, -4, 3) : 0) + 4;
      put2(b->qs, e, n & 3);
      if (n & 4) b->hmask[e % 32] = static_cast<uint8_t>(b->hmask[e % 32] | (1 << (e / 32)));
    }
  }
}

}  // namespace

void dequantize_q2_k_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ2_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    float* y = dst + i * kQKK;
    for (int e = 0; e < kQKK; ++e) {
      const int sb = b[i].scales[e / kSub];
      y[e] = d * static_cast<float>(sb & 0xF) * static_cast<float>(get2(b[i].qs, e)) - dmin * static_cast<float>(sb >> 4);
    }
  }
}

void dequantize_q3_k_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ3_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    float* y = dst + i * kQKK;
    for (int e = 0; e < kQKK; ++e) {
      const int q = get2(b[i].qs, e) + 4 * ((b[i].hmask[e % 32] >> (e / 32)) & 1) - 4;
      y[e] = d * static_cast<float>(q3k_scale(b[i].scales, e / kSub) - 32) * static_cast<float>(q);
    }
  }
}

void quantize_q2_k_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockQ2_K*>(dst);
  float w[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float* x = src + i * kQKK;
    quantize_q2_k_block(x, imp ? block_weights(x, imp + i * kQKK, kQKK, 1.0f, w) : nullptr, b + i);
  }
}

void quantize_q3_k_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockQ3_K*>(dst);
  float w[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float* x = src + i * kQKK;
    quantize_q3_k_block(x, imp ? block_weights(x, imp + i * kQKK, kQKK, 2.0f, w) : nullptr, b + i);
  }
}

}  // namespace volga
