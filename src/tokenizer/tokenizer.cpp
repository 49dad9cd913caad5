#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "format/gguf.h"
#include "tokenizer/tokenizer_impl.h"
#include "util/error.h"
#include "util/utf8.h"

namespace volga {


std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  std::string model = f.get_string_opt("tokenizer.ggml.model").value_or("");
  if (model.empty())
    throw Error("GGUF '" + f.path() + "' has no tokenizer (tokenizer.ggml.model is missing)");
  std::unique_ptr<Tokenizer> tok;
  if (model == "gpt2") tok = make_bpe_tokenizer();
  else if (model == "llama") tok = make_spm_tokenizer();
  else throw Error("GGUF '" + f.path() + "': tokenizer model '" + model + "' is not supported (supported: gpt2, llama)");
  tok->model_ = model;
  tok->pre_ = f.get_string_opt("tokenizer.ggml.pre").value_or("default");
  for (const GgufValue& v : f.get_array("tokenizer.ggml.tokens", GgufType::STRING)) tok->tokens_.push_back(v.s);
  const size_t n = tok->tokens_.size();
  if (n == 0) throw Error("GGUF '" + f.path() + "': tokenizer.ggml.tokens is empty");
  tok->types_.assign(n, TokenType::Normal);
  if (f.has("tokenizer.ggml.token_type")) {
    const auto& types = f.get_array("tokenizer.ggml.token_type", GgufType::INT32);
    if (types.size() != n) throw Error("GGUF '" + f.path() + "': token_type count does not match token count");
    for (size_t i = 0; i < n; ++i) {
      if (types[i].i < 0 || types[i].i > 6)
        throw Error("GGUF '" + f.path() + "': token " + std::to_string(i) + " has invalid type " + std::to_string(types[i].i));
      tok->types_[i] = static_cast<TokenType>(types[i].i);
    }
  }
  tok->index_.reserve(n);
  for (size_t i = 0; i < n; ++i) tok->index_.emplace(tok->tokens_[i], static_cast<int32_t>(i));
  for (size_t i = 0; i < n; ++i)
    if ((tok->types_[i] == TokenType::Control || tok->types_[i] == TokenType::UserDefined) &&
        !tok->tokens_[i].empty())
      tok->specials_.push_back(static_cast<int32_t>(i));
  std::stable_sort(tok->specials_.begin(), tok->specials_.end(), [&](int32_t a, int32_t b) {
    return tok->tokens_[static_cast<size_t>(a)].size() > tok->tokens_[static_cast<size_t>(b)].size();
  });
  auto id_key = [&](const char* key) -> int32_t {
    auto v = f.get_int_opt(key);
    if (!v) return -1;
    if (*v < 0 || *v >= static_cast<int64_t>(n))
      throw Error("GGUF '" + f.path() + "': " + key + " = " + std::to_string(*v) + " is outside the vocabulary");
    return static_cast<int32_t>(*v);
  };
  tok->bos_ = id_key("tokenizer.ggml.bos_token_id");
  tok->eos_ = id_key("tokenizer.ggml.eos_token_id");
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (int32_t id = id_key(k); id >= 0) tok->eog_.push_back(id);
  tok->add_bos_ = f.get_bool_opt("tokenizer.ggml.add_bos_token").value_or(model == "llama") && tok->bos_ >= 0;
  tok->init(f);
  return tok;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::find(eog_.begin(), eog_.end(), id) != eog_.end();
}

std::optional<int32_t> Tokenizer::lookup(std::string_view piece) const {
  auto it = index_.find(std::string(piece));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::vector<Tokenizer::Fragment> Tokenizer::split_special(std::string_view text, bool parse_special) const {
  std::vector<Fragment> out;
  if (!parse_special || specials_.empty()) {
    if (!text.empty()) out.push_back({text, -1});
    return out;
  }
  size_t start = 0, i = 0;
  while (i < text.size()) {
    int32_t hit = -1;
    for (int32_t id : specials_) {
      const std::string& s = tokens_[static_cast<size_t>(id)];
      if (text.compare(i, s.size(), s) == 0) {
        hit = id;
        break;
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    if (i > start) out.push_back({text.substr(start, i - start), -1});
    out.push_back({{}, hit});
    i += tokens_[static_cast<size_t>(hit)].size();
    start = i;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id, render_special);
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.token_bytes(id);
  // Hold back a trailing sequence that later tokens may still complete (at
  // most 3 bytes); everything before it is emitted, invalid bytes as U+FFFD.
  size_t cut = pending_.size();
  for (size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
    size_t i = pending_.size() - back;
    if (utf8_incomplete_prefix(pending_, i)) {
      cut = i;
      break;
    }
  }
  std::string out = sanitize_utf8(std::string_view(pending_).substr(0, cut));
  pending_.erase(0, cut);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace volga
