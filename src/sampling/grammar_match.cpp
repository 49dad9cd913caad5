// GrammarMatcher and TokenTrie (see sampling/grammar.h).
//
// A parser state is a set of stacks. A stack is a node (an element position
// plus the node to continue with when that position's alternative ends);
// nodes are interned, so stacks share their tails and equal stacks are equal
// ids. A state is the sorted set of stack ids whose top is a byte element
// (or kAccept), interned too: consuming a byte maps a state id to a state id,
// and that map is cached per state, as is the token mask.
#include <algorithm>
#include <cstring>

#include "sampling/grammar.h"
#include "tokenizer/tokenizer.h"

namespace volga {

namespace {
// A pathological grammar (huge nesting, wild ambiguity) stops here instead of
// eating memory and time: parser nodes in all, rule expansions per byte,
// recursion depth of one expansion.
constexpr size_t kMaxNodes = size_t(1) << 21;
constexpr size_t kMaxPassWork = 200000;
constexpr int kMaxDepth = 4000;
// Cached token masks per matcher; beyond this the cache starts over.
constexpr size_t kMaxMasks = 256;
}  // namespace

// ---------------------------------------------------------------- TokenTrie

TokenTrie::TokenTrie(const Tokenizer& tok) : n_vocab_(tok.n_vocab()) {
  bytes_.resize(static_cast<size_t>(n_vocab_));
  std::vector<int32_t> eog;
  for (int32_t id = 0; id < n_vocab_; ++id) {
    if (tok.is_end_of_generation(id)) {
      eog.push_back(id);
      continue;
    }
    // Control tokens take part as their text (chat markup such as tool-call
    // markers is often made of them); the server decodes them the same way.
    bytes_[static_cast<size_t>(id)] = tok.token_bytes(id, true);
  }
  build(std::move(eog));
}

TokenTrie::TokenTrie(const std::vector<std::string>& token_bytes, std::vector<int32_t> eog_ids)
    : n_vocab_(static_cast<int32_t>(token_bytes.size())), bytes_(token_bytes) {
  for (int32_t id : eog_ids)
    if (id >= 0 && id < n_vocab_) bytes_[static_cast<size_t>(id)].clear();
  build(std::move(eog_ids));
}

void TokenTrie::build(std::vector<int32_t> eog_ids) {
  eog_ = std::move(eog_ids);
  std::vector<int32_t> order;
  for (int32_t id = 0; id < n_vocab_; ++id) {
    const std::string& b = bytes_[static_cast<size_t>(id)];
    if (b.empty()) continue;
    if (b.size() > 255) long_.push_back(id);
    else order.push_back(id);
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    int c = bytes_[static_cast<size_t>(a)].compare(bytes_[static_cast<size_t>(b)]);
    return c < 0 || (c == 0 && a < b);
  });
  // Sorted strings -> depth-first nodes: each string adds the nodes below
  // its common prefix with the previous one.
  std::vector<uint32_t> open;  // node index per depth of the current path
  const std::string* prev = nullptr;
  for (int32_t id : order) {
    const std::string& s = bytes_[static_cast<size_t>(id)];
    size_t common = 0;
    if (prev) {
      while (common < s.size() && common < prev->size() && s[common] == (*prev)[common]) ++common;
      if (common == s.size() && common == prev->size()) {  // same bytes as the previous token
        extra_.push_back({static_cast<uint32_t>(nodes_[open.back()].token), id});
        continue;
      }
    }
    while (open.size() > common) {
      nodes_[open.back()].skip = static_cast<uint32_t>(nodes_.size());
      open.pop_back();
    }
    for (size_t d = common; d < s.size(); ++d) {
      open.push_back(static_cast<uint32_t>(nodes_.size()));
      nodes_.push_back({static_cast<uint8_t>(s[d]), static_cast<uint8_t>(d + 1), -1, 0});
    }
    nodes_[open.back()].token = id;
    prev = &s;
  }
  while (!open.empty()) {
    nodes_[open.back()].skip = static_cast<uint32_t>(nodes_.size());
    open.pop_back();
  }
}

