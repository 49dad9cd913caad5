#include "tokenizer/charsmap.h"

#include "util/error.h"

namespace volga {

namespace {

uint32_t read_le32(std::string_view s, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(s[at])) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 2])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 3])) << 24;
}

}  // namespace

PrecompiledCharsmap::PrecompiledCharsmap(std::string_view blob) {
  if (blob.empty()) return;
  if (blob.size() < 4)
    throw Error("precompiled_charsmap is truncated: " + std::to_string(blob.size()) +
                " bytes, less than its 4-byte header");
  const uint64_t trie_bytes = read_le32(blob, 0);
  if (trie_bytes == 0 || trie_bytes % 4 != 0)
    throw Error("precompiled_charsmap: trie size " + std::to_string(trie_bytes) + " is not a positive multiple of 4");
  if (4 + trie_bytes >= blob.size())
    throw Error("precompiled_charsmap is truncated: its trie needs " + std::to_string(trie_bytes) +
                " bytes and replacement strings after them, but the blob has " + std::to_string(blob.size()));
  units_.resize(static_cast<size_t>(trie_bytes / 4));
  for (size_t i = 0; i < units_.size(); ++i) units_[i] = read_le32(blob, 4 + 4 * i);
  replacements_.assign(blob.substr(static_cast<size_t>(4 + trie_bytes)));
  validate();
}

std::string_view PrecompiledCharsmap::replacement_at(uint32_t offset) const {
  if (offset >= replacements_.size())
    throw Error("precompiled_charsmap: a rule points at replacement offset " + std::to_string(offset) +
                ", outside the " + std::to_string(replacements_.size()) + " bytes of replacement strings");
  size_t end = replacements_.find('\0', offset);
  if (end == std::string::npos)
    throw Error("precompiled_charsmap: the replacement string at offset " + std::to_string(offset) +
                " is not NUL-terminated");
  return std::string_view(replacements_).substr(offset, end - offset);
}

// Visits every node reachable from the root once (a hostile trie may share or
// loop nodes) and checks each leaf's replacement string.
void PrecompiledCharsmap::validate() const {
  std::vector<bool> seen(units_.size(), false);
  std::vector<uint32_t> states = {base(0)};
  while (!states.empty()) {
    const uint32_t state = states.back();
    states.pop_back();
    for (uint32_t c = 1; c < 256; ++c) {
      const uint32_t node = state ^ c;
      if (node >= units_.size() || seen[node] || label(node) != c) continue;
      seen[node] = true;
      const uint32_t next = node ^ base(node);
      if (is_leaf(node)) {
        if (next >= units_.size())
          throw Error("precompiled_charsmap: a rule's value node " + std::to_string(next) + " lies past the trie's " +
                      std::to_string(units_.size()) + " entries");
        replacement_at(value(next));
      }
      states.push_back(next);
    }
  }
}

size_t PrecompiledCharsmap::match(std::string_view text, size_t pos, std::string_view* replacement) const {
  if (units_.empty()) return 0;
  size_t best_len = 0;
  uint32_t best_value = 0;
  uint32_t state = base(0);
  for (size_t i = pos; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0) break;
    const uint32_t node = state ^ c;
    if (label(node) != c) break;  // out-of-range nodes read as 0: no match
    state = node ^ base(node);
    if (is_leaf(node)) {
      best_len = i - pos + 1;
      best_value = value(state);
    }
  }
  if (best_len > 0) *replacement = replacement_at(best_value);
  return best_len;
}

}  // namespace volga
