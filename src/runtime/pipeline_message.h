// The message between pipeline stages (runtime/mpi_pipeline.h), apart from
// MPI so it can be tested and fuzzed: the batch, the first stage's block
// tables of the batch's sequences and its block copies, and the hidden
// states. decode() checks everything it reads (it comes from the network).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/batch.h"
#include "model/kv_cache.h"

namespace volga {

enum class StageOp : int64_t { Forward = 1, Stop = 2 };

// How hidden states travel between stages (--mpi-hidden): f32 is exact;
// f16 and bf16 halve the bytes and round every value (not bit-exact).
enum class HiddenType : int64_t { F32 = 0, F16 = 1, BF16 = 2 };
// Parses "f32", "f16", "bf16"; throws volga::Error otherwise.
HiddenType parse_hidden_type(const std::string& name);
const char* hidden_type_name(HiddenType t);
size_t hidden_bytes(HiddenType t);  // per value
// n values of x in type t, appended to `out` / written at `at` (which must hold them).
void put_hidden(std::vector<uint8_t>& out, const float* x, size_t n, HiddenType t);
void write_hidden(uint8_t* at, const float* x, size_t n, HiddenType t);
// n values of type t at `from` into x.
void read_hidden(const uint8_t* from, float* x, size_t n, HiddenType t);

struct StageHeader {
  int64_t op = 0;
  uint64_t cache_key = 0;  // which of the first stage's caches
  int64_t n_seq = 0, n_ctx = 0, n_blocks = 0, type_k = 0, type_v = 0;  // its options
  int64_t n_tokens = 0, n_table_ints = 0, n_copies = 0, n_embd = 0;
  int64_t hidden_type = 0;  // HiddenType of x on the wire (the reply uses it too)
};

struct StageMessage {
  StageHeader header;
  Batch batch;
  std::vector<int32_t> tables;  // per sequence: seq, length before the batch, n, n block ids
  std::vector<std::pair<int32_t, int32_t>> copies;
  std::vector<float> x;         // [n_tokens][n_embd], decoded to f32
  size_t x_offset = 0;          // where x starts in the encoded bytes (in header.hidden_type)
};

// The forward message of `batch` on `cache` (prepared, not yet committed):
// takes the cache's logged block copies. x holds n_tokens x n_embd floats,
// sent as `type`.
std::vector<uint8_t> encode_stage_forward(const Batch& batch, KvCache& cache, const std::vector<float>& x,
                                          int64_t n_embd, HiddenType type = HiddenType::F32);
std::vector<uint8_t> encode_stage_stop();
// Throws volga::Error on a malformed message.
StageMessage decode_stage_message(const std::vector<uint8_t>& bytes);
// The cache options a later stage holding layers [first, first + n) uses.
KvCacheOptions stage_cache_options(const StageHeader& h, int64_t first_layer, int64_t n_layers);
// Applies the message's block copies and tables to a later stage's cache.
// Throws volga::Error on ids outside the cache.
void mirror_into(const StageMessage& m, KvCache& cache);

}  // namespace volga
