#include "synth_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>

#include "format/gguf.h"
#include "model/spec.h"
#include "tensor/quant.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace volga::synth {

namespace {

struct Shape {
  int64_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx;
  bool tied;
  float rope_base, eps;
  int64_t n_expert = 0, n_expert_used = 0, n_ff_expert = 0;
  // deepseek2
  int64_t q_lora = 0, kv_lora = 0, rope_dim = 0, v_dim = 0, n_shared = 0, n_lead = 0, n_groups = 0, n_group_used = 0;
  bool sigmoid = false, norm = false;
  double scale = 0, yarn_factor = 0, mscale_all_dim = 1;
  // qwen35 / qwen35moe: Gated DeltaNet sizes, full-attention interval, rotated dims, shared expert
  int64_t d_conv = 0, d_state = 0, n_group = 0, dt_rank = 0, interval = 0, n_rot = 0, n_ff_shexp = 0;
};

// Qwen3.5: hybrid Gated DeltaNet / gated attention (sizes from the published configs).
Shape qwen35_preset(const std::string& arch, const std::string& name) {
  Shape s{};
  auto hybrid = [&](int64_t d_conv, int64_t d_state, int64_t n_group, int64_t dt_rank, int64_t interval, int64_t n_rot) {
    s.d_conv = d_conv; s.d_state = d_state; s.n_group = n_group; s.dt_rank = dt_rank; s.interval = interval;
    s.n_rot = n_rot;
  };
  if (arch == "qwen35moe") {
    if (name != "tiny") throw Error("shape preset '" + name + "' is not a qwen35moe shape (tiny)");
    // value heads != key heads (tiled head order), partial rotation, shared expert
    s = {256, 4, 4, 2, 64, 512, 4096, false, 1e7f, 1e-6f, 8, 2, 128};
    hybrid(4, 32, 2, 4, 4, 16);
    s.n_ff_shexp = 128;
    return s;
  }
  if (name == "tiny") {
    s = {256, 4, 4, 2, 64, 512, 4096, true, 1e7f, 1e-6f};
    hybrid(4, 32, 2, 4, 4, 16);
  } else if (name == "qwen3.5-0.8b") {
    s = {1024, 24, 8, 2, 256, 3584, 262144, true, 1e7f, 1e-6f};
    hybrid(4, 128, 16, 16, 4, 64);
  } else if (name == "qwen3.5-2b") {
    s = {2048, 24, 8, 2, 256, 6144, 262144, true, 1e7f, 1e-6f};
    hybrid(4, 128, 16, 16, 4, 64);
  } else {
    throw Error("shape preset '" + name + "' is not a qwen35 shape (tiny, qwen3.5-0.8b, qwen3.5-2b)");
  }
  return s;
}

Shape deepseek2_preset(const std::string& name) {
  Shape s{};
  if (name == "tiny") {  // every feature on: q_lora, shared expert, dense lead layer, sigmoid + bias
    s = {256, 3, 4, 4, 64, 512, 4096, false, 10000.f, 1e-6f, 8, 2, 128};
    s.q_lora = 128; s.kv_lora = 96; s.rope_dim = 32; s.v_dim = 48; s.n_shared = 1; s.n_lead = 1;
    s.sigmoid = true; s.norm = true; s.scale = 2.5;
  } else if (name == "gigachat3-10b-a1.8b") {  // GigaChat 3 Lightning (DeepSeek-V3 layout, no q_lora)
    s = {1536, 26, 32, 32, 128, 8960, 262144, false, 100000.f, 1e-6f, 64, 4, 1280};
    s.q_lora = 0; s.kv_lora = 512; s.rope_dim = 64; s.v_dim = 128; s.n_shared = 1; s.n_lead = 1;
    s.sigmoid = true; s.norm = true; s.scale = 1.0;
  } else if (name == "deepseek-v2-lite") {
    s = {2048, 27, 16, 16, 128, 10944, 163840, false, 10000.f, 1e-6f, 64, 6, 1408};
    s.q_lora = 0; s.kv_lora = 512; s.rope_dim = 64; s.v_dim = 128; s.n_shared = 2; s.n_lead = 1;
    s.sigmoid = false; s.norm = false; s.scale = 1.0; s.yarn_factor = 40; s.mscale_all_dim = 0.707;
  } else {
    throw Error("shape preset '" + name + "' is not a deepseek2 shape (tiny, gigachat3-10b-a1.8b, deepseek-v2-lite)");
  }
  return s;
}

Shape preset(const std::string& arch, const std::string& name) {
  if (arch == "deepseek2") return deepseek2_preset(name);
  if (arch == "qwen35" || arch == "qwen35moe") return qwen35_preset(arch, name);
  if (arch == "qwen3moe") {
    if (name == "tiny") return {256, 2, 4, 2, 128, 512, 4096, true, 1e6f, 1e-6f, 8, 2, 256};
    if (name == "qwen3-30b-a3b") return {2048, 48, 32, 4, 128, 6144, 40960, false, 1e6f, 1e-6f, 128, 8, 768};
    throw Error("shape preset '" + name + "' is not a qwen3moe shape (tiny, qwen3-30b-a3b)");
  }
  const bool qwen3 = arch == "qwen3";
  if (name == "tiny")  // k-quant friendly (rows of 256); qwen3 exercises key_length != n_embd/n_head
    return {256, 2, 4, 2, qwen3 ? 128 : 64, 512, 4096, arch != "llama", arch == "llama" ? 10000.f : 1e6f,
            arch == "llama" ? 1e-5f : 1e-6f};
  if (name == "qwen2-0.5b") return {896, 24, 14, 2, 64, 4864, 32768, true, 1e6f, 1e-6f};
  if (name == "qwen3-0.6b") return {1024, 28, 16, 8, 128, 3072, 40960, true, 1e6f, 1e-6f};
  if (name == "llama3-1b") return {2048, 16, 32, 8, 64, 8192, 131072, true, 500000.f, 1e-5f};
  if (name == "yandexgpt5-lite") return {4096, 32, 32, 8, 128, 14336, 32768, false, 500000.f, 1e-6f};
  throw Error("unknown shape preset '" + name + "'");
}

// ---------------------------------------------------------------- tokenizer

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;  // GGUF token types
  std::vector<std::string> merges;
  std::vector<std::string> pre_regexes;
  std::string pre = "gpt2";
  int32_t bos = -1, eos = -1;
  bool add_bos = false;
  std::string chat_template;
};

