// Importance-weighted quantization: the pieces every quantizer shares when an
// importance matrix is given.
//
// An importance matrix holds, for each input column of a weight matrix, the
// mean squared activation that column meets (runtime/imatrix.h). A matrix
// row's output error is then best measured as sum_i imp[i] * err[i]^2, so the
// quantizers choose scales, minimums and grid points by a weighted
// least-squares error instead of a plain one. As in llama.cpp, the weight of
// element i of a block is imp[i] * sqrt(sigma2 + x[i]^2) (sigma2 a multiple
// of the block's mean square): the importance, tempered towards the larger
// values of the row.
//
// Every function here takes weights `w` that may be null: then every weight
// is 1 and the result is the plain least-squares one. Pure functions.
#pragma once

#include <cstdint>

namespace volga {

inline float weight_at(const float* w, int i) { return w ? w[i] : 1.0f; }

// w[i] = imp[i] * sqrt(sigma2 + x[i]^2) for n elements, with
// sigma2 = sigma_factor * mean(x^2) over the n elements (negative importance
// counts as 0; a block of all-zero importance as all 1).
void importance_weights(const float* x, const float* imp, int n, float sigma_factor, float* w);

// The weights of a block of n elements into w (null without an importance vector):
// what the quantizers pass down. Returns w or null.
inline const float* block_weights(const float* x, const float* imp, int n, float sigma_factor, float* w) {
  if (!imp) return nullptr;
  importance_weights(x, imp, n, sigma_factor, w);
  return w;
}

// The scale s (either sign) minimising sum w (x - s q)^2 over q = clamp(round(x / s), qmin, qmax),
// searched around the scales that map the largest magnitude to qmin or to qmax, each refined by
// refitting to the integers it chose. Returns 0 for an all-zero x.
float fit_symmetric_weighted(const float* x, const float* w, int n, int qmin, int qmax);

// The scale s >= 0 and offset lo minimising sum w (x - s q - lo)^2 over
// q = clamp(round((x - lo) / s), 0, qmax). With `nonpositive_lo` the offset
// is kept <= 0 (the k-quants store a minimum to subtract).
void fit_asymmetric_weighted(const float* x, const float* w, int n, int qmax, bool nonpositive_lo, float* s,
                             float* lo);

// sum w (x - s * clamp(round(x / s), qmin, qmax))^2.
double symmetric_error(const float* x, const float* w, int n, float s, int qmin, int qmax);

// A super-block's group scales v[j] as integers l[j] in [lmin, lmax] times
// one fp16 scale d (its bits returned): d from fit_symmetric_weighted over the
// groups with weights gw[j] (null: 1), and l[j] nearest for d as stored.
uint16_t quantize_group_scales(const float* v, const float* gw, int groups, int lmin, int lmax, int* l);

}  // namespace volga
