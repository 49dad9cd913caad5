// SentencePiece-style tokenizer (GGUF tokenizer.ggml.model = "llama"): spaces
// become U+2581 "▁", an optional leading ▁ is added, characters are merged
// greedily by the score of the merged piece, and characters outside the
// vocabulary fall back to <0xXX> byte tokens.
#include <cstdio>

#include "tokenizer/merge_queue.h"
#include "tokenizer/tokenizer_impl.h"
#include "util/error.h"

namespace volga {

namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581

size_t utf8_char_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

class SpmTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> ids;
    if (add_special && add_bos_) ids.push_back(bos_);
    bool first = true;
    for (const Fragment& frag : split_special(text, parse_special)) {
      if (frag.id >= 0) {
        ids.push_back(frag.id);
        first = false;
        continue;
      }
      std::string s = (first && add_space_prefix_) ? kSpace : "";
      first = false;
      for (char c : frag.text) {
        if (c == ' ') s += kSpace;
        else s += c;
      }
      if (!split_at_words_) {
        encode_piece(s, ids);
        continue;
      }
      // No token has ▁ after another character, so none spans a point where ▁
      // follows a non-▁ character: encode word by word (small merge queues).
      size_t begin = 0;
      for (size_t i = kSpace.size(); i + kSpace.size() <= s.size(); ++i)
        if (s.compare(i, kSpace.size(), kSpace) == 0 && s.compare(i - kSpace.size(), kSpace.size(), kSpace) != 0) {
          encode_piece(s.substr(begin, i - begin), ids);
          begin = i;
        }
      encode_piece(s.substr(begin), ids);
    }
    return ids;
  }

  std::string piece_bytes(const std::string& p, TokenType t) const override {
    return sentencepiece_piece_bytes(p, t);
  }

 protected:
  void init(const VocabData& v) override {
    scores_ = v.scores;
    if (scores_.empty()) scores_.assign(tokens_.size(), 0.0f);
    if (scores_.size() != tokens_.size()) throw Error("tokenizer: score count does not match token count");
    add_space_prefix_ = v.add_space_prefix;
    split_at_words_ = true;
    for (const std::string& t : tokens_) {
      size_t k = 0;
      while (t.compare(k, kSpace.size(), kSpace) == 0) k += kSpace.size();
      if (t.find(kSpace, k) != std::string::npos) {
        split_at_words_ = false;
        break;
      }
    }
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      auto id = lookup(name);
      byte_ids_[b] = id ? *id : -1;
    }
  }

 private:
  void encode_piece(const std::string& s, std::vector<int32_t>& ids) const {
    std::vector<detail::Symbol> sym;
    for (size_t i = 0; i < s.size();) {
      size_t len = std::min(utf8_char_len(static_cast<unsigned char>(s[i])), s.size() - i);
      auto id = lookup(std::string_view(s).substr(i, len));
      int32_t n = static_cast<int32_t>(sym.size());
      sym.push_back({n - 1, n + 1, static_cast<uint32_t>(i), static_cast<uint32_t>(len), id ? *id : -1});
      i += len;
    }
    if (sym.empty()) return;
    sym.back().next = -1;
    // Merge the adjacent pair whose merged piece scores highest (leftmost on ties).
    detail::merge_symbols(sym, [&](const detail::Symbol& l, const detail::Symbol& r, double* priority, int32_t* merged) {
      auto id = lookup(std::string_view(s).substr(l.start, l.len + r.len));
      if (!id) return false;
      *priority = scores_[static_cast<size_t>(*id)];
      *merged = *id;
      return true;
    });
    for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
      const detail::Symbol& sy = sym[static_cast<size_t>(i)];
      if (sy.id >= 0) {
        ids.push_back(sy.id);
        continue;
      }
      for (uint32_t k = sy.start; k < sy.start + sy.len; ++k)  // byte fallback
        if (byte_ids_[static_cast<unsigned char>(s[k])] >= 0) ids.push_back(byte_ids_[static_cast<unsigned char>(s[k])]);
    }
  }

  std::vector<float> scores_;
  int32_t byte_ids_[256] = {};
  bool add_space_prefix_ = true;
  bool split_at_words_ = false;  // see encode()
};

}  // namespace

std::string sentencepiece_piece_bytes(const std::string& p, TokenType t) {
  if (t == TokenType::Byte && p.size() == 6 && p.rfind("<0x", 0) == 0) {
    unsigned v = 0;
    std::sscanf(p.c_str() + 3, "%2x", &v);
    return std::string(1, static_cast<char>(v));
  }
  std::string out;
  for (size_t i = 0; i < p.size();) {
    if (p.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += p[i++];
    }
  }
  return out;
}

std::unique_ptr<Tokenizer> make_spm_tokenizer() { return std::make_unique<SpmTokenizer>(); }

}  // namespace volga
