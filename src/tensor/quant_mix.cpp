#include "tensor/quant_mix.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>

#include "util/error.h"

namespace volga {

const std::vector<QuantMix>& quant_mixes() {
  // file_type values are llama.cpp's llama_ftype, so other tools name the files alike.
  static const std::vector<QuantMix> mixes = {
      {"F32", 0, "f32", "32-bit floats (no quantization)"},
      {"F16", 1, "f16", "16-bit floats"},
      {"BF16", 32, "bf16", "bfloat16"},
      {"Q8_0", 7, "q8_0", "8.5 bits per weight, nearly lossless"},
      {"Q6_K", 18, "q6_k", "6.56 bpw"},
      {"Q5_K_M", 17, "q5_k", "q5_k, value projections and some down projections q6_k"},
      {"Q5_K_S", 16, "q5_k", "q5_k"},
      {"Q5_1", 9, "q5_1", "legacy 5-bit with minimum"},
      {"Q5_0", 8, "q5_0", "legacy 5-bit"},
      {"Q4_K_M", 15, "q4_k", "q4_k, value projections and some down projections q6_k (the usual choice)"},
      {"Q4_K_S", 14, "q4_k", "q4_k, first layers' value and down projections q5_k"},
      {"Q4_1", 3, "q4_1", "legacy 4-bit with minimum"},
      {"Q4_0", 2, "q4_0", "legacy 4-bit"},
      {"IQ4_XS", 30, "iq4_xs", "4.25 bpw non-linear"},
      {"IQ4_NL", 25, "iq4_nl", "4.5 bpw non-linear, 32-element blocks"},
      {"Q3_K_L", 13, "q3_k", "q3_k, value/output/down projections q5_k"},
      {"Q3_K_M", 12, "q3_k", "q3_k, value and output projections q4_k/q5_k, down projections q4_k"},
      {"Q3_K_S", 11, "q3_k", "q3_k"},
      {"IQ3_M", 27, "iq3_s", "3.66 bpw"},
      {"IQ3_S", 26, "iq3_s", "3.44 bpw"},
      {"IQ3_XS", 22, "iq3_s", "3.3 bpw"},
      {"IQ3_XXS", 23, "iq3_xxs", "3.06 bpw (importance matrix recommended)"},
      {"Q2_K", 10, "q2_k", "q2_k, value/output/down projections q3_k/q4_k"},
      {"Q2_K_S", 21, "q2_k", "q2_k (needs an importance matrix)"},
      {"IQ2_M", 29, "iq2_s", "2.7 bpw (needs an importance matrix)"},
      {"IQ2_S", 28, "iq2_xs", "2.5 bpw (needs an importance matrix)"},
      {"IQ2_XS", 20, "iq2_xs", "2.31 bpw (needs an importance matrix)"},
      {"IQ2_XXS", 19, "iq2_xxs", "2.06 bpw (needs an importance matrix)"},
      {"IQ1_M", 31, "iq1_m", "1.75 bpw (needs an importance matrix)"},
      {"IQ1_S", 24, "iq1_s", "1.56 bpw (needs an importance matrix)"},
  };
  return mixes;
}

const std::vector<std::pair<const char*, const char*>>& quant_mix_aliases() {
  // llama-quantize's own aliases: a K-quant type name without a size letter is the _M mix.
  static const std::vector<std::pair<const char*, const char*>> aliases = {
      {"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"}, {"Q5_K", "Q5_K_M"}};
  return aliases;
}

const QuantMix* find_quant_mix(const std::string& name) {
  std::string up = name;
  for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& [alias, target] : quant_mix_aliases())
    if (up == alias) up = target;
  for (const QuantMix& m : quant_mixes())
    if (up == m.name) return &m;
  return nullptr;
}

std::optional<uint32_t> pure_file_type(DType type) {
  switch (type) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::BF16: return 32;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q8_0: return 7;
    case DType::Q4_K: return 14;  // every matrix q4_k: llama.cpp calls such a file Q4_K_S
    case DType::Q5_K: return 16;
    case DType::Q6_K: return 18;
    case DType::IQ4_NL: return 25;
    case DType::IQ4_XS: return 30;
    case DType::IQ2_XXS: return 19;
    case DType::IQ2_XS: return 20;
    case DType::IQ3_XXS: return 23;
    case DType::IQ1_S: return 24;
    case DType::IQ3_S: return 26;
    case DType::IQ2_S: return 28;
    case DType::IQ1_M: return 31;
    default: return std::nullopt;
  }
}

