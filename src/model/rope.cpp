#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace volga {

namespace {
// Pair index below which YaRN keeps the original (extrapolated) frequency
// fully, for `n_rotations` turns over the original context (YaRN paper; the
// same correction range as Hugging Face's and ggml's implementations).
double yarn_corr_dim(double n_dims, double n_ctx_orig, double n_rotations, double base) {
  return n_dims * std::log(n_ctx_orig / (n_rotations * 2 * M_PI)) / (2 * std::log(base));
}
}  // namespace

RopeTable::RopeTable(const ModelSpec& s, const std::vector<float>& freq_factors) : mscale_(s.rope_mscale) {
  const int64_t n_pairs = s.n_rot / 2;
  double low = 0, high = 0;
  if (s.rope_ext_factor != 0) {
    const double n = static_cast<double>(s.n_rot), ctx = static_cast<double>(s.rope_n_ctx_orig);
    low = std::max(0.0, std::floor(yarn_corr_dim(n, ctx, s.yarn_beta_fast, s.rope_freq_base)));
    high = std::min(n - 1, std::ceil(yarn_corr_dim(n, ctx, s.yarn_beta_slow, s.rope_freq_base)));
  }
  inv_freq_.resize(static_cast<size_t>(n_pairs));
  for (int64_t i = 0; i < n_pairs; ++i) {
    double f = std::pow(static_cast<double>(s.rope_freq_base), -2.0 * static_cast<double>(i) / static_cast<double>(s.n_rot));
    if (!freq_factors.empty()) f /= freq_factors[static_cast<size_t>(i)];
    // Interpolated frequency (f * scale), blended back towards the original for
    // the high-frequency pairs by YaRN's ramp.
    double mix = 0;
    if (s.rope_ext_factor != 0) {
      const double y = (static_cast<double>(i) - low) / std::max(0.001, high - low);
      mix = (1.0 - std::clamp(y, 0.0, 1.0)) * s.rope_ext_factor;
    }
    inv_freq_[static_cast<size_t>(i)] = f * (s.rope_freq_scale * (1.0 - mix) + mix);
  }
}

void RopeTable::compute(const Batch& batch, std::vector<float>& cos, std::vector<float>& sin) const {
  const size_t n = inv_freq_.size();
  cos.resize(batch.size() * n);
  sin.resize(cos.size());
  for (size_t t = 0; t < batch.size(); ++t) {
    const double pos = batch.tokens[t].pos;
    for (size_t i = 0; i < n; ++i) {
      const double theta = pos * inv_freq_[i];
      cos[t * n + i] = static_cast<float>(std::cos(theta) * mscale_);
      sin[t * n + i] = static_cast<float>(std::sin(theta) * mscale_);
    }
  }
}

}  // namespace volga
