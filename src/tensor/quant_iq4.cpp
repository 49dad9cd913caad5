// Scalar reference (de)quantization of the non-linear 4-bit types iq4_nl and
// iq4_xs: 4-bit indices into the 16 levels kIq4nlValues (tensor/blocks.h),
// scaled per block of 32 (iq4_nl) or per 32-element sub-block of a 256-element
// super-block, with a 6-bit scale under an fp16 one (iq4_xs).
//
// Without an importance vector the quantizers are straightforward (nearest
// level, then the least-squares scale for the chosen levels); with one they
// search a few scales for the least weighted error (tensor/quant_weights.h).
// Any valid block they write dequantizes exactly as llama.cpp's would.
#include <cmath>
#include <cstring>

#include "tensor/blocks.h"
#include "tensor/half.h"
#include "tensor/quant.h"
#include "tensor/quant_weights.h"

namespace volga {

namespace {

// The index of the level nearest to v (the lower one on a tie).
uint8_t nearest_level(float v) {
  uint8_t best = 0;
  float best_err = std::fabs(v - kIq4nlValues[0]);
  for (uint8_t k = 1; k < 16; ++k) {
    const float err = std::fabs(v - kIq4nlValues[k]);
    if (err < best_err) {
      best_err = err;
      best = k;
    }
  }
  return best;
}

// Levels for the 32 values x (as iq4_nl nibbles into qs[16]) and their scale:
// the largest magnitude first maps to level -127, then the scale is refitted
// by least squares to the levels chosen.
float quantize_block32(const float* x, uint8_t* qs) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  if (amax == 0) {
    std::memset(qs, 0x88, 16);  // level 1 times a zero scale
    return 0.0f;
  }
  const float id = static_cast<float>(kIq4nlValues[0]) / max;
  uint8_t n[32];
  float sumqx = 0, sumq2 = 0;
  for (int j = 0; j < 32; ++j) {
    n[j] = nearest_level(x[j] * id);
    const float v = kIq4nlValues[n[j]];
    sumqx += v * x[j];
    sumq2 += v * v;
  }
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(n[j] | (n[j + 16] << 4));
  return sumq2 > 0 ? sumqx / sumq2 : 0.0f;
}

// The same with weights w[32]: candidate inverse scales around the one that
// maps the largest magnitude to level -127, each giving the nearest levels
// and their weighted least-squares scale; the candidate of least weighted
// error is kept. *wsum receives sum w v^2 of the levels kept (the weight of
// this block's scale when a super-block scale is fitted).
float quantize_block32_weighted(const float* x, const float* w, uint8_t* qs, float* wsum) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j)
    if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
  *wsum = 0;
  if (amax == 0) {
    std::memset(qs, 0x88, 16);
    return 0.0f;
  }
  float best_score = -1, best_scale = 0;
  uint8_t best[32];
  for (int step = -8; step <= 8; ++step) {
    const float id = (static_cast<float>(kIq4nlValues[0]) + static_cast<float>(step)) / max;
    uint8_t n[32];
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      n[j] = nearest_level(x[j] * id);
      const float v = kIq4nlValues[n[j]];
      sumqx += w[j] * v * x[j];
      sumq2 += w[j] * v * v;
    }
    // The weighted error at the least-squares scale is sum w x^2 - sumqx^2 / sumq2.
    const float score = sumq2 > 0 ? sumqx * sumqx / sumq2 : 0.0f;
    if (score > best_score) {
      best_score = score, best_scale = sumq2 > 0 ? sumqx / sumq2 : 0.0f, *wsum = sumq2;
      std::memcpy(best, n, sizeof best);
    }
  }
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(best[j] | (best[j + 16] << 4));
  return best_scale;
}

// The 32 elements of nibbles qs[16] times dl.
void dequantize_block32(const uint8_t* qs, float dl, float* y) {
  for (int j = 0; j < 16; ++j) {
    y[j] = dl * kIq4nlValues[qs[j] & 0xF];
    y[j + 16] = dl * kIq4nlValues[qs[j] >> 4];
  }
}

}  // namespace

void dequantize_iq4_nl_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockIQ4_NL*>(src);
  for (int64_t i = 0; i < n / kQK; ++i) dequantize_block32(b[i].qs, fp16_to_fp32(b[i].d), dst + i * kQK);
}

void quantize_iq4_nl_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockIQ4_NL*>(dst);
  float w[kQK], wsum;
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* x = src + i * kQK;
    if (!imp) {
      b[i].d = fp32_to_fp16(quantize_block32(x, b[i].qs));
      continue;
    }
    b[i].d = fp32_to_fp16(quantize_block32_weighted(x, block_weights(x, imp + i * kQK, kQK, 1.0f, w), b[i].qs, &wsum));
    // The levels again for the scale as stored.
    const float d = fp16_to_fp32(b[i].d), id = d != 0 ? 1.0f / d : 0.0f;
    for (int k = 0; k < 16; ++k)
      b[i].qs[k] = static_cast<uint8_t>(nearest_level(x[k] * id) | (nearest_level(x[k + 16] * id) << 4));
  }
}

void dequantize_iq4_xs_ref(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockIQ4_XS*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQKK / 32; ++j)
      dequantize_block32(b[i].qs + 16 * j, d * static_cast<float>(iq4xs_scale(b[i], j) - 32), dst + i * kQKK + 32 * j);
  }
}

// Each sub-block's own scale first (as iq4_nl), then the 6-bit scales
// ls - 32 in [-32, 31] under d, the largest magnitude at -32; the levels are
// chosen again for the scales as stored.
void quantize_iq4_xs_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockIQ4_XS*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float* x = src + i * kQKK;
    float scale[8], wscale[8], max_scale = 0, w[kQKK];
    const float* wx = block_weights(x, imp ? imp + i * kQKK : nullptr, kQKK, 2.0f, w);
    for (int j = 0; j < 8; ++j) {
      scale[j] = wx ? quantize_block32_weighted(x + 32 * j, wx + 32 * j, b[i].qs + 16 * j, &wscale[j])
                    : quantize_block32(x + 32 * j, b[i].qs + 16 * j);
      if (std::fabs(scale[j]) > std::fabs(max_scale)) max_scale = scale[j];
    }
    int lw[8];
    if (wx) b[i].d = quantize_group_scales(scale, wscale, 8, -32, 31, lw);
    else b[i].d = fp32_to_fp16(max_scale / -32.0f);
    const float d = fp16_to_fp32(b[i].d);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].scales_h = 0;
    std::memset(b[i].scales_l, 0, sizeof b[i].scales_l);
    for (int j = 0; j < 8; ++j) {
      const int l = wx ? lw[j] : static_cast<int>(std::lrintf(id * scale[j]));
      const int ls = (l < -32 ? -32 : l > 31 ? 31 : l) + 32;
      b[i].scales_l[j / 2] = static_cast<uint8_t>(b[i].scales_l[j / 2] | ((ls & 0xF) << (4 * (j % 2))));
      b[i].scales_h = static_cast<uint16_t>(b[i].scales_h | ((ls >> 4) << (2 * j)));
      const float dl = d * static_cast<float>(ls - 32);
      const float idl = dl != 0 ? 1.0f / dl : 0.0f;
      uint8_t* qs = b[i].qs + 16 * j;
      for (int k = 0; k < 16; ++k)
        qs[k] = static_cast<uint8_t>(nearest_level(x[32 * j + k] * idl) | (nearest_level(x[32 * j + k + 16] * idl) << 4));
    }
  }
}

}  // namespace volga
