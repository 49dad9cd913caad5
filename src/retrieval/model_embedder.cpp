// ModelEmbedder: see model_embedder.h.
#include "retrieval/model_embedder.h"

#include <filesystem>

#include "format/gguf.h"
#include "model/model.h"
#include "runtime/embed.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace volga::retrieval {

std::string model_id_for(const std::string& path, int64_t dim) {
  return std::filesystem::path(path).filename().string() + " (" + std::to_string(dim) + "-d)";
}

ModelEmbedder::ModelEmbedder(const std::string& path, int threads) {
  file_ = GgufFile::open(path);
  tok_ = Tokenizer::from_gguf(*file_);
  pool_ = std::make_unique<ThreadPool>(threads);
  model_ = load_model(*file_, *pool_);
  const Pooling pooling = embedding_pooling(model_->spec(), Pooling::Unspecified);
  if (pooling == Pooling::Rank)
    throw Error("'" + path + "' is a reranker; indexing needs an embedding model (pooling mean, cls or last)");
  if (pooling == Pooling::None)
    throw Error("'" + path + "' keeps one vector per token (pooling none); indexing needs one vector per text");
  model_id_ = model_id_for(path, dim());
}

ModelEmbedder::~ModelEmbedder() = default;

int64_t ModelEmbedder::dim() const { return model_->spec().n_embd; }

int64_t ModelEmbedder::max_tokens() const { return max_input_tokens(model_->spec()); }

int64_t ModelEmbedder::count_tokens(const std::string& text) const {
  return static_cast<int64_t>(tok_->encode(text, true, false).size());
}

std::vector<std::vector<float>> ModelEmbedder::embed(const std::vector<std::string>& texts) {
  const size_t limit = static_cast<size_t>(max_tokens());
  std::vector<std::vector<int32_t>> inputs;
  inputs.reserve(texts.size());
  for (const std::string& t : texts) {
    std::vector<int32_t> ids = tok_->encode(t, true, false);
    if (ids.size() > limit) {
      const int32_t last = ids.back();
      ids.resize(limit);
      ids.back() = last;
    }
    if (ids.empty()) throw Error("a text to embed has no tokens");
    inputs.push_back(std::move(ids));
  }
  EmbedOptions opts;
  opts.normalize = true;
  return embed_inputs(*model_, inputs, opts);
}

}  // namespace volga::retrieval
