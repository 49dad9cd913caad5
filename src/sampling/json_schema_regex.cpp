// `pattern` (a regex subset) -> grammar of the matching strings' JSON text.
//
// Patterns are ECMA-262 regexes, but validators run them with their own
// engines (Python's `re`, PCRE, ...). A construct is accepted only where the
// common engines agree, and the generated strings match under both readings:
//   - \d \w \s generate ASCII digits / word characters / whitespace; \D \W \S
//     and negated classes exclude the Unicode digits / letters and numbers /
//     spaces too (what Python's `re` counts), so they match everywhere;
//   - `.` excludes \n \r U+2028 U+2029 (ECMA's line terminators);
//   - ^ and $ only at the start and end of a top-level alternative; without
//     them the pattern may match anywhere (JSON Schema's search semantics);
//   - refused: lookaround, backreferences, \b \B, named groups, inline flags,
//     \p{..}, \cX, octal escapes, possessive quantifiers, `{` that is not a
//     quantifier, `[]` / `[^]`, class escapes as range ends.
// With minLength/maxLength the lengths are split across the pattern's
// variable parts, which may generate fewer strings than the intersection.
#include <utf8proc.h>

#include <algorithm>

#include "sampling/json_schema_internal.h"

namespace volga::schema_detail {

namespace {

constexpr uint64_t kMaxCount = 100000;
constexpr int kMaxNesting = 64;

struct Regex {
  enum Kind { Set, Seq, Alt, Repeat } kind = Seq;
  CodeSet set;
  std::vector<Regex> kids;
  uint64_t min = 1, max = 1;
};

struct Branch {
  bool at_start = false, at_end = false;
  Regex core;
};

uint64_t add_len(uint64_t a, uint64_t b) {
  if (a == kUnbounded || b == kUnbounded) return kUnbounded;
  return std::min<uint64_t>(a + b, kUnbounded - 1);
}

uint64_t mul_len(uint64_t a, uint64_t n) {
  if (a == 0 || n == 0) return 0;
  if (a == kUnbounded || n == kUnbounded) return kUnbounded;
  if (a > (kUnbounded - 1) / n) return kUnbounded - 1;
  return a * n;
}

std::pair<uint64_t, uint64_t> lengths(const Regex& r) {
  switch (r.kind) {
    case Regex::Set: return {1, 1};
    case Regex::Seq: {
      uint64_t lo = 0, hi = 0;
      for (const auto& k : r.kids) {
        auto [a, b] = lengths(k);
        lo = add_len(lo, a);
        hi = add_len(hi, b);
      }
      return {lo, hi};
    }
    case Regex::Alt: {
      uint64_t lo = kUnbounded, hi = 0;
      for (const auto& k : r.kids) {
        auto [a, b] = lengths(k);
        lo = std::min(lo, a);
        hi = std::max(hi, b);
      }
      return {lo, hi};
    }
    case Regex::Repeat: {
      auto [a, b] = lengths(r.kids[0]);
      return {mul_len(a, r.min), r.max == kUnbounded && b > 0 ? kUnbounded : mul_len(b, r.max)};
    }
  }
  return {0, 0};
}

// ---- character sets as the engines read them -----------------------------------

// For each shorthand, the set both readings accept (narrow: used in positive
// position) and the set either reading might accept (wide: what a negation
// must exclude).
struct ClassPair {
  CodeSet narrow, wide;
};

CodeSet category_set(bool (*member)(utf8proc_category_t)) {
  CodeSet out;
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp == 0xD800) cp = 0xE000;
    if (member(utf8proc_category(static_cast<utf8proc_int32_t>(cp)))) out.push_back({cp, cp});
  }
  return cs_normalize(out);
}

const ClassPair& digit_class() {
  static const ClassPair pair{cs_range('0', '9'), cs_union(cs_range('0', '9'), category_set([](utf8proc_category_t c) {
                                                             return c == UTF8PROC_CATEGORY_ND;
                                                           }))};
  return pair;
}

