#include "tokenizer/vocab.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "format/gguf.h"
#include "format/safetensors.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_hf.h"
#include "util/error.h"

namespace volga {

namespace {

const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kDeepseekLlmLetters =
    // Written with escapes: these letters include canonical singletons (U+1FBE,
    // U+2126, U+212A...) that Unicode normalisation in an editor would silently change.
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+";

std::vector<std::string> as_strings(const GgufFile& f, const char* key) {
  std::vector<std::string> out;
  for (const GgufValue& v : f.get_array(key, GgufType::STRING)) out.push_back(v.s);
  return out;
}

nlohmann::json read_json(const std::string& path) { return read_json_file(path); }

}  // namespace

std::vector<std::string> pre_tokenizer_regexes(const std::string& pre) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "smaug-bpe" || pre == "falcon3" || pre == "pixtral" ||
      pre == "dbrx")
    return {kLlama3};
  if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "qwen35" || pre == "megrez" || pre == "stablelm2")
    return {kQwen2};
  if (pre == "deepseek-llm")
    return {"[\r\n]", kDeepseekLlmLetters, "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"};
  if (pre == "deepseek-coder")
    return {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
  if (pre == "deepseek-v3")
    return {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
            "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
            "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"};
  if (pre == "falcon") return {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"};
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell")
    return {"\\p{N}", kGpt2};
  if (pre == "gpt-2" || pre == "gpt2" || pre == "mpt" || pre == "olmo" || pre == "jais") return {kGpt2};
  if (pre == "default")  // llama.cpp's default for BPE vocabularies without a pre-tokenizer name
    return {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"};
  throw Error("unknown pre-tokenizer '" + pre +
              "' (known: gpt-2, llama-bpe, qwen2, deepseek-llm, deepseek-coder, deepseek-v3, falcon, starcoder, "
              "refact, command-r, mpt, default)");
}

namespace {
// Like llama.cpp: the end-of-turn tokens of the common chat formats end
// generation even when the file names only one EOS id.
void add_known_eog(VocabData& v) {
  for (const char* eot : {"<|eot_id|>", "<|im_end|>", "<|endoftext|>", "<|eom_id|>", "<｜end▁of▁sentence｜>"}) {
    auto it = std::find(v.tokens.begin(), v.tokens.end(), eot);
    if (it == v.tokens.end()) continue;
    const auto id = static_cast<int32_t>(it - v.tokens.begin());
    const TokenType t = v.types[static_cast<size_t>(id)];
    if (t != TokenType::Control && t != TokenType::UserDefined) continue;
    if (std::find(v.eog.begin(), v.eog.end(), id) == v.eog.end()) v.eog.push_back(id);
  }
}
// WordPiece ("bert") and unigram ("t5") keys, with llama.cpp's defaults for
// the ids a file leaves out (BERT: [CLS]=101 [UNK]=100 [SEP]=102; T5: </s>=1 <unk>=2).
void read_wpm_ugm_gguf(const GgufFile& f, VocabData& v) {
  const auto n = static_cast<int32_t>(v.tokens.size());
  auto or_default = [&](int32_t id, int32_t def) { return id >= 0 ? id : (def < n ? def : -1); };
  if (v.model == "bert") {
    if (v.bos < 0) {
      auto cls = f.get_int_opt("tokenizer.ggml.cls_token_id");
      if (cls && *cls >= 0 && *cls < n) v.bos = static_cast<int32_t>(*cls);
    }
    v.bos = or_default(v.bos, 101);
    v.unk = or_default(v.unk, 100);
    v.sep = or_default(v.sep, 102);
    v.add_sep = f.get_bool_opt("tokenizer.ggml.add_sep_token").value_or(true) && v.sep >= 0;
    v.lowercase = f.get_bool_opt("tokenizer.ggml.normalizer.lowercase").value_or(true);
    v.strip_accents = f.get_bool_opt("tokenizer.ggml.normalizer.strip_accents").value_or(v.lowercase);
    if (v.unk < 0) throw Error("GGUF '" + f.path() + "': WordPiece vocabulary without an unknown token");
    return;
  }
  v.eos = or_default(v.eos, 1);
  v.unk = or_default(v.unk, 2);
  v.add_eos = f.get_bool_opt("tokenizer.ggml.add_eos_token").value_or(true) && v.eos >= 0;
  v.add_space_prefix = f.get_bool_opt("tokenizer.ggml.add_space_prefix").value_or(false);
  v.remove_extra_whitespaces = f.get_bool_opt("tokenizer.ggml.remove_extra_whitespaces").value_or(false);
  v.hf_metaspace = f.get_bool_opt("tokenizer.volga.hf_metaspace").value_or(false);
  if (const GgufValue* cm = f.find("tokenizer.ggml.precompiled_charsmap")) {
    if (cm->type != GgufType::ARRAY || (cm->array_type != GgufType::UINT8 && cm->array_type != GgufType::INT8))
      throw Error("GGUF '" + f.path() + "': tokenizer.ggml.precompiled_charsmap must be an array of bytes");
    v.precompiled_charsmap.reserve(cm->array.size());
    for (const GgufValue& b : cm->array)
      v.precompiled_charsmap += static_cast<char>(cm->array_type == GgufType::UINT8 ? b.u : static_cast<uint64_t>(b.i));
  }
  if (v.unk < 0) throw Error("GGUF '" + f.path() + "': unigram vocabulary without an unknown token");
  if (v.scores.empty()) throw Error("GGUF '" + f.path() + "': unigram vocabulary without tokenizer.ggml.scores");
}

}  // namespace

VocabData read_vocab_gguf(const GgufFile& f) {
  VocabData v;
  v.model = f.get_string_opt("tokenizer.ggml.model").value_or("");
  if (v.model.empty()) throw Error("GGUF '" + f.path() + "' has no tokenizer (tokenizer.ggml.model is missing)");
  if (v.model != "gpt2" && v.model != "llama" && v.model != "bert" && v.model != "t5")
    throw Error("GGUF '" + f.path() + "': tokenizer model '" + v.model +
                "' is not supported (supported: gpt2 byte-level BPE, llama SentencePiece, bert WordPiece, "
                "t5 SentencePiece unigram)");
  v.pre = f.get_string_opt("tokenizer.ggml.pre").value_or("default");
  v.tokens = as_strings(f, "tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  if (n == 0) throw Error("GGUF '" + f.path() + "': tokenizer.ggml.tokens is empty");
  v.types.assign(n, TokenType::Normal);
  if (f.has("tokenizer.ggml.token_type")) {
    const auto& types = f.get_array("tokenizer.ggml.token_type", GgufType::INT32);
    if (types.size() != n) throw Error("GGUF '" + f.path() + "': token_type count does not match token count");
    for (size_t i = 0; i < n; ++i) {
      if (types[i].i < 0 || types[i].i > 6)
        throw Error("GGUF '" + f.path() + "': token " + std::to_string(i) + " has invalid type " +
                    std::to_string(types[i].i));
      v.types[i] = static_cast<TokenType>(types[i].i);
    }
  }
  if (v.model == "gpt2") {
    v.merges = as_strings(f, "tokenizer.ggml.merges");
    v.pre_regexes = pre_tokenizer_regexes(v.pre);
    v.ignore_merges = v.pre == "llama-bpe" || v.pre == "llama3";
  } else if (f.has("tokenizer.ggml.scores")) {
    for (const GgufValue& s : f.get_array("tokenizer.ggml.scores", GgufType::FLOAT32))
      v.scores.push_back(static_cast<float>(s.f));
    if (v.scores.size() != n) throw Error("GGUF '" + f.path() + "': tokenizer.ggml.scores count does not match token count");
  }
  auto id_key = [&](const char* key) -> int32_t {
    auto id = f.get_int_opt(key);
    if (!id) return -1;
    if (*id < 0 || *id >= static_cast<int64_t>(n))
      throw Error("GGUF '" + f.path() + "': " + key + " = " + std::to_string(*id) + " is outside the vocabulary");
    return static_cast<int32_t>(*id);
  };
  v.bos = id_key("tokenizer.ggml.bos_token_id");
  v.eos = id_key("tokenizer.ggml.eos_token_id");
  v.unk = id_key("tokenizer.ggml.unknown_token_id");
  v.sep = id_key("tokenizer.ggml.seperator_token_id");  // sic: llama.cpp's key name
  v.pad = id_key("tokenizer.ggml.padding_token_id");
  v.mask = id_key("tokenizer.ggml.mask_token_id");
  if (v.model == "bert" || v.model == "t5") read_wpm_ugm_gguf(f, v);
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (int32_t id = id_key(k); id >= 0) v.eog.push_back(id);
  v.add_bos = f.get_bool_opt("tokenizer.ggml.add_bos_token").value_or(v.model == "llama" || v.model == "bert") &&
              v.bos >= 0;
  if (v.model != "t5") v.add_space_prefix = f.get_bool_opt("tokenizer.ggml.add_space_prefix").value_or(true);
  if (v.eos >= 0 && std::find(v.eog.begin(), v.eog.end(), v.eos) == v.eog.end()) v.eog.push_back(v.eos);
  v.chat_template = f.get_string_opt("tokenizer.chat_template").value_or("");
  add_known_eog(v);
  return v;
}

VocabData read_vocab_tokenizer_json(const std::string& path) {
  nlohmann::json tj = read_json(path);
  try {
    const auto& model = tj.at("model");
    const std::string type = model.value("type", "");
    if (type == "WordPiece") return read_wordpiece_json(tj, path);
    if (type == "Unigram") return read_unigram_json(tj, path);
    if (type != "BPE")
      throw Error("'" + path + "': tokenizer model '" + type +
                  "' is not supported (supported: BPE, WordPiece, Unigram)");
    VocabData v;
    v.model = "gpt2";
    size_t n = 0;
    for (const auto& [tok, id] : model.at("vocab").items()) n = std::max(n, id.get<size_t>() + 1);
    for (const auto& a : tj.value("added_tokens", nlohmann::json::array())) n = std::max(n, a.at("id").get<size_t>() + 1);
    v.tokens.assign(n, "");
    v.types.assign(n, TokenType::Unused);
    for (const auto& [tok, id] : model.at("vocab").items()) {
      v.tokens[id.get<size_t>()] = tok;
      v.types[id.get<size_t>()] = TokenType::Normal;
    }
    for (const auto& a : tj.value("added_tokens", nlohmann::json::array())) {
      size_t id = a.at("id").get<size_t>();
      v.tokens[id] = a.at("content").get<std::string>();
      v.types[id] = a.value("special", false) ? TokenType::Control : TokenType::UserDefined;
    }
    for (size_t i = 0; i < n; ++i)
      if (v.tokens[i].empty()) v.tokens[i] = "[PAD" + std::to_string(i) + "]";
    for (const auto& m : model.at("merges")) {
      if (m.is_string()) v.merges.push_back(m.get<std::string>());
      else v.merges.push_back(m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    }
    v.ignore_merges = model.value("ignore_merges", false);
    const nlohmann::json norm = tj.value("normalizer", nlohmann::json());
    if (norm.is_object()) {
      std::vector<nlohmann::json> parts;
      if (norm.value("type", "") == "Sequence") parts = norm.at("normalizers").get<std::vector<nlohmann::json>>();
      else parts.push_back(norm);
      for (const auto& n : parts) {
        std::string type = n.value("type", "");
        if (type == "NFC") v.normalize_nfc = true;
        else throw Error("'" + path + "': unsupported normalizer '" + type + "' (supported: NFC)");
      }
    }
    // Pre-tokenizer: HF Split steps (regexes, in order) and ByteLevel's own GPT-2 regex.
    const nlohmann::json pre = tj.value("pre_tokenizer", nlohmann::json());
    std::vector<nlohmann::json> steps;
    if (pre.is_object() && pre.value("type", "") == "Sequence") steps = pre.at("pretokenizers").get<std::vector<nlohmann::json>>();
    else if (pre.is_object()) steps.push_back(pre);
    for (const auto& s : steps) {
      std::string type = s.value("type", "");
      if (type == "Split") {
        if (s.value("behavior", "") != "Isolated" || s.value("invert", false) || !s.at("pattern").contains("Regex"))
          throw Error("'" + path + "': unsupported Split pre-tokenizer (only Isolated regex splits are supported)");
        v.pre_regexes.push_back(s.at("pattern").at("Regex").get<std::string>());
      } else if (type == "ByteLevel") {
        if (s.value("use_regex", true)) v.pre_regexes.push_back(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
      } else if (!type.empty()) {
        throw Error("'" + path + "': unsupported pre-tokenizer type '" + type + "'");
      }
    }
    v.pre = "tokenizer.json";
    // tokenizer_config.json beside it: BOS/EOS, add_bos_token, chat template.
    std::string dir = path.substr(0, path.find_last_of('/') + 1);
    if (std::ifstream(dir + "tokenizer_config.json")) {
      nlohmann::json cfg = read_json(dir + "tokenizer_config.json");
      auto find_id = [&](const nlohmann::json& t) -> int32_t {
        std::string s = t.is_string() ? t.get<std::string>() : t.is_object() ? t.value("content", "") : "";
        if (s.empty()) return -1;
        auto it = std::find(v.tokens.begin(), v.tokens.end(), s);
        return it == v.tokens.end() ? -1 : static_cast<int32_t>(it - v.tokens.begin());
      };
      if (cfg.contains("bos_token")) v.bos = find_id(cfg["bos_token"]);
      if (cfg.contains("eos_token")) v.eos = find_id(cfg["eos_token"]);
      // Hugging Face's Llama tokenizers add BOS unless told otherwise (llama.cpp's
      // converter writes the same for Llama 3); Qwen has no BOS token at all.
      v.add_bos = cfg.value("add_bos_token", true) && v.bos >= 0;
      if (cfg.contains("chat_template") && cfg["chat_template"].is_string())
        v.chat_template = cfg["chat_template"].get<std::string>();
    }
    if (v.eos >= 0) v.eog.push_back(v.eos);
    add_known_eog(v);
    return v;
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + path + "': unexpected tokenizer.json structure: " + e.what());
  }
}

}  // namespace volga

namespace volga {

std::string gguf_pre_name(const VocabData& v) {
  const auto& re = v.pre_regexes;
  auto has = [&](size_t i, const char* needle) { return i < re.size() && re[i].find(needle) != std::string::npos; };
  if (re.size() == 3 && has(0, "\\p{N}{1,3}") && has(2, "[\\p{P}\\p{S}]")) return "deepseek-v3";
  if (re.size() == 1 && has(0, "\\p{N}{1,3}")) return "llama-bpe";
  if (re.size() == 1 && has(0, "\\p{L}+|\\p{N}|")) return "qwen2";
  throw Error("pre-tokenizer not recognised as llama-bpe, qwen2 or deepseek-v3 (the pre-tokenizers GGUF can name)");
}

void write_vocab_gguf(GgufWriter& w, const VocabData& v) {
  if (v.model == "bert" || v.model == "t5") return write_wpm_ugm_gguf(w, v);
  if (v.model != "gpt2")
    throw Error("tokenizer model '" + v.model + "' cannot be written to GGUF (supported: gpt2, bert, t5)");
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", gguf_pre_name(v));
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  std::vector<int32_t> types;
  for (TokenType t : v.types) types.push_back(static_cast<int32_t>(t));
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", v.merges);
  if (v.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos));
  if (v.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos));
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  if (!v.chat_template.empty()) w.set_string("tokenizer.chat_template", v.chat_template);
}

}  // namespace volga
