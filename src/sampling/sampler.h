// Sampler — turns one row of logits into the next token.
// Chain (as llama.cpp orders it): repetition penalty -> grammar mask ->
// top-k -> top-p -> min-p -> temperature -> draw. With a grammar, only the
// tokens it allows take part in the chain (the masked distribution is
// renormalised, so truncation and temperature act on allowed tokens only);
// greedy decoding checks the unconstrained argmax first and builds the mask
// only when the grammar refuses it. temperature <= 0 means greedy (argmax, first
// index on ties). The RNG is std::mt19937_64 seeded by `seed`, so the same
// seed and logits always give the same tokens.
// Thread-safety: one Sampler per sequence; not shared between threads.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include "sampling/grammar.h"

namespace volga {

struct SamplingParams {
  float temperature = 0.8f;
  int32_t top_k = 40;          // <= 0: off
  float top_p = 0.95f;         // >= 1: off
  float min_p = 0.05f;         // <= 0: off
  float repeat_penalty = 1.0f; // 1: off
  int32_t repeat_last_n = 64;  // tokens considered by the repetition penalty
  // OpenAI-style penalties over the tokens generated so far (not the prompt):
  // logit -= frequency_penalty * count + presence_penalty * (count > 0).
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  uint64_t seed = 0;
  // Constrained decoding: generated text must stay inside `grammar`; `vocab`
  // is the tokenizer's trie (both set, or neither).
  std::shared_ptr<const Grammar> grammar;
  std::shared_ptr<const TokenTrie> vocab;

  // Throws volga::Error with a user-facing message when a value is out of range.
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Picks a token from logits[0..n_vocab). Does not record it: call accept().
  // Throws volga::Error when the grammar allows no token at all.
  int32_t sample(const float* logits, int64_t n_vocab);
  // Records a token (prompt or generated) for the repetition penalty.
  void accept(int32_t token);
  // Records a generated token for the presence/frequency penalties and
  // advances the grammar.
  void accept_output(int32_t token);
  // The grammar is complete and nothing may follow: generation is over.
  bool grammar_finished() const { return matcher_ && matcher_->is_finished(); }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::unordered_map<int32_t, int32_t> output_counts_;
  std::vector<Candidate> cand_;
  std::unique_ptr<GrammarMatcher> matcher_;
  void apply_grammar();
};

}  // namespace volga
