#include "runtime/rerank.h"

#include <algorithm>
#include <cmath>

#include "model/arch.h"
#include "runtime/embed.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace volga {

namespace {

// Qwen3-Reranker's judging prompt around "<Instruct>: ...\n<Query>: ...\n<Document>: ...".
constexpr const char* kDecoderPrefix =
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n";
constexpr const char* kDecoderSuffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";

int32_t single_token(const Tokenizer& tok, const char* word) {
  const std::vector<int32_t> ids = tok.encode(word, false, false);
  if (ids.size() != 1)
    throw Error(std::string("this model cannot be a decoder reranker: \"") + word + "\" is " +
                std::to_string(ids.size()) + " tokens in its vocabulary, not one (Qwen3-Reranker scores the "
                "'yes' and 'no' tokens)");
  return ids[0];
}

void append(std::vector<int32_t>& to, const std::vector<int32_t>& ids) { to.insert(to.end(), ids.begin(), ids.end()); }

double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

}  // namespace

RerankFormat rerank_format(const ModelSpec& spec, const Tokenizer& tok, bool as_reranker) {
  RerankFormat f;
  if (spec.n_cls_out > 0 && spec.pooling == Pooling::Rank) {
    f.kind = RerankFormat::Kind::CrossEncoder;
    return f;
  }
  const bool decoder = !spec.traits().encoder;
  if (!decoder || !(as_reranker || spec.pooling == Pooling::Rank)) {
    if (as_reranker)
      throw Error(std::string("'") + spec.arch_name() + "' model cannot be used as a reranker: it is an encoder "
                  "without a classification head (pooling rank)");
    return f;
  }
  f.kind = RerankFormat::Kind::Decoder;
  f.yes_id = single_token(tok, "yes");
  f.no_id = single_token(tok, "no");
  return f;
}

std::vector<int32_t> decoder_rerank_input(const Tokenizer& tok, const RerankFormat& f, const std::string& query,
                                          const std::string& document) {
  std::vector<int32_t> ids = tok.encode(kDecoderPrefix, true, true);
  append(ids, tok.encode("<Instruct>: " + f.instruction + "\n<Query>: " + query + "\n<Document>: " + document, false,
                         false));
  append(ids, tok.encode(kDecoderSuffix, false, true));
  return ids;
}

std::vector<int32_t> rerank_input(const Tokenizer& tok, const RerankFormat& f, const std::string& query,
                                  const std::string& document) {
  if (f.kind == RerankFormat::Kind::Decoder) return decoder_rerank_input(tok, f, query, document);
  return rerank_pair(tok, query, document);
}

std::vector<float> decoder_rerank_scores(Model& model, const RerankFormat& f,
                                         const std::vector<std::vector<int32_t>>& inputs, int64_t batch_tokens) {
  const ModelSpec& spec = model.spec();
  check_embed_inputs(spec, inputs);
  std::vector<float> scores(inputs.size());
  size_t i = 0;
  while (i < inputs.size()) {
    Batch batch;
    const size_t first = i;
    size_t longest = 0;
    while (i < inputs.size() &&
           (i == first || static_cast<int64_t>(batch.size() + inputs[i].size()) <= batch_tokens)) {
      const std::vector<int32_t>& in = inputs[i];
      for (size_t p = 0; p < in.size(); ++p)
        batch.add(in[p], static_cast<int32_t>(p), static_cast<int32_t>(i - first), p + 1 == in.size());
      longest = std::max(longest, in.size());
      ++i;
    }
    KvCache cache(spec, static_cast<int>(i - first), static_cast<int>(longest));
    const Logits logits = model.forward(batch, cache);
    if (logits.rows() != static_cast<int64_t>(i - first)) throw Error("internal: reranker logits are missing");
    for (size_t r = 0; r < i - first; ++r) {
      const float* row = logits.row(static_cast<int64_t>(r));
      scores[first + r] = static_cast<float>(sigmoid(static_cast<double>(row[f.yes_id]) - row[f.no_id]));
    }
  }
  return scores;
}

std::vector<float> rerank_inputs(Model& model, const RerankFormat& f, const std::vector<std::vector<int32_t>>& inputs,
                                 int64_t batch_tokens) {
  switch (f.kind) {
    case RerankFormat::Kind::Decoder: return decoder_rerank_scores(model, f, inputs, batch_tokens);
    case RerankFormat::Kind::CrossEncoder: return rerank_scores(model, inputs, batch_tokens);
    case RerankFormat::Kind::None: break;
  }
  throw Error("this model is not a reranker");
}

}  // namespace volga