// ----------------------------------------------------------- GrammarMatcher

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar) : g_(std::move(grammar)) {
  std::vector<int32_t> stacks;
  begin_pass();
  for (uint32_t alt : g_->alternatives(g_->root())) closure(continuation(alt, kAccept), stacks, 0);
  current_ = intern(stacks);
  if (current_ == kDead) throw GrammarError("grammar: the start rule matches no text");
}

int32_t GrammarMatcher::node(uint32_t pos, int32_t parent) {
  uint64_t key = (static_cast<uint64_t>(pos) << 32) | static_cast<uint32_t>(parent + 1);
  auto [it, fresh] = node_index_.try_emplace(key, static_cast<int32_t>(nodes_.size()));
  if (fresh) {
    if (nodes_.size() >= kMaxNodes) throw GrammarError("grammar: the parser state grew too large (nesting too deep)");
    nodes_.push_back({pos, parent});
  }
  return it->second;
}

int32_t GrammarMatcher::continuation(uint32_t pos, int32_t parent) {
  return g_->elements()[pos].kind == Grammar::Kind::End ? parent : node(pos, parent);
}

// Expands rule references until every stack has a byte element on top (or
// is the finished root). `out` collects stack ids. A node's expansion does
// not depend on how it was reached, so each node is expanded once per pass
// (begin_pass()): epsilon cycles end, and nullable rules nested in
// themselves cost linear, not exponential, work.
void GrammarMatcher::closure(int32_t stack, std::vector<int32_t>& out, int depth) {
  if (stack == kAccept) {
    out.push_back(kAccept);
    return;
  }
  if (mark_.size() < nodes_.size()) mark_.resize(nodes_.size() * 2, 0);
  if (mark_[static_cast<size_t>(stack)] == epoch_) return;
  mark_[static_cast<size_t>(stack)] = epoch_;
  const Grammar::Element& e = g_->elements()[nodes_[static_cast<size_t>(stack)].pos];
  if (e.kind == Grammar::Kind::Bytes) {
    out.push_back(stack);
    return;
  }
  if (depth > kMaxDepth) throw GrammarError("grammar: rules nest too deeply here (more than 4000 levels)");
  if (++pass_work_ > kMaxPassWork)
    throw GrammarError("grammar: too many parses are possible at this point (the grammar is too ambiguous)");
  StackNode n = nodes_[static_cast<size_t>(stack)];
  int32_t cont = continuation(n.pos + 1, n.parent);
  for (uint32_t alt : g_->alternatives(e.value)) closure(continuation(alt, cont), out, depth + 1);
}

void GrammarMatcher::begin_pass() {
  if (++epoch_ == 0) {  // wrapped: forget every mark
    std::fill(mark_.begin(), mark_.end(), 0);
    epoch_ = 1;
  }
  pass_work_ = 0;
}

int32_t GrammarMatcher::intern(std::vector<int32_t>& stacks) {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  if (stacks.empty()) return kDead;
  std::string key(reinterpret_cast<const char*>(stacks.data()), stacks.size() * sizeof(int32_t));
  auto [it, fresh] = set_index_.try_emplace(std::move(key), static_cast<int32_t>(sets_.size()));
  if (fresh) {
    StateSet s;
    s.stacks = stacks;
    sets_.push_back(std::move(s));
  }
  return it->second;
}

int32_t GrammarMatcher::step(int32_t set, uint8_t byte) {
  StateSet& s = sets_[static_cast<size_t>(set)];
  if (!s.next) {
    s.next = std::make_unique<std::array<int32_t, 256>>();
    s.next->fill(kUnknown);
  }
  int32_t cached = (*s.next)[byte];
  if (cached != kUnknown) return cached;
  std::vector<int32_t> out;
  const std::vector<int32_t> stacks = s.stacks;  // sets_ may grow below
  begin_pass();
  for (int32_t st : stacks) {
    if (st == kAccept) continue;
    StackNode n = nodes_[static_cast<size_t>(st)];
    if (!g_->byte_sets()[g_->elements()[n.pos].value].test(byte)) continue;
    closure(continuation(n.pos + 1, n.parent), out, 0);
  }
  int32_t result = intern(out);
  (*sets_[static_cast<size_t>(set)].next)[byte] = result;
  return result;
}

