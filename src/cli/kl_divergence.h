// KL divergence of a model's next-token distributions from a base model's
// over the same scored tokens (volga perplexity --kl-divergence-base, in the
// manner of llama-perplexity's option of that name).
//
// A base run writes, for every scored token, the base model's log-probabilities
// over the whole vocabulary (float32) to a file, after a header naming the
// vocabulary size, the window size and the tokens of the text. A compare run
// reads them back in the same order and accumulates, per token,
// KL(P_base || P_model) = sum_i p_i (log p_i - log q_i), whether the two
// models' most likely tokens agree, and (from the base's recorded mean
// negative log-likelihood) the perplexity ratio. Not thread-safe; one object per run.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace volga::cli {

struct KldSummary {
  int64_t tokens = 0;
  double kld_mean = 0, kld_sem = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double same_top = 0;       // fraction of tokens whose argmax agrees
  double base_nll_mean = 0;  // the base model's mean negative log-likelihood
};

class KlDivergence {
 public:
  // Writes a base file (`compare` false) or reads one (`compare` true).
  // `tokens`, `ctx` and `method` (0: Volga's windows, 1: llama-perplexity's)
  // identify the text and windows; a compare run refuses a base made from
  // other tokens, windows, method or vocabulary size.
  KlDivergence(const std::string& path, bool compare, int64_t n_vocab, int ctx, int32_t method,
               const std::vector<int32_t>& tokens);
  ~KlDivergence();
  KlDivergence(const KlDivergence&) = delete;
  KlDivergence& operator=(const KlDivergence&) = delete;

  // One scored token's logits (n_vocab of them).
  void add(const float* logits);
  // Closes a base file (recording the run's mean negative log-likelihood) or returns the comparison.
  KldSummary finish(double nll_mean);

 private:
  std::string path_;
  bool compare_;
  int64_t n_vocab_;
  std::FILE* f_ = nullptr;
  std::vector<float> logp_, base_;
  std::vector<double> kld_;
  int64_t same_top_ = 0, tokens_ = 0, base_tokens_ = 0;
  double base_nll_mean_ = 0;
};

}  // namespace volga::cli
