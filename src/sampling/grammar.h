// Grammar-constrained decoding.
//
// Grammar     — a context-free grammar in GBNF (llama.cpp's notation:
//               `name ::= alternatives`, "literals", [classes], [^negated],
//               `.`, ( groups ), * + ? {m} {m,} {m,n}, # comments), compiled
//               to a byte-level form: every character class becomes the UTF-8
//               byte sequences of its code points, so a token that ends in the
//               middle of a character, or spans several grammar symbols, is
//               matched byte by byte like any other text. Immutable; shared by
//               every request that uses it.
// TokenTrie   — the vocabulary's token byte strings in one prefix tree (in
//               depth-first order, with subtree skips), built once per
//               tokenizer. Control tokens are not in it: they never match text.
// GrammarMatcher — one sequence's position in a grammar: the set of parser
//               stacks (a graph-structured stack, each node interned), which
//               byte strings may follow, and the token mask for the next step.
//               Stack sets are interned too, so a state that recurs (every
//               character of a long string, every element of an array) reuses
//               its byte transitions and its token mask instead of walking the
//               vocabulary again.
//
// Left-recursive rules are refused when the grammar is compiled.
// Thread-safety: Grammar and TokenTrie are immutable; a GrammarMatcher
// belongs to one sequence.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/error.h"

namespace volga {

class Tokenizer;

// A grammar that does not parse or compile: the message names the line and
// column, or the rule.
class GrammarError : public Error {
 public:
  using Error::Error;
};

class Grammar {
 public:
  // Parses GBNF text; `root` names the start rule. Throws GrammarError.
  static std::shared_ptr<const Grammar> parse(std::string_view gbnf, const std::string& root = "root");

  // Element kinds of the compiled form: alternatives are runs of elements
  // ending in End; a rule is a list of alternative start positions.
  enum class Kind : uint8_t { Bytes, Rule, End };
  struct Element {
    Kind kind;
    uint32_t value;  // Bytes: index into byte_sets(); Rule: rule index
  };
  const std::vector<Element>& elements() const { return elements_; }
  const std::vector<std::bitset<256>>& byte_sets() const { return byte_sets_; }
  const std::vector<uint32_t>& alternatives(uint32_t rule) const { return rules_[rule]; }
  uint32_t root() const { return root_; }
  size_t n_rules() const { return rules_.size(); }

 private:
  friend class GrammarBuilder;
  std::vector<Element> elements_;
  std::vector<std::bitset<256>> byte_sets_;
  std::vector<std::vector<uint32_t>> rules_;
  std::vector<std::string> rule_names_;
  uint32_t root_ = 0;
};

// A GBNF expression (to be placed in a rule body) matching any text that
// does not contain `stop`, followed by `stop` itself: the first occurrence
// of `stop` ends it. Rules it needs are appended to `rules` under names
// starting with `prefix`. Used for free text before a marker (reasoning
// before "</think>", raw parameter values before "</parameter>").
std::string gbnf_text_until(const std::string& stop, const std::string& prefix, std::string& rules);

class TokenTrie {
 public:
  // Every non-control token with at least one byte. `eog_ids` are the
  // end-of-generation tokens (allowed only where the grammar is complete).
  explicit TokenTrie(const Tokenizer& tok);
  TokenTrie(const std::vector<std::string>& token_bytes, std::vector<int32_t> eog_ids);

  int32_t n_vocab() const { return n_vocab_; }
  const std::vector<int32_t>& eog_ids() const { return eog_; }
  const std::string& bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }

  // Nodes in depth-first order: a node's children follow it, and `skip` is
  // the index just past its subtree.
  struct Node {
    uint8_t byte;
    uint8_t depth;   // 1 for a first byte (capped at 255: longer tokens are walked per byte)
    int32_t token;   // a token ending here, or -1
    uint32_t skip;
  };
  const std::vector<Node>& nodes() const { return nodes_; }
  // Tokens with the same bytes as another: (the token in the trie, the duplicate).
  const std::vector<std::pair<uint32_t, int32_t>>& extra_tokens() const { return extra_; }
  // Tokens too long for the node depth counter, matched byte by byte.
  const std::vector<int32_t>& long_tokens() const { return long_; }

 private:
  void build(std::vector<int32_t> eog_ids);
  int32_t n_vocab_ = 0;
  std::vector<std::string> bytes_;  // "" for tokens that never match (control)
  std::vector<Node> nodes_;
  std::vector<std::pair<uint32_t, int32_t>> extra_;
  std::vector<int32_t> long_;
  std::vector<int32_t> eog_;
};

// One allowed/forbidden bit per token id.
using TokenMask = std::vector<uint64_t>;
inline bool mask_allows(const TokenMask& m, int32_t id) {
  return (m[static_cast<size_t>(id) >> 6] >> (static_cast<unsigned>(id) & 63)) & 1;
}

class GrammarMatcher {
 public:
  // Throws GrammarError when the grammar matches no text at all. Any
  // method that advances may throw GrammarError when the parser state
  // outgrows its limits (a pathological grammar).
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);

  // Advances over `bytes`; returns false, leaving the state unchanged, when
  // the grammar does not allow them here.
  bool accept_bytes(std::string_view bytes);
  bool can_accept_bytes(std::string_view bytes);
  // Token level: an end-of-generation token is accepted only where the text
  // so far is complete; other tokens by their bytes.
  bool accept_token(const TokenTrie& trie, int32_t id);
  bool allows_token(const TokenTrie& trie, int32_t id);

  // The text so far is a whole sentence of the grammar.
  bool is_complete() const;
  // Nothing may follow (complete, and no byte can extend it).
  bool is_finished();
  // The bytes that may come next.
  std::bitset<256> next_bytes();

  // The tokens allowed next (cached per parser state).
  const TokenMask& token_mask(const TokenTrie& trie);

  // Interned parser states so far (for tests and memory accounting).
  size_t n_states() const { return sets_.size(); }

 private:
  static constexpr int32_t kAccept = -1;  // the empty stack: the root is done
  static constexpr int32_t kUnknown = -2;
  static constexpr int32_t kDead = -3;
  struct StackNode {
    uint32_t pos;    // element index (a Bytes element)
    int32_t parent;  // continuation node, or kAccept
  };
  struct StateSet {
    std::vector<int32_t> stacks;  // sorted node ids (kAccept first when present)
    std::unique_ptr<std::array<int32_t, 256>> next;  // byte -> set id (kUnknown/kDead)
    int32_t mask = -1;            // index into masks_, or -1
  };

  int32_t node(uint32_t pos, int32_t parent);
  int32_t continuation(uint32_t pos, int32_t parent);
  void closure(int32_t stack, std::vector<int32_t>& out, int depth);
  void begin_pass();
  int32_t intern(std::vector<int32_t>& stacks);
  int32_t step(int32_t set, uint8_t byte);
  int32_t walk(int32_t set, std::string_view bytes);
  void build_mask(const TokenTrie& trie, int32_t set, TokenMask& mask);

  std::shared_ptr<const Grammar> g_;
  std::vector<StackNode> nodes_;
  std::unordered_map<uint64_t, int32_t> node_index_;
  std::vector<StateSet> sets_;
  std::unordered_map<std::string, int32_t> set_index_;
  std::vector<TokenMask> masks_;
  std::vector<int32_t> walk_states_;  // per-depth scratch for the trie walk
  std::vector<uint32_t> mark_;        // per node: the closure pass that expanded it
  uint32_t epoch_ = 0;
  size_t pass_work_ = 0;
  int32_t current_ = 0;
};

}  // namespace volga
