#include <cmath>

#include "format/gguf.h"
#include "model/arch.h"
#include "model/model.h"
#include "model/spec.h"
#include "util/error.h"

namespace volga {

int64_t spec_positive(const GgufFile& f, const std::string& key, int64_t v) {
  if (v <= 0 || v > (int64_t{1} << 31))
    throw Error("GGUF '" + f.path() + "': metadata '" + key + "' = " + std::to_string(v) +
                " is out of range");
  return v;
}

void spec_error(const GgufFile& f, const std::string& what) { throw Error("GGUF '" + f.path() + "': " + what); }

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::None: return "none";
    case Pooling::Mean: return "mean";
    case Pooling::Cls: return "cls";
    case Pooling::Last: return "last";
    case Pooling::Rank: return "rank";
    case Pooling::Unspecified: break;
  }
  return "unspecified";
}

Pooling parse_pooling(const std::string& name) {
  for (Pooling p : {Pooling::None, Pooling::Mean, Pooling::Cls, Pooling::Last, Pooling::Rank})
    if (name == pooling_name(p)) return p;
  throw Error("unknown pooling '" + name + "' (none, mean, cls, last, rank)");
}

namespace {
int64_t positive(const GgufFile& f, const std::string& key, int64_t v) { return spec_positive(f, key, v); }
[[noreturn]] void bad(const GgufFile& f, const std::string& what) { spec_error(f, what); }

// RoPE scaling: linear or YaRN, with the attention factor as llama.cpp applies
// it (llama_context's yarn_attn_factor, and the deepseek2 graph's kq_scale).
void read_rope_scaling(const GgufFile& f, const std::string& p, ModelSpec& s) {
  const std::string type = f.get_string_opt(p + "rope.scaling.type").value_or("none");
  double rope_attn_factor = f.get_float_opt(p + "rope.scaling.attn_factor").value_or(1.0);
  if (!(rope_attn_factor > 0)) bad(f, "rope.scaling.attn_factor must be positive");
  if (s.traits().mla) {
    // The converter stores 0.1 * mscale_all_dim.
    s.yarn_log_mul = static_cast<float>(f.get_float_opt(p + "rope.scaling.yarn_log_multiplier").value_or(0.0) / 0.1);
  }
  double attn_factor = rope_attn_factor;  // multiplies cos/sin
  if (type == "linear" || type == "yarn") {
    const double factor = f.get_float_opt(p + "rope.scaling.factor").value_or(1.0);
    if (!(factor > 0) || factor > 1e6) bad(f, "rope.scaling.factor must be positive");
    s.rope_freq_scale = static_cast<float>(1.0 / factor);
  } else if (type != "none" && type != "llama3") {
    // llama3 scaling arrives as the rope_freqs tensor.
    bad(f, "rope scaling type '" + type + "' is not supported (none, linear, yarn, llama3)");
  }
  const double f_inv = 1.0 / s.rope_freq_scale;  // the scaling factor
  const double ln_f = std::log(f_inv);
  if (type == "yarn") {
    s.rope_ext_factor = static_cast<float>(f.get_float_opt(p + "rope.scaling.yarn_ext_factor").value_or(1.0));
    if (s.rope_ext_factor < 0) s.rope_ext_factor = 1.0f;  // negative: not set
    s.rope_n_ctx_orig = f.get_int_opt(p + "rope.scaling.original_context_length").value_or(s.n_ctx_train);
    if (s.rope_n_ctx_orig <= 0) bad(f, "rope.scaling.original_context_length must be positive");
    s.yarn_beta_fast = static_cast<float>(f.get_float_opt(p + "rope.scaling.yarn_beta_fast").value_or(32.0));
    s.yarn_beta_slow = static_cast<float>(f.get_float_opt(p + "rope.scaling.yarn_beta_slow").value_or(1.0));
    if (s.rope_ext_factor != 0) {
      auto mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
      const double L = s.yarn_log_mul;
      if (L != 0) {
        // DeepSeek: mscale == mscale_all_dim, so the rotation keeps unit length.
        const double m = (s.traits().mla && L != 1.0) ? L : 1.0;
        attn_factor = mscale(f_inv, m) / mscale(f_inv, L);
      } else {
        attn_factor = mscale(f_inv, 1.0);
      }
      attn_factor *= rope_attn_factor;
    }
  }
  s.rope_mscale = static_cast<float>(attn_factor);
  if (s.traits().mla) {
    // kq_scale = mscale^2 / sqrt(key size), mscale = attn factor * (1 + 0.1 * mscale_all_dim * ln factor).
    const double m = attn_factor * (1.0 + 0.1 * s.yarn_log_mul * ln_f);
    s.attn_scale = static_cast<float>(m * m / std::sqrt(static_cast<double>(s.head_dim_k_mla)));
  }
}

void read_experts(const GgufFile& f, const std::string& p, ModelSpec& s) {
  auto req = [&](const char* k) { return positive(f, p + k, f.get_int(p + k)); };
  s.n_expert = req("expert_count");
  s.n_expert_used = req("expert_used_count");
  s.n_ff_expert = req("expert_feed_forward_length");
  if (s.n_expert_used > s.n_expert || s.n_expert > 4096)
    bad(f, "expert_used_count " + std::to_string(s.n_expert_used) + " / expert_count " +
               std::to_string(s.n_expert) + " are inconsistent");
}

}  // namespace

