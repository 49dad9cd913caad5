// The Embedder of a volga embedding model (a GGUF file): texts are tokenized
// with the model's tokenizer (special tokens added), pooled as the file says
// (mean, cls or last) and L2-normalised by runtime/embed.h. Owns its file,
// tokenizer, thread pool and model; not thread-safe (one caller at a time).
#pragma once

#include <memory>
#include <string>

#include "retrieval/index.h"

namespace volga {
class GgufFile;
class Tokenizer;
class ThreadPool;
class Model;
}  // namespace volga

namespace volga::retrieval {

class ModelEmbedder : public Embedder {
 public:
  // Loads the model; throws volga::Error when the file is not an embedding
  // model (a reranker, or one whose pooling keeps every token).
  ModelEmbedder(const std::string& path, int threads);
  ~ModelEmbedder() override;

  // A text longer than max_tokens() is cut to its first max_tokens() tokens
  // (its last special token kept); the chunker keeps chunks within it.
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) override;
  int64_t dim() const override;
  std::string model_id() const override { return model_id_; }
  int64_t max_tokens() const override;
  int64_t count_tokens(const std::string& text) const override;

 private:
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Model> model_;
  std::string model_id_;
};

// The id an index stores for a model file: its file name and dimension,
// e.g. "bge-small-en-v1.5-f16.gguf (384-d)".
std::string model_id_for(const std::string& path, int64_t dim);

}  // namespace volga::retrieval
