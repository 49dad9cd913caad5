// GBNF text -> the byte-level compiled form of sampling/grammar.h.
//
// Parsing builds rules as lists of alternatives of symbols (a byte set or a
// rule reference); groups, repetitions and multi-byte character classes
// become generated rules. Compilation flattens them into one element array
// and refuses left recursion (a rule that can reach itself again before
// consuming a byte, with something left to do after it), which a top-down
// matcher cannot run.
#include <algorithm>
#include <functional>

#include "sampling/grammar.h"
#include "util/utf8.h"

namespace volga {

namespace {

struct Sym {
  bool is_rule;
  uint32_t value;  // byte-set index or rule index
};
using Seq = std::vector<Sym>;

struct CodeRange {
  uint32_t lo, hi;
};

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr uint32_t kMaxRepeat = 10000;
// Limits for grammars that arrive over HTTP: nesting of ( ) groups, grammar
// symbols in all (after repetitions are expanded), rules in all.
constexpr int kMaxNesting = 256;
constexpr size_t kMaxSymbols = size_t(1) << 21;
constexpr size_t kMaxRules = size_t(1) << 18;

}  // namespace

class GrammarBuilder {
 public:
  explicit GrammarBuilder(std::string_view src) : src_(src) {}

  std::shared_ptr<const Grammar> build(const std::string& root_name) {
    parse_rules();
    for (size_t r = 0; r < names_.size(); ++r)
      if (!defined_[r]) throw GrammarError("grammar: rule '" + names_[r] + "' is used but never defined");
    auto it = index_.find(root_name);
    if (it == index_.end()) throw GrammarError("grammar: there is no '" + root_name + "' rule to start from");
    auto g = std::make_shared<Grammar>();
    g->byte_sets_ = std::move(sets_);
    g->rule_names_ = names_;
    g->root_ = it->second;
    for (auto& alts : rules_) {
      std::vector<uint32_t> starts;
      for (auto& seq : alts) {
        starts.push_back(static_cast<uint32_t>(g->elements_.size()));
        for (auto& s : seq)
          g->elements_.push_back({s.is_rule ? Grammar::Kind::Rule : Grammar::Kind::Bytes, s.value});
        g->elements_.push_back({Grammar::Kind::End, 0});
      }
      g->rules_.push_back(std::move(starts));
    }
    check_left_recursion(*g);
    check_root_productive(*g);
    return g;
  }

