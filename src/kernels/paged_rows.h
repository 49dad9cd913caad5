// PagedRows — where the attention kernels find a head's cached keys or
// values: rows of positions spread over the blocks of a paged KV cache
// (model/kv_cache.h owns the blocks; this is a read-only view of them).
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace volga {

// Positions per KV cache block: small enough that sharing whole blocks
// between requests wastes little (at most 31 positions are recomputed), big
// enough that a block's rows of one head fill a few pages of memory.
inline constexpr int kKvBlockTokens = 32;

// Position p's row starts at
//   base + ids[p / kKvBlockTokens] * block_bytes + (p % kKvBlockTokens) * row_bytes + offset
// and holds elements of `type` (f32, f16, bf16 or q8_0).
struct PagedRows {
  const uint8_t* base = nullptr;
  const int32_t* ids = nullptr;
  int64_t block_bytes = 0, row_bytes = 0, offset = 0;
  DType type = DType::F32;

  // First row of block b (rows follow every row_bytes).
  const uint8_t* block(int64_t b) const { return base + ids[b] * block_bytes + offset; }
};

}  // namespace volga