const ClassPair& word_class() {
  static const ClassPair pair{
      cs_normalize({{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}),
      cs_union(cs_normalize({{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}),
               category_set([](utf8proc_category_t c) {
                 return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT ||
                        c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_LO || c == UTF8PROC_CATEGORY_ND ||
                        c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
               }))};
  return pair;
}

const ClassPair& space_class() {
  static const ClassPair pair{
      cs_normalize({{'\t', '\r'}, {' ', ' '}}),
      cs_union(cs_normalize({{'\t', '\r'},
                             {0x1C, 0x20},
                             {0x85, 0x85},
                             {0xA0, 0xA0},
                             {0x1680, 0x1680},
                             {0x2000, 0x200A},
                             {0x2028, 0x2029},
                             {0x202F, 0x202F},
                             {0x205F, 0x205F},
                             {0x3000, 0x3000},
                             {0xFEFF, 0xFEFF}}),
               category_set([](utf8proc_category_t c) { return c == UTF8PROC_CATEGORY_ZS; }))};
  return pair;
}

ClassPair negate(const ClassPair& p) { return {cs_complement(p.wide), cs_complement(p.narrow)}; }

// ---- parser ------------------------------------------------------------------

class Parser {
 public:
  Parser(const std::string& pattern, const std::string& where) : cps_(utf8_code_points(pattern)), where_(where) {}

  std::vector<Branch> parse_top() {
    std::vector<Branch> out;
    while (true) {
      Branch b;
      if (peek('^')) {
        ++pos_;
        b.at_start = true;
      }
      b.core = parse_seq(0, /*top=*/true);
      if (peek('$')) {
        ++pos_;
        b.at_end = true;
      }
      out.push_back(std::move(b));
      if (pos_ >= cps_.size()) break;
      if (peek('|')) {
        ++pos_;
        continue;
      }
      if (peek(')')) error("unbalanced ')'");
      error("anchors ^ and $ are supported only at the start and end of the pattern or of a top-level alternative");
    }
    return out;
  }

 private:
  [[noreturn]] void error(const std::string& what) {
    fail("unsupported regular expression in 'pattern' (" + what + ", at character " + std::to_string(pos_ + 1) + ")",
         where_, "pattern");
  }
  bool peek(uint32_t c) const { return pos_ < cps_.size() && cps_[pos_] == c; }
  bool more() const { return pos_ < cps_.size(); }

  Regex parse_alt(int depth) {
    Regex alt{Regex::Alt, {}, {}, 1, 1};
    alt.kids.push_back(parse_seq(depth, false));
    while (peek('|')) {
      ++pos_;
      alt.kids.push_back(parse_seq(depth, false));
    }
    return alt.kids.size() == 1 ? std::move(alt.kids[0]) : alt;
  }

  Regex parse_seq(int depth, bool top) {
    Regex seq{Regex::Seq, {}, {}, 1, 1};
    while (more() && !peek('|') && !peek(')')) {
      if (peek('$') && top && pos_ + 1 == cps_.size()) break;
      if (peek('$') && top && pos_ + 1 < cps_.size() && cps_[pos_ + 1] == '|') break;
      Regex a = parse_atom(depth);
      seq.kids.push_back(parse_quantifier(std::move(a)));
    }
    return seq;
  }

  Regex parse_atom(int depth) {
    uint32_t c = cps_[pos_];
    if (c == '(') {
      if (depth >= kMaxNesting) error("groups nested too deeply");
      ++pos_;
      if (peek('?')) {
        if (pos_ + 1 < cps_.size() && cps_[pos_ + 1] == ':') {
          pos_ += 2;
        } else if (pos_ + 1 < cps_.size() && (cps_[pos_ + 1] == '=' || cps_[pos_ + 1] == '!' ||
                                              (cps_[pos_ + 1] == '<' && pos_ + 2 < cps_.size() &&
                                               (cps_[pos_ + 2] == '=' || cps_[pos_ + 2] == '!')))) {
          error("lookaround");
        } else {
          error("named groups and inline flags");
        }
      }
      Regex inner = parse_alt(depth + 1);
      if (!peek(')')) error("missing ')'");
      ++pos_;
      return inner;
    }
    if (c == '[') return set_node(parse_class());
    if (c == '.') {
      ++pos_;
      return set_node(cs_complement(cs_normalize({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}})));
    }
    if (c == '\\') return set_node(parse_escape(false).narrow);
    if (c == '^' || c == '$')
      error("anchors ^ and $ are supported only at the start and end of the pattern or of a top-level alternative");
    if (c == '*' || c == '+' || c == '?') error("quantifier without anything to repeat");
    if (c == '{') error("'{' that is not a quantifier (escape it as \\{)");
    ++pos_;
    return set_node(cs_single(c));
  }

  static Regex set_node(CodeSet s) { return Regex{Regex::Set, std::move(s), {}, 1, 1}; }

  bool read_number(uint64_t& out) {
    size_t start = pos_;
    out = 0;
    while (more() && cps_[pos_] >= '0' && cps_[pos_] <= '9') {
      out = std::min<uint64_t>(out * 10 + (cps_[pos_] - '0'), kMaxCount + 1);
      ++pos_;
    }
    return pos_ > start;
  }

  Regex parse_quantifier(Regex a) {
    if (!more()) return a;
    uint64_t lo, hi;
    uint32_t c = cps_[pos_];
    if (c == '*') {
      lo = 0, hi = kUnbounded;
      ++pos_;
    } else if (c == '+') {
      lo = 1, hi = kUnbounded;
      ++pos_;
    } else if (c == '?') {
      lo = 0, hi = 1;
      ++pos_;
    } else if (c == '{') {
      ++pos_;
      if (!read_number(lo)) error("'{' that is not a quantifier (escape it as \\{)");
      hi = lo;
      if (peek(',')) {
        ++pos_;
        if (!read_number(hi)) hi = kUnbounded;
      }
      if (!peek('}')) error("'{' that is not a quantifier (escape it as \\{)");
      ++pos_;
      if ((lo > kMaxCount) || (hi != kUnbounded && hi > kMaxCount)) error("repetition count above 100000");
      if (hi < lo) error("repetition {m,n} with n < m");
    } else {
      return a;
    }
    if (peek('?')) ++pos_;  // lazy: same language
    if (peek('+')) error("possessive quantifier");
    if (peek('*') || peek('+') || peek('?') || peek('{')) error("nothing to repeat after a quantifier");
    Regex r{Regex::Repeat, {}, {}, lo, hi};
    r.kids.push_back(std::move(a));
    return r;
  }

  uint32_t hex_digits(int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      if (!more()) error("short hexadecimal escape");
      uint32_t c = cps_[pos_++];
      uint32_t d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                                   : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : 99;
      if (d == 99) error("bad hexadecimal escape");
      v = v * 16 + d;
    }
    return v;
  }

  // After the backslash. `in_class`: \b is a backspace there.
  ClassPair parse_escape(bool in_class) {
    ++pos_;
    if (!more()) error("pattern ends with a backslash");
    uint32_t c = cps_[pos_++];
    auto single = [](uint32_t cp) { return ClassPair{cs_single(cp), cs_single(cp)}; };
    switch (c) {
      case 'd': return digit_class();
      case 'D': return negate(digit_class());
      case 'w': return word_class();
      case 'W': return negate(word_class());
      case 's': return space_class();
      case 'S': return negate(space_class());
      case 't': return single('\t');
      case 'n': return single('\n');
      case 'r': return single('\r');
      case 'f': return single('\f');
      case 'v': return single('\v');
      case '0':
        if (more() && cps_[pos_] >= '0' && cps_[pos_] <= '9') error("octal escape");
        return single(0);
      case 'x': return single(hex_digits(2));
      case 'u': {
        if (peek('{')) error("\\u{...} escape");
        uint32_t v = hex_digits(4);
        if (v >= 0xD800 && v <= 0xDBFF && pos_ + 1 < cps_.size() && cps_[pos_] == '\\' && cps_[pos_ + 1] == 'u') {
          pos_ += 2;
          uint32_t low = hex_digits(4);
          if (low < 0xDC00 || low > 0xDFFF) error("unpaired surrogate escape");
          return single(0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00));
        }
        if (v >= 0xD800 && v <= 0xDFFF) error("unpaired surrogate escape");
        return single(v);
      }
      case 'b':
        if (in_class) return single(0x08);
        error("word boundary \\b");
      default: break;
    }
    if (c >= '1' && c <= '9') error("backreference");
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) error(std::string("escape \\") + static_cast<char>(c));
    return single(c);  // an escaped symbol stands for itself
  }

  CodeSet parse_class() {
    ++pos_;  // [
    bool negated = false;
    if (peek('^')) {
      negated = true;
      ++pos_;
    }
    if (peek(']')) error("empty class or ']' first in a class");
    CodeSet narrow, wide;
    while (true) {
      if (!more()) error("missing ']'");
      if (peek(']')) {
        ++pos_;
        break;
      }
      bool is_shorthand = false;
      ClassPair item = class_atom(is_shorthand);
      if (peek('-') && pos_ + 1 < cps_.size() && cps_[pos_ + 1] != ']') {
        ++pos_;
        bool hi_shorthand = false;
        ClassPair hi = class_atom(hi_shorthand);
        if (is_shorthand || hi_shorthand) error("class escape as a range end");
        uint32_t a = item.narrow[0].lo, b = hi.narrow[0].lo;
        if (b < a) error("range out of order in a class");
        item = ClassPair{cs_range(a, b), cs_range(a, b)};
      }
      narrow = cs_union(narrow, item.narrow);
      wide = cs_union(wide, item.wide);
    }
    return negated ? cs_complement(wide) : narrow;
  }

  ClassPair class_atom(bool& is_shorthand) {
    if (peek('\\')) {
      size_t at = pos_;
      ClassPair p = parse_escape(true);
      uint32_t e = cps_[at + 1];
      is_shorthand = e == 'd' || e == 'D' || e == 'w' || e == 'W' || e == 's' || e == 'S';
      return p;
    }
    uint32_t c = cps_[pos_++];
    is_shorthand = false;
    CodeSet s = cs_single(c);
    if (s.empty()) error("surrogate code point");
    return {s, s};
  }

  std::vector<uint32_t> cps_;
  std::string where_;
  size_t pos_ = 0;
};

