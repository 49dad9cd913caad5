// PrecompiledCharsmap — SentencePiece's precompiled normalization rules
// (GGUF tokenizer.ggml.precompiled_charsmap; tokenizer.json's "Precompiled"
// normalizer, base64). Layout: a little-endian u32 N, then N bytes of an
// XOR-compressed compact double array (XCDA) trie over UTF-8 bytes, then
// NUL-terminated replacement strings that the trie's leaves point into.
//
// The blob is untrusted file data: the constructor walks every reachable trie
// node once and refuses (volga::Error naming the defect) a truncated header,
// a trie that runs past the blob, or a leaf whose replacement lies outside it
// or is not terminated; lookups never read outside the copied arrays.
//
// Thread-safety: immutable after construction; match() is const.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace volga {

class PrecompiledCharsmap {
 public:
  PrecompiledCharsmap() = default;  // no rules: every lookup misses
  // Throws volga::Error for a malformed blob. An empty blob means no rules.
  explicit PrecompiledCharsmap(std::string_view blob);

  bool empty() const { return units_.empty(); }

  // The longest prefix of text[pos..] that a rule rewrites: its length in
  // bytes (0 when no rule applies) and, in *replacement, what it becomes.
  size_t match(std::string_view text, size_t pos, std::string_view* replacement) const;

 private:
  uint32_t unit(size_t i) const { return i < units_.size() ? units_[i] : 0; }
  // Fields of a packed XCDA unit.
  uint32_t base(size_t i) const {
    uint32_t u = unit(i);
    return (u >> 10) << ((u & (1u << 9)) >> 6);
  }
  uint32_t label(size_t i) const { return unit(i) & ((1u << 31) | 0xFFu); }
  bool is_leaf(size_t i) const { return ((unit(i) >> 8) & 1u) != 0; }
  uint32_t value(size_t i) const { return unit(i) & ((1u << 31) - 1); }

  void validate() const;
  std::string_view replacement_at(uint32_t offset) const;

  std::vector<uint32_t> units_;
  std::string replacements_;
};

}  // namespace volga
