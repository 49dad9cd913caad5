#include "tokenizer/vocab_hf.h"

#include <algorithm>

#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace volga {

namespace {

const std::string kWordStart = "\xE2\x96\x81";  // U+2581

using json = nlohmann::json;

// The steps of a normalizer or pre-tokenizer ("Sequence" flattened; null: none).
std::vector<json> steps_of(const json& node, const char* list_key) {
  std::vector<json> out;
  if (!node.is_object()) return out;
  if (node.value("type", "") == "Sequence") {
    for (const json& s : node.at(list_key)) out.push_back(s);
  } else {
    out.push_back(node);
  }
  return out;
}

// Vocabulary size, token texts and types from the added_tokens list
// (special ones are control tokens, others user-defined); gaps become unused.
struct AddedToken {
  int32_t id;
  std::string text;
  bool special;
};
std::vector<AddedToken> added_tokens(const json& tj) {
  std::vector<AddedToken> out;
  for (const json& a : tj.value("added_tokens", json::array()))
    out.push_back({a.at("id").get<int32_t>(), a.at("content").get<std::string>(), a.value("special", false)});
  return out;
}

void place_added(VocabData& v, const std::vector<AddedToken>& added) {
  for (const AddedToken& a : added) {
    v.tokens[size_t(a.id)] = a.text;
    v.types[size_t(a.id)] = a.special ? TokenType::Control : TokenType::UserDefined;
  }
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i].empty()) {
      v.tokens[i] = "[PAD" + std::to_string(i) + "]";
      v.types[i] = TokenType::Unused;
    }
}

int32_t find_token(const VocabData& v, const std::string& text) {
  auto it = std::find(v.tokens.begin(), v.tokens.end(), text);
  return it == v.tokens.end() ? -1 : static_cast<int32_t>(it - v.tokens.begin());
}

// The special tokens the post-processor puts before and after a single text.
struct Template {
  int32_t before = -1, after = -1;
};
Template post_template(const json& tj, const VocabData& v) {
  Template t;
  for (const json& p : steps_of(tj.value("post_processor", json()), "processors")) {
    const std::string type = p.value("type", "");
    if (type == "RobertaProcessing" || type == "BertProcessing") {
      t.before = p.at("cls").at(1).get<int32_t>();
      t.after = p.at("sep").at(1).get<int32_t>();
    } else if (type == "TemplateProcessing") {
      bool seen_text = false;
      for (const json& item : p.at("single")) {
        if (item.contains("Sequence")) {
          seen_text = true;
          continue;
        }
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        int32_t id = find_token(v, name);
        const json& specials = p.value("special_tokens", json::object());
        if (specials.contains(name) && !specials[name].at("ids").empty()) id = specials[name].at("ids").at(0).get<int32_t>();
        (seen_text ? t.after : t.before) = id;
      }
    }
  }
  const auto n = static_cast<int32_t>(v.tokens.size());
  if (t.before >= n || t.after >= n) throw Error("post_processor names a token id outside the vocabulary");
  return t;
}

// A vocabulary of `model_name` sized for the model's pieces and the added
// tokens: empty texts, normal types (filled in by the caller, then place_added).
VocabData empty_vocab(const char* model_name, const json& model_vocab, const std::vector<AddedToken>& added) {
  size_t n = model_vocab.is_array() ? model_vocab.size() : 0;
  if (model_vocab.is_object())
    for (const auto& [tok, id] : model_vocab.items()) n = std::max(n, id.get<size_t>() + 1);
  for (const AddedToken& a : added) {
    if (a.id < 0) throw Error("an added token has a negative id");
    n = std::max(n, size_t(a.id) + 1);
  }
  VocabData v;
  v.model = model_name;
  v.pre = "default";
  v.tokens.assign(n, "");
  v.types.assign(n, TokenType::Normal);
  return v;
}

void read_bert_normalizer(const json& tj, const std::string& path, VocabData& v) {
  const auto norms = steps_of(tj.value("normalizer", json()), "normalizers");
  if (norms.size() != 1 || norms[0].value("type", "") != "BertNormalizer")
    throw Error("'" + path + "': a WordPiece tokenizer.json needs a BertNormalizer (the only normalizer supported)");
  const json& n = norms[0];
  if (!n.value("clean_text", true) || !n.value("handle_chinese_chars", true))
    throw Error("'" + path + "': BertNormalizer without clean_text or handle_chinese_chars is not supported");
  v.lowercase = n.value("lowercase", true);
  const json& strip = n.contains("strip_accents") ? n["strip_accents"] : json();
  v.strip_accents = strip.is_boolean() ? strip.get<bool>() : v.lowercase;
  for (const json& p : steps_of(tj.value("pre_tokenizer", json()), "pretokenizers"))
    if (p.value("type", "") != "BertPreTokenizer")
      throw Error("'" + path + "': unsupported WordPiece pre-tokenizer '" + p.value("type", "?") +
                  "' (supported: BertPreTokenizer)");
}