int32_t GrammarMatcher::walk(int32_t set, std::string_view bytes) {
  for (char c : bytes) {
    if (set == kDead) return kDead;
    set = step(set, static_cast<uint8_t>(c));
  }
  return set;
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  int32_t next = walk(current_, bytes);
  if (next == kDead) return false;
  current_ = next;
  return true;
}

bool GrammarMatcher::can_accept_bytes(std::string_view bytes) { return walk(current_, bytes) != kDead; }

bool GrammarMatcher::is_complete() const {
  const auto& st = sets_[static_cast<size_t>(current_)].stacks;
  return !st.empty() && st.front() == kAccept;
}

std::bitset<256> GrammarMatcher::next_bytes() {
  std::bitset<256> out;
  for (int32_t st : sets_[static_cast<size_t>(current_)].stacks)
    if (st != kAccept) out |= g_->byte_sets()[g_->elements()[nodes_[static_cast<size_t>(st)].pos].value];
  return out;
}

bool GrammarMatcher::is_finished() { return is_complete() && next_bytes().none(); }

static bool is_eog(const TokenTrie& trie, int32_t id) {
  const auto& e = trie.eog_ids();
  return std::find(e.begin(), e.end(), id) != e.end();
}

bool GrammarMatcher::allows_token(const TokenTrie& trie, int32_t id) {
  if (id < 0 || id >= trie.n_vocab()) return false;
  if (is_eog(trie, id)) return is_complete();
  const std::string& b = trie.bytes(id);
  return !b.empty() && can_accept_bytes(b);
}

bool GrammarMatcher::accept_token(const TokenTrie& trie, int32_t id) {
  if (id < 0 || id >= trie.n_vocab()) return false;
  if (is_eog(trie, id)) return is_complete();
  const std::string& b = trie.bytes(id);
  return !b.empty() && accept_bytes(b);
}

const TokenMask& GrammarMatcher::token_mask(const TokenTrie& trie) {
  int32_t m = sets_[static_cast<size_t>(current_)].mask;
  if (m >= 0) return masks_[static_cast<size_t>(m)];
  if (masks_.size() >= kMaxMasks) {
    for (auto& s : sets_) s.mask = -1;
    masks_.clear();
  }
  TokenMask mask((static_cast<size_t>(trie.n_vocab()) + 63) / 64, 0);
  build_mask(trie, current_, mask);
  masks_.push_back(std::move(mask));
  sets_[static_cast<size_t>(current_)].mask = static_cast<int32_t>(masks_.size() - 1);
  return masks_.back();
}

// One depth-first pass over the trie: a node's state is its parent's state
// stepped by the node's byte; a dead state skips the whole subtree.
void GrammarMatcher::build_mask(const TokenTrie& trie, int32_t set, TokenMask& mask) {
  auto allow = [&](int32_t id) { mask[static_cast<size_t>(id) >> 6] |= uint64_t(1) << (static_cast<unsigned>(id) & 63); };
  const auto& nodes = trie.nodes();
  walk_states_.assign(257, kDead);
  walk_states_[0] = set;
  for (size_t i = 0; i < nodes.size();) {
    const TokenTrie::Node& n = nodes[i];
    int32_t st = step(walk_states_[n.depth - 1u], n.byte);
    if (st == kDead) {
      i = n.skip;
      continue;
    }
    walk_states_[n.depth] = st;
    if (n.token >= 0) allow(n.token);
    ++i;
  }
  for (auto [primary, dup] : trie.extra_tokens())
    if (mask_allows(mask, static_cast<int32_t>(primary))) allow(dup);
  for (int32_t id : trie.long_tokens())
    if (walk(set, trie.bytes(id)) != kDead) allow(id);
  const auto& stacks = sets_[static_cast<size_t>(set)].stacks;
  if (!stacks.empty() && stacks.front() == kAccept)
    for (int32_t id : trie.eog_ids()) allow(id);
}

}  // namespace volga
