// WordPiece tokenizer (GGUF tokenizer.ggml.model = "bert"), as BERT-family
// embedding models (BGE, E5, MiniLM) use it.
//
// Text goes through the BERT normalizer (control characters dropped,
// whitespace unified, CJK ideographs isolated, accents stripped by NFD minus
// non-spacing marks, lower-casing), is split at whitespace and around every
// punctuation character, and each word is cut greedily into the longest
// vocabulary pieces from its start. A word that cannot be covered (or is
// longer than 100 characters) becomes one [UNK].
//
// Vocabulary form (as llama.cpp's converter writes it): a word-initial piece
// carries a leading U+2581 "▁" ("▁hello"), a continuation piece is bare
// ("llo", Hugging Face's "##llo"), and bracketed specials ([CLS]) are kept.
//
// Thread-safety: immutable after init(); encode is const.
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

#include "tokenizer/tokenizer_impl.h"
#include "util/error.h"
#include "util/utf8.h"

namespace volga {

namespace {

const std::string kWordStart = "\xE2\x96\x81";  // U+2581
constexpr size_t kMaxWordChars = 100;            // Hugging Face's max_input_chars_per_word

bool is_whitespace(uint32_t cp) {  // Unicode White_Space
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

bool is_other(uint32_t cp) {  // categories Cc, Cf, Cn, Co, Cs
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    default:
      return false;
  }
}

// BERT counts tab, newline and carriage return as whitespace, not control.
bool is_control(uint32_t cp) { return cp != '\t' && cp != '\n' && cp != '\r' && is_other(cp); }

bool is_punctuation(uint32_t cp) {  // ASCII punctuation or any P* category
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_cjk_ideograph(uint32_t cp) {  // the CJK blocks BERT isolates
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Code points of `s`; a byte that does not start valid UTF-8 becomes U+FFFD.
std::vector<uint32_t> decode_lossy(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t len = utf8_valid_sequence(s, i);
    if (len == 0) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(utf8_code_points(s.substr(i, len)).front());
    i += len;
  }
  return out;
}

// Canonical decomposition (NFD) of valid UTF-8.
std::string nfd(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    static_cast<utf8proc_ssize_t>(s.size()), &out,
                                    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
  if (n < 0) return s;
  std::string r(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

class WpmTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> ids;
    if (add_special && bos_ >= 0) ids.push_back(bos_);  // [CLS]
    for (const Fragment& frag : split_special(text, parse_special)) {
      if (frag.id >= 0) {
        ids.push_back(frag.id);
        continue;
      }
      for (const std::string& word : split_words(normalize(frag.text))) encode_word(word, ids);
    }
    if (add_special && add_sep_) ids.push_back(sep_);  // [SEP]
    return ids;
  }

  std::string piece_bytes(const std::string& p, TokenType) const override {
    if (p.rfind(kWordStart, 0) == 0) return " " + p.substr(kWordStart.size());
    return p;
  }

 protected:
  void init(const VocabData& v) override {
    if (unk_ < 0) throw Error("WordPiece vocabulary has no unknown token ([UNK])");
    lowercase_ = v.lowercase;
    strip_accents_ = v.strip_accents;
    for (const std::string& t : tokens_) max_piece_bytes_ = std::max(max_piece_bytes_, t.size());
  }

 private:
  // The BERT normalizer: clean, isolate CJK, strip accents, lower-case.
  std::string normalize(std::string_view text) const {
    std::string cleaned;
    cleaned.reserve(text.size());
    for (uint32_t cp : decode_lossy(text)) {
      if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
      if (is_whitespace(cp)) {
        cleaned += ' ';
      } else if (is_cjk_ideograph(cp)) {
        cleaned += ' ';
        append_utf8(cleaned, cp);
        cleaned += ' ';
      } else {
        append_utf8(cleaned, cp);
      }
    }
    if (strip_accents_) cleaned = nfd(cleaned);
    if (!strip_accents_ && !lowercase_) return cleaned;
    std::string out;
    out.reserve(cleaned.size());
    for (uint32_t cp : utf8_code_points(cleaned)) {
      if (strip_accents_ && utf8proc_category(static_cast<utf8proc_int32_t>(cp)) == UTF8PROC_CATEGORY_MN) continue;
      if (lowercase_ && cp == 0x130) {  // İ: the one full lower-case mapping of two characters
        out += "i\xCC\x87";
        continue;
      }
      append_utf8(out, lowercase_ ? static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))) : cp);
    }
    return out;
  }

  // Whitespace separates words; each punctuation character is a word of its own.
  static std::vector<std::string> split_words(const std::string& text) {
    std::vector<std::string> words(1);
    for (uint32_t cp : utf8_code_points(text)) {
      if (is_whitespace(cp)) {
        if (!words.back().empty()) words.emplace_back();
      } else if (is_punctuation(cp)) {
        if (!words.back().empty()) words.emplace_back();
        append_utf8(words.back(), cp);
        words.emplace_back();
      } else {
        append_utf8(words.back(), cp);
      }
    }
    if (words.back().empty()) words.pop_back();
    return words;
  }

  // Greedy longest match: "▁" + prefix for the first piece, bare text after it.
  void encode_word(const std::string& word, std::vector<int32_t>& ids) const {
    if (utf8_code_points(word).size() > kMaxWordChars) {
      ids.push_back(unk_);
      return;
    }
    const std::string text = kWordStart + word;
    const size_t before = ids.size();
    for (size_t i = 0; i < text.size();) {
      const size_t min_end = i == 0 ? kWordStart.size() : i;  // a piece holds at least one character
      size_t end = std::min(text.size(), i + max_piece_bytes_);
      std::optional<int32_t> hit;
      for (; end > min_end; --end) {
        if (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) continue;  // mid-character
        if ((hit = lookup(std::string_view(text).substr(i, end - i)))) break;
      }
      if (!hit) {  // no piece fits: the whole word is unknown
        ids.resize(before);
        ids.push_back(unk_);
        return;
      }
      ids.push_back(*hit);
      i = end;
    }
  }

  bool lowercase_ = true;
  bool strip_accents_ = true;
  size_t max_piece_bytes_ = 1;
};

}  // namespace

std::unique_ptr<Tokenizer> make_wpm_tokenizer() { return std::make_unique<WpmTokenizer>(); }

}  // namespace volga
