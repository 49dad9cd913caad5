// Weighted least-squares fits shared by the quantizers (tensor/quant_weights.h).
#include <algorithm>
#include <cmath>

#include "tensor/half.h"
#include "tensor/quant_weights.h"

namespace volga {

namespace {

int clamp_round(float v, int lo, int hi) { return std::clamp(static_cast<int>(std::lrintf(v)), lo, hi); }

// Refits s to the integers s chooses (weighted least squares), `iters` times.
float refit_symmetric(const float* x, const float* w, int n, float s, int qmin, int qmax, int iters) {
  for (int it = 0; it < iters; ++it) {
    double sqx = 0, sqq = 0;
    for (int i = 0; i < n; ++i) {
      const int q = clamp_round(x[i] / s, qmin, qmax);
      sqx += static_cast<double>(weight_at(w, i)) * q * x[i];
      sqq += static_cast<double>(weight_at(w, i)) * q * q;
    }
    if (sqq <= 0 || sqx == 0) break;
    s = static_cast<float>(sqx / sqq);
  }
  return s;
}

}  // namespace

void importance_weights(const float* x, const float* imp, int n, float sigma_factor, float* w) {
  double sum_x2 = 0, sum_imp = 0;
  for (int i = 0; i < n; ++i) sum_x2 += static_cast<double>(x[i]) * x[i], sum_imp += std::max(0.0f, imp[i]);
  const float sigma2 = static_cast<float>(sigma_factor * sum_x2 / n);
  // Columns no calibration token reached (all zero here) count equally rather than not at all.
  for (int i = 0; i < n; ++i) w[i] = (sum_imp > 0 ? std::max(0.0f, imp[i]) : 1.0f) * std::sqrt(sigma2 + x[i] * x[i]);
}

double symmetric_error(const float* x, const float* w, int n, float s, int qmin, int qmax) {
  double err = 0;
  for (int i = 0; i < n; ++i) {
    const double d = (s != 0 ? s * clamp_round(x[i] / s, qmin, qmax) : 0.0f) - x[i];
    err += weight_at(w, i) * d * d;
  }
  return err;
}

float fit_symmetric_weighted(const float* x, const float* w, int n, int qmin, int qmax) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax == 0) return 0;
  float best_s = 0;
  double best = INFINITY;  // the first candidate wins ties (all-zero weights), never the zero scale
  for (const int end : {qmin, qmax}) {
    if (std::abs(end) < 1) continue;
    for (int step = -8; step <= 8; ++step) {
      const float denom = static_cast<float>(end) + 0.1f * static_cast<float>(step) * (end < 0 ? -1.0f : 1.0f);
      if (std::fabs(denom) < 0.5f) continue;
      const float s = refit_symmetric(x, w, n, max / denom, qmin, qmax, 2);
      const double err = symmetric_error(x, w, n, s, qmin, qmax);
      if (err < best) best = err, best_s = s;
    }
  }
  return best_s;
}

void fit_asymmetric_weighted(const float* x, const float* w, int n, int qmax, bool nonpositive_lo, float* s_out,
                             float* lo_out) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; ++i) mn = std::min(mn, x[i]), mx = std::max(mx, x[i]);
  if (nonpositive_lo) mn = std::min(mn, 0.0f), mx = std::max(mx, 0.0f);
  *s_out = 0;
  *lo_out = mn;
  if (mx <= mn) return;
  auto error = [&](float s, float lo) {
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double d = s * clamp_round((x[i] - lo) / s, 0, qmax) + lo - x[i];
      err += weight_at(w, i) * d * d;
    }
    return err;
  };
  double best = INFINITY;
  for (int step = -8; step <= 8; ++step) {
    float s = (mx - mn) / (static_cast<float>(qmax) + 0.1f * static_cast<float>(step)), lo = mn;
    for (int iter = 0; iter < 3; ++iter) {
      // Integers for (s, lo), then the weighted least-squares (s, lo) for those integers.
      double sw = 0, sq = 0, sq2 = 0, sx = 0, sqx = 0;
      for (int i = 0; i < n; ++i) {
        const double wi = weight_at(w, i);
        const int q = clamp_round((x[i] - lo) / s, 0, qmax);
        sw += wi, sq += wi * q, sq2 += wi * q * q, sx += wi * x[i], sqx += wi * q * x[i];
      }
      const double det = sw * sq2 - sq * sq;
      if (det <= 0 || sw <= 0) break;
      double ns = (sw * sqx - sq * sx) / det, nlo = (sx - ns * sq) / sw;
      if (nonpositive_lo && nlo > 0) nlo = 0, ns = sq2 > 0 ? sqx / sq2 : 0;
      if (ns <= 0) break;
      s = static_cast<float>(ns), lo = static_cast<float>(nlo);
    }
    const double err = error(s, lo);
    if (err < best) best = err, *s_out = s, *lo_out = lo;
  }
}

uint16_t quantize_group_scales(const float* v, const float* gw, int groups, int lmin, int lmax, int* l) {
  const uint16_t d16 = fp32_to_fp16(fit_symmetric_weighted(v, gw, groups, lmin, lmax));
  const float d = fp16_to_fp32(d16);
  for (int j = 0; j < groups; ++j) l[j] = d != 0 ? clamp_round(v[j] / d, lmin, lmax) : 0;
  return d16;
}

}  // namespace volga