// Whitespace steps of a unigram tokenizer.json, as Hugging Face's
// SentencePiece converters write them.
struct UnigramSpaces {
  bool collapse = false;          // Replace(" {2,}" -> " " or "▁")
  bool strip_right = false;       // Strip(right) (newer converters, with the "▁" replacement)
  bool whitespace_split = false;  // WhitespaceSplit before Metaspace (T5)
};

// Unigram normalizer: Precompiled, then Replace of space runs (older
// converters: " {2,}" -> " "; newer: Strip(right) and " {2,}" -> "▁").
void read_unigram_normalizer(const json& tj, const std::string& path, VocabData& v, UnigramSpaces& spaces) {
  for (const json& n : steps_of(tj.value("normalizer", json()), "normalizers")) {
    const std::string type = n.value("type", "");
    const std::string content = n.value("content", "");
    if (type == "Precompiled") {
      const json& cm = n.value("precompiled_charsmap", json());
      if (cm.is_string()) v.precompiled_charsmap = base64_decode(cm.get<std::string>());
    } else if (type == "Replace" && (content == " " || content == kWordStart) &&
               n.at("pattern").value("Regex", "") == " {2,}") {
      spaces.collapse = true;
    } else if (type == "Strip" && !n.value("strip_left", true) && n.value("strip_right", true)) {
      spaces.strip_right = true;
    } else {
      throw Error("'" + path + "': unsupported unigram normalizer '" + type +
                  "' (supported: Precompiled, Replace of space runs, Strip of the right end)");
    }
  }
  if (spaces.strip_right && !spaces.collapse)
    throw Error("'" + path + "': a Strip normalizer without the Replace of space runs is not supported");
}

// Metaspace (XLM-R) or WhitespaceSplit + Metaspace (T5).
void read_unigram_pre_tokenizer(const json& tj, const std::string& path, VocabData& v, UnigramSpaces& spaces) {
  bool metaspace = false;
  for (const json& p : steps_of(tj.value("pre_tokenizer", json()), "pretokenizers")) {
    const std::string type = p.value("type", "");
    if (type == "WhitespaceSplit") {
      spaces.whitespace_split = true;
    } else if (type == "Metaspace") {
      if (p.value("replacement", kWordStart) != kWordStart)
        throw Error("'" + path + "': Metaspace with a replacement other than U+2581 is not supported");
      const std::string scheme = p.value("prepend_scheme", p.value("add_prefix_space", true) ? "always" : "never");
      if (scheme == "first") throw Error("'" + path + "': Metaspace prepend_scheme 'first' is not supported");
      v.add_space_prefix = scheme == "always";
      metaspace = true;
    } else {
      throw Error("'" + path + "': unsupported unigram pre-tokenizer '" + type +
                  "' (supported: Metaspace, WhitespaceSplit)");
    }
  }
  if (!metaspace) throw Error("'" + path + "': a unigram tokenizer.json needs a Metaspace pre-tokenizer");
  // Words split at whitespace, or runs collapsed and the end stripped, are
  // SentencePiece's own merging; collapsing alone keeps one trailing ▁.
  v.remove_extra_whitespaces = spaces.collapse || spaces.whitespace_split;
  v.hf_metaspace = !(spaces.whitespace_split || spaces.strip_right);
}

}  // namespace

VocabData read_wordpiece_json(const json& tj, const std::string& path) {
  const json& model = tj.at("model");
  const std::string prefix = model.value("continuing_subword_prefix", "##");
  const auto added = added_tokens(tj);
  VocabData v = empty_vocab("bert", model.at("vocab"), added);
  for (const auto& [tok, id] : model.at("vocab").items()) {
    // llama.cpp's form: word-initial pieces get ▁, continuations lose their prefix.
    std::string t = tok;
    if (!prefix.empty() && t.rfind(prefix, 0) == 0) t = t.substr(prefix.size());
    else if (!(t.size() >= 2 && t.front() == '[' && t.back() == ']')) t = kWordStart + t;
    v.tokens[id.get<size_t>()] = t;
  }
  place_added(v, added);
  read_bert_normalizer(tj, path, v);
  v.unk = find_token(v, model.value("unk_token", "[UNK]"));
  if (v.unk < 0) throw Error("'" + path + "': the WordPiece unk_token is not in the vocabulary");
  const Template t = post_template(tj, v);
  v.bos = t.before >= 0 ? t.before : find_token(v, "[CLS]");
  v.sep = t.after >= 0 ? t.after : find_token(v, "[SEP]");
  v.add_bos = t.before >= 0;
  v.add_sep = t.after >= 0;
  v.pad = find_token(v, "[PAD]");
  v.mask = find_token(v, "[MASK]");
  return v;
}

