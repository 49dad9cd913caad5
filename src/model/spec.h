// ModelSpec — architecture hyper-parameters read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

namespace volga {

class GgufFile;

enum class RopeStyle { Normal, Neox };  // adjacent pairs (llama, deepseek2) / split halves (qwen)

// The architectures Volga loads; their facts are rows of model/arch.h's table.
enum class Arch { Llama, Qwen2, Qwen3, Qwen3Moe, Deepseek2, Qwen35, Qwen35Moe, Bert };
struct ArchTraits;

// How a sequence's token states become one vector (GGUF <arch>.pooling_type,
// llama.cpp's numbering). Rank: the first token's state through the
// classification head (cross-encoder rerankers).
enum class Pooling { None = 0, Mean = 1, Cls = 2, Last = 3, Rank = 4, Unspecified = -1 };
const char* pooling_name(Pooling p);
// "none", "mean", "cls", "last", "rank"; throws volga::Error for another name.
Pooling parse_pooling(const std::string& name);

// How routed-expert scores are computed from the router logits (GGUF expert_gating_func).
enum class ExpertGating { Softmax = 1, Sigmoid = 2 };

struct ModelSpec {
  Arch arch = Arch::Llama;
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
  float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor (linear and YaRN)
  RopeStyle rope_style = RopeStyle::Normal;
  // YaRN (rope.scaling.type = yarn): ext_factor 0 means no YaRN blending.
  float rope_ext_factor = 0.0f;
  int64_t rope_n_ctx_orig = 0;  // rope.scaling.original_context_length
  float yarn_beta_fast = 32.0f, yarn_beta_slow = 1.0f;
  float yarn_log_mul = 0.0f;  // deepseek2: mscale_all_dim (GGUF stores 0.1 x it)
  // Multiplier of RoPE's cos/sin (YaRN's attention factor, as llama.cpp applies it).
  float rope_mscale = 1.0f;
  // Scale of q.k before the softmax; 1/sqrt(head size) unless YaRN changes it.
  float attn_scale = 0.0f;
  // Mixture of experts (qwen3moe, deepseek2): 0 experts means a dense feed-forward.
  int64_t n_expert = 0;
  int64_t n_expert_used = 0;
  int64_t n_ff_expert = 0;         // expert_feed_forward_length
  int64_t n_expert_shared = 0;     // shared experts, always active (deepseek2)
  int64_t n_layer_dense_lead = 0;  // leading layers with a dense feed-forward (deepseek2)
  int64_t n_expert_groups = 0;     // group-limited routing: groups, and groups kept per token
  int64_t n_group_used = 0;
  ExpertGating expert_gating = ExpertGating::Softmax;
  bool expert_weights_norm = true;    // renormalise the top-k weights to sum to one
  float expert_weights_scale = 0.0f;  // multiply the routed weights (0 or 1: unchanged)
  // Multi-head latent attention (deepseek2). Per head: q/k = nope + n_rot dims, v = head_dim_v_mla.
  int64_t n_lora_q = 0;  // 0: plain attn_q (lite models)
  int64_t n_lora_kv = 0;
  int64_t head_dim_k_mla = 0, head_dim_v_mla = 0;
  bool mla_split_kv_b = false;  // attn_k_b/attn_v_b in the file (else the older attn_kv_b)
  // Gated DeltaNet linear attention (qwen35, qwen35moe; 0 state size: none).
  // Layer i is linear attention unless (i + 1) % full_attn_interval == 0.
  int64_t ssm_d_conv = 0;     // ssm.conv_kernel: causal convolution width
  int64_t ssm_d_state = 0;    // ssm.state_size: key and value size per head
  int64_t ssm_n_group = 0;    // ssm.group_count: key heads
  int64_t ssm_dt_rank = 0;    // ssm.time_step_rank: value heads (a multiple of the key heads)
  int64_t full_attn_interval = 0;
  int64_t rope_sections[4] = {0, 0, 0, 0};  // rope.dimension_sections (text: every pair uses the position)
  int64_t n_ff_shexp = 0;     // expert_shared_feed_forward_length (qwen35moe, sigmoid-gated shared expert)
  // Embedding models. pooling: the file's <arch>.pooling_type (Unspecified when absent).
  Pooling pooling = Pooling::Unspecified;
  bool causal = true;        // attention.causal (encoders: false, every token sees its whole sequence)
  float norm_eps = 1e-12f;   // attention.layer_norm_epsilon (LayerNorm of the encoders)
  int64_t n_cls_out = 0;     // outputs of the classification head (rank models; 0: none)

  const ArchTraits& traits() const;
  const char* arch_name() const;  // general.architecture: "llama", "qwen2", ...
  bool is_mla() const { return n_lora_kv > 0; }
  bool is_moe_layer(int64_t layer) const { return n_expert > 0 && layer >= n_layer_dense_lead; }
  bool is_hybrid() const { return ssm_d_state > 0; }
  bool is_recurrent_layer(int64_t layer) const {
    return is_hybrid() && (layer + 1) % full_attn_interval != 0;
  }
  // Layers with a KV cache (hybrid models: the full-attention layers only),
  // and a layer's index among them.
  int64_t n_kv_layer() const { return is_hybrid() ? n_layer / full_attn_interval : n_layer; }
  int64_t kv_layer_index(int64_t layer) const { return is_hybrid() ? layer / full_attn_interval : layer; }
  // Gated DeltaNet sizes: channels of the causal convolution (q, k, v), and
  // floats of one sequence's recurrent state over all layers (the last
  // d_conv - 1 convolution inputs and one d_state x d_state matrix per value head).
  int64_t ssm_conv_channels() const { return 2 * ssm_n_group * ssm_d_state + ssm_dt_rank * ssm_d_state; }
  int64_t ssm_layer_state_floats() const {
    return (ssm_d_conv - 1) * ssm_conv_channels() + ssm_dt_rank * ssm_d_state * ssm_d_state;
  }
  int64_t recurrent_state_floats() const {
    return is_hybrid() ? (n_layer - n_kv_layer()) * ssm_layer_state_floats() : 0;
  }
  // KV cache floats per position per layer. MLA caches only the normalised
  // latent and the rotated key part; values are read from the latent.
  int64_t kv_key_width() const { return is_mla() ? n_lora_kv + n_rot : n_head_kv * head_dim_k; }
  int64_t kv_value_width() const { return is_mla() ? 0 : n_head_kv * head_dim_v; }
};

// For architectures' hyper-parameter hooks: v when 0 < v <= 2^31, else an
// error naming the key; an error about the file.
int64_t spec_positive(const GgufFile& file, const std::string& key, int64_t v);
[[noreturn]] void spec_error(const GgufFile& file, const std::string& what);

// Reads and validates the hyper-parameters of a supported architecture.
// Throws volga::Error for an unknown architecture or missing/invalid keys.
ModelSpec read_model_spec(const GgufFile& file);

}  // namespace volga
