// Single-sequence generation on top of Model::forward: chunked prefill, then
// one token per step. The server's Scheduler will batch many of these; the
// CLI and tests use this directly.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.h"
#include "sampling/sampler.h"

namespace volga {

struct GenerateOptions {
  int32_t max_tokens = 128;
  int32_t prefill_chunk = 256;  // prompt tokens per forward pass
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation ends after producing one of these
};

struct GenerateResult {
  std::vector<int32_t> ids;  // generated ids (a stop id is included)
  bool stopped = false;      // ended on a stop id rather than max_tokens
};

// Runs the prompt through `model` in sequence 0 of `cache`, then generates.
// Positions already in the cache are taken to hold the first tokens of
// `prompt` (the caller truncates the cache to the common prefix, as a chat
// does between turns) and are not computed again. `on_token` is called for
// each new id; returning false ends generation early.
GenerateResult generate(Model& model, KvCache& cache, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts,
                        const std::function<bool(int32_t)>& on_token = nullptr);

}  // namespace volga
