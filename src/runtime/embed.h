// Embeddings and reranking on top of Model::token_states: inputs (already
// tokenized) are packed into batches of whole sequences, each sequence's
// token states are pooled (mean, first token, last token, or kept per
// token) and L2-normalised; rank models put the first token's state through
// their classification head. Used by `volga embed` and the server's
// /v1/embeddings and /v1/rerank (on its engine thread).
// Not thread-safe: call from the thread that owns the model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace volga {

class Tokenizer;

struct EmbedOptions {
  Pooling pooling = Pooling::Unspecified;  // Unspecified: the model's own (embedding_pooling)
  bool normalize = true;                   // L2-normalise each vector
  int64_t batch_tokens = 2048;             // tokens per forward pass (an input is never split)
};

// The pooling used for a model when `requested` is Unspecified: the file's
// pooling_type, else Cls for encoders and Last for decoders. Throws
// volga::Error for Rank on a model without a classification head, or for a
// pooling other than Rank on a model whose file declares Rank.
Pooling embedding_pooling(const ModelSpec& spec, Pooling requested);

// The most tokens one input may have.
int64_t max_input_tokens(const ModelSpec& spec);

// Throws volga::Error naming the input for an empty one or one longer than
// max_input_tokens (with both numbers).
void check_embed_inputs(const ModelSpec& spec, const std::vector<std::vector<int32_t>>& inputs);

// One vector per input: n_embd floats, or with Pooling::None n_tokens x
// n_embd (each token's state, normalised one by one). Throws volga::Error
// for an empty input, one longer than max_input_tokens (naming both
// numbers), or Pooling::Rank (use rerank_scores).
std::vector<std::vector<float>> embed_inputs(Model& model, const std::vector<std::vector<int32_t>>& inputs,
                                             const EmbedOptions& opts);

// A rank model's relevance score of each input (a query-document pair from
// rerank_pair): the first output of its classification head on the first
// token's state, as llama.cpp reports it (a logit, not a probability).
std::vector<float> rerank_scores(Model& model, const std::vector<std::vector<int32_t>>& inputs,
                                 int64_t batch_tokens = 2048);

// A cross-encoder's input for (query, document), as the model's tokenizer
// pairs two texts: WordPiece "[CLS] q [SEP] d [SEP]", SentencePiece models
// (XLM-RoBERTa) "<s> q </s></s> d </s>".
std::vector<int32_t> rerank_pair(const Tokenizer& tok, const std::string& query, const std::string& document);

// v / |v| (unchanged when |v| is 0), with the sum of squares in double.
void l2_normalize(float* v, int64_t n);

}  // namespace volga
