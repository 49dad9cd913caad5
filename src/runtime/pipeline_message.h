// The message between pipeline stages (runtime/mpi_pipeline.h), apart from
// MPI so it can be tested and fuzzed: the batch, the first stage's block
// tables of the batch's sequences and its block copies, and the hidden
// states. decode() checks everything it reads (it comes from the network).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "model/batch.h"
#include "model/kv_cache.h"

namespace volga {

enum class StageOp : int64_t { Forward = 1, Stop = 2 };

struct StageHeader {
  int64_t op = 0;
  uint64_t cache_key = 0;  // which of the first stage's caches
  int64_t n_seq = 0, n_ctx = 0, n_blocks = 0, type_k = 0, type_v = 0;  // its options
  int64_t n_tokens = 0, n_table_ints = 0, n_copies = 0, n_embd = 0;
};

struct StageMessage {
  StageHeader header;
  Batch batch;
  std::vector<int32_t> tables;  // per sequence: seq, length before the batch, n, n block ids
  std::vector<std::pair<int32_t, int32_t>> copies;
  std::vector<float> x;         // [n_tokens][n_embd]
  size_t x_offset = 0;          // where x starts in the encoded bytes
};

// The forward message of `batch` on `cache` (prepared, not yet committed):
// takes the cache's logged block copies. x holds n_tokens x n_embd floats.
std::vector<uint8_t> encode_stage_forward(const Batch& batch, KvCache& cache, const std::vector<float>& x,
                                          int64_t n_embd);
std::vector<uint8_t> encode_stage_stop();
// Throws volga::Error on a malformed message.
StageMessage decode_stage_message(const std::vector<uint8_t>& bytes);
// The cache options a later stage holding layers [first, first + n) uses.
KvCacheOptions stage_cache_options(const StageHeader& h, int64_t first_layer, int64_t n_layers);
// Applies the message's block copies and tables to a later stage's cache.
// Throws volga::Error on ids outside the cache.
void mirror_into(const StageMessage& m, KvCache& cache);

}  // namespace volga