std::string codepoint_utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else if (cp < 0x800) { s += static_cast<char>(0xC0 | (cp >> 6)); s += static_cast<char>(0x80 | (cp & 0x3F)); }
  else { s += static_cast<char>(0xE0 | (cp >> 12)); s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)); s += static_cast<char>(0x80 | (cp & 0x3F)); }
  return s;
}

// GPT-2 byte -> printable character, as strings.
std::vector<std::string> byte_symbols() {
  std::vector<std::string> out(256);
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out[static_cast<size_t>(b)] = codepoint_utf8(printable ? static_cast<uint32_t>(b) : next++);
  }
  return out;
}

const char* kSampleText =
    "The quick brown fox jumps over the lazy dog. The weather is good today, and the people of the "
    "city walk along the river. Hello world, this is a small test of the tokenizer and the model. "
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Москва стоит на берегу реки, и "
    "люди гуляют по набережной. Привет, мир! Это небольшой тест. "
    "今天天气很好，我们去公园散步。你好，世界！这是一个小测试。中国人民和俄罗斯人民是好朋友。 "
    "Portez ce vieux whisky au juge blond qui fume. Bonjour le monde, ceci est un petit test du "
    "modèle et du tokenizer. Il fait beau aujourd'hui. 0123456789 3.14159 {\"key\": [1, 2, 3]}";

// Byte-level BPE trained on kSampleText: 256 byte tokens, merges, specials.
Vocab byte_vocab(int64_t size) {
  if (size < 260) throw Error("--vocab-size must be at least 260 for the built-in vocabulary");
  Vocab v;
  auto sym = byte_symbols();
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(sym[static_cast<size_t>(b)]);
    v.types.push_back(1);
  }
  const std::vector<std::string> specials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  const int64_t n_merges = size - 256 - static_cast<int64_t>(specials.size());
  // Words: split before spaces; each word is a list of byte symbols.
  std::map<std::vector<std::string>, int> words;
  std::string text = kSampleText, cur;
  auto flush = [&] {
    if (cur.empty()) return;
    std::vector<std::string> w;
    for (unsigned char c : cur) w.push_back(sym[c]);
    ++words[w];
    cur.clear();
  };
  for (char c : text) {
    if (c == ' ') flush();
    cur += c;
  }
  flush();
  std::map<std::string, bool> have;
  for (const auto& t : v.tokens) have[t] = true;
  while (static_cast<int64_t>(v.merges.size()) < n_merges) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& [w, n] : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) counts[{w[i], w[i + 1]}] += n;
    if (counts.empty()) break;
    auto best = std::max_element(counts.begin(), counts.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    if (best->second < 2) break;
    auto [a, b] = best->first;
    v.merges.push_back(a + " " + b);
    if (!have[a + b]) {
      v.tokens.push_back(a + b);
      v.types.push_back(1);
      have[a + b] = true;
    }
    std::map<std::vector<std::string>, int> next;
    for (const auto& [w, n] : words) {
      std::vector<std::string> m;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
          m.push_back(a + b);
          ++i;
        } else {
          m.push_back(w[i]);
        }
      }
      next[m] += n;
    }
    words = std::move(next);
  }
  for (const auto& s : specials) {
    v.tokens.push_back(s);
    v.types.push_back(3);
  }
  v.eos = static_cast<int32_t>(v.tokens.size()) - 1;  // <|im_end|>
  while (static_cast<int64_t>(v.tokens.size()) < size) {
    v.tokens.push_back("<|pad_" + std::to_string(v.tokens.size()) + "|>");
    v.types.push_back(5);
  }
  v.pre = "qwen2";
  v.chat_template =
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  return v;
}

