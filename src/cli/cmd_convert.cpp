// volga convert HF_DIR -o OUT.gguf [--type T]: a Hugging Face checkpoint
// (config.json, safetensors, tokenizer.json) to GGUF.
//
// Tensor names, Q/K row order and metadata keys follow llama.cpp's converter,
// so the files load in llama.cpp as well as in Volga.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "cli/commands.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "tensor/quant.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace volga::cli {

namespace {

// llama.cpp's general.file_type values for the uniform types we write.
std::optional<uint32_t> file_type_id(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 7;
    case DType::Q4_K: return 14;  // Q4_K_S: every matrix Q4_K
    case DType::Q5_K: return 16;  // Q5_K_S
    case DType::Q6_K: return 18;
    case DType::Q2_K: return 10;  // Q2_K
    case DType::Q3_K: return 11;  // Q3_K_S: every matrix Q3_K
    case DType::BF16: return 32;
    default: return std::nullopt;
  }
}

std::vector<uint8_t> encode_rows(DType type, const float* data, int64_t cols, int64_t rows) {
  const int64_t rb = row_bytes(type, cols);
  std::vector<uint8_t> out(static_cast<size_t>(rb * rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(type, data + r * cols, out.data() + r * rb, cols);
  return out;
}

// A progress line redrawn in place on a terminal; nothing per tensor otherwise.
void progress(bool quiet, size_t done, size_t total, const std::string& what) {
  if (quiet || !isatty(STDERR_FILENO)) return;
  std::fprintf(stderr, "\r[%3zu/%3zu] %-60.60s", done, total, what.c_str());
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

struct HfArch {
  std::string gguf;     // llama | qwen2 | qwen3
  bool permute_qk;      // llama: HF rotate-half order -> GGUF interleaved order
};

HfArch hf_arch(const nlohmann::json& cfg, const std::string& path) {
  std::string a;
  if (cfg.contains("architectures") && cfg["architectures"].is_array() && !cfg["architectures"].empty())
    a = cfg["architectures"][0].get<std::string>();
  if (a == "LlamaForCausalLM" || a == "MistralForCausalLM") return {"llama", true};
  if (a == "Qwen2ForCausalLM") return {"qwen2", false};
  if (a == "Qwen3ForCausalLM") return {"qwen3", false};
  throw Error("'" + path + "': architecture '" + (a.empty() ? "(none)" : a) +
              "' cannot be converted yet (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
              "Qwen3ForCausalLM)");
}

// Reorders the rows of a Q or K projection from Hugging Face's rotate-half
// layout to the interleaved pairs of GGUF's llama rope (convert_hf_to_gguf's permute).
std::vector<float> permute_rows(const std::vector<float>& w, int64_t n_head, int64_t head_dim, int64_t cols) {
  std::vector<float> out(w.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t dst = h * head_dim + i * 2 + j, src = h * head_dim + j * half + i;
        std::copy_n(w.begin() + src * cols, cols, out.begin() + dst * cols);
      }
  return out;
}

int64_t cfg_int(const nlohmann::json& cfg, const char* key, const std::string& path, std::optional<int64_t> def = {}) {
  if (cfg.contains(key) && cfg[key].is_number_integer()) return cfg[key].get<int64_t>();
  if (def) return *def;
  throw Error("'" + path + "': config.json has no integer '" + key + "'");
}

int convert(const std::string& dir, const std::string& out, const std::string& type_name, std::string name,
            bool quiet) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw Error("'" + dir + "' is not a folder (expected a Hugging Face model folder)");
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  const nlohmann::json cfg = read_json_file(cfg_path);
  const HfArch arch = hf_arch(cfg, cfg_path);
  const DType want = parse_dtype(type_name);
  if (!file_type_id(want)) throw Error("--type " + type_name + " is not a conversion target (f32 f16 bf16 q8_0 q6_k q5_k q4_k q3_k q2_k q4_0)");
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null())
    throw Error("'" + cfg_path + "': rope_scaling is not supported by the converter yet");

  const int64_t E = cfg_int(cfg, "hidden_size", cfg_path), L = cfg_int(cfg, "num_hidden_layers", cfg_path);
  const int64_t H = cfg_int(cfg, "num_attention_heads", cfg_path);
  const int64_t Hkv = cfg_int(cfg, "num_key_value_heads", cfg_path, H);
  const int64_t FF = cfg_int(cfg, "intermediate_size", cfg_path);
  const int64_t hd = cfg_int(cfg, "head_dim", cfg_path, E / H);
  const int64_t n_ctx = cfg_int(cfg, "max_position_embeddings", cfg_path, 4096);
  const double eps = cfg.value("rms_norm_eps", 1e-6), theta = cfg.value("rope_theta", 10000.0);
  const bool tied = cfg.value("tie_word_embeddings", false);
  if (E <= 0 || L <= 0 || H <= 0 || Hkv <= 0 || H % Hkv != 0 || hd <= 0 || hd % 2 != 0 || FF <= 0)
    throw Error("'" + cfg_path + "': inconsistent hyper-parameters");

  const auto st = SafetensorsModel::open(dir);
  VocabData v = read_vocab_tokenizer_json((fs::path(dir) / "tokenizer.json").string());
  const SafetensorsTensor* embd = st->find("model.embed_tokens.weight");
  if (!embd || embd->shape.size() != 2 || embd->shape[1] != E)
    throw Error("'" + dir + "': model.embed_tokens.weight is missing or not [vocab, hidden_size]");
  const int64_t n_vocab = embd->shape[0];
  if (static_cast<int64_t>(v.tokens.size()) > n_vocab)
    throw Error("tokenizer has " + std::to_string(v.tokens.size()) + " tokens but the embedding only " +
                std::to_string(n_vocab) + " rows");
  while (static_cast<int64_t>(v.tokens.size()) < n_vocab) {
    v.tokens.push_back("[PAD" + std::to_string(v.tokens.size()) + "]");
    v.types.push_back(TokenType::Unused);
  }
  if (name.empty()) name = fs::path(dir).filename().string();
  if (name.empty()) name = fs::path(dir).parent_path().filename().string();

  GgufWriter w;
  const std::string& a = arch.gguf;
  w.set_string("general.architecture", a);
  w.set_string("general.name", name);
  w.set_u32("general.file_type", *file_type_id(want));
  w.set_u32(a + ".context_length", static_cast<uint32_t>(n_ctx));
  w.set_u32(a + ".embedding_length", static_cast<uint32_t>(E));
  w.set_u32(a + ".block_count", static_cast<uint32_t>(L));
  w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(FF));
  w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(H));
  w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(Hkv));
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(eps));
  w.set_f32(a + ".rope.freq_base", static_cast<float>(theta));
  if (a == "qwen3" || hd * H != E) {
    w.set_u32(a + ".attention.key_length", static_cast<uint32_t>(hd));
    w.set_u32(a + ".attention.value_length", static_cast<uint32_t>(hd));
  }
  if (a == "llama") w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(hd));
  w.set_u32(a + ".vocab_size", static_cast<uint32_t>(n_vocab));
  write_vocab_gguf(w, v);

  // HF name -> (GGUF name, expected shape [rows, cols] or [n], permute heads).
  struct Plan {
    std::string hf, gguf;
    std::vector<int64_t> shape;
    int64_t permute_heads = 0;
  };
  std::vector<Plan> plan = {{"model.embed_tokens.weight", "token_embd.weight", {n_vocab, E}},
                            {"model.norm.weight", "output_norm.weight", {E}}};
  if (!tied) plan.push_back({"lm_head.weight", "output.weight", {n_vocab, E}});
  for (int64_t i = 0; i < L; ++i) {
    const std::string h = "model.layers." + std::to_string(i) + ".", g = "blk." + std::to_string(i) + ".";
    const int64_t pq = arch.permute_qk ? H : 0, pk = arch.permute_qk ? Hkv : 0;
    plan.push_back({h + "input_layernorm.weight", g + "attn_norm.weight", {E}});
    plan.push_back({h + "self_attn.q_proj.weight", g + "attn_q.weight", {H * hd, E}, pq});
    plan.push_back({h + "self_attn.k_proj.weight", g + "attn_k.weight", {Hkv * hd, E}, pk});
    plan.push_back({h + "self_attn.v_proj.weight", g + "attn_v.weight", {Hkv * hd, E}});
    plan.push_back({h + "self_attn.o_proj.weight", g + "attn_output.weight", {E, H * hd}});
    if (a == "qwen2") {
      plan.push_back({h + "self_attn.q_proj.bias", g + "attn_q.bias", {H * hd}});
      plan.push_back({h + "self_attn.k_proj.bias", g + "attn_k.bias", {Hkv * hd}});
      plan.push_back({h + "self_attn.v_proj.bias", g + "attn_v.bias", {Hkv * hd}});
    }
    if (a == "qwen3") {
      plan.push_back({h + "self_attn.q_norm.weight", g + "attn_q_norm.weight", {hd}});
      plan.push_back({h + "self_attn.k_norm.weight", g + "attn_k_norm.weight", {hd}});
    }
    plan.push_back({h + "post_attention_layernorm.weight", g + "ffn_norm.weight", {E}});
    plan.push_back({h + "mlp.gate_proj.weight", g + "ffn_gate.weight", {FF, E}});
    plan.push_back({h + "mlp.up_proj.weight", g + "ffn_up.weight", {FF, E}});
    plan.push_back({h + "mlp.down_proj.weight", g + "ffn_down.weight", {E, FF}});
  }
  std::set<std::string> used;
  for (size_t k = 0; k < plan.size(); ++k) {
    const Plan& p = plan[k];
    const SafetensorsTensor* t = st->find(p.hf);
    if (!t) throw Error("'" + dir + "': tensor '" + p.hf + "' is missing");
    if (t->shape != p.shape) {
      std::string s;
      for (int64_t d : t->shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
      throw Error("'" + dir + "': tensor '" + p.hf + "' has shape [" + s + "], config.json implies otherwise");
    }
    used.insert(p.hf);
    progress(quiet, k + 1, plan.size(), p.gguf);
    std::vector<float> data = t->to_f32();
    if (p.shape.size() == 1) {
      std::vector<uint8_t> bytes(data.size() * 4);
      std::memcpy(bytes.data(), data.data(), bytes.size());
      w.add_tensor(p.gguf, DType::F32, {p.shape[0]}, std::move(bytes));
      continue;
    }
    const int64_t rows = p.shape[0], cols = p.shape[1];
    if (p.permute_heads) data = permute_rows(data, p.permute_heads, hd, cols);
    const DType type = type_for_rows(want, cols);
    w.add_tensor(p.gguf, type, {cols, rows}, encode_rows(type, data.data(), cols, rows));
  }
  for (const auto& [n, t] : st->tensors())
    if (!used.count(n) && n.find("rotary_emb.inv_freq") == std::string::npos && !(tied && n == "lm_head.weight"))
      throw Error("'" + dir + "': tensor '" + n + "' is not used by the " + a + " architecture (unsupported variant?)");
  w.write(out);
  if (!quiet) std::fprintf(stderr, "wrote %s (%s, %s, %zu tensors)\n", out.c_str(), a.c_str(), dtype_name(want), plan.size());
  return 0;
}

}  // namespace

Command add_convert(CLI::App& app) {
  struct Opt {
    std::string dir, out, type = "f16", name;
    bool quiet = false;
  };
  auto o = std::make_shared<Opt>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) to GGUF");
  cmd->add_option("folder", o->dir, "Hugging Face model folder")->required();
  cmd->add_option("-o,--out", o->out, "Output GGUF file")->required();
  cmd->add_option("--type", o->type, "Matrix type: f32 f16 bf16 q8_0 q6_k q5_k q4_k q3_k q2_k q4_0 (norms stay f32)")
      ->capture_default_str();
  cmd->add_option("--name", o->name, "general.name to record (default: the folder name)");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  return [o]() { return convert(o->dir, o->out, o->type, o->name, o->quiet); };
}

}  // namespace volga::cli
