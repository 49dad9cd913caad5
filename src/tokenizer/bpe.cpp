// Byte-level BPE (GPT-2 style): text is split by the family's pre-tokenizer
// regex (PCRE2, Unicode properties, JIT), each piece's bytes are mapped to the
// GPT-2 printable alphabet, then merged by rank.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

#include "tokenizer/merge_queue.h"
#include "tokenizer/tokenizer_impl.h"
#include "util/error.h"
#include "util/utf8.h"

namespace volga {

namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// GPT-2's reversible byte -> printable code point mapping.
std::array<uint32_t, 256> byte_to_codepoint() {
  std::array<uint32_t, 256> m{};
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    m[static_cast<size_t>(b)] = printable ? static_cast<uint32_t>(b) : next++;
  }
  return m;
}

class Regex {
 public:
  explicit Regex(const std::string& pattern) {
    int err;
    PCRE2_SIZE off;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      throw Error("pre-tokenizer regex does not compile at offset " + std::to_string(off) + ": " +
                  reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Splits text into matches; text not covered by any match becomes its own piece.
  std::vector<std::string_view> split(std::string_view text) const {
    std::vector<std::string_view> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t pos = 0, covered = 0;
    while (pos < text.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, 0, md, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t b = ov[0], e = ov[1];
      if (b > covered) out.push_back(text.substr(covered, b - covered));
      if (e == b) {  // empty match: step one byte to make progress
        pos = b + 1;
        continue;
      }
      out.push_back(text.substr(b, e - b));
      pos = covered = e;
    }
    if (covered < text.size()) out.push_back(text.substr(covered));
    pcre2_match_data_free(md);
    return out;
  }

 private:
  pcre2_code* code_ = nullptr;
};

class BpeTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> ids;
    if (add_special && add_bos_) ids.push_back(bos_);
    std::unordered_map<std::string_view, std::vector<int32_t>> cache;  // words seen in this text
    std::string normalized;
    if (normalize_nfc_) {  // Unicode NFC, as the tokenizer.json's normalizer asks
      normalized = nfc_normalize(text);
      text = normalized;
    }
    for (const Fragment& frag : split_special(text, parse_special)) {
      if (frag.id >= 0) {
        ids.push_back(frag.id);
        continue;
      }
      // Each regex splits the pieces left by the previous one.
      std::vector<std::string_view> pieces = {frag.text};
      for (const auto& re : regexes_) {
        std::vector<std::string_view> next;
        for (std::string_view p : pieces)
          for (std::string_view q : re->split(p)) next.push_back(q);
        pieces = std::move(next);
      }
      for (std::string_view word : pieces) {
        auto hit = cache.find(word);
        if (hit != cache.end()) {
          ids.insert(ids.end(), hit->second.begin(), hit->second.end());
          continue;
        }
        size_t before = ids.size();
        encode_word(word, ids);
        if (word.size() <= 64) cache.emplace(word, std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(before), ids.end()));
      }
    }
    return ids;
  }

  std::string piece_bytes(const std::string& p, TokenType) const override {
    std::string out;
    for (size_t i = 0; i < p.size();) {
      uint32_t cp;
      size_t len = decode_cp(p, i, &cp);
      auto it = cp_to_byte_.find(cp);
      if (it != cp_to_byte_.end()) out += static_cast<char>(it->second);
      else out.append(p, i, len);  // not byte-level-mapped: keep as is
      i += len;
    }
    return out;
  }

 protected:
  void init(const VocabData& v) override {
    // Merge rules by token-id pair; rules whose parts are not tokens can never apply.
    merges_.reserve(v.merges.size());
    for (size_t r = 0; r < v.merges.size(); ++r) {
      const std::string& m = v.merges[r];
      size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;
      auto a = lookup(std::string_view(m).substr(0, sp)), b = lookup(std::string_view(m).substr(sp + 1));
      auto ab = lookup(m.substr(0, sp) + m.substr(sp + 1));
      if (a && b && ab) merges_.emplace(pair_key(*a, *b), Merge{static_cast<int32_t>(r), *ab});
    }
    auto map = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) {
      append_utf8(byte_str_[static_cast<size_t>(b)], map[static_cast<size_t>(b)]);
      cp_to_byte_[map[static_cast<size_t>(b)]] = static_cast<uint8_t>(b);
    }
    for (const std::string& re : v.pre_regexes) regexes_.push_back(std::make_unique<Regex>(re));
    ignore_merges_ = v.ignore_merges;
  }

 private:
  static size_t decode_cp(const std::string& s, size_t i, uint32_t* cp) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (i + len > s.size()) len = 1;
    uint32_t v = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) v = (v << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    *cp = v;
    return len;
  }

  void encode_word(std::string_view word, std::vector<int32_t>& ids) const {
    std::string mapped;
    for (unsigned char c : word) mapped += byte_str_[c];
    if (ignore_merges_) {
      if (auto id = lookup(mapped)) {
        ids.push_back(*id);
        return;
      }
    }
    // Symbols start as whole UTF-8 characters of the mapped text.
    std::vector<detail::Symbol> sym;
    for (size_t i = 0; i < mapped.size();) {
      uint32_t cp;
      size_t len = decode_cp(mapped, i, &cp);
      auto id = lookup(std::string_view(mapped).substr(i, len));
      int32_t n = static_cast<int32_t>(sym.size());
      sym.push_back({n - 1, n + 1, static_cast<uint32_t>(i), static_cast<uint32_t>(len), id ? *id : -1});
      i += len;
    }
    if (sym.empty()) return;
    sym.back().next = -1;
    detail::merge_symbols(sym, [&](const detail::Symbol& l, const detail::Symbol& r, double* priority, int32_t* merged) {
      if (l.id < 0 || r.id < 0) return false;
      auto it = merges_.find(pair_key(l.id, r.id));
      if (it == merges_.end()) return false;
      *priority = -static_cast<double>(it->second.rank);  // lower rank merges first
      *merged = it->second.merged;
      return true;
    });
    for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
      const detail::Symbol& s = sym[static_cast<size_t>(i)];
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      // A character outside the vocabulary: fall back to its single-byte tokens.
      for (uint32_t k = s.start; k < s.start + s.len;) {
        uint32_t cp;
        size_t len = decode_cp(mapped, k, &cp);
        if (auto id = lookup(std::string_view(mapped).substr(k, len))) ids.push_back(*id);
        k += static_cast<uint32_t>(len);
      }
    }
  }

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<std::string, 256> byte_str_;
  std::unordered_map<uint32_t, uint8_t> cp_to_byte_;
  std::vector<std::unique_ptr<Regex>> regexes_;
  bool ignore_merges_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer() { return std::make_unique<BpeTokenizer>(); }

}  // namespace volga
