// Splits a document's text into overlapping chunks of at most a given number
// of tokens, cutting preferably at paragraph ends, then sentence ends, then
// between words, and only as a last resort between characters (never inside
// a UTF-8 sequence, so Russian and Chinese text stays whole). Thread-safe
// when `count_tokens` is.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace volga::retrieval {

struct Chunk {
  int64_t start = 0, end = 0;  // byte range [start, end) of the text
  std::string text;            // text.substr(start, end - start)
};

struct ChunkOptions {
  int64_t max_tokens = 256;    // per chunk, including the model's special tokens
  int64_t overlap_tokens = 32; // tokens of the previous chunk repeated at the start of the next
};

// count_tokens(text) is the model's token count of a text, special tokens
// included (so count_tokens("") is the fixed overhead of one input). Throws
// volga::Error when max_tokens leaves no room for text or overlap_tokens is
// negative or not below max_tokens.
std::vector<Chunk> chunk_text(std::string_view text, const ChunkOptions& opts,
                              const std::function<int64_t(const std::string&)>& count_tokens);

}  // namespace volga::retrieval
