// Tiled attention with an online softmax ("flash attention") over a paged KV
// cache, written once as a template over an ISA's operations: the scalar
// reference (kernels/ref/ops_ref.cpp) and the AVX2 / AVX-512 kernels
// (kernels/x86/simd_kernels.inc) instantiate it with their own Ops.
//
// The arithmetic of one query, whatever the ISA, the other queries of the
// tile, or how a prompt was cut into batches. Positions are taken in the
// cache's blocks of 32 (block b holds positions [32b, 32b + 32)), in
// ascending order; a block holds `rows` <= 32 of the query's positions.
//   score   s_i = fl(sum_j q_j k_ij) * scale: one fused multiply-add chain
//           over j ascending, starting from 0 (keys are laid out transposed,
//           so a vector holds the scores of W positions: no horizontal sums)
//   max     m' = max(m, max_{i < rows} s_i)            (exact)
//   rescale a = exp(m - m') (1 for the first block)   (exp: the polynomial
//           below, evaluated with the same operations on every ISA)
//   weights p_i = exp(s_i - m') for i < rows, else 0
//   sums    L_i = fma(L_i, a, p_i) for the 32 lanes i (position mod 32)
//   outputs o_d = fma(p_i, v_id, ...fma(p_0, v_0d, o_d * a)), i ascending
// and at the end l = the sum of the 32 lanes L_i by a fixed tree (i + 16,
// then + 8, + 4, + 2, + 1) and out_d = o_d * (1 / l). Every step is either
// elementwise or an exact maximum, so AVX2 (8 lanes), AVX-512 (16 lanes) and
// the scalar loop produce the same bits; and a query's result depends only
// on its q and the cached rows, never on the batch it came in.
//
// Tiles. One call handles the queries of several consecutive tokens of one
// sequence (`group` query heads sharing a key/value head each): a block of
// keys and values is converted to float once and used by all of them (keys
// transposed, 8 x 8 at a time), the scores of 12 (AVX-512) or 2 (AVX2)
// queries by 32 positions are register-blocked, and so are the outputs (4
// queries x 64 values, or 3 x 24). Blocks that some tokens see only in part
// (the last ones) are handled per token with the same steps.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/dispatch.h"

namespace volga::kernels::tiled {

inline constexpr int kB = kKvBlockTokens;

// Floats of scratch for a call with n_q queries.
inline int64_t scratch_floats(int64_t n_q, int64_t dk, int64_t dv) {
  return kB * dk + kB * dv + 8 * dk + n_q * (dk + dv + 2 * kB + 2);
}

// The 32 lanes of L summed by the fixed tree of the header.
inline float sum_lanes(const float* L) {
  float t[kB];
  for (int i = 0; i < 16; ++i) t[i] = L[i] + L[i + 16];
  for (int w = 8; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) t[i] = t[i] + t[i + w];
  return t[0];
}

// Converts block b's rows [0, rows) of a cache to float: keys transposed
// into kt[j * 32 + i] (positions past `rows` zero), values row-major into
// vt unless they are f32 (then read in place). Returns the value rows and
// sets their stride in floats. The conversions are exact (every f16, bf16
// and q8_0 value is a float) and the same on every ISA.
template <class Ops>
const float* convert_block(const AttendTile& a, int64_t b, int rows, float* kt, float* vt, float* tmp,
                           int64_t& vstride) {
  const uint8_t* kb = a.keys.block(b);
  for (int i0 = 0; i0 < rows; i0 += 8) {  // 8 rows at a time: the SIMD Ops transpose 8 x 8 tiles
    const int n = std::min(8, rows - i0);
    const uint8_t* src = kb + i0 * a.keys.row_bytes;
    if (a.keys.type == DType::F32) {
      Ops::transpose_rows(reinterpret_cast<const float*>(src), a.keys.row_bytes / 4, n, a.dk, kt + i0);
      continue;
    }
    for (int i = 0; i < n; ++i) Ops::dequantize(a.keys.type, src + i * a.keys.row_bytes, tmp + i * a.dk, a.dk);
    Ops::transpose_rows(tmp, a.dk, n, a.dk, kt + i0);
  }
  if (rows < kB)
    for (int64_t j = 0; j < a.dk; ++j) std::fill(kt + j * kB + rows, kt + j * kB + kB, 0.0f);
  const uint8_t* vb = a.values.block(b);
  if (a.values.type == DType::F32) {
    vstride = a.values.row_bytes / static_cast<int64_t>(sizeof(float));
    return reinterpret_cast<const float*>(vb);
  }
  for (int i = 0; i < rows; ++i) Ops::dequantize(a.values.type, vb + i * a.values.row_bytes, vt + i * a.dv, a.dv);
  vstride = a.dv;
  return vt;
}

template <class Ops>
void attend(const AttendTile& a, float* scratch) {
  const int G = a.group, T = a.n_tokens;
  const int64_t R = static_cast<int64_t>(G) * T, dk = a.dk, dv = a.dv;
  float* kt = scratch;       // [dk][32]
  float* vt = kt + kB * dk;  // [32][dv]
  float* tmp = vt + kB * dv; // [8][dk]
  float* Q = tmp + 8 * dk;   // [R][dk]
  float* O = Q + R * dk;     // [R][dv]
  float* S = O + R * dv;     // [R][32]: scores, then weights
  float* L = S + R * kB;     // [R][32]
  float* M = L + R * kB;     // [R]
  float* A = M + R;          // [R]: this block's rescale factors
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < G; ++g) std::memcpy(Q + (t * G + g) * dk, a.q + t * a.q_stride + g * dk, sizeof(float) * dk);
  std::fill(O, O + R * dv, 0.0f);
  std::fill(L, L + R * kB, 0.0f);
  std::fill(M, M + R, -std::numeric_limits<float>::infinity());

  // Queries [r0, r1) over `rows` positions of the converted block.
  auto step = [&](int64_t r0, int64_t r1, int rows, const float* v, int64_t vstride) {
    Ops::scores(Q + r0 * dk, r1 - r0, dk, kt, a.scale, S + r0 * kB);
    for (int64_t r = r0; r < r1; ++r) A[r] = Ops::update(S + r * kB, rows, M[r], L + r * kB);
    Ops::accumulate(S + r0 * kB, A + r0, r1 - r0, rows, v, vstride, dv, O + r0 * dv);
  };
  const int n_last = a.n_pos0 + T - 1;  // positions the last token attends to
  for (int64_t b = 0; b * kB < n_last; ++b) {
    const int p0 = static_cast<int>(b * kB);
    const int rows_max = std::min(kB, n_last - p0);
    int64_t vstride = 0;
    const float* v = convert_block<Ops>(a, b, rows_max, kt, vt, tmp, vstride);
    // Token t attends to n_pos0 + t positions: it needs this block when
    // n_pos0 + t > p0, and all of it when n_pos0 + t >= p0 + 32.
    const int t_first = std::max(0, p0 - a.n_pos0 + 1);
    const int t_full = std::clamp(p0 + kB - a.n_pos0, t_first, T);
    for (int t = t_first; t < t_full; ++t) step(static_cast<int64_t>(t) * G, static_cast<int64_t>(t + 1) * G, a.n_pos0 + t - p0, v, vstride);
    if (t_full < T) step(static_cast<int64_t>(t_full) * G, R, kB, v, vstride);
  }
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < G; ++g) {
      const int64_t r = static_cast<int64_t>(t) * G + g;
      const float inv = 1.0f / sum_lanes(L + r * kB);
      Ops::scale_out(O + r * dv, inv, dv, a.out + t * a.out_stride + g * dv);
    }
}

}  // namespace volga::kernels::tiled