// A real vocabulary from a Hugging Face tokenizer.json, padded to pad_to tokens.
Vocab json_vocab(const std::string& path, int64_t pad_to) {
  VocabData d = read_vocab_tokenizer_json(path);
  if (d.model != "gpt2")
    throw Error("'" + path + "': a " + Tokenizer::kind_name(d.model) +
                " vocabulary can only be written with --vocab-only (the synthetic architectures use byte-level BPE)");
  Vocab v;
  v.tokens = d.tokens;
  for (TokenType t : d.types) v.types.push_back(static_cast<int32_t>(t));
  while (static_cast<int64_t>(v.tokens.size()) < pad_to) {
    v.tokens.push_back("[PAD" + std::to_string(v.tokens.size()) + "]");
    v.types.push_back(static_cast<int32_t>(TokenType::Unused));
  }
  v.merges = d.merges;
  v.pre_regexes = d.pre_regexes;
  v.bos = d.bos;
  v.eos = d.eos;
  v.add_bos = d.add_bos;
  v.chat_template = d.chat_template;
  try {
    v.pre = gguf_pre_name(d);
  } catch (const Error& e) {
    throw Error("'" + path + "': " + e.what());
  }
  return v;
}

// ------------------------------------------------------------------ weights

class WeightMaker {
 public:
  WeightMaker(GgufWriter& w, uint64_t seed, bool quiet) : w_(w), rng_(seed), quiet_(quiet) {}

  // n > 1: a [cols, rows, n] stack of n matrices (expert weights).
  void matrix(const std::string& name, DType type, int64_t cols, int64_t rows, float stddev, int64_t n = 1) {
    std::vector<float> data(static_cast<size_t>(cols * rows * n));
    std::normal_distribution<float> nd(0.0f, stddev);
    for (float& x : data) x = nd(rng_);
    if (const DType fallback = type_for_rows(type, cols); fallback != type) {
      // llama.cpp's fallbacks for rows that k-quant blocks do not divide.
      if (!quiet_)
        std::fprintf(stderr, "volga-synth: %s: row length %lld is not a multiple of the %s block size, using %s\n",
                     name.c_str(), static_cast<long long>(cols), dtype_name(type), dtype_name(fallback));
      type = fallback;
    }
    store(name, type, n > 1 ? std::vector<int64_t>{cols, rows, n} : std::vector<int64_t>{cols, rows}, data);
  }

  void vector(const std::string& name, int64_t n, float mean, float stddev) {
    std::vector<float> data(static_cast<size_t>(n));
    std::normal_distribution<float> nd(mean, stddev);
    for (float& x : data) x = nd(rng_);
    store(name, DType::F32, {n}, data);
  }

  void raw_f32(const std::string& name, const std::vector<float>& data) {
    store(name, DType::F32, {static_cast<int64_t>(data.size())}, data);
  }

 private:
  void store(const std::string& name, DType type, std::vector<int64_t> dims, const std::vector<float>& data) {
    int64_t rows = static_cast<int64_t>(data.size()) / dims[0];
    std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(type, dims[0]) * rows));
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(type, data.data() + r * dims[0], bytes.data() + r * row_bytes(type, dims[0]), dims[0]);
    w_.add_tensor(name, type, dims, std::move(bytes));
  }

  GgufWriter& w_;
  std::mt19937_64 rng_;
  bool quiet_;
};

