// The integer sub-block scales and minima of a k-quant super-block (q2_k,
// q3_k, q4_k, q5_k, q6_k) and its float factors, as the block-256 integer
// products use them (Int8Acts in kernels/dispatch.h): element i of the
// super-block is d * sc[i / 16] * w[i] - dmin * m[i / 16], w the centred
// integer. Written from the block layouts (tensor/blocks.h). Scalar and
// header-only: the reference uses it, and so do the SIMD panel packers, once
// per row and super-block (their cost is shared by every token).
#pragma once

#include <cstdint>

#include "tensor/blocks.h"
#include "tensor/half.h"
#include "tensor/type_traits.h"

namespace volga::kernels {

// The k-quants whose products take activations with one scale per 256.
template <DType T>
inline constexpr bool kBlock256 = T == DType::Q2_K || T == DType::Q3_K || T == DType::Q4_K || T == DType::Q5_K ||
                                  T == DType::Q6_K;

struct KScales {
  int32_t sc[16];  // per 16-element group
  int32_t m[16];   // per 16-element group (zero for types without a minimum)
  float d = 0, dmin = 0;
};

template <DType T>
inline void kquant_scales(const BlockOf<T>& b, KScales* out) {
  static_assert(kBlock256<T>);
  if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      unpack_scale_min_k4(j, b.scales, &sc, &m);
      out->sc[2 * j] = out->sc[2 * j + 1] = sc;
      out->m[2 * j] = out->m[2 * j + 1] = m;
    }
    out->d = fp16_to_fp32(b.d);
    out->dmin = fp16_to_fp32(b.dmin);
  } else if constexpr (T == DType::Q2_K) {
    for (int g = 0; g < 16; ++g) {
      out->sc[g] = b.scales[g] & 0xF;
      out->m[g] = b.scales[g] >> 4;
    }
    out->d = fp16_to_fp32(b.d);
    out->dmin = fp16_to_fp32(b.dmin);
  } else if constexpr (T == DType::Q3_K) {
    for (int g = 0; g < 16; ++g) out->sc[g] = q3k_scale(b.scales, g) - 32, out->m[g] = 0;
    out->d = fp16_to_fp32(b.d);
  } else {  // q6_k
    for (int g = 0; g < 16; ++g) out->sc[g] = b.scales[g], out->m[g] = 0;
    out->d = fp16_to_fp32(b.d);
  }
}

}  // namespace volga::kernels
