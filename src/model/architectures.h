// Factories of the architecture families (one .cpp file each). Internal to
// the model layer: everything else goes through load_model().
#pragma once

#include <memory>
#include <string>

#include "model/model.h"

namespace volga {

// llama, qwen2, qwen3, qwen3moe.
std::unique_ptr<Model> make_dense_decoder(const GgufFile& file, ThreadPool& pool);
std::unique_ptr<Model> make_dense_stage(const GgufFile& file, ThreadPool& pool, const StageRange& range);
// deepseek2 (multi-head latent attention, DeepSeek mixture of experts).
std::unique_ptr<Model> make_mla_decoder(const GgufFile& file, ThreadPool& pool);
std::unique_ptr<Model> make_mla_stage(const GgufFile& file, ThreadPool& pool, const StageRange& range);
// deepseek2's own keys: latent attention sizes, shared experts, leading dense
// layers, gating, group-limited routing, expert weight scaling.
void read_deepseek2_hparams(const GgufFile& file, const std::string& prefix, ModelSpec& spec);

// qwen35, qwen35moe (Gated DeltaNet + gated attention hybrids) and their keys:
// DeltaNet sizes, full-attention interval, RoPE sections, shared expert size.
std::unique_ptr<Model> make_qwen35(const GgufFile& file, ThreadPool& pool);
void read_qwen35_hparams(const GgufFile& file, const std::string& prefix, ModelSpec& spec);
// bert (BGE / E5 style encoders and cross-encoder rerankers, as llama.cpp's converter writes them).
std::unique_ptr<Model> make_bert_encoder(const GgufFile& file, ThreadPool& pool);
// bert's own keys: LayerNorm epsilon, causal attention (off), the classification head's size.
void read_bert_hparams(const GgufFile& file, const std::string& prefix, ModelSpec& spec);

}  // namespace volga
