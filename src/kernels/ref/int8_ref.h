// Scalar reference of the integer matrix products (see Int8Acts in
// kernels/dispatch.h): the ground truth the SIMD variants must match bit for
// bit. Also the fallback on CPUs without AVX2.
#pragma once

#include <cstdint>

#include "kernels/dispatch.h"

namespace volga::kernels {

// One 32-element chunk of a weight row as integers and scales: the element
// values are scale[i / group] * q[i] + min (+ min_hi instead of min for the
// last 16 elements when group is 16: q2_k). group is 32, or 16 for q2_k,
// q3_k and q6_k.
struct Int8Chunk {
  int8_t q[32];
  float scale[2];
  float min;
  int group;
  bool has_min;
  float min_hi = 0;
};

// Chunk c (elements [32c, 32c + 32)) of a row stored as `type`.
void int8_chunk_ref(DType type, const uint8_t* row, int64_t c, Int8Chunk* out);

// Block-32 activation sums per 16 elements, for a block-32 type with a
// minimum per 16 elements: out[t * (cols / 16) + g] = d[t][g / 2] *
// float(sum of token t's q over elements [16 g, 16 g + 16)). No such type
// remains since q2_k takes block-256 activations (Int8Acts::bsum); the
// block-32 drivers keep the branch for one.
void int8_group16_sums(const Int8Acts& x, float* out);

void quantize_acts_ref(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, float* s);
void quantize_acts_k_ref(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, int16_t* bsum);
void matmul_rows_int8_ref(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy);

}  // namespace volga::kernels
