// KvCache — keys and values of every layer for up to `n_seq` sequences of up
// to `n_ctx` positions each (one contiguous slot per sequence id).
// Owned by the engine thread; not thread-safe. It lives in the model layer
// because the forward pass writes it; the runtime's scheduler decides which
// sequence uses which slot.
#pragma once

#include <cstdint>
#include <vector>

#include "model/spec.h"

namespace volga {

class KvCache {
 public:
  KvCache(const ModelSpec& spec, int n_seq, int n_ctx);

  int n_seq() const { return n_seq_; }
  int n_ctx() const { return n_ctx_; }
  // Number of positions stored for a sequence.
  int length(int seq) const { return length_.at(static_cast<size_t>(seq)); }
  // Forget positions >= n of a sequence (n = 0 frees it for a new request).
  void truncate(int seq, int n);
  void set_length(int seq, int n) { length_.at(static_cast<size_t>(seq)) = n; }
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

  float* key(int64_t layer, int seq, int pos) {
    return k_.data() + ((layer * n_seq_ + seq) * n_ctx_ + pos) * k_width_;
  }
  float* value(int64_t layer, int seq, int pos) {
    return v_.data() + ((layer * n_seq_ + seq) * n_ctx_ + pos) * v_width_;
  }
  int64_t key_width() const { return k_width_; }
  int64_t value_width() const { return v_width_; }

 private:
  int n_seq_, n_ctx_;
  int64_t k_width_, v_width_;  // floats per position per layer
  std::vector<float> k_, v_;
  std::vector<int> length_;
};

}  // namespace volga
