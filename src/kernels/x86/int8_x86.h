// The x86 integer matrix products (see Int8Acts in kernels/dispatch.h), each
// compiled in its own translation unit with its own flags:
//   avx2::       AVX2 (vpmaddubsw + vpmaddwd), 8-row panels — any AVX2 CPU;
//   avx512vnni:: AVX-512 VNNI (vpdpbusd), 16-row panels;
// and in each, for a few tokens (decode), products from the weights in place.
// Both give results bit-identical to matmul_rows_int8_ref.
#pragma once

#include <cstdint>

#include "kernels/dispatch.h"
#include "kernels/ref/int8_ref.h"  // int8_group16_sums
#include "kernels/ref/kquant_scales.h"

namespace volga::kernels {
namespace avx2 {
void quantize_acts(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, float* s);
void quantize_acts_k(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, int16_t* bsum);
void matmul_rows_int8(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy);
void panel_rows_int8(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy);
// Weights used in place, 8 rows in step (int8_gemv_avx2.cpp): faster than
// the panels for up to kGemvMaxTokens tokens. Same results, bit for bit.
constexpr int64_t kGemvMaxTokens = 4;
void gemv_rows_int8(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy);
}  // namespace avx2
namespace avx512vnni {
void quantize_acts(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, float* s);
void quantize_acts_k(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, int16_t* bsum);
void matmul_rows_int8(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy);
void panel_rows_int8(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy);
// Weights used in place, 8 rows in step (int8_gemv_avx512.cpp): faster than
// the panels for up to kGemvMaxTokens tokens. Same results, bit for bit.
constexpr int64_t kGemvMaxTokens = 8;
void gemv_rows_int8(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy);
}  // namespace avx512vnni
}  // namespace volga::kernels
