// The KV cache budget: how many blocks the pool gets, from --kv-memory or a
// default derived from free memory and the model, and the sentence
// `volga serve` prints about it at start-up.
#pragma once

#include <cstdint>
#include <string>

#include "model/spec.h"
#include "tensor/dtype.h"

namespace volga {

struct KvBudget {
  int64_t n_blocks = 0;
  int64_t block_bytes = 0;
  // Hybrid models: recurrent-state snapshots for prefix reuse (KvCache), paid
  // out of the same budget, and the bytes of one.
  int n_snapshots = 0;
  int64_t snapshot_bytes = 0;
  int64_t bytes() const { return n_blocks * block_bytes + n_snapshots * snapshot_bytes; }
  int64_t positions() const;  // n_blocks * KvCache::kBlockTokens
  std::string origin;         // "--kv-memory", or how the default was chosen
};

// "8G", "512MiB", "1.5g", "1000000" (bytes); K/M/G/T are powers of 1024.
// Throws volga::Error on anything else or a size of 0.
int64_t parse_size(const std::string& text);
// "11.7 GiB", "384 KiB"...
std::string format_size(int64_t bytes);

// The pool for n_seq sequences of n_ctx positions. requested_bytes > 0: that
// budget (an error when it holds no block), less the snapshots of a hybrid
// model (KvCache::default_snapshots, fewer when the budget is small). Else n_seq full sequences when
// they fit in 70% of the memory left after the model (MemAvailable less the
// model file), or as many blocks as fit there (at least one).
KvBudget plan_kv_budget(const ModelSpec& spec, DType type_k, DType type_v, int n_seq, int n_ctx,
                        int64_t requested_bytes, int64_t model_bytes);

// "KV cache f16: 11.7 GiB (...), 381 blocks of 32 positions; 12 sequences of
// 32768 tokens fit at once".
std::string describe_kv_budget(const KvBudget& b, DType type_k, DType type_v, int n_ctx);

// Bytes of memory the system can still give (MemAvailable), or -1 when unknown.
int64_t available_memory();

}  // namespace volga
