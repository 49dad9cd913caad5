// Scalar reference of the integer matrix products. Written straight from the
// block layouts (tensor/blocks.h), independently of the SIMD unpacking; the
// offsets, minima and scale groups come from the type rows (tensor/type_traits.h).
#include "kernels/ref/int8_ref.h"

#include "kernels/ref/kquant_scales.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/blocks.h"
#include "tensor/half.h"
#include "tensor/quant_iq_low.h"
#include "tensor/type_traits.h"

namespace volga::kernels {

bool int8_matmul_supported(DType type) {
  const auto facts = dtype_traits(static_cast<uint32_t>(type));
  return facts && int8_type(*facts);
}

int int8_acts_block(DType type) {
  int block = 32;
  visit_dtype<int8_type>(type, [&]<DType T>() {
    if constexpr (kBlock256<T>) block = 256;
  });
  return block;
}

namespace {
uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The 32 integers n of a legacy block as stored (before the type's offset):
// element i < 16 in the low nibble of qs[i], 16 + i in the high nibble, and
// for the 5-bit types the fifth bit of element i in bit i of qh.
void stored_ints(const BlockQ8_0& b, int* n) {
  for (int i = 0; i < 32; ++i) n[i] = b.qs[i];
}
template <typename Block>
void nibbles(const Block& b, int* n) {
  for (int i = 0; i < 16; ++i) {
    n[i] = b.qs[i] & 0xF;
    n[i + 16] = b.qs[i] >> 4;
  }
}
void stored_ints(const BlockQ4_0& b, int* n) { nibbles(b, n); }
void stored_ints(const BlockQ4_1& b, int* n) { nibbles(b, n); }
void stored_ints(const BlockIQ4_NL& b, int* n) { nibbles(b, n); }
template <typename Block>
void nibbles_and_bit4(const Block& b, int* n) {
  nibbles(b, n);
  const uint32_t qh = load_u32(b.qh);
  for (int i = 0; i < 32; ++i) n[i] |= static_cast<int>(((qh >> i) & 1) << 4);
}
void stored_ints(const BlockQ5_0& b, int* n) { nibbles_and_bit4(b, n); }
void stored_ints(const BlockQ5_1& b, int* n) { nibbles_and_bit4(b, n); }

// The integer a stored n stands for: a level of the non-linear types, else n - offset.
template <DType T>
int integer_of(int n) {
  if constexpr (kFacts<T>.nonlinear) return kFacts<T>.values[n];
  else return n - kFacts<T>.offset;
}

// A legacy type's block c: one scale (d), a minimum (m) when the type has one.
template <DType T>
void legacy_chunk(const uint8_t* row, int64_t c, Int8Chunk* out) {
  const auto& b = reinterpret_cast<const BlockOf<T>*>(row)[c];
  int n[32];
  stored_ints(b, n);
  for (int i = 0; i < 32; ++i) out->q[i] = static_cast<int8_t>(integer_of<T>(n[i]));
  out->scale[0] = fp16_to_fp32(b.d);
  if constexpr (kFacts<T>.has_min) out->min = fp16_to_fp32(b.m);
}

// Sub-block j of a q4_k / q5_k super-block: the low (even j) or high (odd j)
// nibbles of qs[32 * (j / 2) ..], plus bit j of qh for q5_k.
template <DType T>
void k45_chunk(const uint8_t* row, int64_t c, Int8Chunk* out) {
  const auto& b = reinterpret_cast<const BlockOf<T>*>(row)[c / 8];
  const int j = static_cast<int>(c % 8);
  const uint8_t* qs = b.qs + 32 * (j / 2);
  for (int i = 0; i < 32; ++i) {
    int v = (j % 2 == 0) ? (qs[i] & 0xF) : (qs[i] >> 4);
    if constexpr (T == DType::Q5_K) v |= ((b.qh[i] >> j) & 1) << 4;
    out->q[i] = static_cast<int8_t>(v);
  }
  uint8_t sc, m;
  unpack_scale_min_k4(j, b.scales, &sc, &m);
  out->scale[0] = fp16_to_fp32(b.d) * sc;
  out->min = -(fp16_to_fp32(b.dmin) * m);
}

// Eighth j of a q6_k super-block: half h = j / 4 (128 elements), part p = j % 4
// (low nibbles of ql[0..32) / ql[32..64), then high nibbles) with bits
// 2p, 2p+1 of qh; two scales, one per 16 elements.
void q6k_chunk(const uint8_t* row, int64_t c, Int8Chunk* out) {
  const auto& b = reinterpret_cast<const BlockQ6_K*>(row)[c / 8];
  const int j = static_cast<int>(c % 8), h = j / 4, p = j % 4;
  const uint8_t* ql = b.ql + 64 * h + 32 * (p % 2);
  const uint8_t* qh = b.qh + 32 * h;
  for (int i = 0; i < 32; ++i) {
    int lo = p < 2 ? (ql[i] & 0xF) : (ql[i] >> 4);
    out->q[i] = static_cast<int8_t>((lo | (((qh[i] >> (2 * p)) & 3) << 4)) - kFacts<DType::Q6_K>.offset);
  }
  const float d = fp16_to_fp32(b.d);
  out->scale[0] = d * b.scales[8 * h + 2 * p];
  out->scale[1] = d * b.scales[8 * h + 2 * p + 1];
}

// Sub-block j of an iq4_xs super-block: 16 bytes of nibbles as iq4_nl, the
// scale d * (ls - 32).
void iq4xs_chunk(const uint8_t* row, int64_t c, Int8Chunk* out) {
  const auto& b = reinterpret_cast<const BlockIQ4_XS*>(row)[c / 8];
  const int j = static_cast<int>(c % 8);
  const uint8_t* qs = b.qs + 16 * j;
  for (int i = 0; i < 16; ++i) {
    out->q[i] = static_cast<int8_t>(integer_of<DType::IQ4_XS>(qs[i] & 0xF));
    out->q[i + 16] = static_cast<int8_t>(integer_of<DType::IQ4_XS>(qs[i] >> 4));
  }
  out->scale[0] = fp16_to_fp32(b.d) * static_cast<float>(iq4xs_scale(b, j) - 32);
}

// Chunk c of q2_k / q3_k: eighth k = c % 8 of the super-block takes bits
// 2 (k % 4), 2 (k % 4) + 1 of qs[32 (k / 4) ..], and for q3_k bit k of
// hmask[0 .. 32) as the integer's bit 2; two 16-element sub-blocks 2k, 2k + 1.
void q2k_chunk(const uint8_t* row, int64_t c, Int8Chunk* out) {
  const auto& b = reinterpret_cast<const BlockQ2_K*>(row)[c / 8];
  const int k = static_cast<int>(c % 8);
  const uint8_t* qs = b.qs + 32 * (k / 4);
  for (int i = 0; i < 32; ++i) out->q[i] = static_cast<int8_t>((qs[i] >> (2 * (k % 4))) & 3);
  const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
  out->scale[0] = d * static_cast<float>(b.scales[2 * k] & 0xF);
  out->scale[1] = d * static_cast<float>(b.scales[2 * k + 1] & 0xF);
  out->min = -(dmin * static_cast<float>(b.scales[2 * k] >> 4));
  out->min_hi = -(dmin * static_cast<float>(b.scales[2 * k + 1] >> 4));
}
void q3k_chunk(const uint8_t* row, int64_t c, Int8Chunk* out) {
  const auto& b = reinterpret_cast<const BlockQ3_K*>(row)[c / 8];
  const int k = static_cast<int>(c % 8);
  const uint8_t* qs = b.qs + 32 * (k / 4);
  for (int i = 0; i < 32; ++i) {
    const int n = ((qs[i] >> (2 * (k % 4))) & 3) | (((b.hmask[i] >> k) & 1) << 2);
    out->q[i] = static_cast<int8_t>(n - kFacts<DType::Q3_K>.offset);
  }
  const float d = fp16_to_fp32(b.d);
  out->scale[0] = d * static_cast<float>(q3k_scale(b.scales, 2 * k) - 32);
  out->scale[1] = d * static_cast<float>(q3k_scale(b.scales, 2 * k + 1) - 32);
}

template <DType T>
void chunk_of(const uint8_t* row, int64_t c, Int8Chunk* out) {
  if constexpr (T == DType::Q6_K) q6k_chunk(row, c, out);
  else if constexpr (T == DType::Q2_K) q2k_chunk(row, c, out);
  else if constexpr (T == DType::Q3_K) q3k_chunk(row, c, out);
  else if constexpr (T == DType::IQ4_XS) iq4xs_chunk(row, c, out);
  else if constexpr (kFacts<T>.lattice) iq_sub_block(reinterpret_cast<const BlockOf<T>*>(row)[c / 8], static_cast<int>(c % 8), out->q, out->scale);
  else if constexpr (kFacts<T>.super_block) k45_chunk<T>(row, c, out);
  else legacy_chunk<T>(row, c, out);
}

}  // namespace

void int8_chunk_ref(DType type, const uint8_t* row, int64_t c, Int8Chunk* out) {
  out->min = 0;
  out->min_hi = 0;
  out->scale[1] = 0;
  const bool known = visit_dtype<int8_type>(type, [&]<DType T>() {
    out->group = kFacts<T>.int8_scale_group;
    out->has_min = kFacts<T>.has_min;
    chunk_of<T>(row, c, out);
  });
  if (!known) {
    out->group = 32;
    out->has_min = false;
    out->scale[0] = 0;
    std::memset(out->q, 0, sizeof out->q);
  }
}

namespace {
// Block [0, n) of x with the scheme of Int8Acts: returns d, stores q and qu,
// and the integer sum of each 16 elements' q in sums16[0 .. n / 16).
float quantize_block(const float* x, int n, int8_t* q, uint8_t* qu, int* sums16) {
  float amax = 0;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int g = 0; g < n / 16; ++g) sums16[g] = 0;
  for (int i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * id);  // ties to even, as the SIMD conversions
    const int qi = static_cast<int>(std::min(127.0f, std::max(-127.0f, v)));
    q[i] = static_cast<int8_t>(qi);
    qu[i] = static_cast<uint8_t>(qi + 128);
    sums16[i / 16] += qi;
  }
  return d;
}
}  // namespace

