// Factories of the architecture families (one .cpp file each). Internal to
// the model layer: everything else goes through load_model().
#pragma once

#include <memory>

#include "model/model.h"

namespace volga {

// llama, qwen2, qwen3, qwen3moe.
std::unique_ptr<Model> make_dense_decoder(const GgufFile& file, ThreadPool& pool);
// deepseek2 (multi-head latent attention, DeepSeek mixture of experts).
std::unique_ptr<Model> make_mla_decoder(const GgufFile& file, ThreadPool& pool);

}  // namespace volga