namespace {

enum class Role { TokenEmbd, Output, AttnQ, AttnK, AttnV, AttnQkv, AttnKvB, AttnOutput, FfnUp, FfnGate, FfnDown, Other };

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

Role role_of(const std::string& name) {
  if (name == "output.weight") return Role::Output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Role::TokenEmbd;
  if (contains(name, "attn_qkv.weight")) return Role::AttnQkv;
  if (contains(name, "attn_kv_b.weight")) return Role::AttnKvB;
  if (contains(name, "attn_v.weight")) return Role::AttnV;
  if (contains(name, "attn_k.weight")) return Role::AttnK;
  if (contains(name, "attn_q.weight")) return Role::AttnQ;
  if (contains(name, "attn_output.weight")) return Role::AttnOutput;
  if (contains(name, "ffn_up")) return Role::FfnUp;
  if (contains(name, "ffn_gate")) return Role::FfnGate;
  if (contains(name, "ffn_down")) return Role::FfnDown;
  return Role::Other;
}

bool value_like(Role r) { return r == Role::AttnV || r == Role::AttnQkv || r == Role::AttnKvB; }

bool ends_with(const std::string& s, const char* tail) {
  const size_t n = std::char_traits<char>::length(tail);
  return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}

// Matrices a mix changes: 2-D or 3-D weights other than norms, routers,
// convolutions and position/type embeddings.
bool quantizable(const MixTensor& t) {
  // ggml's dimension count: trailing sizes of 1 do not count ({E, 1} is 1-D).
  size_t dims = 1;
  for (size_t i = 0; i < t.ne.size(); ++i)
    if (t.ne[i] > 1) dims = i + 1;
  if (dims < 2 || dims > 3) return false;
  const std::string& n = t.name;
  if (!ends_with(n, "weight") || contains(n, "_norm.weight")) return false;
  for (const char* keep : {"ffn_gate_inp.weight", "ssm_conv1d", "position_embd.weight",
                           "token_types.weight", "attn_rel_b.weight"})
    if (contains(n, keep)) return false;
  return true;
}

// Layer number of "blk.N....", or -1.
int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// Every other layer in the middle, and the first and last eighth.
bool more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// llama_tensor_get_type's choices, mix by mix. Counters advance in the order
// llama.cpp visits tensors: by layer, then by name.
class Rules {
 public:
  Rules(const QuantMix& mix, const MixModel& m, bool imatrix, int64_t n_value_like)
      : f_(mix.name), m_(m), imatrix_(imatrix), n_v_(n_value_like) {
    gqa_ = m.n_head_kv > 0 ? m.n_head / m.n_head_kv : 1;
  }

