// Kernel dispatch: one table of function pointers per instruction set,
// chosen once at start-up from CPUID (the best the CPU supports) or forced
// with VOLGA_ISA=ref|avx2|avx512. The ISA variants are compiled in their own
// translation units with their own flags, so one binary runs on any x86-64
// (and the scalar reference runs anywhere).
//
// Thread-safety: the tables are immutable; every function is reentrant.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/paged_rows.h"
#include "tensor/weight.h"

namespace volga::kernels {

enum class Isa { Ref, Avx2, Avx512 };

// Activations quantized to int8 for the integer matrix products: each
// token's row of `cols` floats is cut into blocks of `block` elements, block
// b stored as d[b] * q[block b .. block (b + 1)) with d = max|x| / 127 and q
// rounded to nearest (ties to even), clamped to [-127, 127]. Two schemes:
//   block 32  (legacy types and i-quants): s[c] = d[c] * float(sum of chunk
//             c's q), as llama.cpp's Q8_0 activations but with a float scale;
//   block 256 (the k-quants q2_k..q6_k, int8_acts_block): one scale per
//             super-block, as llama.cpp's Q8_K, and bsum[g], the integer sum
//             of the q of each 16 elements (for the k-quants' minima).
// Views into buffers owned by the caller; every ISA quantizes bit-identically.
struct Int8Acts {
  int64_t cols = 0, n_tokens = 0;
  const int8_t* q = nullptr;    // [n_tokens][cols]
  const uint8_t* qu = nullptr;  // [n_tokens][cols], q + 128 (for u8 x s8 dot products)
  const float* d = nullptr;     // [n_tokens][cols / block], block scales
  const float* s = nullptr;     // block 32: [n_tokens][cols / 32], d * sum of the chunk's q (types with a minimum)
  int block = 32;               // elements per scale: 32 or 256
  const int16_t* bsum = nullptr;  // block 256: [n_tokens][cols / 16], sum of each 16 elements' q
};

// Elements per activation scale the integer products of `type` take: 256 for
// the k-quants q2_k, q3_k, q4_k, q5_k, q6_k (their sub-block scales then
// apply to integer sums), else 32.
int int8_acts_block(DType type);

// Integer matrix products take weight types whose values are an 8-bit integer
// times a scale (plus a minimum): q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k,
// q6_k, q2_k, q3_k, iq4_nl, iq4_xs and the lattice i-quants (the rows with
// an int8_scale_group, tensor/type_traits.h). Per (row, token) every ISA
// computes the same thing, so results are bit-identical across ISAs and
// token counts.
//
// Block-32 types: for each group of 32 elements (16 for the 16-element
// groups) in ascending order, the exact integer dot product isum of the
// weight's integers with the activation's, then
//   acc = fma(float(isum), w_scale * x_scale, acc)
//   acc = fma(w_min, x_sum_scaled, acc)         (types with a minimum)
//
// k-quants (block 256): the weight's element i of a super-block is
// d * sc[g] * w[i] - dmin * m[g], with w the centred integer (n - offset),
// sc and m the integer sub-block scale and minimum of its 16-element group g
// (a 32-element sub-block's are repeated for both its groups; q3_k's and
// q6_k's scales are signed) and d, dmin the fp16 super-block factors. Per
// super-block, in ascending order, with D the activations' scale:
//   I = sum_g sc[g] * (sum over g of w[i] * q[i])       (exact, int32)
//   M = sum_g m[g] * bsum[g]                             (exact, int32)
//   acc = fma(float(I), d * D, acc)
//   acc = fma(float(M), -(dmin * D), acc)               (types with a minimum)
// (kernels/ref/kquant_scales.h decodes sc, m, d and dmin.)
bool int8_matmul_supported(DType type);
// Whether matmul uses the integer products for supported types: yes unless
// VOLGA_MATMUL=float (dequantize to float, activations stay float: slower,
// closest to a float64 reference). Read once; an unknown value throws.
bool int8_matmul_enabled();

// The queries of `n_tokens` consecutive tokens of one sequence that share a
// key/value head: token t (t < n_tokens) attends to positions
// [0, n_pos0 + t) of the cache with its `group` query heads. Query (t, g) is
// q[t * q_stride + g * dk ..][dk], its output out[t * out_stride + g * dv ..][dv]:
// sum_p softmax_p(scale * q.k[p]) v[p], k[p] and v[p] the rows of `keys`
// and `values` (f32, f16, bf16 or q8_0; dk and dv elements).
// Positions per attention chunk: the fixed unit in which a query's
// positions are attended and merged (kernels/attend_tiled.h), so that a
// token's chunks can be spread over threads without changing its result.
inline constexpr int kAttendChunk = 8 * kKvBlockTokens;

struct AttendTile {
  const float* q = nullptr;
  int64_t q_stride = 0;
  float* out = nullptr;
  int64_t out_stride = 0;
  int n_tokens = 1, group = 1, n_pos0 = 1;
  int64_t dk = 0, dv = 0;
  PagedRows keys, values;
  float scale = 1.0f;
};

struct KernelTable {
  Isa isa;
  const char* name;
  // dst[0..n) = the n elements stored in `src` as `type`.
  void (*dequantize)(DType type, const void* src, float* dst, int64_t n);
  // y[t * ldy + r] = sum_k w[r][k] * x[t * w.cols + k] for r in [r0, r1), t < n_tokens.
  void (*matmul_rows)(const WeightMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t n_tokens,
                      float* y, int64_t ldy);
  // One token: q, qu, d, s of Int8Acts (block 32) from x[0..cols); cols % 32 == 0.
  void (*quantize_acts)(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, float* s);
  // One token, block 256: q, qu, d (cols / 256) and bsum (cols / 16); cols % 256 == 0.
  void (*quantize_acts_k)(const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d, int16_t* bsum);
  // As matmul_rows, with activations quantized (w.type int8_matmul_supported).
  void (*matmul_rows_int8)(const WeightMatrix& w, int64_t r0, int64_t r1, const Int8Acts& x, float* y, int64_t ldy);
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);  // y += a * x
  void (*rms_norm)(const float* x, const float* weight, float eps, int64_t n, float* y);
  void (*softmax)(float* x, int64_t n);
  void (*swiglu)(const float* gate, const float* up, int64_t n, float* out);
  // Throughput probe for `volga bench`: runs `iters` rounds of independent
  // fused multiply-adds and returns the floating-point operations done.
  double (*fma_probe)(int64_t iters);
  // Attention of the queries of a tile (AttendTile) over a paged cache, by
  // blocks of 32 positions with an online softmax; kernels/attend_tiled.h
  // defines the arithmetic, which is the same on every ISA and for every
  // tile a query may be in. scratch: attend_scratch floats (kernels/ops.h).
  void (*attend)(const AttendTile& a, float* scratch);
  // The same in two steps, for spreading one tile's chunks over threads:
  // attend_chunk writes the partial of chunk `chunk` (positions [256 chunk,
  // 256 chunk + 256)) into part (attend_part_floats), scratch holding
  // attend_chunk_scratch floats; attend_merge merges the partials of chunks
  // 0 .. attend_chunks(a) - 1, stored one after another, in chunk order and
  // writes the outputs (it overwrites the first partial). The outputs are
  // attend's, bit for bit.
  void (*attend_chunk)(const AttendTile& a, int64_t chunk, float* part, float* scratch);
  void (*attend_merge)(const AttendTile& a, float* parts);
  // Rotates n_pairs pairs of one head in place by the angles whose cosines
  // and sines are given: pair i is (i, i + n_pairs) when neox, else (2i, 2i+1).
  void (*rope)(float* head, const float* cos, const float* sin, int n_pairs, bool neox);
};

// Int8 dot-product probe (AVX-512 VNNI): operations done, or 0 when the CPU
// has no VNNI. For reporting the machine's int8 peak in `volga bench`.
double int8_probe(int64_t iters);

const char* isa_name(Isa isa);
// Throws volga::Error for an unknown name (lists the valid ones).
Isa parse_isa(const std::string& name);
// Compiled into this binary and supported by this CPU.
bool isa_available(Isa isa);
// Throws volga::Error when the ISA is not available.
const KernelTable& kernel_table(Isa isa);
// The table in use: VOLGA_ISA if set (an error if unavailable), else the best.
const KernelTable& active_kernels();

// Per-ISA tables (defined in their translation units).
const KernelTable& ref_kernels();
#if defined(__x86_64__)
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();
#endif

}  // namespace volga::kernels