ModelSpec read_model_spec(const GgufFile& f) {
  ModelSpec s;
  const std::string name = f.get_string("general.architecture");
  const ArchTraits* arch = find_architecture(name);
  if (!arch) {
    std::string list;
    for (const auto& a : supported_architectures()) list += (list.empty() ? "" : ", ") + a;
    throw Error("GGUF '" + f.path() + "': unknown architecture '" + name + "' (supported: " + list + ")");
  }
  s.arch = arch->arch;
  const std::string p = name + ".";
  s.name = f.get_string_opt("general.name").value_or("");
  auto req = [&](const char* k) { return positive(f, p + k, f.get_int(p + k)); };
  s.n_embd = req("embedding_length");
  s.n_layer = req("block_count");
  // Multi-token-prediction layers (DeepSeek-V3, GigaChat 3) are stored after
  // the decoder layers and are not part of the forward pass.
  const int64_t nextn = f.get_int_opt(p + "nextn_predict_layers").value_or(0);
  if (nextn < 0 || nextn >= s.n_layer) bad(f, "nextn_predict_layers is out of range");
  s.n_layer -= nextn;
  const bool moe_arch = arch->moe;
  s.n_ff = moe_arch ? f.get_int_opt(p + "feed_forward_length").value_or(0) : req("feed_forward_length");
  if (s.n_ff < 0 || s.n_ff > (int64_t{1} << 31)) bad(f, "feed_forward_length is out of range");
  // Each layer has several tensors: a block count beyond the file's tensors is corrupt
  // (and must not size any allocation).
  if (s.n_layer > static_cast<int64_t>(f.tensors().size()))
    throw Error("GGUF '" + f.path() + "': block_count " + std::to_string(s.n_layer) + " is more than the " +
                std::to_string(f.tensors().size()) + " tensors in the file can hold");
  s.n_head = req("attention.head_count");
  s.n_head_kv = positive(f, p + "attention.head_count_kv",
                         f.get_int_opt(p + "attention.head_count_kv").value_or(s.n_head));
  s.n_ctx_train = positive(f, p + "context_length", f.get_int_opt(p + "context_length").value_or(2048));
  if (s.n_head % s.n_head_kv != 0)
    throw Error("GGUF '" + f.path() + "': head_count " + std::to_string(s.n_head) +
                " is not a multiple of head_count_kv " + std::to_string(s.n_head_kv));
  int64_t default_head = s.n_embd / s.n_head;
  s.head_dim_k = positive(f, p + "attention.key_length",
                          f.get_int_opt(p + "attention.key_length").value_or(default_head));
  s.head_dim_v = positive(f, p + "attention.value_length",
                          f.get_int_opt(p + "attention.value_length").value_or(s.head_dim_k));
  s.n_rot = positive(f, p + "rope.dimension_count",
                     f.get_int_opt(p + "rope.dimension_count").value_or(s.head_dim_k));
  if (s.n_rot > s.head_dim_k || s.n_rot % 2 != 0)
    throw Error("GGUF '" + f.path() + "': rope.dimension_count " + std::to_string(s.n_rot) +
                " must be even and at most the head size " + std::to_string(s.head_dim_k));
  s.rms_eps = static_cast<float>(f.get_float_opt(p + "attention.layer_norm_rms_epsilon").value_or(1e-6));
  s.rope_freq_base = static_cast<float>(f.get_float_opt(p + "rope.freq_base").value_or(10000.0));
  if (!(s.rms_eps > 0) || !(s.rope_freq_base > 0))
    throw Error("GGUF '" + f.path() + "': rms epsilon and rope.freq_base must be positive");
  s.rope_style = arch->rope;
  const auto n_expert = f.get_int_opt(p + "expert_count");
  if (moe_arch) {
    read_experts(f, p, s);
  } else if (n_expert && *n_expert > 0) {
    bad(f, "mixture-of-experts " + name + " models are not supported yet");
  }
  if (const auto pooling = f.get_int_opt(p + "pooling_type")) {
    if (*pooling < 0 || *pooling > 4) bad(f, "pooling_type " + std::to_string(*pooling) + " is not 0..4");
    s.pooling = static_cast<Pooling>(*pooling);
  }
  if (arch->read_hparams) arch->read_hparams(f, p, s);
  read_rope_scaling(f, p, s);
  // Vocabulary size comes from the embedding tensor (checked by the loader).
  const TensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb) throw Error("GGUF '" + f.path() + "': missing tensor 'token_embd.weight'");
  s.n_vocab = emb->ne[1];
  return s;
}

}  // namespace volga
