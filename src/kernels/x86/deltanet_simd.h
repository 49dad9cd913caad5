// The Gated DeltaNet kernels over an ISA policy P (W float lanes of type
// P::V with load, store, set1, mul, sub, fma), instantiated once per ISA by
// deltanet_avx2.cpp and deltanet_avx512.cpp. kernels/deltanet.h defines the
// arithmetic: vector lanes are independent output elements, so the vector
// code does per element exactly what the scalar reference does, and the
// tails fall back to the same scalar operations (std::fma is one instruction
// in these translation units).
//
// Tiles: delta_step keeps kBlock vectors of the output row in registers
// (kBlock accumulators, plus kBlock update values in the second pass) and
// walks the key dimension down the state's columns, so each state element is
// read twice and written once per token. With dv = 128 that is a column
// strip of 32 (AVX2) or 64 (AVX-512) floats per row: 4 cache lines.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace volga::kernels::deltanet_simd {

constexpr int kBlock = 4;

template <class P>
void conv_step(const float* wt, float* hist, const float* cur, int64_t C, int64_t K, float* y) {
  using V = typename P::V;
  int64_t c = 0;
  for (; c + P::W <= C; c += P::W) {
    V acc = P::mul(P::load(wt + c), P::load(hist + c));
    for (int64_t i = 1; i < K - 1; ++i) acc = P::fma(P::load(wt + i * C + c), P::load(hist + i * C + c), acc);
    P::store(y + c, P::fma(P::load(wt + (K - 1) * C + c), P::load(cur + c), acc));
  }
  for (; c < C; ++c) {
    float acc = P::round_mul(wt[c], hist[c]);
    for (int64_t i = 1; i < K - 1; ++i) acc = std::fma(wt[i * C + c], hist[i * C + c], acc);
    y[c] = std::fma(wt[(K - 1) * C + c], cur[c], acc);
  }
  std::memmove(hist, hist + C, static_cast<size_t>((K - 2) * C) * sizeof(float));
  std::memcpy(hist + (K - 2) * C, cur, static_cast<size_t>(C) * sizeof(float));
}

// kv[j0 .. j0 + N*W) = sum_i k[i] * (S[i][j] * d), i ascending.
template <class P, int N>
inline void project_strip(const float* S, const float* k, typename P::V d, int64_t dk, int64_t dv, int64_t j0,
                          float* kv) {
  using V = typename P::V;
  V acc[N];
  for (int b = 0; b < N; ++b) acc[b] = P::zero();
  for (int64_t i = 0; i < dk; ++i) {
    const V ki = P::set1(k[i]);
    const float* row = S + i * dv + j0;
    for (int b = 0; b < N; ++b) acc[b] = P::fma(ki, P::mul(P::load(row + b * P::W), d), acc[b]);
  }
  for (int b = 0; b < N; ++b) P::store(kv + j0 + b * P::W, acc[b]);
}

// S[i][j] = fma(k[i], u[j], S[i][j] * d); o[j] = sum_i q[i] * S[i][j].
template <class P, int N>
inline void update_strip(float* S, const float* q, const float* k, const float* u, typename P::V d, int64_t dk,
                         int64_t dv, int64_t j0, float* o) {
  using V = typename P::V;
  V uu[N], acc[N];
  for (int b = 0; b < N; ++b) {
    uu[b] = P::load(u + j0 + b * P::W);
    acc[b] = P::zero();
  }
  for (int64_t i = 0; i < dk; ++i) {
    const V ki = P::set1(k[i]), qi = P::set1(q[i]);
    float* row = S + i * dv + j0;
    for (int b = 0; b < N; ++b) {
      const V s = P::fma(ki, uu[b], P::mul(P::load(row + b * P::W), d));
      P::store(row + b * P::W, s);
      acc[b] = P::fma(qi, s, acc[b]);
    }
  }
  for (int b = 0; b < N; ++b) P::store(o + j0 + b * P::W, acc[b]);
}

template <class P>
void delta_step(float* S, const float* q, const float* k, const float* v, float decay, float beta, int64_t dk,
                int64_t dv, float* kv, float* o) {
  const typename P::V d = P::set1(decay);
  constexpr int64_t kStrip = kBlock * P::W;
  int64_t j = 0;
  for (; j + kStrip <= dv; j += kStrip) project_strip<P, kBlock>(S, k, d, dk, dv, j, kv);
  for (; j + P::W <= dv; j += P::W) project_strip<P, 1>(S, k, d, dk, dv, j, kv);
  const int64_t tail = j;
  for (; j < dv; ++j) {
    float acc = 0.0f;
    for (int64_t i = 0; i < dk; ++i) acc = std::fma(k[i], P::round_mul(S[i * dv + j], decay), acc);
    kv[j] = acc;
  }
  for (j = 0; j < dv; ++j) kv[j] = P::round_mul(v[j] - kv[j], beta);
  for (j = 0; j + kStrip <= dv; j += kStrip) update_strip<P, kBlock>(S, q, k, kv, d, dk, dv, j, o);
  for (; j + P::W <= dv; j += P::W) update_strip<P, 1>(S, q, k, kv, d, dk, dv, j, o);
  for (j = tail; j < dv; ++j) {
    float acc = 0.0f;
    for (int64_t i = 0; i < dk; ++i) {
      float& s = S[i * dv + j];
      s = std::fma(k[i], kv[j], P::round_mul(s, decay));
      acc = std::fma(q[i], s, acc);
    }
    o[j] = acc;
  }
}

}  // namespace volga::kernels::deltanet_simd