void quantize_acts_ref(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, float* s) {
  for (int64_t c = 0; c < cols / 32; ++c) {
    int sums[2];
    d[c] = quantize_block(x + 32 * c, 32, q + 32 * c, qu + 32 * c, sums);
    s[c] = d[c] * static_cast<float>(sums[0] + sums[1]);
  }
}

void quantize_acts_k_ref(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, int16_t* bsum) {
  for (int64_t b = 0; b < cols / 256; ++b) {
    int sums[16];
    d[b] = quantize_block(x + 256 * b, 256, q + 256 * b, qu + 256 * b, sums);
    for (int g = 0; g < 16; ++g) bsum[16 * b + g] = static_cast<int16_t>(sums[g]);
  }
}

void int8_group16_sums(const Int8Acts& x, float* out) {
  const int64_t groups = x.cols / 16;
  for (int64_t t = 0; t < x.n_tokens; ++t)
    for (int64_t g = 0; g < groups; ++g) {
      const int8_t* q = x.q + t * x.cols + 16 * g;
      int32_t sum = 0;
      for (int i = 0; i < 16; ++i) sum += q[i];
      out[t * groups + g] = x.d[t * (x.cols / 32) + g / 2] * static_cast<float>(sum);
    }
}

namespace {

// Block-256 products of a k-quant (see Int8Acts in kernels/dispatch.h).
template <DType T>
void matmul_rows_k_ref(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy) {
  const int64_t K = w.cols, nb = K / 256;
  Int8Chunk ch;
  KScales ks;
  int8_t wq[256];
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < x.n_tokens; ++t) {
      const int8_t* xq = x.q + t * K;
      const int16_t* bs = x.bsum + t * (K / 16);
      float acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        for (int c = 0; c < 8; ++c) {
          int8_chunk_ref(T, w.row(r), 8 * b + c, &ch);  // the centred integers w
          std::memcpy(wq + 32 * c, ch.q, 32);
        }
        kquant_scales<T>(reinterpret_cast<const BlockOf<T>*>(w.row(r))[b], &ks);
        int32_t isum = 0, msum = 0;
        for (int g = 0; g < 16; ++g) {
          int32_t dot = 0;
          for (int i = 16 * g; i < 16 * g + 16; ++i) dot += wq[i] * xq[256 * b + i];
          isum += ks.sc[g] * dot;
          msum += ks.m[g] * bs[16 * b + g];
        }
        const float dx = x.d[t * nb + b];
        acc = std::fma(static_cast<float>(isum), ks.d * dx, acc);
        if constexpr (kFacts<T>.has_min) acc = std::fma(static_cast<float>(msum), -(ks.dmin * dx), acc);
      }
      y[t * ldy + r] = acc;
    }
}

}  // namespace

void matmul_rows_int8_ref(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy) {
  bool done = false;
  visit_dtype<int8_type>(w.type, [&]<DType T>() {
    if constexpr (kBlock256<T>) {
      matmul_rows_k_ref<T>(w, r0, r1, x, y, ldy);
      done = true;
    }
  });
  if (done) return;
  const int64_t K = w.cols, nc = K / 32;
  // q2_k's minima are per 16 elements: they need the activations' 16-element sums.
  std::vector<float> s16;
  if (const DTypeTraits& f = traits(w.type); f.has_min && f.int8_scale_group == 16) {
    s16.resize(static_cast<size_t>(x.n_tokens * (K / 16)));
    int8_group16_sums(x, s16.data());
  }
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
        if (ch.has_min && ch.group == 32) acc = std::fma(ch.min, x.s[t * nc + c], acc);
        if (ch.has_min && ch.group == 16) {
          acc = std::fma(ch.min, s16[static_cast<size_t>(t * 2 * nc + 2 * c)], acc);
          acc = std::fma(ch.min_hi, s16[static_cast<size_t>(t * 2 * nc + 2 * c + 1)], acc);
        }
      }
      y[t * ldy + r] = acc;
    }
}

}  // namespace volga::kernels
