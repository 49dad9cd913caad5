// RopeTable — rotary position embedding frequencies of a model (base, llama3
// frequency factors, linear or YaRN scaling) and the cos/sin of a batch.
// Internal to the model layer.
#pragma once

#include <vector>

#include "model/batch.h"
#include "model/spec.h"

namespace volga {

class RopeTable {
 public:
  // freq_factors: llama3 rope_freqs.weight (n_rot / 2 values) or empty.
  RopeTable(const ModelSpec& spec, const std::vector<float>& freq_factors);

  int n_pairs() const { return static_cast<int>(inv_freq_.size()); }
  // cos/sin of every batch token's position, [tokens][n_pairs], computed in double.
  void compute(const Batch& batch, std::vector<float>& cos, std::vector<float>& sin) const;

 private:
  std::vector<double> inv_freq_;  // per rotated pair, scaling included
  double mscale_;
};

}  // namespace volga
