// The lattice i-quants (iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m):
// one 32-element sub-block of a super-block as 8-bit integers and scales,
// straight from ggml's layouts (tensor/blocks.h) and grids (tensor/iq_grids.h).
// Element i of sub-block j is scale[i / group] * q[i] (group: the row's
// int8_scale_group, 32 or 16), which is exactly ggml's dequantized value:
// the half-integer and eighth multipliers of the format are folded into the
// scale (powers of two) and the integers (iq1's grid +- 1/8 becomes 8 grid +- 1).
//
// The scalar reference (de)quantizers built on these are declared in
// tensor/quant.h. Pure functions: nothing to synchronise.
#pragma once

#include <cstdint>

#include "tensor/blocks.h"

namespace volga {

// d * (2 ls + 1) * unit: the per-integer scale of a group (unit a power of
// two). Every path computes it with this one expression.
inline float iq_odd_scale(float d, int ls, float unit) { return d * static_cast<float>(2 * ls + 1) * unit; }

// scale[1] is written only for the types with 16-element scale groups (iq2_xs, iq2_s, iq1_m).
void iq_sub_block(const BlockIQ2_XXS& b, int j, int8_t* q, float* scale);
void iq_sub_block(const BlockIQ2_XS& b, int j, int8_t* q, float* scale);
void iq_sub_block(const BlockIQ2_S& b, int j, int8_t* q, float* scale);
void iq_sub_block(const BlockIQ3_XXS& b, int j, int8_t* q, float* scale);
void iq_sub_block(const BlockIQ3_S& b, int j, int8_t* q, float* scale);
void iq_sub_block(const BlockIQ1_S& b, int j, int8_t* q, float* scale);
void iq_sub_block(const BlockIQ1_M& b, int j, int8_t* q, float* scale);

// kIq1sGrid with every byte g replaced by 8 g + 129: the integer 8 g + 1 of
// a positive delta plus 128, the unsigned form the SIMD products multiply
// (a negative delta is 2 less). Built once from the format's grid.
const uint64_t* iq1s_grid_biased();

// The fp16 bits of an iq1_m super-block's scale, from the top nibbles of its four scale words.
uint16_t iq1m_d_bits(const BlockIQ1_M& b);

}  // namespace volga
