#include "runtime/embed.h"

#include <algorithm>
#include <cmath>

#include "model/arch.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace volga {

namespace {

// Runs `fn(batch, first_input)` over batches of whole inputs of at most
// batch_tokens tokens (an input longer than that goes alone).
template <class Fn>
void for_each_batch(const std::vector<std::vector<int32_t>>& inputs, int64_t batch_tokens, Fn fn) {
  size_t i = 0;
  while (i < inputs.size()) {
    Batch batch;
    const size_t first = i;
    while (i < inputs.size() &&
           (i == first || static_cast<int64_t>(batch.size() + inputs[i].size()) <= batch_tokens)) {
      const int32_t seq = static_cast<int32_t>(i - first);
      for (size_t p = 0; p < inputs[i].size(); ++p)
        batch.add(inputs[i][p], static_cast<int32_t>(p), seq, false);
      ++i;
    }
    fn(batch, first, i);
  }
}

}  // namespace

Pooling embedding_pooling(const ModelSpec& spec, Pooling requested) {
  const bool encoder = spec.traits().encoder;
  if (requested == Pooling::Unspecified) {
    if (spec.pooling != Pooling::Unspecified) return spec.pooling;
    return encoder ? Pooling::Cls : Pooling::Last;
  }
  if (requested == Pooling::Rank && spec.n_cls_out == 0)
    throw Error("rank pooling needs a model with a classification head (a reranker)");
  if (requested != Pooling::Rank && spec.pooling == Pooling::Rank)
    throw Error("this model is a reranker (pooling rank): its states are scores, not embeddings");
  return requested;
}

int64_t max_input_tokens(const ModelSpec& spec) { return spec.n_ctx_train; }

void l2_normalize(float* v, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(v[i]) * v[i];
  if (sum <= 0) return;
  const double inv = 1.0 / std::sqrt(sum);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(v[i] * inv);
}

std::vector<std::vector<float>> embed_inputs(Model& model, const std::vector<std::vector<int32_t>>& inputs,
                                             const EmbedOptions& opts) {
  const ModelSpec& spec = model.spec();
  const Pooling pooling = embedding_pooling(spec, opts.pooling);
  if (pooling == Pooling::Rank) throw Error("a reranker gives scores, not embeddings: use rerank");
  check_embed_inputs(spec, inputs);
  const int64_t E = spec.n_embd;
  std::vector<std::vector<float>> out(inputs.size());
  for_each_batch(inputs, opts.batch_tokens, [&](const Batch& batch, size_t first, size_t last) {
    const std::vector<float> states = model.token_states(batch);
    size_t at = 0;  // first token of the input in the batch
    for (size_t i = first; i < last; ++i) {
      const size_t n = inputs[i].size();
      const float* s = states.data() + at * static_cast<size_t>(E);
      std::vector<float>& v = out[i];
      switch (pooling) {
        case Pooling::None:
          v.assign(s, s + n * static_cast<size_t>(E));
          break;
        case Pooling::Mean: {
          std::vector<double> sum(static_cast<size_t>(E), 0.0);
          for (size_t t = 0; t < n; ++t)
            for (int64_t j = 0; j < E; ++j) sum[static_cast<size_t>(j)] += s[t * static_cast<size_t>(E) + static_cast<size_t>(j)];
          v.resize(static_cast<size_t>(E));
          for (int64_t j = 0; j < E; ++j) v[static_cast<size_t>(j)] = static_cast<float>(sum[static_cast<size_t>(j)] / static_cast<double>(n));
          break;
        }
        case Pooling::Cls:
          v.assign(s, s + E);
          break;
        default:  // Last
          v.assign(s + (n - 1) * static_cast<size_t>(E), s + n * static_cast<size_t>(E));
          break;
      }
      if (opts.normalize)
        for (size_t r = 0; r < v.size(); r += static_cast<size_t>(E)) l2_normalize(&v[r], E);
      at += n;
    }
  });
  return out;
}

std::vector<float> rerank_scores(Model& model, const std::vector<std::vector<int32_t>>& inputs, int64_t batch_tokens) {
  const ModelSpec& spec = model.spec();
  if (spec.n_cls_out == 0) throw Error("this model has no classification head: it cannot rerank");
  check_embed_inputs(spec, inputs);
  const int64_t E = spec.n_embd;
  std::vector<float> scores(inputs.size());
  for_each_batch(inputs, batch_tokens, [&](const Batch& batch, size_t first, size_t last) {
    const std::vector<float> states = model.token_states(batch);
    std::vector<float> pooled;
    size_t at = 0;
    for (size_t i = first; i < last; ++i) {
      pooled.insert(pooled.end(), states.begin() + static_cast<std::ptrdiff_t>(at * static_cast<size_t>(E)),
                    states.begin() + static_cast<std::ptrdiff_t>((at + 1) * static_cast<size_t>(E)));
      at += inputs[i].size();
    }
    const std::vector<float> out = model.classify(pooled.data(), static_cast<int64_t>(last - first));
    for (size_t i = first; i < last; ++i)
      scores[i] = out[(i - first) * static_cast<size_t>(spec.n_cls_out)];
  });
  return scores;
}

std::vector<int32_t> rerank_pair(const Tokenizer& tok, const std::string& query, const std::string& document) {
  std::vector<int32_t> ids = tok.encode(query, true);
  std::vector<int32_t> doc = tok.encode(document, true);
  // The document's own leading special ([CLS] / <s>): dropped for WordPiece,
  // the separator for SentencePiece pairs.
  const bool leading = !doc.empty() && tok.add_bos() && doc.front() == tok.bos_id();
  if (leading) {
    if (tok.model_name() == "bert") doc.erase(doc.begin());
    else doc.front() = tok.sep_id() >= 0 ? tok.sep_id() : tok.eos_id();
  }
  ids.insert(ids.end(), doc.begin(), doc.end());
  return ids;
}

void check_embed_inputs(const ModelSpec& spec, const std::vector<std::vector<int32_t>>& inputs) {
  const int64_t limit = max_input_tokens(spec);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].empty()) throw Error("input " + std::to_string(i) + " is empty");
    if (static_cast<int64_t>(inputs[i].size()) > limit)
      throw Error("input " + std::to_string(i) + " has " + std::to_string(inputs[i].size()) +
                  " tokens, more than the model's context of " + std::to_string(limit));
  }
}

}  // namespace volga
