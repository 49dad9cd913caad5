// Scalar reference of the integer matrix products. Written straight from the
// block layouts (tensor/blocks.h), independently of the SIMD unpacking.
#include "kernels/ref/int8_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/blocks.h"
#include "tensor/half.h"

namespace volga::kernels {

bool int8_matmul_supported(DType type) {
  switch (type) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1:
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

namespace {
uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
}  // namespace

void int8_chunk_ref(DType type, const uint8_t* row, int64_t c, Int8Chunk* out) {
  out->group = 32;
  out->has_min = false;
  out->min = 0;
  out->scale[1] = 0;
  switch (type) {
    case DType::Q8_0: {
      const auto& b = reinterpret_cast<const BlockQ8_0*>(row)[c];
      for (int i = 0; i < 32; ++i) out->q[i] = b.qs[i];
      out->scale[0] = fp16_to_fp32(b.d);
      return;
    }
    case DType::Q4_0: case DType::Q4_1: {
      const bool q41 = type == DType::Q4_1;
      const uint8_t* qs = q41 ? reinterpret_cast<const BlockQ4_1*>(row)[c].qs : reinterpret_cast<const BlockQ4_0*>(row)[c].qs;
      const int off = q41 ? 0 : 8;
      for (int i = 0; i < 16; ++i) {
        out->q[i] = static_cast<int8_t>((qs[i] & 0xF) - off);
        out->q[i + 16] = static_cast<int8_t>((qs[i] >> 4) - off);
      }
      if (q41) {
        const auto& b = reinterpret_cast<const BlockQ4_1*>(row)[c];
        out->scale[0] = fp16_to_fp32(b.d);
        out->min = fp16_to_fp32(b.m);
        out->has_min = true;
      } else {
        out->scale[0] = fp16_to_fp32(reinterpret_cast<const BlockQ4_0*>(row)[c].d);
      }
      return;
    }
    case DType::Q5_0: case DType::Q5_1: {
      const bool q51 = type == DType::Q5_1;
      const uint8_t* qs = q51 ? reinterpret_cast<const BlockQ5_1*>(row)[c].qs : reinterpret_cast<const BlockQ5_0*>(row)[c].qs;
      const uint32_t qh = load_u32(q51 ? reinterpret_cast<const BlockQ5_1*>(row)[c].qh : reinterpret_cast<const BlockQ5_0*>(row)[c].qh);
      const int off = q51 ? 0 : 16;
      for (int i = 0; i < 16; ++i) {
        out->q[i] = static_cast<int8_t>(((qs[i] & 0xF) | (((qh >> i) & 1) << 4)) - off);
        out->q[i + 16] = static_cast<int8_t>(((qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4)) - off);
      }
      if (q51) {
        const auto& b = reinterpret_cast<const BlockQ5_1*>(row)[c];
        out->scale[0] = fp16_to_fp32(b.d);
        out->min = fp16_to_fp32(b.m);
        out->has_min = true;
      } else {
        out->scale[0] = fp16_to_fp32(reinterpret_cast<const BlockQ5_0*>(row)[c].d);
      }
      return;
    }
    case DType::Q4_K: case DType::Q5_K: {
      // Sub-block j of a super-block: the low (even j) or high (odd j) nibbles
      // of qs[32 * (j / 2) ..], plus bit j of qh for q5_k.
      const int64_t sb = c / 8;
      const int j = static_cast<int>(c % 8);
      const uint8_t *qs, *scales, *qh = nullptr;
      uint16_t d16, dmin16;
      if (type == DType::Q4_K) {
        const auto& b = reinterpret_cast<const BlockQ4_K*>(row)[sb];
        qs = b.qs; scales = b.scales; d16 = b.d; dmin16 = b.dmin;
      } else {
        const auto& b = reinterpret_cast<const BlockQ5_K*>(row)[sb];
        qs = b.qs; scales = b.scales; qh = b.qh; d16 = b.d; dmin16 = b.dmin;
      }
      qs += 32 * (j / 2);
      for (int i = 0; i < 32; ++i) {
        int v = (j % 2 == 0) ? (qs[i] & 0xF) : (qs[i] >> 4);
        if (qh) v |= ((qh[i] >> j) & 1) << 4;
        out->q[i] = static_cast<int8_t>(v);
      }
      uint8_t sc, m;
      unpack_scale_min_k4(j, scales, &sc, &m);
      out->scale[0] = fp16_to_fp32(d16) * sc;
      out->min = -(fp16_to_fp32(dmin16) * m);
      out->has_min = true;
      return;
    }
    case DType::Q6_K: {
      // Eighth j of a super-block: half h = j / 4 (128 elements), part p = j % 4
      // (low nibbles of ql[0..32) / ql[32..64), then high nibbles) with bits
      // 2p, 2p+1 of qh; two scales, one per 16 elements.
      const auto& b = reinterpret_cast<const BlockQ6_K*>(row)[c / 8];
      const int j = static_cast<int>(c % 8), h = j / 4, p = j % 4;
      const uint8_t* ql = b.ql + 64 * h + 32 * (p % 2);
      const uint8_t* qh = b.qh + 32 * h;
      for (int i = 0; i < 32; ++i) {
        int lo = p < 2 ? (ql[i] & 0xF) : (ql[i] >> 4);
        out->q[i] = static_cast<int8_t>((lo | (((qh[i] >> (2 * p)) & 3) << 4)) - 32);
      }
      const float d = fp16_to_fp32(b.d);
      out->scale[0] = d * b.scales[8 * h + 2 * p];
      out->scale[1] = d * b.scales[8 * h + 2 * p + 1];
      out->group = 16;
      return;
    }
    default:
      out->scale[0] = 0;
      std::memset(out->q, 0, sizeof out->q);
      return;
  }
}

void quantize_acts_ref(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, float* s) {
  for (int64_t c = 0; c < cols / 32; ++c) {
    const float* xc = x + 32 * c;
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xc[i]));
    const float dc = amax / 127.0f;
    const float id = dc != 0.0f ? 1.0f / dc : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      const float v = std::nearbyint(xc[i] * id);  // ties to even, as the SIMD conversions
      const int qi = static_cast<int>(std::min(127.0f, std::max(-127.0f, v)));
      q[32 * c + i] = static_cast<int8_t>(qi);
      qu[32 * c + i] = static_cast<uint8_t>(qi + 128);
      sum += qi;
    }
    d[c] = dc;
    s[c] = dc * static_cast<float>(sum);
  }
}

void matmul_rows_int8_ref(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy) {
  const int64_t K = w.cols, nc = K / 32;
  Int8Chunk ch;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < x.n_tokens; ++t) {
      const int8_t* xq = x.q + t * K;
      float acc = 0;
      for (int64_t c = 0; c < nc; ++c) {
        int8_chunk_ref(w.type, w.row(r), c, &ch);
        const float dx = x.d[t * nc + c];
        for (int g = 0; g < 32 / ch.group; ++g) {
          int32_t isum = 0;
          for (int i = g * ch.group; i < (g + 1) * ch.group; ++i) isum += ch.q[i] * xq[32 * c + i];
          acc = std::fma(static_cast<float>(isum), ch.scale[g] * dx, acc);
        }
        if (ch.has_min) acc = std::fma(ch.min, x.s[t * nc + c], acc);
      }
      y[t * ldy + r] = acc;
    }
}

}  // namespace volga::kernels