// llama3 rope scaling frequency factors, as the Hugging Face implementation
// defines them (factor 8, low/high frequency factors 1 and 4, original 8192).
std::vector<float> llama3_freq_factors(int64_t n_rot, float base) {
  const double factor = 8.0, low = 1.0, high = 4.0, orig = 8192.0;
  const double low_wavelen = orig / low, high_wavelen = orig / high;
  std::vector<float> out;
  for (int64_t i = 0; i < n_rot; i += 2) {
    double freq = 1.0 / std::pow(base, static_cast<double>(i) / static_cast<double>(n_rot));
    double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) out.push_back(1.0f);
    else if (wavelen > low_wavelen) out.push_back(static_cast<float>(factor));
    else {
      double smooth = (orig / wavelen - low) / (high - low);
      out.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

// A BERT-family encoder as llama.cpp's converter writes BGE / E5 models
// (and, with a classification head, bge-reranker cross-encoders).
void write_bert(const SynthOptions& o) {
  struct BertShape { int64_t n_embd, n_layer, n_head, n_ff, n_ctx; };
  BertShape s;
  if (o.shape == "tiny") s = {128, 2, 4, 256, 512};
  else if (o.shape == "bge-small") s = {384, 12, 12, 1536, 512};
  else if (o.shape == "bge-m3") s = {1024, 24, 16, 4096, 8192};
  else throw Error("shape preset '" + o.shape + "' is not a bert shape (tiny, bge-small, bge-m3)");
  auto over = [](int64_t& field, int64_t v) { if (v > 0) field = v; };
  over(s.n_embd, o.n_embd); over(s.n_layer, o.n_layer); over(s.n_head, o.n_head); over(s.n_ff, o.n_ff);
  over(s.n_ctx, o.n_ctx);
  if (s.n_embd % s.n_head != 0) throw Error("bert: --n-embd must be a multiple of --n-head");
  VocabData v;
  if (!o.vocab_gguf.empty()) v = read_vocab_gguf(*GgufFile::open(o.vocab_gguf));
  else if (!o.tokenizer_json.empty()) v = read_vocab_tokenizer_json(o.tokenizer_json);
  else throw Error("--arch bert needs a vocabulary: --vocab-gguf FILE or --tokenizer-json FILE");
  const Pooling pooling = o.rerank ? Pooling::Rank : parse_pooling(o.pooling.empty() ? "cls" : o.pooling);
  if (pooling == Pooling::Rank && !o.rerank) throw Error("--pooling rank needs --rerank (the classification head)");
  const DType type = parse_dtype(o.type);
  const int64_t n_vocab = static_cast<int64_t>(v.tokens.size()), E = s.n_embd, F = s.n_ff;
  GgufWriter w;
  const std::string a = "bert";
  w.set_string("general.architecture", a);
  w.set_string("general.name", "volga-synthetic-bert-" + o.shape + "-" + o.type + (o.rerank ? "-rerank" : ""));
  w.set_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(a + ".embedding_length", static_cast<uint32_t>(E));
  w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(F));
  w.set_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_f32(a + ".attention.layer_norm_epsilon", 1e-12f);
  w.set_bool(a + ".attention.causal", false);
  w.set_u32(a + ".pooling_type", static_cast<uint32_t>(pooling));
  w.set_u32("tokenizer.ggml.token_type_count", 2);
  write_vocab_gguf(w, v);
  WeightMaker m(w, o.seed, o.quiet);
  const float in_std = 1.0f / std::sqrt(static_cast<float>(E));
  m.matrix("token_embd.weight", type, E, n_vocab, 1.0f);
  m.matrix("token_types.weight", DType::F32, E, 2, 0.5f);
  m.matrix("position_embd.weight", type, E, s.n_ctx, 0.5f);
  m.vector("token_embd_norm.weight", E, 1.0f, 0.1f);
  m.vector("token_embd_norm.bias", E, 0.0f, 0.1f);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    for (const char* t : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
      m.matrix(p + t + ".weight", type, E, E, in_std);
      m.vector(p + t + ".bias", E, 0.0f, 0.1f);
    }
    m.vector(p + "attn_output_norm.weight", E, 1.0f, 0.1f);
    m.vector(p + "attn_output_norm.bias", E, 0.0f, 0.1f);
    m.matrix(p + "ffn_up.weight", type, E, F, in_std);
    m.vector(p + "ffn_up.bias", F, 0.0f, 0.1f);
    m.matrix(p + "ffn_down.weight", type, F, E, 1.0f / std::sqrt(static_cast<float>(F)));
    m.vector(p + "ffn_down.bias", E, 0.0f, 0.1f);
    m.vector(p + "layer_output_norm.weight", E, 1.0f, 0.1f);
    m.vector(p + "layer_output_norm.bias", E, 0.0f, 0.1f);
  }
  if (o.rerank) {
    m.matrix("cls.weight", type, E, E, in_std);
    m.vector("cls.bias", E, 0.0f, 0.1f);
    m.matrix("cls.output.weight", type, E, 1, in_std * 4);
    m.vector("cls.output.bias", 1, 0.0f, 0.1f);
  }
  w.write(o.output);
  if (!o.quiet)
    std::fprintf(stderr, "volga-synth: wrote %s (bert%s, %s, %s vocabulary of %lld)\n", o.output.c_str(),
                 o.rerank ? " reranker" : "", o.type.c_str(), Tokenizer::kind_name(v.model).c_str(),
                 static_cast<long long>(n_vocab));
}

bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// One deepseek2 layer: MLA attention, then a dense (leading) or MoE feed-forward.
// A layer's expert gate and up matrices [cols, rows, n]: two tensors, or
// stacked per expert in one ffn_gate_up_exps [cols, 2 rows, n] (gate rows first).
void expert_gate_up(WeightMaker& m, const std::string& p, DType type, int64_t cols, int64_t rows, float stddev,
                    int64_t n, bool fused) {
  if (fused) {
    m.matrix(p + "ffn_gate_up_exps.weight", type, cols, 2 * rows, stddev, n);
    return;
  }
  m.matrix(p + "ffn_gate_exps.weight", type, cols, rows, stddev, n);
  m.matrix(p + "ffn_up_exps.weight", type, cols, rows, stddev, n);
}