// ---- lengths -------------------------------------------------------------------

std::optional<Regex> restrict_to(const Regex& r, uint64_t lo, uint64_t hi);

uint64_t ceil_div(uint64_t a, uint64_t b) { return a == 0 ? 0 : (a - 1) / b + 1; }

std::optional<Regex> restrict_repeat(const Regex& r, uint64_t lo, uint64_t hi) {
  const Regex& kid = r.kids[0];
  auto [p, q] = lengths(kid);
  if (hi == 0) {  // only the empty repetition fits
    if (r.min > 0 && p > 0) return std::nullopt;
    Regex none{Regex::Repeat, {}, {}, 0, 0};
    none.kids.push_back(kid);
    return none;
  }
  uint64_t start = r.min;
  if (start == 0 && lo > 0) start = 1;
  if (q != kUnbounded && q > 0) start = std::max(start, ceil_div(lo, q));
  for (uint64_t c = start; c <= start + 4 && c <= r.max && c <= kMaxCount; ++c) {
    uint64_t cmin = std::max<uint64_t>(c, 1);
    uint64_t p2 = lo > 0 ? std::max(p, ceil_div(lo, cmin)) : p;
    uint64_t q2 = hi == kUnbounded ? q : std::min(q, hi / cmin);
    if (p2 > q2) continue;
    auto k = restrict_to(kid, p2, q2);
    if (!k) continue;
    auto [p3, q3] = lengths(*k);
    uint64_t max_count = r.max;
    if (hi != kUnbounded && q3 > 0) max_count = std::min(max_count, hi / q3);
    if (c > max_count) continue;
    if (c == 0 && lo > 0) continue;
    Regex out{Regex::Repeat, {}, {}, c, max_count};
    out.kids.push_back(std::move(*k));
    return out;
  }
  return std::nullopt;
}

