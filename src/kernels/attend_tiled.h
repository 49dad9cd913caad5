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
// Chunks. Positions are also cut into fixed chunks of kAttendChunk (256)
// positions (chunk c holds positions [256c, 256c + 256), 8 blocks). Each
// chunk is attended on its own as above, starting from m = -inf, L = 0,
// o = 0, which gives a partial (m_c, L_c, o_c) per query; the partials are
// then merged in chunk order into the first one:
//   m' = max(m, m_c)                                   (exact)
//   a  = 1 if m == m', else exp(m - m');  b = 1 if m_c == m', else exp(m_c - m')
//   L_i = fma(L_c,i, b, L_i * a);  o_d = fma(o_c,d, b, o_d * a)
// and the final l and out come from the merged (L, o) as above. With one
// chunk (at most 256 positions) this is exactly the block recurrence alone.
// Because the chunks are fixed by position and merged in their order, a
// token decoded alone, with its chunks computed in parallel on any number of
// threads (attend_chunk, then attend_merge), gets the bits of the same token
// inside a prompt's tile, where one call walks the chunks in turn (attend).
//
// Tiles. One call handles the queries of several consecutive tokens of one
// sequence (`group` query heads sharing a key/value head each): a block of
// keys and values is converted to float once and used by all of them (keys
// transposed, 8 x 8 at a time), the scores of 12 (AVX-512) or 2 (AVX2)
// queries by 32 positions are register-blocked, and so are the outputs (4
// queries x 64 values, or 3 x 24). Blocks that some tokens see only in part
// (the last ones) are handled per token with the same steps. When few
// queries need a block (decode: one token's group), the SIMD kernels skip
// the conversion and stream the cache rows instead (Ops::kStreamQueries,
// Ops::stream_scores and Ops::stream_accumulate: 8 rows at a time converted
// and transposed in registers), with the same arithmetic.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/dispatch.h"

namespace volga::kernels::tiled {
// Internal linkage: the reference and each SIMD kernel file compile their own
// copy of these functions with their own ISA flags, so the linker can never
// keep an AVX-compiled copy for the reference path.
namespace {

inline constexpr int kB = kKvBlockTokens;

// Floats of a chunk partial of n_q queries: L [n_q][32], o [n_q][dv], m [n_q].
inline int64_t part_floats(int64_t n_q, int64_t dv) { return n_q * (kB + dv + 1); }

// Floats of scratch for attend_chunk with n_q queries (its partial apart).
inline int64_t chunk_scratch_floats(int64_t n_q, int64_t dk, int64_t dv) {
  return kB * dk + kB * dv + 8 * dk + n_q * (dk + kB + 1);
}

// Floats of scratch for attend with n_q queries.
inline int64_t scratch_floats(int64_t n_q, int64_t dk, int64_t dv) {
  return 2 * part_floats(n_q, dv) + chunk_scratch_floats(n_q, dk, dv);
}

// Chunks a tile attends to: those holding positions [0, n_pos0 + n_tokens - 1).
inline int64_t chunk_count(const AttendTile& a) { return (a.n_pos0 + a.n_tokens - 2) / kAttendChunk + 1; }

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

// The partial of chunk c for every query of the tile into `part`
// (part_floats(n_tokens * group, dv) floats); a query whose token sees no
// position of the chunk gets m = -inf. scratch: chunk_scratch_floats.
template <class Ops>
void attend_chunk(const AttendTile& a, int64_t c, float* part, float* scratch) {
  const int G = a.group, T = a.n_tokens;
  const int64_t R = static_cast<int64_t>(G) * T, dk = a.dk, dv = a.dv;
  float* L = part;           // [R][32]
  float* O = L + R * kB;     // [R][dv]
  float* M = O + R * dv;     // [R]
  float* kt = scratch;       // [dk][32]
  float* vt = kt + kB * dk;  // [32][dv]
  float* tmp = vt + kB * dv; // [8][dk]
  float* Q = tmp + 8 * dk;   // [R][dk]
  float* S = Q + R * dk;     // [R][32]: scores, then weights
  float* A = S + R * kB;     // [R]: this block's rescale factors
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < G; ++g) std::memcpy(Q + (t * G + g) * dk, a.q + t * a.q_stride + g * dk, sizeof(float) * dk);
  std::fill(O, O + R * dv, 0.0f);
  std::fill(L, L + R * kB, 0.0f);
  std::fill(M, M + R, -std::numeric_limits<float>::infinity());