void write_mla_layer(WeightMaker& m, const std::string& p, const Shape& s, DType base, DType more, bool mla,
                     bool fused_gate_up) {
  const int64_t E = s.n_embd, H = s.n_head, nope = s.head_dim, R = s.rope_dim, C = s.kv_lora, Vd = s.v_dim;
  const float in_std = 1.0f / std::sqrt(static_cast<float>(E));
  auto std_of = [](int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); };
  if (s.q_lora > 0) {
    m.matrix(p + "attn_q_a.weight", base, E, s.q_lora, in_std);
    m.vector(p + "attn_q_a_norm.weight", s.q_lora, 1.0f, 0.1f);
    m.matrix(p + "attn_q_b.weight", base, s.q_lora, H * (nope + R), std_of(s.q_lora));
  } else {
    m.matrix(p + "attn_q.weight", base, E, H * (nope + R), in_std);
  }
  m.matrix(p + "attn_kv_a_mqa.weight", base, E, C + R, in_std);
  m.vector(p + "attn_kv_a_norm.weight", C, 1.0f, 0.1f);
  if (mla) {
    // attn_k_b [nope, C, H]: per head the transposed key half; attn_v_b [C, Vd, H].
    m.matrix(p + "attn_k_b.weight", base, nope, C, std_of(C), H);
    m.matrix(p + "attn_v_b.weight", more, C, Vd, std_of(C), H);
  } else {
    m.matrix(p + "attn_kv_b.weight", base, C, H * (nope + Vd), std_of(C));
  }
  m.matrix(p + "attn_output.weight", base, H * Vd, E, std_of(H * Vd));
  m.vector(p + "ffn_norm.weight", E, 1.0f, 0.1f);
  const int64_t layer = std::stoll(p.substr(4));
  if (layer < s.n_lead) {
    m.matrix(p + "ffn_gate.weight", base, E, s.n_ff, in_std);
    m.matrix(p + "ffn_up.weight", base, E, s.n_ff, in_std);
    m.matrix(p + "ffn_down.weight", more, s.n_ff, E, std_of(s.n_ff));
    return;
  }
  const int64_t F = s.n_ff_expert;
  m.matrix(p + "ffn_gate_inp.weight", DType::F32, E, s.n_expert, in_std * 4);
  if (s.sigmoid) m.vector(p + "exp_probs_b.bias", s.n_expert, 0.0f, 0.3f);
  expert_gate_up(m, p, base, E, F, in_std, s.n_expert, fused_gate_up);
  m.matrix(p + "ffn_down_exps.weight", more, F, E, std_of(F), s.n_expert);
  if (s.n_shared > 0) {
    m.matrix(p + "ffn_gate_shexp.weight", base, E, F * s.n_shared, in_std);
    m.matrix(p + "ffn_up_shexp.weight", base, E, F * s.n_shared, in_std);
    m.matrix(p + "ffn_down_shexp.weight", more, F * s.n_shared, E, std_of(F * s.n_shared));
  }
}

// One qwen35 layer: Gated DeltaNet or gated attention, the post-attention
// norm, then a SwiGLU feed-forward or routed experts with a gated shared expert.
void write_qwen35_layer(WeightMaker& m, const std::string& p, int64_t layer, const Shape& s, DType base, DType more) {
  const int64_t E = s.n_embd, D = s.head_dim;
  const float in_std = 1.0f / std::sqrt(static_cast<float>(E));
  auto std_of = [](int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); };
  m.vector(p + "post_attention_norm.weight", E, 1.0f, 0.1f);
  if ((layer + 1) % s.interval != 0) {
    const int64_t Kd = s.n_group * s.d_state, Vd = s.dt_rank * s.d_state, C = 2 * Kd + Vd;
    m.matrix(p + "attn_qkv.weight", base, E, C, in_std);
    m.matrix(p + "attn_gate.weight", base, E, Vd, in_std);
    m.matrix(p + "ssm_conv1d.weight", DType::F32, s.d_conv, C, std_of(s.d_conv));
    // As the converter writes them: ssm_a = -exp(A_log) with A in [1, 16]; dt bias near softplus^-1(0.05).
    std::vector<float> a(static_cast<size_t>(s.dt_rank));
    for (int64_t h = 0; h < s.dt_rank; ++h) a[static_cast<size_t>(h)] = -(1.0f + static_cast<float>((h * 7 + layer) % 16));
    m.vector(p + "ssm_dt.bias", s.dt_rank, -3.0f, 1.0f);
    m.raw_f32(p + "ssm_a", a);
    m.matrix(p + "ssm_beta.weight", base, E, s.dt_rank, in_std);
    m.matrix(p + "ssm_alpha.weight", base, E, s.dt_rank, in_std);
    m.vector(p + "ssm_norm.weight", s.d_state, 1.0f, 0.1f);
    m.matrix(p + "ssm_out.weight", more, Vd, E, std_of(Vd));
  } else {
    m.matrix(p + "attn_q.weight", base, E, 2 * s.n_head * D, in_std);
    m.matrix(p + "attn_k.weight", base, E, s.n_head_kv * D, in_std);
    m.matrix(p + "attn_v.weight", more, E, s.n_head_kv * D, in_std);
    m.matrix(p + "attn_output.weight", base, s.n_head * D, E, std_of(s.n_head * D));
    m.vector(p + "attn_q_norm.weight", D, 1.0f, 0.1f);
    m.vector(p + "attn_k_norm.weight", D, 1.0f, 0.1f);
  }
  if (s.n_expert == 0) {
    m.matrix(p + "ffn_gate.weight", base, E, s.n_ff, in_std);
    m.matrix(p + "ffn_up.weight", base, E, s.n_ff, in_std);
    m.matrix(p + "ffn_down.weight", more, s.n_ff, E, std_of(s.n_ff));
    return;
  }
  const int64_t F = s.n_ff_expert;
  m.matrix(p + "ffn_gate_inp.weight", DType::F32, E, s.n_expert, in_std * 4);
  m.matrix(p + "ffn_gate_exps.weight", base, E, F, in_std, s.n_expert);
  m.matrix(p + "ffn_up_exps.weight", base, E, F, in_std, s.n_expert);
  m.matrix(p + "ffn_down_exps.weight", more, F, E, std_of(F), s.n_expert);
  m.vector(p + "ffn_gate_inp_shexp.weight", E, 0.0f, in_std * 4);
  m.matrix(p + "ffn_gate_shexp.weight", base, E, s.n_ff_shexp, in_std);
  m.matrix(p + "ffn_up_shexp.weight", base, E, s.n_ff_shexp, in_std);
  m.matrix(p + "ffn_down_shexp.weight", more, s.n_ff_shexp, E, std_of(s.n_ff_shexp));
}

}  // namespace