std::optional<Regex> restrict_seq(const Regex& r, uint64_t lo, uint64_t hi) {
  size_t n = r.kids.size();
  std::vector<uint64_t> a(n), b(n);
  uint64_t sum_min = 0;
  for (size_t i = 0; i < n; ++i) {
    std::tie(a[i], b[i]) = lengths(r.kids[i]);
    sum_min = add_len(sum_min, a[i]);
  }
  if (sum_min > hi) return std::nullopt;
  std::vector<size_t> variable;
  for (size_t i = 0; i < n; ++i)
    if (b[i] > a[i]) variable.push_back(i);
  if (variable.size() == 2 && hi != kUnbounded && hi - sum_min <= 64) {
    // Exact: one alternative per length of the first variable part (an
    // unanchored pattern is prefix, match, suffix).
    Regex alt{Regex::Alt, {}, {}, 1, 1};
    size_t i = variable[0], j = variable[1];
    uint64_t others = sum_min - a[i] - a[j];
    for (uint64_t len = a[i]; len <= std::min(b[i], hi - others - a[j]); ++len) {
      auto first = restrict_to(r.kids[i], len, len);
      if (!first) continue;
      uint64_t rest_lo = lo > others + len ? lo - others - len : 0;
      auto second = restrict_to(r.kids[j], rest_lo, hi - others - len);
      if (!second) continue;
      Regex seq = r;
      seq.kids[i] = std::move(*first);
      seq.kids[j] = std::move(*second);
      alt.kids.push_back(std::move(seq));
    }
    if (alt.kids.empty()) return std::nullopt;
    return alt.kids.size() == 1 ? std::move(alt.kids[0]) : alt;
  }
  std::vector<uint64_t> top = b;
  if (hi != kUnbounded) {
    // Share the slack above the minimums among the variable parts.
    uint64_t slack = hi - sum_min;
    for (size_t i = 0; i < n; ++i) top[i] = a[i];
    std::vector<size_t> open;
    for (size_t i = 0; i < n; ++i)
      if (b[i] > a[i]) open.push_back(i);
    while (slack > 0 && !open.empty()) {
      uint64_t share = std::max<uint64_t>(1, slack / open.size());
      std::vector<size_t> still;
      for (size_t i : open) {
        uint64_t give = std::min({share, b[i] - top[i], slack});
        top[i] += give;
        slack -= give;
        if (top[i] < b[i]) still.push_back(i);
        if (slack == 0) break;
      }
      open = still;
    }
  }
  std::vector<uint64_t> bottom = a;
  uint64_t have = sum_min;
  for (size_t i = 0; i < n && have < lo; ++i) {
    uint64_t room = top[i] == kUnbounded ? lo - have : std::min(top[i] - bottom[i], lo - have);
    bottom[i] += room;
    have += room;
  }
  if (have < lo) return std::nullopt;
  Regex out{Regex::Seq, {}, {}, 1, 1};
  for (size_t i = 0; i < n; ++i) {
    auto k = restrict_to(r.kids[i], bottom[i], top[i]);
    if (!k) return std::nullopt;
    out.kids.push_back(std::move(*k));
  }
  return out;
}

