// Symbol list + priority queue used by both BPE and SentencePiece merging:
// symbols form a doubly linked list over the input; the best adjacent pair is
// merged repeatedly, O(n log n) in the number of symbols. Internal.
#pragma once

#include <cstdint>
#include <queue>
#include <vector>

namespace volga::detail {

struct Symbol {
  int32_t prev, next;
  uint32_t start, len;  // byte range in the input
  int32_t id;           // token id of the range, -1 if none
};

struct Candidate {
  double priority;  // higher merges first
  int32_t left, right;
  int32_t left_id, right_id;  // ids at push time, to detect stale entries
  int32_t merged_id;
  bool operator<(const Candidate& o) const {
    return priority < o.priority || (priority == o.priority && left > o.left);  // ties: leftmost first
  }
};

// Merges symbols while `lookup(left, right, &priority, &merged_id)` finds a pair.
template <typename PairLookup>
void merge_symbols(std::vector<Symbol>& sym, const PairLookup& lookup) {
  std::priority_queue<Candidate> queue;
  auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    double priority;
    int32_t merged;
    if (lookup(sym[static_cast<size_t>(l)], sym[static_cast<size_t>(r)], &priority, &merged))
      queue.push({priority, l, r, sym[static_cast<size_t>(l)].id, sym[static_cast<size_t>(r)].id, merged});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) consider(i, i + 1);
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol& l = sym[static_cast<size_t>(c.left)];
    Symbol& r = sym[static_cast<size_t>(c.right)];
    if (l.len == 0 || r.len == 0 || l.next != c.right || l.id != c.left_id || r.id != c.right_id) continue;
    l.len += r.len;
    l.id = c.merged_id;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
}

}  // namespace volga::detail