 private:
  // ---- lexing ----
  [[noreturn]] void fail(const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < src_.size(); ++i) {
      if (src_[i] == '\n') ++line, col = 1;
      else ++col;
    }
    throw GrammarError("grammar: " + what + " at line " + std::to_string(line) + ", column " + std::to_string(col));
  }
  bool at_end() const { return pos_ >= src_.size(); }
  char peek(size_t k = 0) const { return pos_ + k < src_.size() ? src_[pos_ + k] : '\0'; }
  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }
  void skip_space() {
    while (!at_end()) {
      char c = peek();
      if (c == '#') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else {
        break;
      }
    }
  }
  std::string read_name() {
    size_t start = pos_;
    while (!at_end() && name_char(peek())) ++pos_;
    if (pos_ == start) fail("expected a rule name");
    return std::string(src_.substr(start, pos_ - start));
  }
  // True when a `name ::=` starts here (the end of the previous rule).
  bool rule_start_ahead() const {
    size_t p = pos_;
    while (p < src_.size() && name_char(src_[p])) ++p;
    if (p == pos_) return false;
    while (p < src_.size() && (src_[p] == ' ' || src_[p] == '\t' || src_[p] == '\n' || src_[p] == '\r')) ++p;
    return src_.substr(p, 3) == "::=";
  }
  uint32_t read_hex(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      char c = peek();
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail("expected " + std::to_string(digits) + " hex digits in an escape");
      v = v * 16 + static_cast<uint32_t>(d);
      ++pos_;
    }
    return v;
  }
  // One code point of a literal or class (escapes decoded).
  uint32_t read_char() {
    if (at_end()) fail("unexpected end of grammar");
    unsigned char c = static_cast<unsigned char>(peek());
    if (c == '\\') {
      ++pos_;
      char e = peek();
      ++pos_;
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '0': return 0;
        case 'x': return read_hex(2);
        case 'u': return read_hex(4);
        case 'U': {
          uint32_t cp = read_hex(8);
          if (cp > kMaxCodePoint) fail("code point beyond U+10FFFF");
          return cp;
        }
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': return static_cast<unsigned char>(e);
        default: --pos_; fail(std::string("unknown escape '\\") + e + "'");
      }
    }
    // A UTF-8 character of the grammar text itself.
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || pos_ + static_cast<size_t>(len) > src_.size()) fail("invalid UTF-8 in the grammar");
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i < len; ++i) {
      unsigned char cc = static_cast<unsigned char>(src_[pos_ + static_cast<size_t>(i)]);
      if ((cc & 0xC0) != 0x80) fail("invalid UTF-8 in the grammar");
      cp = (cp << 6) | (cc & 0x3F);
    }
    pos_ += static_cast<size_t>(len);
    return cp;
  }

  // ---- rules and symbols ----
  uint32_t rule_id(const std::string& name) {
    auto it = index_.find(name);
    if (it != index_.end()) return it->second;
    uint32_t id = new_rule(name);
    index_[name] = id;
    return id;
  }
  uint32_t new_rule(const std::string& name) {
    if (names_.size() >= kMaxRules) fail("the grammar is too large (more than " + std::to_string(kMaxRules) + " rules)");
    names_.push_back(name);
    rules_.emplace_back();
    defined_.push_back(false);
    return static_cast<uint32_t>(names_.size() - 1);
  }
  uint32_t generated_rule(std::vector<Seq> alts) {
    // Named after the rule being defined (its first 32 bytes), for messages.
    uint32_t id = new_rule(names_[current_].substr(0, 32) + "-" + std::to_string(names_.size()));
    rules_[id] = std::move(alts);
    defined_[id] = true;
    return id;
  }
  uint32_t byte_set(const std::bitset<256>& b) {
    auto [it, fresh] = set_index_.try_emplace(b, static_cast<uint32_t>(sets_.size()));
    if (fresh) sets_.push_back(b);
    return it->second;
  }
  Sym single_byte(uint8_t b) {
    std::bitset<256> s;
    s.set(b);
    return {false, byte_set(s)};
  }
  void append_code_point(Seq& seq, uint32_t cp) {
    if (cp > kMaxCodePoint) fail("code point beyond U+10FFFF");
    std::string bytes;
    append_utf8(bytes, cp);
    for (char b : bytes) seq.push_back(single_byte(static_cast<uint8_t>(b)));
  }
  // Code point ranges -> alternatives of byte-set sequences (UTF-8 encoding
  // split so that every sequence is a product of byte ranges). Surrogates
  // are never generated.
  void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<Seq>& out) {
    if (lo > hi) return;
    if (lo <= 0xD7FF && hi >= 0xD800) {
      utf8_sequences(lo, 0xD7FF, out);
      utf8_sequences(0xE000, hi, out);
      return;
    }
    if (lo >= 0xD800 && hi <= 0xDFFF) return;
    if (lo >= 0xD800 && lo <= 0xDFFF) lo = 0xE000;
    if (hi >= 0xD800 && hi <= 0xDFFF) hi = 0xD7FF;
    for (uint32_t b : {0x80u, 0x800u, 0x10000u})  // one encoded length at a time
      if (lo < b && hi >= b) {
        utf8_sequences(lo, b - 1, out);
        utf8_sequences(b, hi, out);
        return;
      }
    if (lo > hi) return;
    int n = lo < 0x80 ? 1 : lo < 0x800 ? 2 : lo < 0x10000 ? 3 : 4;
    // Split until lo..hi differ only in a suffix of full continuation ranges.
    for (int i = 1; i < n; ++i) {
      uint32_t m = (1u << (6 * i)) - 1;
      if ((lo & ~m) != (hi & ~m)) {
        if ((lo & m) != 0) {
          utf8_sequences(lo, lo | m, out);
          utf8_sequences((lo | m) + 1, hi, out);
          return;
        }
        if ((hi & m) != m) {
          utf8_sequences(lo, (hi & ~m) - 1, out);
          utf8_sequences(hi & ~m, hi, out);
          return;
        }
      }
    }
    std::string a, b;
    append_utf8(a, lo);
    append_utf8(b, hi);
    Seq seq;
    for (int i = 0; i < n; ++i) {
      std::bitset<256> s;
      for (int v = static_cast<unsigned char>(a[i]); v <= static_cast<unsigned char>(b[i]); ++v) s.set(static_cast<size_t>(v));
      seq.push_back({false, byte_set(s)});
    }
    out.push_back(std::move(seq));
  }

  Sym char_class(std::vector<CodeRange> ranges, bool negated) {
    std::sort(ranges.begin(), ranges.end(), [](auto& a, auto& b) { return a.lo < b.lo; });
    std::vector<CodeRange> merged;
    for (auto& r : ranges) {
      if (!merged.empty() && r.lo <= merged.back().hi + 1) merged.back().hi = std::max(merged.back().hi, r.hi);
      else merged.push_back(r);
    }
    if (negated) {
      std::vector<CodeRange> inv;
      uint32_t next = 0;
      for (auto& r : merged) {
        if (r.lo > next) inv.push_back({next, r.lo - 1});
        next = r.hi + 1;
      }
      if (next <= kMaxCodePoint) inv.push_back({next, kMaxCodePoint});
      merged = std::move(inv);
    }
    std::vector<Seq> alts;
    std::bitset<256> ascii;
    for (auto& r : merged) {
      for (uint32_t c = r.lo; c <= std::min<uint32_t>(r.hi, 0x7F); ++c) ascii.set(c);
      if (r.hi >= 0x80) utf8_sequences(std::max<uint32_t>(r.lo, 0x80), r.hi, alts);
    }
    if (ascii.any()) alts.insert(alts.begin(), Seq{{false, byte_set(ascii)}});
    if (alts.empty()) fail("this character class matches nothing");
    if (alts.size() == 1 && alts[0].size() == 1) return alts[0][0];
    return {true, generated_rule(std::move(alts))};
  }

  Sym parse_class() {
    ++pos_;  // '['
    bool negated = peek() == '^';
    if (negated) ++pos_;
    std::vector<CodeRange> ranges;
    while (peek() != ']') {
      if (at_end()) fail("unterminated character class");
      uint32_t lo = read_char(), hi = lo;
      if (peek() == '-' && peek(1) != ']' && pos_ + 1 < src_.size()) {
        ++pos_;
        hi = read_char();
        if (hi < lo) fail("character range is reversed");
      }
      ranges.push_back({lo, hi});
    }
    ++pos_;
    return char_class(std::move(ranges), negated);
  }

  // One item with its postfix operators, appended to `seq`.
  void parse_item(Seq& seq) {
    Seq item;
    char c = peek();
    if (c == '(' && ++nesting_ > kMaxNesting) fail("groups nest more than " + std::to_string(kMaxNesting) + " deep");
    if (c == '"') {
      ++pos_;
      while (peek() != '"') {
        if (at_end()) fail("unterminated string literal");
        append_code_point(item, read_char());
      }
      ++pos_;
    } else if (c == '[') {
      item.push_back(parse_class());
    } else if (c == '.') {
      ++pos_;
      item.push_back(char_class({}, true));
    } else if (c == '(') {
      ++pos_;
      std::vector<Seq> alts = parse_alternatives(true);
      if (peek() != ')') fail("expected ')'");
      ++pos_;
      item.push_back({true, generated_rule(std::move(alts))});
      --nesting_;
    } else if (name_char(c)) {
      item.push_back({true, rule_id(read_name())});
    } else {
      fail(std::string("unexpected character '") + c + "'");
    }
    parse_postfix(seq, std::move(item));
  }

  uint32_t read_count() {
    size_t start = pos_;
    uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + static_cast<uint64_t>(peek() - '0');
      if (v > kMaxRepeat) fail("repetition count above " + std::to_string(kMaxRepeat));
      ++pos_;
    }
    if (pos_ == start) fail("expected a number");
    return static_cast<uint32_t>(v);
  }

  void parse_postfix(Seq& seq, Seq item) {
    while (true) {
      char c = peek();  // postfix operators bind without intervening space
      uint32_t lo, hi;  // hi == UINT32_MAX: unbounded
      if (c == '*') lo = 0, hi = UINT32_MAX, ++pos_;
      else if (c == '+') lo = 1, hi = UINT32_MAX, ++pos_;
      else if (c == '?') lo = 0, hi = 1, ++pos_;
      else if (c == '{') {
        ++pos_;
        skip_inline_space();
        lo = read_count();
        skip_inline_space();
        hi = lo;
        if (peek() == ',') {
          ++pos_;
          skip_inline_space();
          hi = peek() == '}' ? UINT32_MAX : read_count();
          skip_inline_space();
        }
        if (peek() != '}') fail("expected '}'");
        ++pos_;
        if (hi < lo) fail("repetition {m,n} with n < m");
      } else {
        break;
      }
      item = repeat(std::move(item), lo, hi);
    }
    n_symbols_ += item.size();
    if (n_symbols_ > kMaxSymbols) fail("the grammar is too large (more than " + std::to_string(kMaxSymbols) + " symbols)");
    seq.insert(seq.end(), item.begin(), item.end());
  }
  void skip_inline_space() {
    while (peek() == ' ') ++pos_;
  }

  Sym as_symbol(Seq item) {
    if (item.size() == 1) return item[0];
    return {true, generated_rule({std::move(item)})};
  }
  Seq repeat(Seq item, uint32_t lo, uint32_t hi) {
    Sym x = as_symbol(std::move(item));
    n_symbols_ += lo + (hi == UINT32_MAX ? 2 : 2 * (hi - lo));
    if (n_symbols_ > kMaxSymbols) fail("the grammar is too large (more than " + std::to_string(kMaxSymbols) + " symbols)");
    Seq out(lo, x);
    if (hi == UINT32_MAX) {  // star ::= x star | ""
      uint32_t star = generated_rule({});
      rules_[star] = {Seq{x, {true, star}}, Seq{}};
      out.push_back({true, star});
    } else if (hi > lo) {  // opt_k ::= x opt_{k-1} | "", nested from the inside out
      uint32_t inner = generated_rule({Seq{x}, Seq{}});
      for (uint32_t k = 1; k < hi - lo; ++k) inner = generated_rule({Seq{x, {true, inner}}, Seq{}});
      out.push_back({true, inner});
    }
    return out;
  }

  std::vector<Seq> parse_alternatives(bool nested) {
    std::vector<Seq> alts(1);
    while (true) {
      skip_space();
      if (at_end()) break;
      char c = peek();
      if (c == '|') {
        ++pos_;
        alts.emplace_back();
        continue;
      }
      if (c == ')') {
        if (!nested) fail("unbalanced ')'");
        break;
      }
      if (!nested && rule_start_ahead()) break;
      parse_item(alts.back());
    }
    return alts;
  }

  void parse_rules() {
    skip_space();
    if (at_end()) fail("the grammar is empty");
    while (!at_end()) {
      std::string name = read_name();
      skip_space();
      if (src_.substr(pos_, 3) != "::=") fail("expected '::=' after rule name '" + name + "'");
      pos_ += 3;
      uint32_t id = rule_id(name);
      if (defined_[id]) fail("rule '" + name + "' is defined twice");
      defined_[id] = true;  // before parsing the body: generated rules take their names from it
      current_ = id;
      rules_[id] = parse_alternatives(false);
      skip_space();
    }
  }

  // The rules that derive some string in which every byte element passes
  // `keep` (a worklist, linear in the grammar's size): with keep = "never",
  // the nullable rules; with keep = "set not empty", the productive ones.
  template <class Keep>
  static std::vector<bool> deriving_rules(const Grammar& g, Keep keep) {
    size_t n = g.n_rules();
    std::vector<bool> done(n, false);
    std::vector<size_t> remaining;                // per alternative: rule elements not yet derived
    std::vector<uint32_t> owner;                  // per alternative: its rule
    std::vector<std::vector<uint32_t>> users(n);  // per rule: alternatives it occurs in
    std::vector<uint32_t> queue;
    for (size_t r = 0; r < n; ++r)
      for (uint32_t p : g.alternatives(static_cast<uint32_t>(r))) {
        const uint32_t alt = static_cast<uint32_t>(remaining.size());
        size_t count = 0;
        bool blocked = false;
        for (; g.elements()[p].kind != Grammar::Kind::End; ++p) {
          const Grammar::Element& e = g.elements()[p];
          if (e.kind == Grammar::Kind::Bytes) blocked = blocked || !keep(g.byte_sets()[e.value]);
          else ++count, users[e.value].push_back(alt);
        }
        remaining.push_back(blocked ? SIZE_MAX : count);
        owner.push_back(static_cast<uint32_t>(r));
        if (count == 0 && !blocked && !done[r]) done[r] = true, queue.push_back(static_cast<uint32_t>(r));
      }
    while (!queue.empty()) {
      uint32_t r = queue.back();
      queue.pop_back();
      for (uint32_t alt : users[r]) {
        if (remaining[alt] == SIZE_MAX || --remaining[alt] != 0) continue;
        if (!done[owner[alt]]) done[owner[alt]] = true, queue.push_back(owner[alt]);
      }
    }
    return done;
  }

  // A start rule that derives no string matches no text ("root ::= root").
  void check_root_productive(const Grammar& g) {
    auto productive = deriving_rules(g, [](const std::bitset<256>& set) { return set.any(); });
    if (!productive[g.root()])
      throw GrammarError("grammar: the start rule '" + g.rule_names_[g.root()] +
                         "' matches no text (every alternative needs a rule that never ends)");
  }

  // Left corners: rule r reaches rule s at the start of an alternative (all
  // before it nullable). "Growing" edges have something after s; a cycle
  // through a growing edge never ends, so it is refused.
  void check_left_recursion(const Grammar& g) {
    size_t n = g.n_rules();
    auto nullable = deriving_rules(g, [](const std::bitset<256>&) { return false; });
    struct Edge { uint32_t to; bool grows; };
    std::vector<std::vector<Edge>> edges(n);
    for (size_t r = 0; r < n; ++r)
      for (uint32_t p : g.alternatives(static_cast<uint32_t>(r)))
        for (; g.elements()[p].kind == Grammar::Kind::Rule; ++p) {
          bool grows = g.elements()[p + 1].kind != Grammar::Kind::End;
          edges[r].push_back({g.elements()[p].value, grows});
          if (!nullable[g.elements()[p].value]) break;
        }
    // Tarjan's strongly connected components, iteratively.
    std::vector<int> index(n, -1), low(n, 0), comp(n, -1);
    std::vector<uint32_t> stack;
    std::vector<bool> on_stack(n, false);
    int counter = 0, n_comp = 0;
    for (size_t start = 0; start < n; ++start) {
      if (index[start] >= 0) continue;
      std::vector<std::pair<uint32_t, size_t>> work{{static_cast<uint32_t>(start), 0}};
      while (!work.empty()) {
        auto& [v, ei] = work.back();
        if (ei == 0 && index[v] < 0) {
          index[v] = low[v] = counter++;
          stack.push_back(v);
          on_stack[v] = true;
        }
        if (ei < edges[v].size()) {
          uint32_t w = edges[v][ei++].to;
          if (index[w] < 0) work.push_back({w, 0});
          else if (on_stack[w]) low[v] = std::min(low[v], index[w]);
          continue;
        }
        if (low[v] == index[v]) {
          uint32_t w;
          do {
            w = stack.back();
            stack.pop_back();
            on_stack[w] = false;
            comp[w] = n_comp;
          } while (w != v);
          ++n_comp;
        }
        uint32_t done = v;
        work.pop_back();
        if (!work.empty()) low[work.back().first] = std::min(low[work.back().first], low[done]);
      }
    }
    for (size_t r = 0; r < n; ++r)
      for (auto& e : edges[r])
        if (e.grows && comp[r] == comp[e.to])
          throw GrammarError("grammar: rule '" + g.rule_names_[r] +
                             "' is left-recursive (it can reach itself before matching any text); "
                             "rewrite it with repetition, e.g. x ::= y (\",\" y)*");
  }

  std::string_view src_;
  size_t pos_ = 0;
  uint32_t current_ = 0;
  std::vector<std::string> names_;
  std::vector<std::vector<Seq>> rules_;
  std::vector<bool> defined_;
  std::unordered_map<std::string, uint32_t> index_;
  std::vector<std::bitset<256>> sets_;
  std::unordered_map<std::bitset<256>, uint32_t> set_index_;
  int nesting_ = 0;
  size_t n_symbols_ = 0;
};

std::shared_ptr<const Grammar> Grammar::parse(std::string_view gbnf, const std::string& root) {
  return GrammarBuilder(gbnf).build(root);
}

}  // namespace volga