// A sub-language of r whose lengths lie in [lo, hi], nonempty; nullopt if
// none was found.
std::optional<Regex> restrict_to(const Regex& r, uint64_t lo, uint64_t hi) {
  auto [a, b] = lengths(r);
  if (a >= lo && b <= hi) return r;
  if (b < lo || a > hi) return std::nullopt;
  switch (r.kind) {
    case Regex::Set: return std::nullopt;
    case Regex::Alt: {
      Regex out{Regex::Alt, {}, {}, 1, 1};
      for (const auto& k : r.kids)
        if (auto x = restrict_to(k, lo, hi)) out.kids.push_back(std::move(*x));
      if (out.kids.empty()) return std::nullopt;
      return out;
    }
    case Regex::Repeat: return restrict_repeat(r, lo, hi);
    case Regex::Seq: return restrict_seq(r, lo, hi);
  }
  return std::nullopt;
}

// ---- grammar -------------------------------------------------------------------

class Compiler {
 public:
  explicit Compiler(RuleSet& rules) : rules_(rules) {}

  std::string compile(const Regex& r) {
    switch (r.kind) {
      case Regex::Set: return char_expr(r.set);
      case Regex::Seq: {
        std::string out, literal;
        auto flush = [&] {
          if (!literal.empty()) out += (out.empty() ? "" : " ") + gbnf_literal(literal);
          literal.clear();
        };
        for (const auto& k : r.kids) {
          if (k.kind == Regex::Set && k.set.size() == 1 && k.set[0].lo == k.set[0].hi) {
            literal += json_escape_code_point(k.set[0].lo);
            continue;
          }
          flush();
          std::string e = compile(k);
          if (e.empty()) continue;
          out += (out.empty() ? "" : " ") + (k.kind == Regex::Alt ? e : atomize(e));
        }
        flush();
        return out;
      }
      case Regex::Alt: {
        std::vector<std::string> alts;
        bool has_empty = false;
        for (const auto& k : r.kids) {
          std::string e = compile(k);
          if (e.empty()) {
            has_empty = true;
          } else {
            alts.push_back(e);
          }
        }
        if (alts.empty()) return "";
        std::string body = "( " + alternatives(alts) + " )";
        return has_empty ? body + "?" : body;
      }
      case Regex::Repeat: {
        std::string e = compile(r.kids[0]);
        if (e.empty() || r.max == 0) return "";
        return repeat(rules_, atomize(e), r.min, r.max);
      }
    }
    return "";
  }