VocabData read_unigram_json(const json& tj, const std::string& path) {
  const json& model = tj.at("model");
  const auto added = added_tokens(tj);
  VocabData v = empty_vocab("t5", model.at("vocab"), added);
  const size_t n = v.tokens.size();
  v.scores.assign(n, 0.0f);
  const bool byte_fallback = model.value("byte_fallback", false);
  const json& pieces = model.at("vocab");
  for (size_t i = 0; i < pieces.size(); ++i) {
    v.tokens[i] = pieces[i].at(0).get<std::string>();
    v.scores[i] = pieces[i].at(1).get<float>();
    const std::string& t = v.tokens[i];
    if (byte_fallback && t.size() == 6 && t.rfind("<0x", 0) == 0 && t.back() == '>') v.types[i] = TokenType::Byte;
  }
  place_added(v, added);
  const json& unk = model.value("unk_id", json());
  v.unk = unk.is_number_integer() ? unk.get<int32_t>() : -1;
  if (v.unk < 0 || v.unk >= static_cast<int32_t>(n)) throw Error("'" + path + "': the unigram model has no valid unk_id");
  v.types[size_t(v.unk)] = TokenType::Unknown;
  UnigramSpaces spaces;
  read_unigram_normalizer(tj, path, v, spaces);
  read_unigram_pre_tokenizer(tj, path, v, spaces);
  const Template t = post_template(tj, v);
  v.bos = t.before >= 0 ? t.before : find_token(v, "<s>");
  v.eos = t.after >= 0 ? t.after : find_token(v, "</s>");
  v.add_bos = t.before >= 0;
  v.add_eos = t.after >= 0;
  v.sep = v.eos;
  v.pad = find_token(v, "<pad>");
  v.mask = find_token(v, "<mask>");
  if (v.eos >= 0) v.eog.push_back(v.eos);
  return v;
}

void write_wpm_ugm_gguf(GgufWriter& w, const VocabData& v) {
  w.set_string("tokenizer.ggml.model", v.model);
  w.set_string("tokenizer.ggml.pre", "default");
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  std::vector<int32_t> types;
  for (TokenType t : v.types) types.push_back(static_cast<int32_t>(t));
  w.set_i32_array("tokenizer.ggml.token_type", types);
  if (!v.scores.empty()) w.set_f32_array("tokenizer.ggml.scores", v.scores);
  auto id = [&](const char* key, int32_t value) {
    if (value >= 0) w.set_u32(key, static_cast<uint32_t>(value));
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  if (v.model == "bert") id("tokenizer.ggml.cls_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  id("tokenizer.ggml.seperator_token_id", v.sep);
  id("tokenizer.ggml.padding_token_id", v.pad);
  id("tokenizer.ggml.mask_token_id", v.mask);
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (v.model == "bert") {
    w.set_bool("tokenizer.ggml.add_sep_token", v.add_sep);
    w.set_bool("tokenizer.ggml.normalizer.lowercase", v.lowercase);
    w.set_bool("tokenizer.ggml.normalizer.strip_accents", v.strip_accents);
    return;
  }
  w.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
  w.set_bool("tokenizer.ggml.remove_extra_whitespaces", v.remove_extra_whitespaces);
  // Not a llama.cpp key (it follows SentencePiece there): Hugging Face's
  // Metaspace whitespace handling, so a converted file tokenizes as its tokenizer.json did.
  w.set_bool("tokenizer.volga.hf_metaspace", v.hf_metaspace);
  if (!v.precompiled_charsmap.empty()) {
    std::vector<GgufValue> bytes;
    bytes.reserve(v.precompiled_charsmap.size());
    for (char c : v.precompiled_charsmap) {
      GgufValue b;
      b.type = GgufType::UINT8;
      b.u = static_cast<unsigned char>(c);
      bytes.push_back(b);
    }
    w.set("tokenizer.ggml.precompiled_charsmap", GgufValue::make_array(GgufType::UINT8, std::move(bytes)));
  }
}

std::string base64_decode(const std::string& text) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;
    else throw Error(std::string("base64: unexpected character '") + c + "'");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace volga