  const float* v = nullptr;
  int64_t vstride = 0;
  bool stream = false;
  // Queries [r0, r1) over `rows` positions of block b.
  auto step = [&](int64_t b, int64_t r0, int64_t r1, int rows) {
    if (stream) {
      if constexpr (Ops::kStreamQueries > 0) {
        Ops::stream_scores(a, b, rows, Q + r0 * dk, r1 - r0, S + r0 * kB, tmp);
        for (int64_t r = r0; r < r1; ++r) A[r] = Ops::update(S + r * kB, rows, M[r], L + r * kB);
        Ops::stream_accumulate(a, b, S + r0 * kB, A + r0, r1 - r0, rows, O + r0 * dv);
      }
      return;
    }
    Ops::scores(Q + r0 * dk, r1 - r0, dk, kt, a.scale, S + r0 * kB);
    for (int64_t r = r0; r < r1; ++r) A[r] = Ops::update(S + r * kB, rows, M[r], L + r * kB);
    Ops::accumulate(S + r0 * kB, A + r0, r1 - r0, rows, v, vstride, dv, O + r0 * dv);
  };
  const int n_last = a.n_pos0 + T - 1;  // positions the last token attends to
  const int64_t b_end = std::min<int64_t>((c + 1) * kAttendChunk, n_last);
  for (int64_t b = c * kAttendChunk / kB; b * kB < b_end; ++b) {
    const int p0 = static_cast<int>(b * kB);
    const int rows_max = std::min(kB, n_last - p0);
    // Token t attends to n_pos0 + t positions: it needs this block when
    // n_pos0 + t > p0, and all of it when n_pos0 + t >= p0 + 32.
    const int t_first = std::max(0, p0 - a.n_pos0 + 1);
    const int t_full = std::clamp(p0 + kB - a.n_pos0, t_first, T);
    stream = static_cast<int64_t>(T - t_first) * G <= Ops::kStreamQueries;
    if (!stream) v = convert_block<Ops>(a, b, rows_max, kt, vt, tmp, vstride);
    for (int t = t_first; t < t_full; ++t)
      step(b, static_cast<int64_t>(t) * G, static_cast<int64_t>(t + 1) * G, a.n_pos0 + t - p0);
    if (t_full < T) step(b, static_cast<int64_t>(t_full) * G, R, kB);
  }
}

// Merges partial `part` into `acc` (both of n_q queries), by the header's rule.
template <class Ops>
void merge_part(int64_t n_q, int64_t dv, float* acc, const float* part) {
  const float* Lp = part;
  const float* Op = Lp + n_q * kB;
  const float* Mp = Op + n_q * dv;
  float* La = acc;
  float* Oa = La + n_q * kB;
  float* Ma = Oa + n_q * dv;
  for (int64_t r = 0; r < n_q; ++r) {
    if (std::isinf(Mp[r])) continue;  // the query sees no position of this chunk
    const float m = std::max(Ma[r], Mp[r]);
    const float fa = Ma[r] == m ? 1.0f : Ops::exp1(Ma[r] - m);
    const float fb = Mp[r] == m ? 1.0f : Ops::exp1(Mp[r] - m);
    Ma[r] = m;
    Ops::merge_rows(La + r * kB, Lp + r * kB, fa, fb, kB);
    Ops::merge_rows(Oa + r * dv, Op + r * dv, fa, fb, dv);
  }
}

// Writes the tile's outputs from a merged partial: out = o * (1 / l).
template <class Ops>
void finish(const AttendTile& a, const float* acc) {
  const int64_t R = static_cast<int64_t>(a.group) * a.n_tokens, dv = a.dv;
  const float* L = acc;
  const float* O = L + R * kB;
  for (int t = 0; t < a.n_tokens; ++t)
    for (int g = 0; g < a.group; ++g) {
      const int64_t r = static_cast<int64_t>(t) * a.group + g;
      const float inv = 1.0f / sum_lanes(L + r * kB);
      Ops::scale_out(O + r * dv, inv, dv, a.out + t * a.out_stride + g * dv);
    }
}

// The tile's outputs from its chunk_count(a) partials, laid out one after
// the other (part_floats each); merges into the first one, in place.
template <class Ops>
void attend_merge(const AttendTile& a, float* parts) {
  const int64_t R = static_cast<int64_t>(a.group) * a.n_tokens, n = part_floats(R, a.dv);
  const int64_t n_chunks = chunk_count(a);
  for (int64_t c = 1; c < n_chunks; ++c) merge_part<Ops>(R, a.dv, parts, parts + c * n);
  finish<Ops>(a, parts);
}

// The whole attention of a tile: its chunks in turn, merged as they come.
template <class Ops>
void attend(const AttendTile& a, float* scratch) {
  const int64_t R = static_cast<int64_t>(a.group) * a.n_tokens, n = part_floats(R, a.dv);
  float* acc = scratch;
  float* part = acc + n;
  float* rest = part + n;
  const int64_t n_chunks = chunk_count(a);
  attend_chunk<Ops>(a, 0, acc, rest);
  for (int64_t c = 1; c < n_chunks; ++c) {
    attend_chunk<Ops>(a, c, part, rest);
    merge_part<Ops>(R, a.dv, acc, part);
  }
  finish<Ops>(a, acc);
}

}  // namespace
}  // namespace volga::kernels::tiled
