#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "util/error.h"

namespace volga {

void SamplingParams::validate() const {
  if (!std::isfinite(temperature) || temperature < 0 || temperature > 100)
    throw Error("temperature must be between 0 and 100");
  if (!(top_p > 0) || top_p > 1) throw Error("top_p must be in (0, 1]");
  if (!(min_p >= 0) || min_p > 1) throw Error("min_p must be in [0, 1]");
  if (!(repeat_penalty > 0) || !std::isfinite(repeat_penalty)) throw Error("repeat penalty must be positive");
  if (repeat_last_n < 0) throw Error("repeat_last_n must be >= 0");
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) throw Error("presence_penalty must be between -2 and 2");
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) throw Error("frequency_penalty must be between -2 and 2");
  if (static_cast<bool>(grammar) != static_cast<bool>(vocab)) throw Error("a grammar needs the vocabulary's token trie");
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  params_.validate();
  if (params_.grammar) matcher_ = std::make_unique<GrammarMatcher>(params_.grammar);
}

void Sampler::accept_output(int32_t token) {
  ++output_counts_[token];
  if (matcher_) matcher_->accept_token(*params_.vocab, token);
}

// Keeps only the candidates the grammar allows.
void Sampler::apply_grammar() {
  const TokenMask& mask = matcher_->token_mask(*params_.vocab);
  const int32_t n_mask = params_.vocab->n_vocab();
  std::erase_if(cand_, [&](const Candidate& c) { return c.id >= n_mask || !mask_allows(mask, c.id); });
  if (cand_.empty())
    throw Error("the grammar allows no token of this vocabulary here (a grammar literal the tokenizer cannot spell?)");
}

void Sampler::accept(int32_t token) {
  if (params_.repeat_last_n <= 0) return;
  recent_.push_back(token);
  while (static_cast<int32_t>(recent_.size()) > params_.repeat_last_n) recent_.pop_front();
}

int32_t Sampler::sample(const float* logits, int64_t n_vocab) {
  cand_.resize(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) cand_[static_cast<size_t>(i)] = {static_cast<int32_t>(i), logits[i], 0};
  if (params_.repeat_penalty != 1.0f && !recent_.empty()) {
    std::unordered_set<int32_t> seen(recent_.begin(), recent_.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= n_vocab) continue;
      float& l = cand_[static_cast<size_t>(id)].logit;
      l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f)
    for (auto [id, count] : output_counts_) {
      if (id < 0 || id >= n_vocab) continue;
      cand_[static_cast<size_t>(id)].logit -= params_.frequency_penalty * static_cast<float>(count) +
                                               params_.presence_penalty * (count > 0 ? 1.0f : 0.0f);
    }
  auto argmax = [&] {
    size_t best = 0;
    for (size_t i = 1; i < cand_.size(); ++i)
      if (cand_[i].logit > cand_[best].logit) best = i;
    return cand_[best].id;
  };
  if (params_.temperature <= 0) {
    int32_t best = argmax();
    if (!matcher_ || matcher_->allows_token(*params_.vocab, best)) return best;
    apply_grammar();
    return argmax();
  }
  if (matcher_) apply_grammar();
  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  // Sorting 150k candidates costs milliseconds: only top-k and top-p need
  // an order; otherwise the candidates stay in id order.
  size_t n = cand_.size();
  bool sorted = false;
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    n = static_cast<size_t>(params_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(n), cand_.end(), by_logit);
    sorted = true;
  } else if (params_.top_p < 1.0f) {
    std::sort(cand_.begin(), cand_.end(), by_logit);
    sorted = true;
  }
  cand_.resize(n);
  float max_logit = cand_[0].logit;
  for (const auto& c : cand_) max_logit = std::max(max_logit, c.logit);
  auto softmax = [&](float temp) {
    double sum = 0;
    for (auto& c : cand_) sum += c.p = static_cast<float>(std::exp((c.logit - max_logit) / temp));
    for (auto& c : cand_) c.p = static_cast<float>(c.p / sum);
  };
  if (params_.top_p < 1.0f || params_.min_p > 0) softmax(1.0f);  // truncation reads the untempered probabilities
  if (params_.top_p < 1.0f) {  // sorted here
    double cum = 0;
    size_t keep = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += cand_[i].p;
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    cand_.resize(keep);
  }
  if (params_.min_p > 0) {
    float max_p = 0;
    for (const auto& c : cand_) max_p = std::max(max_p, c.p);
    const float threshold = max_p * params_.min_p;
    if (sorted) {
      size_t keep = 1;
      while (keep < cand_.size() && cand_[keep].p >= threshold) ++keep;
      cand_.resize(keep);
    } else {
      std::erase_if(cand_, [&](const Candidate& c) { return c.p < threshold; });
    }
  }
  softmax(params_.temperature);
  double r = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  double cum = 0;
  for (const auto& c : cand_) {
    cum += c.p;
    if (r < cum) return c.id;
  }
  return cand_.back().id;
}

}  // namespace volga
