// Quantized block layouts, bit-exact with ggml/GGUF. Each struct is one block
// as stored in the file; its size is checked at compile time against the
// block bytes of its type's row (tensor/type_traits.h).
#pragma once

#include <cstdint>

namespace volga {

constexpr int kQK = 32;    // elements per block of the legacy types
constexpr int kQKK = 256;  // elements per super-block of the k-quants

struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[kQK];
};

struct BlockQ4_0 {
  uint16_t d;  // fp16 scale; x = d * (q - 8)
  uint8_t qs[kQK / 2];  // element j in the low nibble of qs[j], j+16 in the high nibble
};

struct BlockQ4_1 {
  uint16_t d;  // fp16 scale; x = d * q + m
  uint16_t m;  // fp16 minimum
  uint8_t qs[kQK / 2];
};

struct BlockQ5_0 {
  uint16_t d;  // x = d * (q - 16), q has 5 bits
  uint8_t qh[4];  // bit j of this little-endian u32 is the fifth bit of element j
  uint8_t qs[kQK / 2];
};

struct BlockQ5_1 {
  uint16_t d;  // x = d * q + m
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// q2_k: 16 sub-blocks of 16 elements, x = d * sc * q - dmin * m with q in
// [0, 3] and a 4-bit scale sc and minimum m per sub-block.
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];  // sub-block i: sc in the low nibble, m in the high nibble
  // Element 128 h + 32 j + l (half h, l < 32) in bits 2j, 2j+1 of qs[32 h + l].
  uint8_t qs[kQKK / 4];
  uint16_t d;     // fp16 super-block scale of the sub-block scales
  uint16_t dmin;  // fp16 super-block scale of the sub-block minima
};

// q3_k: 16 sub-blocks of 16 elements, x = d * (sc - 32) * (n - 4) with n in
// [0, 7] and a 6-bit scale sc per sub-block.
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];  // bit 2 of n: element 32 k + l in bit k of hmask[l]
  uint8_t qs[kQKK / 4];     // bits 0-1 of n, placed as q2_k's qs
  uint8_t scales[12];       // 16 6-bit scales, packed (q3k_scale)
  uint16_t d;               // fp16 super-block scale
};

// Sub-block i's 6-bit scale (0-63) of a q3_k super-block: the low 4 bits are
// nibble i / 8 of scales[i % 8], the high 2 bits are bits 2 (i / 4), 2 (i / 4) + 1
// of scales[8 + i % 4].
inline int q3k_scale(const uint8_t* scales, int i) {
  const int low = (scales[i % 8] >> (4 * (i / 8))) & 0xF;
  const int high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
  return low | (high << 4);
}

struct BlockQ4_K {
  uint16_t d;     // fp16 super-block scale of the 6-bit sub-block scales
  uint16_t dmin;  // fp16 super-block scale of the 6-bit sub-block mins
  uint8_t scales[12];  // 8 scales + 8 mins, 6 bits each, packed
  uint8_t qs[kQKK / 2];
};

struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];  // fifth bit of each quant
  uint8_t qs[kQKK / 2];
};

struct BlockQ6_K {
  uint8_t ql[kQKK / 2];      // low 4 bits
  uint8_t qh[kQKK / 4];      // high 2 bits
  int8_t scales[kQKK / 16];  // 8-bit sub-block scales
  uint16_t d;                // fp16 super-block scale
};

// The 16 levels of the non-linear 4-bit types (iq4_nl, iq4_xs), as ggml fixes them.
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

struct BlockIQ4_NL {
  uint16_t d;  // fp16 scale; x = d * kIq4nlValues[n]
  uint8_t qs[kQK / 2];  // indices n: element j in the low nibble of qs[j], j+16 in the high nibble
};

struct BlockIQ4_XS {
  uint16_t d;         // fp16 super-block scale
  uint16_t scales_h;  // bits 2j, 2j+1: the high 2 bits of sub-block j's 6-bit scale
  uint8_t scales_l[kQKK / 64];  // the low 4 bits of sub-block j's scale: nibble j % 2 of byte j / 2
  uint8_t qs[kQKK / 2];  // sub-block j (32 elements) in qs[16j .. 16j + 16), nibbles as iq4_nl
};

// Sub-block j's 6-bit scale ls of an iq4_xs super-block: x = d * (ls - 32) * kIq4nlValues[n].
inline int iq4xs_scale(const BlockIQ4_XS& b, int j) {
  return ((b.scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | (((b.scales_h >> (2 * j)) & 3) << 4);
}

// Unpacks sub-block j's 6-bit scale and min from a Q4_K/Q5_K scales array.
inline void unpack_scale_min_k4(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace volga
