#include <cmath>

#include "format/gguf.h"
#include "model/model.h"
#include "model/spec.h"
#include "util/error.h"

namespace volga {

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> archs = {"llama", "qwen2", "qwen3", "qwen3moe"};
  return archs;
}

namespace {
int64_t positive(const GgufFile& f, const std::string& key, int64_t v) {
  if (v <= 0 || v > (int64_t{1} << 31))
    throw Error("GGUF '" + f.path() + "': metadata '" + key + "' = " + std::to_string(v) +
                " is out of range");
  return v;
}
}  // namespace

ModelSpec read_model_spec(const GgufFile& f) {
  ModelSpec s;
  s.arch = f.get_string("general.architecture");
  bool known = false;
  for (const auto& a : supported_architectures()) known |= a == s.arch;
  if (!known) {
    std::string list;
    for (const auto& a : supported_architectures()) list += (list.empty() ? "" : ", ") + a;
    throw Error("GGUF '" + f.path() + "': unknown architecture '" + s.arch +
                "' (supported: " + list + ")");
  }
  const std::string p = s.arch + ".";
  s.name = f.get_string_opt("general.name").value_or("");
  auto req = [&](const char* k) { return positive(f, p + k, f.get_int(p + k)); };
  s.n_embd = req("embedding_length");
  s.n_layer = req("block_count");
  s.n_ff = s.arch == "qwen3moe" ? f.get_int_opt(p + "feed_forward_length").value_or(0)
                                : req("feed_forward_length");
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
  std::string scaling = f.get_string_opt(p + "rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    double factor = f.get_float_opt(p + "rope.scaling.factor").value_or(1.0);
    if (!(factor > 0)) throw Error("GGUF '" + f.path() + "': rope.scaling.factor must be positive");
    s.rope_freq_scale = static_cast<float>(1.0 / factor);
  } else if (scaling != "none" && scaling != "llama3") {
    // llama3 scaling arrives as the rope_freqs tensor; YaRN lands with DeepSeek.
    throw Error("GGUF '" + f.path() + "': rope scaling type '" + scaling + "' is not supported yet");
  }
  s.rope_style = s.arch == "llama" ? RopeStyle::Normal : RopeStyle::Neox;
  const auto n_expert = f.get_int_opt(p + "expert_count");
  if (s.arch == "qwen3moe") {
    s.n_expert = req("expert_count");
    s.n_expert_used = req("expert_used_count");
    s.n_ff_expert = req("expert_feed_forward_length");
    if (s.n_expert_used > s.n_expert || s.n_expert > 4096)
      throw Error("GGUF '" + f.path() + "': expert_used_count " + std::to_string(s.n_expert_used) +
                  " / expert_count " + std::to_string(s.n_expert) + " are inconsistent");
  } else if (n_expert && *n_expert > 0) {
    throw Error("GGUF '" + f.path() + "': mixture-of-experts " + s.arch + " models are not supported yet");
  }
  // Vocabulary size comes from the embedding tensor (checked by the loader).
  const TensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb) throw Error("GGUF '" + f.path() + "': missing tensor 'token_embd.weight'");
  s.n_vocab = emb->ne[1];
  return s;
}

}  // namespace volga