  std::string choose(const MixTensor& t, Role role, const std::string& base, bool tied) {
    const bool low_iq = is("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M");
    if (role == Role::Output || (tied && role == Role::TokenEmbd)) {
      const int64_t block = traits(parse_dtype(base)).block_size;
      if (t.ne[0] % block != 0) return "q8_0";
      if (is("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M") || is("IQ1_M")) return "q5_k";
      return base == "q8_0" ? base : "q6_k";
    }
    if (role == Role::TokenEmbd) {
      if (is("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M")) return "q2_k";
      if (is("IQ2_S", "IQ2_M", "IQ3_XXS")) return "iq3_s";
      return base;
    }
    std::string type = base;
    if (low_iq) {
      if (value_like(role)) {
        type = gqa_ >= 4 || m_.n_expert >= 4 ? "q4_k" : is("IQ2_S", "IQ2_M") ? "iq3_s" : "q2_k";
        ++i_v_;
      } else if (m_.n_expert == 8 && role == Role::AttnK) {
        type = "q4_k";
      } else if (role == Role::FfnDown) {
        if (i_down_ < m_.n_layer / 8) type = is("IQ2_S", "IQ2_M") ? "iq3_s" : "q2_k";
        ++i_down_;
      } else if (role == Role::AttnOutput) {
        if (m_.n_expert == 8) type = "q5_k";
        else if (is("IQ1_S", "IQ1_M")) type = "iq2_xxs";
        else if (is("IQ2_S", "IQ2_M")) type = "iq3_s";
      }
      return type;
    }
    if (value_like(role)) {
      if (is("Q2_K")) type = gqa_ >= 4 ? "q4_k" : "q3_k";
      else if (is("Q2_K_S") && gqa_ >= 4) type = "q4_k";
      else if (is("IQ3_XXS")) type = gqa_ >= 4 ? "q4_k" : !imatrix_ ? "iq3_s" : "iq3_xxs";
      else if (is("IQ3_XS", "IQ3_S") && gqa_ >= 4) type = "q4_k";
      else if (is("IQ3_M")) type = "q4_k";
      else if (is("Q3_K_M")) type = i_v_ < 2 ? "q5_k" : "q4_k";
      else if (is("Q3_K_L")) type = "q5_k";
      else if (is("IQ4_NL", "IQ4_XS") && gqa_ >= 4) type = "q5_k";
      else if (is("Q4_K_M", "Q5_K_M") && more_bits(i_v_, n_v_)) type = "q6_k";
      else if (is("Q4_K_S") && i_v_ < 4) type = "q5_k";
      if (m_.n_expert == 8) type = "q8_0";
      ++i_v_;
    } else if (role == Role::AttnK) {
      if (m_.n_expert == 8) type = "q8_0";
      else if (is("IQ3_XS")) type = "iq3_xxs";
      else if (is("IQ3_XXS")) type = "iq2_s";
    } else if (role == Role::AttnQ) {
      if (is("IQ3_XS")) type = "iq3_xxs";
      else if (is("IQ3_XXS")) type = "iq2_s";
    } else if (role == Role::FfnDown) {
      const int64_t n = m_.n_layer;
      const int64_t i = layer(t, i_down_);
      if (is("Q2_K")) type = "q3_k";
      else if (is("Q2_K_S")) { if (i < n / 8) type = "q4_k"; }
      else if (is("IQ3_XXS") && !imatrix_) type = i < n / 8 ? "q4_k" : "q3_k";
      else if (is("Q3_K_M")) type = i < n / 16 ? "q5_k" : "q4_k";
      else if (is("IQ3_M") && (i < n / 8 || (m_.n_expert == 8 && more_bits(i, n)))) type = "q4_k";
      else if (is("Q3_K_L")) type = "q5_k";
      else if (is("Q4_K_M")) { if (more_bits(i, n)) type = "q6_k"; }
      else if (i < n / 8 && is("IQ4_NL", "IQ4_XS") && !imatrix_) type = "q5_k";
      else if (is("Q5_K_M") && more_bits(i, n)) type = "q6_k";
      else if (is("Q4_K_S") && i < n / 8) type = "q5_k";
      else if (is("Q4_0", "Q5_0") && imatrix_ && i < n / 8) type = is("Q4_0") ? "q4_1" : "q5_1";
      ++i_down_;
    } else if (role == Role::AttnOutput) {
      if (m_.n_expert == 8) {
        if (is("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL") || is("Q4_K_S", "Q4_K_M", "IQ3_S", "IQ3_M", "IQ4_XS"))
          type = "q5_k";
      } else {
        if (is("Q2_K")) type = "q3_k";
        else if (is("IQ3_XXS")) type = "iq3_s";
        else if (is("Q3_K_M")) type = "q4_k";
        else if (is("Q3_K_L")) type = "q5_k";
        else if (is("IQ3_M")) type = "q4_k";
      }
    } else if (role == Role::AttnQkv) {
      if (is("Q3_K_M", "Q3_K_L", "IQ3_M")) type = "q4_k";
      else if (is("Q4_K_M")) type = "q5_k";
      else if (is("Q5_K_M")) type = "q6_k";
    } else if (role == Role::FfnGate || role == Role::FfnUp) {
      int64_t& counter = role == Role::FfnGate ? i_gate_ : i_up_;
      const int64_t n = m_.n_layer, i = layer(t, counter);
      if (is("IQ3_XS") && i >= n / 8 && i < 7 * n / 8) type = "iq3_xxs";
      ++counter;
    }
    return type;
  }

