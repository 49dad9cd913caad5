// The canonical order of the float reductions (dot, the float matrix
// product, rms_norm, softmax): every ISA adds the same terms in the same
// order with the same roundings, so results are bit-identical across
// VOLGA_ISA=ref|avx2|avx512 and whatever the token count. The scalar
// reference (kernels/ref/ops_ref.cpp) spells the order out one lane at a
// time; AVX-512 holds the 16 lanes in one register, AVX2 in two.
//
// Float dot products (dot, and every (row, token) of matmul_rows: the row
// dequantized to float first, which is exact and the same on every ISA):
//   lanes    L[l] = +0, l < 16
//   chunks   for c = 0 .. n/16 - 1:  L[l] = fma(a[16c + l], b[16c + l], L[l])
//   tail     r = n % 16 elements left at k = 16 (n/16):
//            L[l] = fma(a[k + l], b[k + l], L[l]) for l < r (other lanes untouched)
//   sum      t[i] = L[i] + L[i + 8] (i < 8), then t[i] + t[i + 4] (i < 4),
//            t[i] + t[i + 2] (i < 2), t[0] + t[1]
// The tree is a vector's horizontal sum (512 -> 256 -> 128 -> 64 -> 32 bits).
//
// Sums of squares (rms_norm) and of the softmax weights: in double, over 8
// lanes, element i into lane i % 8 in ascending order (each term x or x*x
// is exact in double, so fused or not, an add rounds once), then the tree
// L[i] + L[i + 4], + 2, + 1.
//   rms_norm  scale = float(1 / sqrt(ss / n + eps)) (double), y = (x * scale) * w
//   softmax   e = exp(x - max) (the polynomial of kernels/ref/ops_ref.cpp's
//             exp_poly, the SIMD kernels' vexp), inv = float(1 / sum e),
//             y = e * inv
// Elementwise kernels: axpy y = fma(a, x, y); swiglu g / (1 + exp(0 - g)) * u
// with the same exp, each operation rounded on its own.
//
// The whole build compiles with -ffp-contract=off (CMakeLists.txt): a * b + c
// is never fused behind the code's back, so std::fma is the only fusion.
//
// The scalar helpers below are the tails and trees every ISA shares. They
// have internal linkage on purpose: each translation unit keeps its own copy
// compiled with its own flags (an inline function merged across units could
// run AVX code on a CPU without it).
#pragma once

#include <cmath>
#include <cstdint>

namespace volga::kernels::float_order {

inline constexpr int kDotLanes = 16;
inline constexpr int kSumLanes = 8;

// The tree of the 16 float lanes.
static inline float tree16(const float* L) {
  float t[8];
  for (int i = 0; i < 8; ++i) t[i] = L[i] + L[i + 8];
  for (int w = 4; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) t[i] = t[i] + t[i + w];
  return t[0];
}

// The tail of a dot product into its lanes (r < 16 elements), then the tree.
static inline float finish_dot(float* L, const float* a, const float* b, int64_t r) {
  for (int64_t l = 0; l < r; ++l) L[l] = std::fma(a[l], b[l], L[l]);
  return tree16(L);
}

// The tree of the 8 double lanes.
static inline double tree8(const double* L) {
  double t[4];
  for (int i = 0; i < 4; ++i) t[i] = L[i] + L[i + 4];
  t[0] = t[0] + t[2];
  t[1] = t[1] + t[3];
  return t[0] + t[1];
}

// Adds x[0 .. r) (squared when `square`) into lanes l % 8, then the tree;
// x starts at an element whose lane is 0.
static inline double finish_sum(double* L, const float* x, int64_t r, bool square) {
  for (int64_t l = 0; l < r; ++l) {
    const double v = x[l];
    L[l % kSumLanes] = L[l % kSumLanes] + (square ? v * v : v);
  }
  return tree8(L);
}

}  // namespace volga::kernels::float_order
