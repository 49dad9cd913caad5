// Reranking of (query, document) pairs by either kind of reranker:
//
// - cross-encoders (bert with a classification head, pooling rank, as
//   bge-reranker-v2-m3): the pair is "[CLS] q [SEP] d [SEP]" (or XLM-R's
//   "<s> q </s></s> d </s>") and the score is the head's first output, a
//   logit (runtime/embed.h: rerank_pair, rerank_scores);
// - decoder rerankers (Qwen3-Reranker: a qwen3 decoder whose file says
//   pooling rank, or any decoder served with --reranker): the pair is written
//   into the model's judging prompt (system instruction, then "<Instruct>:",
//   "<Query>:", "<Document>:" in the user turn, then an empty think block in
//   the assistant turn), and the score is the probability of "yes" against
//   "no" at the last token: sigmoid(logit(yes) - logit(no)), in [0, 1], as
//   Qwen's model card and llama.cpp report it.
//
// Not thread-safe where a Model is passed: call from the thread that owns it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace volga {

class Tokenizer;

// The task description Qwen3-Reranker was trained with (its model card's default).
inline constexpr const char* kDefaultRerankInstruction =
    "Given a web search query, retrieve relevant passages that answer the query";

struct RerankFormat {
  enum class Kind { None, CrossEncoder, Decoder };
  Kind kind = Kind::None;
  int32_t yes_id = -1, no_id = -1;  // Decoder: the single tokens "yes" and "no"
  std::string instruction = kDefaultRerankInstruction;
};

// How `spec` reranks: CrossEncoder for a classification head with pooling
// rank; Decoder for a decoder whose file says pooling rank, or any decoder
// when `as_reranker` (the --reranker option); None otherwise. Throws
// volga::Error for a decoder reranker whose vocabulary has no single
// "yes" / "no" tokens, or for `as_reranker` on a model that cannot rerank.
RerankFormat rerank_format(const ModelSpec& spec, const Tokenizer& tok, bool as_reranker);

// The decoder's prompt text for one pair (query and document are inserted
// as text: special-token markup inside them is not interpreted).
std::vector<int32_t> decoder_rerank_input(const Tokenizer& tok, const RerankFormat& f, const std::string& query,
                                          const std::string& document);

// The model input of one pair, for either kind.
std::vector<int32_t> rerank_input(const Tokenizer& tok, const RerankFormat& f, const std::string& query,
                                  const std::string& document);

// Decoder reranker scores: sigmoid(logit(yes) - logit(no)) at each input's
// last token, computed in a private cache in batches of whole inputs of at
// most batch_tokens tokens. A score does not depend on the batch.
std::vector<float> decoder_rerank_scores(Model& model, const RerankFormat& f,
                                         const std::vector<std::vector<int32_t>>& inputs, int64_t batch_tokens = 2048);

// Scores of prepared inputs for either kind (throws for Kind::None).
std::vector<float> rerank_inputs(Model& model, const RerankFormat& f, const std::vector<std::vector<int32_t>>& inputs,
                                 int64_t batch_tokens = 2048);

}  // namespace volga
