// Building blocks shared by the decoder architectures: batch validation, the
// SwiGLU feed-forward, routed experts and the output head. Internal to the
// model layer.
#pragma once

#include <utility>
#include <vector>

#include "model/batch.h"
#include "model/binder.h"
#include "model/kv_cache.h"
#include "model/phase_times.h"
#include "model/spec.h"
#include "util/thread_pool.h"

namespace volga {

struct FfnWeights {
  WeightMatrix gate, up, down;
  int64_t n_ff = 0;
};

struct MoeWeights {
  WeightMatrix router;            // ffn_gate_inp [n_expert x n_embd]
  std::vector<float> probs_bias;  // exp_probs_b: added for the choice only (may be empty)
  std::vector<WeightMatrix> gate, up, down;  // one view per expert
  FfnWeights shared;              // shared experts (n_ff = 0: none)
};

// Checks the batch's token ids and reserves its cache blocks (KvCache::prepare).
// Throws volga::Error on a bad token id, sequence id, position gap or a full
// context, KvFullError when the cache has no block left.
void prepare_batch(const ModelSpec& spec, const Batch& batch, KvCache& cache);

// One sequence of an embedding batch: tokens [begin, end) of the batch.
struct SeqRun {
  int64_t begin, end;
  int32_t seq;
};
// Splits a batch of whole sequences (Model::token_states) into its runs:
// checks the token ids, that each sequence is one run at positions 0, 1, ...
// and that no run is longer than max_len. Throws volga::Error naming the fault.
std::vector<SeqRun> sequence_runs(const ModelSpec& spec, const Batch& batch, int64_t max_len);

// Multi-head attention with grouped keys/values over a paged cache.
struct AttentionShape {
  int64_t n_head, n_head_kv;  // query heads; key/value heads (n_head_kv divides n_head)
  int64_t dk, dv;             // widths of a query/key head and of a value head
  int64_t q_stride;           // floats between tokens' query rows
  int64_t k_head_stride, v_head_stride;  // elements between heads in a cached key/value row
  float scale;
};
// out[t][h] (dv floats per head, n_head heads per token) = attention of the
// query head h of token t over its sequence's cached positions [0, pos].
// Prompt tiles run whole; tiles of a few tokens (decode, draft tokens) are
// also spread over the threads by 256-position chunks, whose partials are
// merged in chunk order (kernels/attend_tiled.h): a token's result depends
// neither on the thread count nor on the batch it came in.
// Its time goes to times->attention when times is not null.
void paged_attention(const AttentionShape& a, const Batch& batch, const KvCache& cache, int64_t layer,
                     const float* q, float* out, ThreadPool& pool, PhaseTimes* times = nullptr);

// Binds blk.N.ffn_{gate,up,down} with n_ff rows, or blk.N.ffn_*_shexp.
FfnWeights bind_ffn(const Binder& b, const std::string& prefix, const std::string& suffix, int64_t n_embd,
                    int64_t n_ff);
MoeWeights bind_moe(const Binder& b, const std::string& prefix, const ModelSpec& spec);

// out[T x E] = down(silu(gate h) * up h).
void swiglu_ffn(const FfnWeights& w, const float* h, int64_t T, float* out, ThreadPool& pool);

// The experts chosen for one token and their weights, from the router logits
// (n_expert values): gating (softmax or sigmoid), the selection bias, group-
// limited choice, top-k (ties to the lower index), normalisation and scale.
std::vector<std::pair<int64_t, float>> route_token(const ModelSpec& spec, const float* logits,
                                                   const std::vector<float>& bias);

// out[T x E] = routed experts (+ shared experts). Tokens are grouped by
// expert, so each chosen expert's weights are read once per batch and the
// others not at all.
// Routing and experts' time go to *times when not null.
void moe_ffn(const ModelSpec& spec, const MoeWeights& w, const float* h, int64_t T, float* out, ThreadPool& pool,
             PhaseTimes* times = nullptr);

// x[T x E] += FFN(RMSNorm(x, norm)): the layer's routed experts when it is a
// mixture-of-experts layer, else its dense SwiGLU. h and out are scratch.
void residual_ffn(const ModelSpec& spec, int64_t layer, const std::vector<float>& norm, const FfnWeights& ffn,
                  const MoeWeights& moe, float* x, int64_t T, float* h, float* out, ThreadPool& pool,
                  PhaseTimes* times = nullptr);

// Token embedding, final norm and output matrix (the embedding when tied).
struct HeadWeights {
  WeightMatrix tok_embd, output;
  std::vector<float> output_norm;
};
HeadWeights bind_head(const Binder& b, const ModelSpec& spec);

// x [T][n_embd] = the embedding rows of the batch's tokens.
void embed_tokens(const ModelSpec& spec, const HeadWeights& head, const Batch& batch, std::vector<float>& x);

// Final RMSNorm and output matrix for the tokens that want logits.
Logits output_logits(const ModelSpec& spec, const Batch& batch, const float* x, const std::vector<float>& norm,
                     const WeightMatrix& output, ThreadPool& pool);

}  // namespace volga