 private:
  std::string atomize(const std::string& e) {
    if (is_atom(e)) return e;
    if (e.size() > 48) return rules_.add("pattern-part", e);
    return atom(e);
  }

  std::string char_expr(const CodeSet& set) {
    if (cs_size(set) == cs_size(cs_complement({}))) return json_char_rule(rules_);
    std::string e = json_char_of(set);
    if (e.size() > 48) return rules_.add("pattern-char", e);
    return e;
  }

  RuleSet& rules_;
};

}  // namespace

std::string pattern_gbnf(RuleSet& rules, const std::string& pattern, uint64_t min_len, uint64_t max_len,
                         const std::string& where) {
  std::vector<Branch> branches = Parser(pattern, where).parse_top();
  Regex any_text{Regex::Repeat, {}, {}, 0, kUnbounded};
  any_text.kids.push_back(Regex{Regex::Set, cs_complement({}), {}, 1, 1});
  Regex top{Regex::Alt, {}, {}, 1, 1};
  for (auto& b : branches) {
    Regex s{Regex::Seq, {}, {}, 1, 1};
    if (!b.at_start) s.kids.push_back(any_text);
    s.kids.push_back(std::move(b.core));
    if (!b.at_end) s.kids.push_back(any_text);
    top.kids.push_back(std::move(s));
  }
  auto fitted = restrict_to(top, min_len, max_len);
  if (!fitted)
    fail("'pattern' cannot be combined with these minLength/maxLength bounds (no match of the pattern was found "
         "within them)",
         where, "pattern");
  return Compiler(rules).compile(*fitted);
}

}  // namespace volga::schema_detail
