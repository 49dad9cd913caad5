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

// The i-quants with lattice grids (tensor/iq_grids.h): 256-element
// super-blocks of 32-element sub-blocks; each 8 elements (4 for the iq3 grids)
// are one grid entry of magnitudes (or signed values, iq1) selected by an index.
struct BlockIQ2_XXS {
  uint16_t d;  // fp16 super-block scale
  // Sub-block j in qs[4j .. 4j + 4), read as two uint32: the first holds the four
  // 8-bit grid indices, the second four 7-bit sign indices (bits 7l..) and the
  // 4-bit scale ls in bits 28-31; x = d * (ls + 1/2) / 4 * grid * sign.
  uint16_t qs[kQKK / 8];
};

struct BlockIQ2_XS {
  uint16_t d;
  uint16_t qs[kQKK / 8];  // per 8 elements: 9-bit grid index, 7-bit sign index above it
  uint8_t scales[kQKK / 32];  // sub-block j: low nibble for elements 0-15, high for 16-31
};

struct BlockIQ2_S {
  uint16_t d;
  uint8_t qs[kQKK / 4];  // [0, 32): low 8 bits of the grid indices; [32, 64): 8 sign bits per 8 elements
  uint8_t qh[kQKK / 32];  // sub-block j: bits 2l, 2l + 1 are index l's bits 8 and 9
  uint8_t scales[kQKK / 32];  // as iq2_xs
};

struct BlockIQ3_XXS {
  uint16_t d;
  // [0, 64): 8-bit indices into the 4-wide grid, 8 per sub-block; [64, 96): per
  // sub-block a uint32 of four 7-bit sign indices and the 4-bit scale in bits 28-31;
  // x = d * (ls + 1/2) / 2 * grid * sign.
  uint8_t qs[3 * kQKK / 8];
};

struct BlockIQ3_S {
  uint16_t d;
  uint8_t qs[kQKK / 4];  // low 8 bits of the 9-bit indices into the 4-wide grid
  uint8_t qh[kQKK / 32];  // sub-block j: bit k is index k's bit 8
  uint8_t signs[kQKK / 8];  // one sign bit per element
  uint8_t scales[kQKK / 64];  // sub-blocks 2i, 2i + 1 in the low, high nibble of scales[i]; x = d * (2 ls + 1) * grid * sign
};

struct BlockIQ1_S {
  uint16_t d;
  uint8_t qs[kQKK / 8];  // low 8 bits of the 11-bit grid indices
  // Sub-block j: bits 3l..3l+2 are index l's high bits, 12-14 the scale ls, 15
  // the sign of delta; x = d * (2 ls + 1) * (grid +- 1/8).
  uint16_t qh[kQKK / 32];
};

struct BlockIQ1_M {
  uint8_t qs[kQKK / 8];  // low 8 bits of the 11-bit grid indices
  // Per 16 elements one byte, per index of 8 elements a nibble: bits 0-2 the
  // index's high bits, bit 3 the sign of delta.
  uint8_t qh[kQKK / 16];
  // Four uint16: 3-bit scales of the 16-element groups in bits 0-11, and the
  // fp16 super-block scale spread over their top nibbles (bits 12-15 of
  // uint16 k are its bits 4k .. 4k + 3); x = d * (2 ls + 1) * (grid +- 1/8).
  uint8_t scales[kQKK / 32];
};

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
