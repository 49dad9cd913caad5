#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "format/gguf.h"
#include "tokenizer/tokenizer_impl.h"
#include "util/error.h"
#include "util/utf8.h"

namespace volga {


std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) { return create(read_vocab_gguf(f)); }

std::unique_ptr<Tokenizer> Tokenizer::from_tokenizer_json(const std::string& path) {
  return create(read_vocab_tokenizer_json(path));
}

std::unique_ptr<Tokenizer> Tokenizer::create(VocabData v) {
  std::unique_ptr<Tokenizer> tok;
  if (v.model == "gpt2") tok = make_bpe_tokenizer();
  else if (v.model == "llama") tok = make_spm_tokenizer();
  else if (v.model == "bert") tok = make_wpm_tokenizer();
  else if (v.model == "t5") tok = make_ugm_tokenizer();
  else throw Error("tokenizer model '" + v.model + "' is not supported (supported: gpt2, llama, bert, t5)");
  if (v.types.size() != v.tokens.size()) throw Error("tokenizer: token types do not match the tokens");
  tok->model_ = v.model;
  tok->pre_ = v.pre;
  tok->chat_template_ = v.chat_template;
  tok->tokens_ = v.tokens;
  tok->types_ = v.types;
  const size_t n = tok->tokens_.size();
  tok->index_.reserve(n);
  for (size_t i = 0; i < n; ++i) tok->index_.emplace(tok->tokens_[i], static_cast<int32_t>(i));
  for (size_t i = 0; i < n; ++i)
    if ((tok->types_[i] == TokenType::Control || tok->types_[i] == TokenType::UserDefined ||
         tok->types_[i] == TokenType::Unknown) &&
        !tok->tokens_[i].empty())
      tok->specials_.push_back(static_cast<int32_t>(i));
  std::stable_sort(tok->specials_.begin(), tok->specials_.end(), [&](int32_t a, int32_t b) {
    return tok->tokens_[static_cast<size_t>(a)].size() > tok->tokens_[static_cast<size_t>(b)].size();
  });
  for (int32_t id : tok->specials_)
    tok->specials_by_byte_[static_cast<unsigned char>(tok->tokens_[static_cast<size_t>(id)][0])].push_back(id);
  tok->bos_ = v.bos;
  tok->eos_ = v.eos;
  tok->eog_ = v.eog;
  tok->add_bos_ = v.add_bos && v.bos >= 0;
  tok->unk_ = v.unk;
  tok->sep_ = v.sep;
  tok->pad_ = v.pad;
  tok->add_eos_ = v.add_eos && v.eos >= 0;
  tok->add_sep_ = v.add_sep && v.sep >= 0;
  tok->normalize_nfc_ = v.normalize_nfc;
  tok->init(v);
  return tok;
}

std::string Tokenizer::kind_name(const std::string& model) {
  if (model == "gpt2") return "byte-level BPE";
  if (model == "llama") return "SentencePiece BPE";
  if (model == "bert") return "WordPiece";
  if (model == "t5") return "SentencePiece unigram";
  return "unknown";
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::find(eog_.begin(), eog_.end(), id) != eog_.end();
}

std::optional<int32_t> Tokenizer::lookup(std::string_view piece) const {
  auto it = index_.find(piece);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::vector<Tokenizer::Fragment> Tokenizer::split_special(std::string_view text, bool parse_special) const {
  // User-defined (added) tokens are always matched in the text; control and
  // unknown tokens only when the caller allows special tokens (as llama.cpp does).
  std::vector<Fragment> out;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    int32_t hit = -1;
    for (int32_t id : specials_by_byte_[static_cast<unsigned char>(text[i])]) {
      if (!parse_special && types_[static_cast<size_t>(id)] != TokenType::UserDefined) continue;
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

std::string Tokenizer::token_bytes(int32_t id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) throw Error("token id " + std::to_string(id) + " is outside the vocabulary");
  const std::string& p = tokens_[static_cast<size_t>(id)];
  TokenType t = types_[static_cast<size_t>(id)];
  if (t == TokenType::Control || t == TokenType::Unknown) return render_special ? p : "";
  if (t == TokenType::UserDefined) return p;
  return piece_bytes(p, t);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id, render_special);
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.token_bytes(id, special_);
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
