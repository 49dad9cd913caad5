// SentencePiece unigram tokenizer (GGUF tokenizer.ggml.model = "t5"), as
// XLM-RoBERTa models (bge-m3, multilingual-e5) and T5 use it.
//
// Normalization: at each position the longest user-defined token is kept as
// is, else the longest rule of the precompiled charsmap rewrites the input,
// else one UTF-8 character is copied (an invalid byte becomes U+FFFD). Spaces
// become U+2581 "▁"; a leading ▁ is added (add_space_prefix); with
// remove_extra_whitespaces runs of spaces collapse to one ▁ before the next
// word and trailing ones vanish, or, in the Hugging Face Metaspace variant
// (hf_metaspace), runs collapse to one ▁ that stays even at the end and each
// ▁ starts a new word.
//
// Segmentation: the best-scoring path (Viterbi over byte offsets, scores in
// double as SentencePiece sums them) through normal, user-defined (score 0)
// and unused pieces; a character no piece covers costs the lowest piece score
// minus 10 and becomes [UNK] (runs of unknowns fuse into one), or its bytes
// when the vocabulary has <0xXX> byte pieces.
//
// Thread-safety: immutable after init(); encode is const.
#include <algorithm>
#include <cfloat>
#include <cstdio>
#include <cmath>

#include "tokenizer/charsmap.h"
#include "tokenizer/tokenizer_impl.h"
#include "util/error.h"
#include "util/utf8.h"

namespace volga {

namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581
constexpr double kUnknownPenalty = 10.0;

// A byte trie over piece texts in flat arrays: each node's children are a
// contiguous, byte-sorted run of edges.
class PieceTrie {
 public:
  void build(const std::vector<std::string>& texts, const std::vector<int32_t>& ids) {
    std::vector<int32_t> order(ids);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return texts[size_t(a)] < texts[size_t(b)]; });
    nodes_.assign(1, Node{});
    // Iterative (a hostile file may hold a very long piece): each task is a
    // node whose subtree holds order[lo, hi), texts sharing `depth` bytes.
    struct Task {
      int32_t node;
      size_t lo, hi, depth;
    };
    std::vector<Task> tasks = {{0, 0, order.size(), 0}};
    while (!tasks.empty()) {
      Task t = tasks.back();
      tasks.pop_back();
      expand(t.node, texts, order, t.lo, t.hi, t.depth, [&](int32_t child, size_t lo, size_t hi) {
        tasks.push_back({child, lo, hi, t.depth + 1});
      });
    }
  }
  // Child of `node` by `byte`, or -1.
  int32_t child(int32_t node, unsigned char byte) const {
    const Node& n = nodes_[static_cast<size_t>(node)];
    auto first = edge_byte_.begin() + n.first_edge, last = first + n.n_edges;
    auto it = std::lower_bound(first, last, byte);
    if (it == last || *it != byte) return -1;
    return edge_child_[static_cast<size_t>(it - edge_byte_.begin())];
  }
  int32_t value(int32_t node) const { return nodes_[static_cast<size_t>(node)].id; }

 private:
  struct Node {
    int32_t id = -1;
    uint32_t first_edge = 0, n_edges = 0;
  };
  // Sets `node`'s piece and creates its children (one per next byte of
  // order[lo, hi)); `visit(child, lo, hi)` receives each child's share.
  template <typename Visit>
  void expand(int32_t node, const std::vector<std::string>& texts, const std::vector<int32_t>& order, size_t lo,
              size_t hi, size_t depth, Visit visit) {
    // Pieces ending here (a duplicate text keeps its first, lowest id).
    for (; lo < hi && texts[size_t(order[lo])].size() == depth; ++lo)
      if (nodes_[size_t(node)].id < 0) nodes_[size_t(node)].id = order[lo];
    nodes_[size_t(node)].first_edge = static_cast<uint32_t>(edge_byte_.size());
    for (size_t i = lo; i < hi;) {
      const char byte = texts[size_t(order[i])][depth];
      size_t j = i + 1;
      while (j < hi && texts[size_t(order[j])][depth] == byte) ++j;
      const auto child = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      edge_byte_.push_back(static_cast<unsigned char>(byte));
      edge_child_.push_back(child);
      ++nodes_[size_t(node)].n_edges;
      visit(child, i, j);
      i = j;
    }
  }

  std::vector<Node> nodes_;
  std::vector<unsigned char> edge_byte_;
  std::vector<int32_t> edge_child_;
};

class UgmTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> ids;
    if (add_special && add_bos_) ids.push_back(bos_);
    for (const Fragment& frag : split_special(text, parse_special)) {
      if (frag.id >= 0) {
        ids.push_back(frag.id);
        continue;
      }
      const std::string normalized = normalize(frag.text);
      if (!hf_metaspace_) {
        segment(normalized, ids);
        continue;
      }
      size_t begin = 0;  // each ▁ starts a word (Hugging Face Metaspace)
      for (size_t i = kSpace.size(); i + kSpace.size() <= normalized.size(); ++i)
        if (normalized.compare(i, kSpace.size(), kSpace) == 0) {
          segment(std::string_view(normalized).substr(begin, i - begin), ids);
          begin = i;
        }
      segment(std::string_view(normalized).substr(begin), ids);
    }
    if (add_special && add_eos_) ids.push_back(eos_);
    return ids;
  }

  std::string piece_bytes(const std::string& p, TokenType t) const override {
    return sentencepiece_piece_bytes(p, t);
  }

 protected:
  void init(const VocabData& v) override {
    if (unk_ < 0) throw Error("unigram vocabulary has no unknown token");
    if (v.scores.size() != tokens_.size()) throw Error("unigram vocabulary: score count does not match token count");
    scores_ = v.scores;
    for (size_t i = 0; i < scores_.size(); ++i)
      if (!std::isfinite(scores_[i]))
        throw Error("unigram vocabulary: token " + std::to_string(i) + " has a score that is not a finite number");
    charsmap_ = PrecompiledCharsmap(v.precompiled_charsmap);
    add_space_prefix_ = v.add_space_prefix;
    merge_spaces_ = v.remove_extra_whitespaces;
    hf_metaspace_ = v.hf_metaspace;
    double min_score = DBL_MAX;
    std::vector<int32_t> pieces;
    for (size_t i = 0; i < tokens_.size(); ++i) {
      const TokenType t = types_[i];
      if (t == TokenType::Normal) min_score = std::min(min_score, static_cast<double>(scores_[i]));
      if ((t == TokenType::Normal || t == TokenType::UserDefined || t == TokenType::Unused) && !tokens_[i].empty())
        pieces.push_back(static_cast<int32_t>(i));
      if (t == TokenType::UserDefined && !tokens_[i].empty()) user_defined_.push_back(static_cast<int32_t>(i));
    }
    unknown_score_ = (min_score == DBL_MAX ? 0.0 : min_score) - kUnknownPenalty;
    std::stable_sort(user_defined_.begin(), user_defined_.end(),
                     [&](int32_t a, int32_t b) { return tokens_[size_t(a)].size() > tokens_[size_t(b)].size(); });
    trie_.build(tokens_, pieces);
    init_byte_fallback();
  }

 private:
  // Byte fallback only when all 256 <0xXX> byte pieces exist (SentencePiece byte_fallback).
  void init_byte_fallback() {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      auto id = lookup(name);
      if (!id || types_[size_t(*id)] != TokenType::Byte) return;
      byte_ids_[b] = *id;
    }
    byte_fallback_ = true;
  }

  // One step of normalization at text[pos]: what it becomes and how many bytes it consumes.
  size_t normalize_step(std::string_view text, size_t pos, std::string_view* out) const {
    for (int32_t id : user_defined_) {
      const std::string& t = tokens_[size_t(id)];
      if (text.compare(pos, t.size(), t) == 0) {
        *out = text.substr(pos, t.size());
        return t.size();
      }
    }
    if (size_t n = charsmap_.match(text, pos, out)) return n;
    size_t len = utf8_valid_sequence(text, pos);
    if (len == 0) {
      *out = "\xEF\xBF\xBD";
      return 1;
    }
    *out = text.substr(pos, len);
    return len;
  }

  // The input rewritten by user-defined tokens, the charsmap and UTF-8 repair.
  std::string apply_charsmap(std::string_view text) const {
    std::string out;
    out.reserve(text.size() + text.size() / 2);
    for (size_t pos = 0; pos < text.size();) {
      std::string_view piece;
      pos += normalize_step(text, pos, &piece);
      out += piece;
    }
    return out;
  }

  std::string normalize(std::string_view text) const {
    const std::string mapped = apply_charsmap(text);
    return hf_metaspace_ ? escape_spaces_hf(mapped) : escape_spaces(mapped);
  }

  // SentencePiece (and llama.cpp): ▁ before each word when spaces are merged,
  // else every space becomes ▁ and only the first word gets the added prefix.
  std::string escape_spaces(const std::string& s) const {
    std::string out;
    out.reserve(s.size() + s.size() / 2 + kSpace.size());
    bool prefix_added = false, in_word = false;
    for (char c : s) {
      if (c == ' ') {
        in_word = false;
        if (!merge_spaces_) out += kSpace;
        continue;
      }
      if (!in_word) {
        in_word = true;
        if ((add_space_prefix_ && !prefix_added) || merge_spaces_) {
          out += kSpace;
          prefix_added = true;
        }
      }
      out += c;
    }
    return out;
  }

  // Hugging Face: runs of spaces collapse to one (the Replace normalizer),
  // spaces become ▁, and ▁ is prepended unless the text starts with one.
  std::string escape_spaces_hf(const std::string& s) const {
    std::string out;
    if (s.empty()) return out;
    out.reserve(s.size() + s.size() / 2 + kSpace.size());
    if (add_space_prefix_ && s[0] != ' ') out += kSpace;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != ' ') {
        out += s[i];
        continue;
      }
      if (!merge_spaces_ || i == 0 || s[i - 1] != ' ') out += kSpace;
    }
    return out;
  }

  struct Best {
    int32_t id;
    size_t from;
    double score;
  };

  // Viterbi over byte offsets of `s`, then the best path back from the end.
  void segment(std::string_view s, std::vector<int32_t>& ids) const {
    if (s.empty()) return;
    std::vector<Best> best(s.size() + 1, Best{unk_, 0, -DBL_MAX});
    best[0] = Best{unk_, 0, 0.0};
    for (size_t at = 0; at < s.size();) {
      const size_t char_len = std::max<size_t>(1, std::min(utf8_char_bytes(s, at), s.size() - at));
      const double here = best[at].score;
      bool whole_char = false;
      int32_t node = 0;
      for (size_t end = at; end < s.size();) {
        node = trie_.child(node, static_cast<unsigned char>(s[end++]));
        if (node < 0) break;
        const int32_t id = trie_.value(node);
        if (id < 0) continue;
        if (end - at == char_len) whole_char = true;
        const double score =
            here + (types_[size_t(id)] == TokenType::UserDefined ? 0.0 : static_cast<double>(scores_[size_t(id)]));
        if (score > best[end].score) best[end] = Best{id, at, score};
      }
      if (!whole_char && here + unknown_score_ > best[at + char_len].score)
        best[at + char_len] = Best{unk_, at, here + unknown_score_};
      at += char_len;
    }
    emit_path(s, best, ids);
  }

  void emit_path(std::string_view s, const std::vector<Best>& best, std::vector<int32_t>& ids) const {
    struct Step {
      int32_t id;
      size_t from, to;
    };
    std::vector<Step> path;
    for (size_t end = s.size(); end > 0; end = best[end].from) {
      const Best& b = best[end];
      if (b.id == unk_ && !path.empty() && path.back().id == unk_) path.back().from = b.from;  // fuse unknowns
      else path.push_back(Step{b.id, b.from, end});
    }
    for (auto it = path.rbegin(); it != path.rend(); ++it) {
      if (it->id != unk_ || !byte_fallback_) {
        ids.push_back(it->id);
        continue;
      }
      for (size_t k = it->from; k < it->to; ++k) ids.push_back(byte_ids_[static_cast<unsigned char>(s[k])]);
    }
  }

  static size_t utf8_char_bytes(std::string_view s, size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    return c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
  }

  std::vector<float> scores_;
  PrecompiledCharsmap charsmap_;
  PieceTrie trie_;
  std::vector<int32_t> user_defined_;  // longest first
  double unknown_score_ = 0;
  int32_t byte_ids_[256] = {};
  bool byte_fallback_ = false;
  bool add_space_prefix_ = false;
  bool merge_spaces_ = false;
  bool hf_metaspace_ = false;  // see VocabData::hf_metaspace
};

}  // namespace

std::unique_ptr<Tokenizer> make_ugm_tokenizer() { return std::make_unique<UgmTokenizer>(); }

}  // namespace volga
