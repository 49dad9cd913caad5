// Synthetic model writer: real architectures and shapes, seeded random
// weights, a real tokenizer (from a Hugging Face tokenizer.json) or a small
// byte-level BPE vocabulary trained on built-in multilingual text.
#pragma once

#include <cstdint>
#include <string>

namespace volga::synth {

struct SynthOptions {
  std::string arch = "qwen3";     // llama | qwen2 | qwen3 | qwen3moe | deepseek2 | bert
  std::string shape = "tiny";     // preset, see shape_presets()
  std::string type = "f32";       // f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k q4_k_m
  std::string tokenizer_json;     // optional path to tokenizer.json
  std::string vocab_gguf;         // bert: take the vocabulary (any kind) from this GGUF's tokenizer.ggml.* keys
  std::string pooling;            // write <arch>.pooling_type (none mean cls last rank); bert default cls
  bool rerank = false;            // bert: add a classification head (cls, cls.output) and pooling rank
  bool vocab_only = false;        // write only the tokenizer (BPE, WordPiece or unigram) from tokenizer_json
  int64_t vocab_size = 0;         // byte vocabulary size (default 512) or padding target
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0, n_ctx = 0;
  int64_t n_expert = 0, n_expert_used = 0, n_ff_expert = 0;  // qwen3moe, deepseek2
  // deepseek2 (-1: preset default). head_dim is the no-position part of q/k.
  int64_t q_lora_rank = -1, kv_lora_rank = 0, rope_dim = 0, v_head_dim = 0;
  int64_t n_expert_shared = -1, n_dense_lead = -1, n_expert_groups = -1, n_group_used = -1;
  std::string gating;             // softmax | sigmoid (preset default when empty)
  double expert_scale = -1;       // expert_weights_scale
  int expert_norm = -1;           // expert_weights_norm
  bool legacy_kv_b = false;       // write attn_kv_b (older converters) instead of attn_k_b/attn_v_b
  bool fused_gate_up = false;     // MoE: one ffn_gate_up_exps [n_embd, 2 n_ff_exp, n_expert] per layer
  double yarn_factor = 0;         // > 1: YaRN rope scaling (deepseek2, qwen2, qwen3, llama)
  double yarn_mscale_all_dim = 1; // deepseek2: rope.scaling.yarn_log_multiplier = 0.1 x this
  int tied = -1;                  // -1: preset default
  bool llama3_rope = false;       // write rope_freqs.weight (llama3 scaling)
  uint64_t seed = 42;
  std::string output;
  bool quiet = false;
};

// Builds and writes the model. Throws volga::Error on bad options.
void write_synthetic_model(const SynthOptions& opts);

const char* shape_presets_help();

}  // namespace volga::synth