const char* shape_presets_help() {
  return "Shape preset: tiny (test-sized, k-quant friendly), qwen2-0.5b, qwen3-0.6b, llama3-1b, yandexgpt5-lite; "
         "qwen3moe: tiny, qwen3-30b-a3b; deepseek2: tiny, gigachat3-10b-a1.8b, deepseek-v2-lite; "
         "qwen35: tiny, qwen3.5-0.8b, qwen3.5-2b; qwen35moe: tiny; bert: tiny, bge-small, bge-m3";
}

// A vocabulary-only GGUF, as llama.cpp's ggml-vocab-*.gguf files: general.*
// and the tokenizer.ggml.* keys of the tokenizer.json, no tensors.
void write_vocab_only(const SynthOptions& o) {
  if (o.tokenizer_json.empty()) throw Error("--vocab-only needs --tokenizer-json");
  VocabData v = read_vocab_tokenizer_json(o.tokenizer_json);
  GgufWriter w;
  // BERT and XLM-RoBERTa embedding models are llama.cpp's "bert" architecture.
  const std::string arch = v.model == "gpt2" ? o.arch : "bert";
  w.set_string("general.architecture", arch);
  w.set_string("general.name", "volga-vocab-" + v.model);
  write_vocab_gguf(w, v);
  w.write(o.output);
  if (!o.quiet)
    std::fprintf(stderr, "volga-synth: wrote %s (%s vocabulary, %zu tokens)\n", o.output.c_str(),
                 Tokenizer::kind_name(v.model).c_str(), v.tokens.size());
}

