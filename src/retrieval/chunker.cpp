// The chunker: see chunker.h. The text is cut into pieces (sentences, or
// smaller where a sentence alone is over the budget), each knowing how
// strong the boundary after it is; chunks are packed greedily from pieces and
// end at the strongest boundary in their second half.
#include "retrieval/chunker.h"

#include <algorithm>

#include "util/error.h"
#include "util/utf8.h"

namespace volga::retrieval {

namespace {

enum Boundary { kChar = 0, kWord = 1, kSentence = 2, kParagraph = 3 };

struct Piece {
  int64_t start = 0, end = 0;
  int64_t tokens = 0;
  int after = kChar;  // strength of the boundary after the piece
};

size_t seq_len(std::string_view s, size_t i) {
  const size_t n = utf8_valid_sequence(s, i);
  return n ? n : 1;
}

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// Code points that end a sentence: . ! ? … and the CJK full stops (。！？).
bool ends_sentence(std::string_view s, size_t i, size_t len) {
  const char c = s[i];
  if (len == 1) return c == '.' || c == '!' || c == '?' || c == ';';
  const std::string_view cp = s.substr(i, len);
  return cp == "\u3002" || cp == "\uFF01" || cp == "\uFF1F" || cp == "\u2026" || cp == "\uFF1B";
}

// Cuts s[begin, end) after every boundary at least as strong as `level`
// (paragraph: blank line; sentence: a stop followed by space or a CJK stop;
// word: whitespace; char: every code point).
std::vector<Piece> split_level(std::string_view s, int64_t begin, int64_t end, int level) {
  std::vector<Piece> out;
  int64_t start = begin;
  size_t i = static_cast<size_t>(begin);
  while (i < static_cast<size_t>(end)) {
    const size_t len = seq_len(s, i);
    size_t next = i + len;
    int strength = -1;
    if (s[i] == '\n' && next < static_cast<size_t>(end) && s[next] == '\n') {
      strength = kParagraph;
    } else if (ends_sentence(s, i, len) && (len > 1 || next >= static_cast<size_t>(end) || is_ws(s[next]))) {
      strength = kSentence;
    } else if (is_ws(s[i])) {
      strength = kWord;
    } else if (level == kChar) {
      strength = kChar;
    }
    if (strength >= level) {
      while (next < static_cast<size_t>(end) && is_ws(s[next])) {
        if (s[next] == '\n' && next > i && s[next - 1] == '\n') strength = kParagraph;
        ++next;
      }
      out.push_back({start, static_cast<int64_t>(next), 0, strength});
      start = static_cast<int64_t>(next);
    }
    i = next;
  }
  if (start < end) out.push_back({start, end, 0, kParagraph});
  return out;
}

class Packer {
 public:
  Packer(std::string_view text, const ChunkOptions& opts, const std::function<int64_t(const std::string&)>& count)
      : text_(text), opts_(opts), count_(count), overhead_(count("")), budget_(opts.max_tokens - overhead_) {
    if (budget_ < 1)
      throw Error("chunks of " + std::to_string(opts.max_tokens) + " tokens leave no room for text (the model adds " +
                  std::to_string(overhead_) + " special tokens)");
    if (opts.overlap_tokens < 0 || opts.overlap_tokens >= opts.max_tokens)
      throw Error("the chunk overlap (" + std::to_string(opts.overlap_tokens) +
                  " tokens) must be at least 0 and below the chunk size (" + std::to_string(opts.max_tokens) + ")");
  }

  // Pieces of at most budget_ tokens each, in order.
  std::vector<Piece> pieces() {
    std::vector<Piece> out;
    refine(0, static_cast<int64_t>(text_.size()), kSentence, kParagraph, out);
    return out;
  }

  std::vector<Chunk> pack(const std::vector<Piece>& p) const {
    std::vector<Chunk> chunks;
    size_t i = 0;
    while (i < p.size()) {
      // Longest run [i, j) within the budget, then the best place to end it.
      int64_t sum = 0;
      size_t j = i;
      while (j < p.size() && sum + p[j].tokens <= budget_) sum += p[j++].tokens;
      if (j == i) j = i + 1;  // a piece over the budget cannot happen (refine); keep progressing anyway
      size_t cut = j;
      int64_t run = 0;
      int best = -1;
      for (size_t k = i; k < j; ++k) {
        run += p[k].tokens;
        if (k + 1 < j && run * 2 >= sum && p[k].after > best && p[k].after > p[j - 1].after) {
          best = p[k].after;
          cut = k + 1;
        }
      }
      emit(p[i].start, p[cut - 1].end, chunks);
      if (cut >= p.size()) break;
      i = overlap_start(p, i, cut);
    }
    return chunks;
  }

 private:
  void refine(int64_t begin, int64_t end, int level, int after, std::vector<Piece>& out) {
    std::vector<Piece> parts = split_level(text_, begin, end, level);
    if (!parts.empty()) parts.back().after = std::max(parts.back().after, after);
    for (Piece& piece : parts) {
      piece.tokens = tokens_of(piece.start, piece.end);
      if (piece.tokens <= budget_ || (level == kChar && piece.end - piece.start <= 4)) {
        out.push_back(piece);
      } else {
        refine(piece.start, piece.end, level == kSentence ? kWord : kChar, piece.after, out);
      }
    }
  }

  int64_t tokens_of(int64_t start, int64_t end) const {
    return std::max<int64_t>(0, count_(std::string(text_.substr(start, end - start))) - overhead_);
  }

  // The first piece of the next chunk: as far back before `cut` as the
  // overlap allows, but after `first` so that every chunk makes progress.
  size_t overlap_start(const std::vector<Piece>& p, size_t first, size_t cut) const {
    size_t k = cut;
    int64_t sum = 0;
    while (k > first + 1 && sum + p[k - 1].tokens <= opts_.overlap_tokens) sum += p[--k].tokens;
    return k;
  }

  void emit(int64_t start, int64_t end, std::vector<Chunk>& out) const {
    while (start < end && is_ws(text_[static_cast<size_t>(start)])) ++start;
    while (end > start && is_ws(text_[static_cast<size_t>(end - 1)])) --end;
    if (start >= end) return;
    out.push_back({start, end, std::string(text_.substr(start, end - start))});
  }

  std::string_view text_;
  const ChunkOptions& opts_;
  const std::function<int64_t(const std::string&)>& count_;
  int64_t overhead_, budget_;
};

}  // namespace

std::vector<Chunk> chunk_text(std::string_view text, const ChunkOptions& opts,
                              const std::function<int64_t(const std::string&)>& count_tokens) {
  Packer packer(text, opts, count_tokens);
  return packer.pack(packer.pieces());
}

}  // namespace volga::retrieval
