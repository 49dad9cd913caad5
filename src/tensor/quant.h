// Scalar reference quantization and dequantization of every supported type.
// These are the ground truth for the fast kernels. `n` is the number of
// elements and must be a multiple of the type's block size. Each type's row
// (tensor/type_traits.h) names its pair; dequantize_row and quantize_row go
// through the rows.
//
// `imp`, when not null, is an importance vector of n floats (the mean squared
// activation of each column, runtime/imatrix.h): the quantizers of the types
// that llama.cpp weights by an importance matrix (all but the float types and
// q8_0) then choose scales and grid points by the error weighted by it
// (tensor/quant_weights.h). Null: the plain quantizers, unchanged.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace volga {

void dequantize_row(DType type, const void* src, float* dst, int64_t n);
void quantize_row(DType type, const float* src, void* dst, int64_t n, const float* imp = nullptr);

void dequantize_f32_ref(const void* src, float* dst, int64_t n);
void dequantize_f16_ref(const void* src, float* dst, int64_t n);
void dequantize_bf16_ref(const void* src, float* dst, int64_t n);
void dequantize_q8_0_ref(const void* src, float* dst, int64_t n);
void dequantize_q4_0_ref(const void* src, float* dst, int64_t n);
void dequantize_q4_1_ref(const void* src, float* dst, int64_t n);
void dequantize_q5_0_ref(const void* src, float* dst, int64_t n);
void dequantize_q5_1_ref(const void* src, float* dst, int64_t n);
void dequantize_q2_k_ref(const void* src, float* dst, int64_t n);  // quant_k_low.cpp
void dequantize_q3_k_ref(const void* src, float* dst, int64_t n);
void dequantize_q4_k_ref(const void* src, float* dst, int64_t n);
void dequantize_q5_k_ref(const void* src, float* dst, int64_t n);
void dequantize_q6_k_ref(const void* src, float* dst, int64_t n);
void dequantize_iq4_nl_ref(const void* src, float* dst, int64_t n);  // quant_iq4.cpp
void dequantize_iq4_xs_ref(const void* src, float* dst, int64_t n);
void dequantize_iq2_xxs_ref(const void* src, float* dst, int64_t n);  // quant_iq_low.cpp
void dequantize_iq2_xs_ref(const void* src, float* dst, int64_t n);
void dequantize_iq2_s_ref(const void* src, float* dst, int64_t n);
void dequantize_iq3_xxs_ref(const void* src, float* dst, int64_t n);
void dequantize_iq3_s_ref(const void* src, float* dst, int64_t n);
void dequantize_iq1_s_ref(const void* src, float* dst, int64_t n);
void dequantize_iq1_m_ref(const void* src, float* dst, int64_t n);

void quantize_f32_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_f16_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_bf16_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_q8_0_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_q4_0_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_q4_1_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_q5_0_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_q5_1_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_q2_k_ref(const float* src, void* dst, int64_t n, const float* imp);  // quant_k_low.cpp
void quantize_q3_k_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_q4_k_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_q5_k_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_q6_k_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_iq4_nl_ref(const float* src, void* dst, int64_t n, const float* imp);  // quant_iq4.cpp
void quantize_iq4_xs_ref(const float* src, void* dst, int64_t n, const float* imp);
// The lattice i-quants' quantizers (quant_iq_low.cpp): per scale group a
// scale, then the nearest grid point by exhaustive search (weighted by the
// importance when given).
void quantize_iq2_xxs_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_iq2_xs_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_iq2_s_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_iq3_xxs_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_iq3_s_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_iq1_s_ref(const float* src, void* dst, int64_t n, const float* imp);
void quantize_iq1_m_ref(const float* src, void* dst, int64_t n, const float* imp);

}  // namespace volga