void write_synthetic_model(const SynthOptions& o) {
  if (o.vocab_only) return write_vocab_only(o);
  if (o.arch == "bert") return write_bert(o);
  if (o.arch != "llama" && o.arch != "qwen2" && o.arch != "qwen3" && o.arch != "qwen3moe" && o.arch != "deepseek2" &&
      o.arch != "qwen35" && o.arch != "qwen35moe")
    throw Error("--arch must be llama, qwen2, qwen3, qwen3moe, deepseek2, qwen35, qwen35moe or bert");
  if (o.rerank || !o.vocab_gguf.empty()) throw Error("--rerank and --vocab-gguf are for --arch bert");
  Shape s = preset(o.arch, o.shape);
  auto over = [](int64_t& field, int64_t v) { if (v > 0) field = v; };
  over(s.n_embd, o.n_embd); over(s.n_layer, o.n_layer); over(s.n_head, o.n_head);
  over(s.n_head_kv, o.n_head_kv); over(s.head_dim, o.head_dim); over(s.n_ff, o.n_ff); over(s.n_ctx, o.n_ctx);
  over(s.n_expert, o.n_expert); over(s.n_expert_used, o.n_expert_used); over(s.n_ff_expert, o.n_ff_expert);
  over(s.kv_lora, o.kv_lora_rank); over(s.rope_dim, o.rope_dim); over(s.v_dim, o.v_head_dim);
  auto over0 = [](int64_t& field, int64_t v) { if (v >= 0) field = v; };
  over0(s.q_lora, o.q_lora_rank); over0(s.n_shared, o.n_expert_shared); over0(s.n_lead, o.n_dense_lead);
  over0(s.n_groups, o.n_expert_groups); over0(s.n_group_used, o.n_group_used);
  if (!o.gating.empty()) {
    if (o.gating != "softmax" && o.gating != "sigmoid") throw Error("--gating must be softmax or sigmoid");
    s.sigmoid = o.gating == "sigmoid";
  }
  if (o.expert_scale >= 0) s.scale = o.expert_scale;
  if (o.expert_norm >= 0) s.norm = o.expert_norm != 0;
  if (o.yarn_factor > 0) { s.yarn_factor = o.yarn_factor; s.mscale_all_dim = o.yarn_mscale_all_dim; }
  if (s.yarn_factor != 0 && !(s.yarn_factor > 1)) throw Error("--yarn must be greater than 1");
  const bool ds2 = o.arch == "deepseek2";
  if (ds2 && (s.rope_dim % 2 != 0 || s.rope_dim <= 0 || s.kv_lora <= 0 || s.v_dim <= 0))
    throw Error("deepseek2 needs an even --rope-dim and positive --kv-lora-rank, --v-head-dim");
  if (ds2 && s.n_lead > s.n_layer) throw Error("--n-dense-lead must not exceed the layer count");
  if (s.n_groups > 1 && (s.n_expert % s.n_groups != 0 || s.n_group_used <= 0 || s.n_group_used > s.n_groups))
    throw Error("--n-expert-groups must divide --n-expert, with 0 < --n-group-used <= groups");
  const bool moe = s.n_expert > 0;
  if (moe && (s.n_expert_used > s.n_expert)) throw Error("--n-expert-used must not exceed --n-expert");
  if (o.tied >= 0) s.tied = o.tied != 0;
  const bool mix = o.type == "q4_k_m";
  const DType base = mix ? DType::Q4_K : parse_dtype(o.type);

  Vocab v = o.tokenizer_json.empty() ? byte_vocab(o.vocab_size > 0 ? o.vocab_size : 512)
                                     : json_vocab(o.tokenizer_json, o.vocab_size);
  const int64_t n_vocab = static_cast<int64_t>(v.tokens.size());

  GgufWriter w;
  const std::string a = o.arch;
  w.set_string("general.architecture", a);
  w.set_string("general.name", "volga-synthetic-" + a + "-" + o.shape + "-" + o.type);
  w.set_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(a + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  const bool mla = ds2 && !o.legacy_kv_b;
  w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(ds2 ? (mla ? 1 : s.n_head) : s.n_head_kv));
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", s.eps);
  w.set_f32(a + ".rope.freq_base", s.rope_base);
  if (moe) {
    w.set_u32(a + ".expert_count", static_cast<uint32_t>(s.n_expert));
    w.set_u32(a + ".expert_used_count", static_cast<uint32_t>(s.n_expert_used));
    w.set_u32(a + ".expert_feed_forward_length", static_cast<uint32_t>(s.n_ff_expert));
  }
  if (ds2) {
    // As llama.cpp's converter writes DeepSeek-V2/V3 (MLA form unless --legacy-kv-b).
    w.set_u32(a + ".leading_dense_block_count", static_cast<uint32_t>(s.n_lead));
    if (s.q_lora > 0) w.set_u32(a + ".attention.q_lora_rank", static_cast<uint32_t>(s.q_lora));
    w.set_u32(a + ".attention.kv_lora_rank", static_cast<uint32_t>(s.kv_lora));
    w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(s.rope_dim));
    if (mla) {
      w.set_u32(a + ".attention.key_length", static_cast<uint32_t>(s.kv_lora + s.rope_dim));
      w.set_u32(a + ".attention.value_length", static_cast<uint32_t>(s.kv_lora));
      w.set_u32(a + ".attention.key_length_mla", static_cast<uint32_t>(s.head_dim + s.rope_dim));
      w.set_u32(a + ".attention.value_length_mla", static_cast<uint32_t>(s.v_dim));
    } else {
      w.set_u32(a + ".attention.key_length", static_cast<uint32_t>(s.head_dim + s.rope_dim));
      w.set_u32(a + ".attention.value_length", static_cast<uint32_t>(s.v_dim));
    }
    w.set_u32(a + ".expert_shared_count", static_cast<uint32_t>(s.n_shared));
    w.set_f32(a + ".expert_weights_scale", static_cast<float>(s.scale));
    w.set_bool(a + ".expert_weights_norm", s.norm);
    w.set_u32(a + ".expert_gating_func", s.sigmoid ? 2 : 1);
    if (s.n_groups > 1) {
      w.set_u32(a + ".expert_group_count", static_cast<uint32_t>(s.n_groups));
      w.set_u32(a + ".expert_group_used_count", static_cast<uint32_t>(s.n_group_used));
    }
  }
  if (s.yarn_factor > 1) {
    w.set_string(a + ".rope.scaling.type", "yarn");
    w.set_f32(a + ".rope.scaling.factor", static_cast<float>(s.yarn_factor));
    w.set_u32(a + ".rope.scaling.original_context_length",
              static_cast<uint32_t>(std::max<double>(16, static_cast<double>(s.n_ctx) / s.yarn_factor)));
    if (ds2) w.set_f32(a + ".rope.scaling.yarn_log_multiplier", static_cast<float>(0.1 * s.mscale_all_dim));
  }
  const bool q35 = a == "qwen35" || a == "qwen35moe";
  if (q35) {  // as llama.cpp's converter writes Qwen3.5
    if (s.n_rot > s.head_dim || s.n_rot % 2 != 0 || s.interval <= 0) throw Error("bad qwen35 shape");
    w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(s.n_rot));
    const int32_t half = static_cast<int32_t>(s.n_rot / 2);
    const int32_t s0 = (half + 2) / 3, s1 = (half + 2) / 3;  // [11, 11, 10, 0] for 32 pairs
    w.set_i32_array(a + ".rope.dimension_sections", {s0, s1, half - s0 - s1, 0});
    w.set_u32(a + ".full_attention_interval", static_cast<uint32_t>(s.interval));
    w.set_u32(a + ".ssm.conv_kernel", static_cast<uint32_t>(s.d_conv));
    w.set_u32(a + ".ssm.state_size", static_cast<uint32_t>(s.d_state));
    w.set_u32(a + ".ssm.group_count", static_cast<uint32_t>(s.n_group));
    w.set_u32(a + ".ssm.time_step_rank", static_cast<uint32_t>(s.dt_rank));
    w.set_u32(a + ".ssm.inner_size", static_cast<uint32_t>(s.d_state * s.dt_rank));
    if (moe) w.set_u32(a + ".expert_shared_feed_forward_length", static_cast<uint32_t>(s.n_ff_shexp));
  }
  if (!ds2 && (a == "qwen3" || a == "qwen3moe" || q35 || s.head_dim * s.n_head != s.n_embd)) {
    w.set_u32(a + ".attention.key_length", static_cast<uint32_t>(s.head_dim));
    w.set_u32(a + ".attention.value_length", static_cast<uint32_t>(s.head_dim));
  }
  if (a == "llama") w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(s.head_dim));
  // Decoder embedding models (Qwen3-Embedding: last).
  if (!o.pooling.empty()) w.set_u32(a + ".pooling_type", static_cast<uint32_t>(parse_pooling(o.pooling)));
  w.set_u32(a + ".vocab_size", static_cast<uint32_t>(n_vocab));
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", v.pre);
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  w.set_i32_array("tokenizer.ggml.token_type", v.types);
  w.set_string_array("tokenizer.ggml.merges", v.merges);
  if (v.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos));
  if (v.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos));
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  if (!v.chat_template.empty()) w.set_string("tokenizer.chat_template", v.chat_template);

  WeightMaker m(w, o.seed, o.quiet);
  const int64_t E = s.n_embd, qd = s.n_head * s.head_dim, kd = s.n_head_kv * s.head_dim;
  const float in_std = 1.0f / std::sqrt(static_cast<float>(E));
  m.matrix("token_embd.weight", base, E, n_vocab, in_std * 4);
  m.vector("output_norm.weight", E, 1.0f, 0.1f);
  if (!s.tied) m.matrix("output.weight", mix ? DType::Q6_K : base, E, n_vocab, in_std);
  if (o.llama3_rope) m.raw_f32("rope_freqs.weight", llama3_freq_factors(s.head_dim, s.rope_base));
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    const DType more = mix && use_more_bits(i, s.n_layer) ? DType::Q6_K : base;
    m.vector(p + "attn_norm.weight", E, 1.0f, 0.1f);
    if (ds2) {
      write_mla_layer(m, p, s, base, more, mla, o.fused_gate_up);
      continue;
    }
    if (q35) {
      write_qwen35_layer(m, p, i, s, base, more);
      continue;
    }
    m.matrix(p + "attn_q.weight", base, E, qd, in_std);
    m.matrix(p + "attn_k.weight", base, E, kd, in_std);
    m.matrix(p + "attn_v.weight", more, E, kd, in_std);
    m.matrix(p + "attn_output.weight", base, qd, E, 1.0f / std::sqrt(static_cast<float>(qd)));
    if (a == "qwen2") {
      m.vector(p + "attn_q.bias", qd, 0.0f, 0.1f);
      m.vector(p + "attn_k.bias", kd, 0.0f, 0.1f);
      m.vector(p + "attn_v.bias", kd, 0.0f, 0.1f);
    }
    if (a == "qwen3" || a == "qwen3moe") {
      m.vector(p + "attn_q_norm.weight", s.head_dim, 1.0f, 0.1f);
      m.vector(p + "attn_k_norm.weight", s.head_dim, 1.0f, 0.1f);
    }
    m.vector(p + "ffn_norm.weight", E, 1.0f, 0.1f);
    if (moe) {
      // The router stays F32, as llama.cpp's quantizer keeps it.
      m.matrix(p + "ffn_gate_inp.weight", DType::F32, E, s.n_expert, in_std * 4);
      expert_gate_up(m, p, base, E, s.n_ff_expert, in_std, s.n_expert, o.fused_gate_up);
      m.matrix(p + "ffn_down_exps.weight", more, s.n_ff_expert, E,
               1.0f / std::sqrt(static_cast<float>(s.n_ff_expert)), s.n_expert);
      continue;
    }
    m.matrix(p + "ffn_gate.weight", base, E, s.n_ff, in_std);
    m.matrix(p + "ffn_up.weight", base, E, s.n_ff, in_std);
    m.matrix(p + "ffn_down.weight", more, s.n_ff, E, 1.0f / std::sqrt(static_cast<float>(s.n_ff)));
  }
  w.write(o.output);
  if (!o.quiet)
    std::fprintf(stderr, "volga-synth: wrote %s (%s, %s, vocabulary %lld)\n", o.output.c_str(), a.c_str(),
                 o.type.c_str(), static_cast<long long>(n_vocab));
}

}  // namespace volga::synth