 private:
  template <typename... Names>
  bool is(Names... names) const {
    return ((f_ == names) || ...);
  }
  // The layer a feed-forward rule looks at: the counter, or for MoE models
  // (whose expert tensors are not one per layer) the number in the name.
  int64_t layer(const MixTensor& t, int64_t counter) const {
    if (m_.n_expert <= 1) return counter;
    const int l = layer_of(t.name);
    if (l < 0 || l >= m_.n_layer) throw Error("cannot tell the layer of tensor " + t.name);
    return l;
  }

  std::string f_;
  MixModel m_;
  bool imatrix_;
  int64_t gqa_ = 1, n_v_ = 0;
  int64_t i_v_ = 0, i_down_ = 0, i_gate_ = 0, i_up_ = 0;
};

bool needs_imatrix(const std::string& name, DType type, const QuantMix& mix) {
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight" || name == "output.weight") return false;
  const std::string t = dtype_name(type);
  if (t == "iq3_xxs" || t == "iq2_xxs" || t == "iq2_xs" || t == "iq2_s" || t == "iq1_m" || t == "iq1_s") return true;
  return t == "q2_k" && std::string(mix.name) == "Q2_K_S";
}

DType type_named(const std::string& name, const QuantMix& mix, const std::string& tensor) {
  try {
    return parse_dtype(name);
  } catch (const Error&) {
    throw Error(std::string("the ") + mix.name + " mix puts " + tensor + " in type " + name +
                ", which this build of Volga cannot write yet (it writes " + supported_dtype_names() + ")");
  }
}

}  // namespace

std::vector<MixChoice> plan_quant_mix(const QuantMix& mix, const std::vector<MixTensor>& tensors,
                                      const MixModel& model, const MixOptions& options) {
  // llama.cpp's visiting order: tensors outside layers first, then layer by
  // layer, each sorted by name.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = layer_of(tensors[a].name), lb = layer_of(tensors[b].name);
    if (la != lb) return la < lb;
    return tensors[a].name < tensors[b].name;
  });
  bool tied = true;
  int64_t n_value_like = 0;
  for (const MixTensor& t : tensors) {
    if (t.name == "output.weight") tied = false;
    if (value_like(role_of(t.name))) ++n_value_like;
  }
  const DType base = type_named(mix.base_type, mix, "most matrices");
  const bool quantized_base = traits(base).block_size > 1;
  Rules rules(mix, model, options.has_imatrix, n_value_like);
  std::vector<MixChoice> out(tensors.size());
  for (size_t k : order) {
    const MixTensor& t = tensors[k];
    MixChoice& c = out[k];
    c.type = t.type;
    if (!quantizable(t)) continue;
    c.quantize = true;
    const Role role = role_of(t.name);
    if (options.token_embd_type && role == Role::TokenEmbd) {
      c.type = *options.token_embd_type;
    } else if (options.output_type && role == Role::Output) {
      c.type = *options.output_type;
    } else if (!quantized_base) {
      c.type = base;
    } else {
      std::string name = mix.base_type;
      if (options.output_type && tied && role == Role::TokenEmbd) {
        c.type = *options.output_type;
      } else {
        if (!options.pure) name = rules.choose(t, role, mix.base_type, tied);
        c.type = type_named(name, mix, t.name);
      }
      // A row that is not a whole number of the type's blocks: the type's
      // fallback (q4_k -> q5_0, iq2_xxs -> iq4_nl, ...), else f16.
      const DTypeTraits& tr = traits(c.type);
      if (t.ne[0] % tr.block_size != 0) {
        const DType fb = type_for_rows(c.type, t.ne[0]);
        c.fallback = std::to_string(t.ne[0]) + " columns are not a multiple of " + std::to_string(tr.block_size) +
                     " (" + dtype_name(c.type) + "'s block)";
        c.type = fb;
      }
    }
    if (t.ne[0] % traits(c.type).block_size != 0)
      throw Error("tensor " + t.name + " has " + std::to_string(t.ne[0]) + " columns, not a multiple of the " +
                  std::to_string(traits(c.type).block_size) + " that " + dtype_name(c.type) + " needs");
    c.needs_imatrix = needs_imatrix(t.name, c.type, mix);
  }
  return out;
}

}  // namespace volga
