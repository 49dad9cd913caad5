// Batch — the unit of work of one forward pass: tokens that may belong to
// several sequences, each with its position, and whether its logits are
// wanted. Continuous batching and chunked prefill are built on this.
//
// Rule: within a batch, the tokens of one sequence appear in position order
// and continue exactly where that sequence's KV cache ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace volga {

struct BatchToken {
  int32_t token;
  int32_t pos;
  int32_t seq;
  bool want_logits;
};

struct Batch {
  std::vector<BatchToken> tokens;

  void add(int32_t token, int32_t pos, int32_t seq, bool want_logits) {
    tokens.push_back({token, pos, seq, want_logits});
  }
  void clear() { tokens.clear(); }
  size_t size() const { return tokens.size(); }
  bool empty() const { return tokens.empty(); }
};

// Logits of the batch tokens that asked for them, in batch order.
struct Logits {
  int64_t n_vocab = 0;
  std::vector<float> data;         // [rows][n_vocab]
  std::vector<int32_t> batch_index;  // batch position of each row

  int64_t rows() const { return static_cast<int64_t>(batch_index.size()); }
  const float* row(int64_t i) const { return data.data() + i * n_vocab; }
};

}  // namespace volga
