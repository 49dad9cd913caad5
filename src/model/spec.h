// ModelSpec — architecture hyper-parameters read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

namespace volga {

class GgufFile;

enum class RopeStyle { Normal, Neox };  // adjacent pairs (llama) / split halves (qwen)

struct ModelSpec {
  std::string arch;  // "llama", "qwen2", "qwen3", "qwen3moe"
  std::string name;  // general.name, if any
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim_k = 0;  // attention.key_length
  int64_t head_dim_v = 0;  // attention.value_length
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  int64_t n_rot = 0;  // rotated dimensions per head
  float rms_eps = 1e-6f;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // linear scaling: position multiplier
  RopeStyle rope_style = RopeStyle::Normal;
  // Mixture of experts (qwen3moe): 0 experts means a dense feed-forward.
  int64_t n_expert = 0;
  int64_t n_expert_used = 0;
  int64_t n_ff_expert = 0;  // expert_feed_forward_length
};

// Reads and validates the hyper-parameters of a supported architecture.
// Throws volga::Error for an unknown architecture or missing/invalid keys.
ModelSpec read_model_spec(const GgufFile& file);

}  // namespace volga
