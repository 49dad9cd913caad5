// Rule bookkeeping, GBNF literals/classes, repetition, code point sets, the
// shared JSON helper rules and the string formats of the schema converter.
#include <algorithm>
#include <cstdio>

#include "sampling/json_schema_internal.h"

namespace volga {

std::string gbnf_literal(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02X", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace volga

namespace volga::schema_detail {

std::string place(const std::string& where) { return where.empty() ? "the schema root" : where; }

void fail(const std::string& message, const std::string& where, const std::string& keyword) {
  throw SchemaError(message + " at " + place(where), where, keyword);
}

// ---- rules -----------------------------------------------------------------

namespace {
// Helper rule names (and root) never handed out for hints.
const char* const kHelperNames[] = {"root", "ws", "json-char", "json-string", "json-value", "json-object",
                                    "json-array", "json-member", "json-number", "json-int", "json-bool",
                                    "json-u-escape"};
}  // namespace

RuleSet::RuleSet(std::map<std::string, std::string>& rules, std::set<std::string>& reserved)
    : rules_(rules), reserved_(reserved) {
  for (const char* n : kHelperNames) reserved_.insert(n);
  for (const auto& [name, body] : rules_) by_body_.emplace(body, name);
}

std::string sanitize_rule_name(const std::string& hint) {
  std::string out;
  for (unsigned char c : hint) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (ok) {
      out += static_cast<char>(c);
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
    if (out.size() >= 48) break;
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "rule" : out;
}

std::string RuleSet::reserve(const std::string& hint) {
  std::string base = sanitize_rule_name(hint);
  std::string name = base;
  for (int i = 2; rules_.count(name) || reserved_.count(name); ++i) name = base + "-" + std::to_string(i);
  reserved_.insert(name);
  return name;
}

void RuleSet::define(const std::string& name, const std::string& body) {
  rules_[name] = body;
  by_body_.emplace(body, name);
}

std::string RuleSet::add(const std::string& hint, const std::string& body) {
  auto it = by_body_.find(body);
  if (it != by_body_.end()) return it->second;
  std::string name = reserve(hint);
  define(name, body);
  return name;
}

std::string RuleSet::helper(const std::string& name, const std::string& body) {
  reserved_.insert(name);
  if (!rules_.count(name)) define(name, body);
  return name;
}

namespace {
// End of the GBNF primary starting at s[i] (a name, "literal", [class], (group)
// or `.`), or npos when s[i] starts none.
size_t primary_end(const std::string& s, size_t i) {
  if (i >= s.size()) return std::string::npos;
  char c = s[i];
  if (c == '.') return i + 1;
  if (c == '"' || c == '[') {
    char close = c == '"' ? '"' : ']';
    for (size_t j = i + 1; j < s.size(); ++j) {
      if (s[j] == '\\') {
        ++j;
      } else if (s[j] == close) {
        return j + 1;
      }
    }
    return std::string::npos;
  }
  if (c == '(') {
    int depth = 0;
    for (size_t j = i; j < s.size(); ++j) {
      if (s[j] == '"' || s[j] == '[') {
        size_t e = primary_end(s, j);
        if (e == std::string::npos) return e;
        j = e - 1;
      } else if (s[j] == '(') {
        ++depth;
      } else if (s[j] == ')') {
        if (--depth == 0) return j + 1;
      }
    }
    return std::string::npos;
  }
  size_t j = i;
  while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '-' || s[j] == '_')) ++j;
  return j == i ? std::string::npos : j;
}
}  // namespace

bool is_atom(const std::string& expr) { return !expr.empty() && primary_end(expr, 0) == expr.size(); }

std::string atom(const std::string& expr) { return is_atom(expr) ? expr : "( " + expr + " )"; }

std::string alternatives(const std::vector<std::string>& alts) {
  std::vector<std::string> unique;
  for (const auto& a : alts)
    if (std::find(unique.begin(), unique.end(), a) == unique.end()) unique.push_back(a);
  std::string out;
  for (const auto& a : unique) out += (out.empty() ? "" : " | ") + a;
  return out;
}

namespace {
constexpr uint64_t kSmallCount = 24;  // counted repetitions up to this stay one `{m,n}`
constexpr uint64_t kBlock = 16;       // larger ones are built from blocks of this many

std::string join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + " " + b;
}

std::string repeat_exact(RuleSet& rules, const std::string& item, uint64_t n) {
  if (n == 0) return "";
  if (n == 1) return item;
  if (n <= kSmallCount) return item + "{" + std::to_string(n) + "}";
  std::string block = rules.add("rep-block", item + "{" + std::to_string(kBlock) + "}");
  return join(repeat_exact(rules, block, n / kBlock), repeat_exact(rules, item, n % kBlock));
}
}  // namespace

std::string repeat(RuleSet& rules, const std::string& item, uint64_t min, uint64_t max) {
  if (max == kUnbounded) {
    if (min == 0) return item + "*";
    if (min == 1) return item + "+";
    if (min <= kSmallCount) return item + "{" + std::to_string(min) + ",}";
    return join(repeat_exact(rules, item, min), item + "*");
  }
  if (max <= kSmallCount) {
    if (min == max) return repeat_exact(rules, item, min);
    if (min == 0 && max == 1) return item + "?";
    return item + "{" + std::to_string(min) + "," + std::to_string(max) + "}";
  }
  if (min > 0) return join(repeat_exact(rules, item, min), repeat(rules, item, 0, max - min));
  // 0..max as a*kBlock + b: either a < q and b < kBlock, or a == q and b <= r.
  // Each count has one parse, so the matcher keeps few stacks.
  std::string block = rules.add("rep-block", item + "{" + std::to_string(kBlock) + "}");
  uint64_t q = max / kBlock, r = max % kBlock;
  std::string below = join(repeat(rules, block, 0, q - 1), repeat(rules, item, 0, kBlock - 1));
  std::string top = join(repeat_exact(rules, block, q), repeat(rules, item, 0, r));
  return "( " + below + " | " + top + " )";
}

// ---- code point sets ---------------------------------------------------------

CodeSet cs_normalize(CodeSet set) {
  CodeSet split;
  for (auto r : set) {
    if (r.lo > r.hi) continue;
    if (r.hi > 0x10FFFF) r.hi = 0x10FFFF;
    if (r.lo > 0x10FFFF) continue;
    if (r.lo < 0xD800 && r.hi >= 0xD800) {
      split.push_back({r.lo, 0xD7FF});
      if (r.hi > 0xDFFF) split.push_back({0xE000, r.hi});
    } else if (r.lo >= 0xD800 && r.lo <= 0xDFFF) {
      if (r.hi > 0xDFFF) split.push_back({0xE000, r.hi});
    } else {
      split.push_back(r);
    }
  }
  std::sort(split.begin(), split.end(), [](CodeRange a, CodeRange b) { return a.lo < b.lo; });
  CodeSet out;
  for (auto r : split) {
    if (!out.empty() && r.lo <= out.back().hi + 1) {
      out.back().hi = std::max(out.back().hi, r.hi);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

CodeSet cs_union(const CodeSet& a, const CodeSet& b) {
  CodeSet all = a;
  all.insert(all.end(), b.begin(), b.end());
  return cs_normalize(all);
}

CodeSet cs_complement(const CodeSet& a) {
  CodeSet out;
  uint32_t next = 0;
  for (auto r : cs_normalize(a)) {
    if (r.lo > next) out.push_back({next, r.lo - 1});
    next = r.hi + 1;
  }
  if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
  return cs_normalize(out);
}

CodeSet cs_intersect(const CodeSet& a, const CodeSet& b) {
  return cs_complement(cs_union(cs_complement(a), cs_complement(b)));
}

CodeSet cs_single(uint32_t cp) { return cs_normalize({{cp, cp}}); }
CodeSet cs_range(uint32_t lo, uint32_t hi) { return cs_normalize({{lo, hi}}); }

bool cs_contains(const CodeSet& a, uint32_t cp) {
  for (auto r : a)
    if (cp >= r.lo && cp <= r.hi) return true;
  return false;
}

uint64_t cs_size(const CodeSet& a) {
  uint64_t n = 0;
  for (auto r : a) n += r.hi - r.lo + 1;
  return n;
}

namespace {
std::string class_char(uint32_t cp) {
  char buf[16];
  bool plain = cp >= 0x20 && cp < 0x7F && cp != ']' && cp != '[' && cp != '\\' && cp != '^' && cp != '-';
  if (plain) return std::string(1, static_cast<char>(cp));
  if (cp < 0x80) {
    std::snprintf(buf, sizeof buf, "\\x%02X", cp);
  } else if (cp <= 0xFFFF) {
    std::snprintf(buf, sizeof buf, "\\u%04X", cp);
  } else {
    std::snprintf(buf, sizeof buf, "\\U%08X", cp);
  }
  return buf;
}
}  // namespace

std::string gbnf_class(const CodeSet& set) {
  std::string out = "[";
  for (auto r : set) {
    out += class_char(r.lo);
    if (r.hi == r.lo + 1) out += class_char(r.hi);
    if (r.hi > r.lo + 1) {
      out += '-';
      out += class_char(r.hi);
    }
  }
  return out + "]";
}

std::string json_escape_code_point(uint32_t cp) {
  switch (cp) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case 0x08: return "\\b";
    case 0x0C: return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: break;
  }
  std::string out;
  if (cp < 0x20) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\u%04x", cp);
    return buf;
  }
  append_utf8(out, cp);
  return out;
}

std::string json_char_of(const CodeSet& set) {
  static const CodeSet kNeedsEscape = cs_normalize({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}});
  std::vector<std::string> alts;
  CodeSet raw = cs_intersect(set, cs_complement(kNeedsEscape));
  if (raw.size() == 1 && raw[0].lo == raw[0].hi) {
    alts.push_back(gbnf_literal(json_escape_code_point(raw[0].lo)));
  } else if (!raw.empty()) {
    alts.push_back(gbnf_class(raw));
  }
  std::string short_escapes;  // letters after the backslash
  CodeSet long_escapes;
  for (auto r : cs_intersect(set, kNeedsEscape)) {
    for (uint32_t cp = r.lo; cp <= r.hi; ++cp) {
      std::string e = json_escape_code_point(cp);
      if (e.size() == 2) {
        short_escapes += e[1];
      } else {
        long_escapes.push_back({cp, cp});
      }
    }
  }
  if (short_escapes.size() == 1) {
    alts.push_back(gbnf_literal(std::string("\\") + short_escapes));
  } else if (!short_escapes.empty()) {
    CodeSet letters;
    for (char c : short_escapes) letters.push_back({static_cast<uint32_t>(c), static_cast<uint32_t>(c)});
    alts.push_back(gbnf_literal("\\") + " " + gbnf_class(cs_normalize(letters)));
  }
  if (!long_escapes.empty()) {
    // \u00XX in lower-case hex, grouped by the high digit.
    std::vector<std::string> by_high;
    for (uint32_t high = 0; high < 2; ++high) {
      CodeSet lows;
      for (auto r : long_escapes)
        for (uint32_t cp = r.lo; cp <= r.hi; ++cp)
          if ((cp >> 4) == high) {
            uint32_t d = cp & 0xF;
            uint32_t ch = d < 10 ? '0' + d : 'a' + d - 10;
            lows.push_back({ch, ch});
          }
      if (!lows.empty()) by_high.push_back(gbnf_literal(std::to_string(high)) + " " + gbnf_class(cs_normalize(lows)));
    }
    alts.push_back(gbnf_literal("\\u00") + " " + atom(alternatives(by_high)));
  }
  return alternatives(alts);
}

// ---- shared helper rules -------------------------------------------------------

std::string ws_rule(RuleSet& rules) {
  // At most one space, or one newline and a bounded indent: a model cannot
  // loop on whitespace.
  return rules.helper("ws", "( \" \" | \"\\n\" [ \\t]{0,20} )?");
}

std::string json_char_rule(RuleSet& rules) {
  const std::string hex = "[0-9a-fA-F]";
  // \uXXXX: no lone surrogates; a high surrogate only with its low half.
  rules.helper("json-u-escape", "[0-9a-cA-Ce-fE-F] " + hex + "{3} | [dD] [0-7] " + hex + "{2} | [dD] [89abAB] " +
                                    hex + "{2} \"\\\\u\" [dD] [c-fC-F] " + hex + "{2}");
  CodeSet raw = cs_complement(cs_normalize({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}));
  return rules.helper("json-char", gbnf_class(raw) + " | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" json-u-escape )");
}

std::string json_string_rule(RuleSet& rules) {
  json_char_rule(rules);
  return rules.helper("json-string", "\"\\\"\" json-char* \"\\\"\"");
}

std::string json_integer_rule(RuleSet& rules) {
  return rules.helper("json-int", "\"0\" | \"-\"? [1-9] [0-9]{0,14}");
}

std::string json_number_rule(RuleSet& rules) {
  return rules.helper("json-number",
                      "\"-\"? ( \"0\" | [1-9] [0-9]{0,14} ) ( \".\" [0-9]{1,15} )? ( [eE] [-+]? [0-9]{1,2} )?");
}

std::string json_bool_rule(RuleSet& rules) { return rules.helper("json-bool", "\"true\" | \"false\""); }

std::string json_value_rule(RuleSet& rules) {
  ws_rule(rules);
  json_string_rule(rules);
  json_number_rule(rules);
  json_bool_rule(rules);
  rules.helper("json-member", "json-string ws \":\" ws json-value");
  rules.helper("json-object", "\"{\" ws ( json-member ( ws \",\" ws json-member )* ws )? \"}\"");
  rules.helper("json-array", "\"[\" ws ( json-value ( ws \",\" ws json-value )* ws )? \"]\"");
  return rules.helper("json-value", "json-object | json-array | json-string | json-number | json-bool | \"null\"");
}

// ---- formats -----------------------------------------------------------------

namespace {
const char* const kHex = "[0-9a-fA-F]";

std::string date_rule(RuleSet& rules) {
  rules.helper("fmt-year", "[1-9] [0-9]{3} | \"0\" ( [1-9] [0-9]{2} | \"0\" ( [1-9] [0-9] | \"0\" [1-9] ) )");
  // Two digits divisible by 4, not 00; a leap year ends in one of them, or
  // is a century divisible by 400 (year 0000 does not exist in RFC 3339 tools).
  rules.helper("fmt-leap-yy", "[02468] [48] | [13579] [26] | [2468] \"0\"");
  rules.helper("fmt-leap-year", "[0-9] [0-9] fmt-leap-yy | fmt-leap-yy \"00\"");
  return rules.helper("fmt-date",
                      "fmt-year \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )"
                      " | ( \"0\" [469] | \"11\" ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"30\" )"
                      " | \"02-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] ) ) | fmt-leap-year \"-02-29\"");
}

std::string time_rule(RuleSet& rules) {
  return rules.helper("fmt-time",
                      "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,9} )?"
                      " ( \"Z\" | [+\\x2D] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )");
}

std::string hostname_rule(RuleSet& rules) {
  rules.helper("fmt-label", "[a-zA-Z0-9] ( [a-zA-Z0-9\\x2D]{0,30} [a-zA-Z0-9] )?");
  // Two to five labels, the last alphabetic (a top-level domain).
  return rules.helper("fmt-hostname", "fmt-label ( \".\" fmt-label ){0,3} \".\" [a-zA-Z]{2,12}");
}

std::string ipv4_rule(RuleSet& rules) {
  rules.helper("fmt-octet", "\"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] [0-9] | [0-9]");
  return rules.helper("fmt-ipv4", "fmt-octet \".\" fmt-octet \".\" fmt-octet \".\" fmt-octet");
}
}  // namespace

std::optional<FormatGrammar> format_grammar(RuleSet& rules, const std::string& format) {
  const std::string hex = kHex;
  if (format == "date") return FormatGrammar{date_rule(rules), 10, 10};
  if (format == "time") return FormatGrammar{time_rule(rules), 9, 24};
  if (format == "date-time") {
    date_rule(rules);
    time_rule(rules);
    return FormatGrammar{rules.helper("fmt-date-time", "fmt-date \"T\" fmt-time"), 20, 35};
  }
  if (format == "uuid") {
    return FormatGrammar{rules.helper("fmt-uuid", hex + "{8} \"-\" " + hex + "{4} \"-\" " + hex + "{4} \"-\" " + hex +
                                                      "{4} \"-\" " + hex + "{12}"),
                         36, 36};
  }
  if (format == "ipv4") return FormatGrammar{ipv4_rule(rules), 7, 15};
  if (format == "hostname") return FormatGrammar{hostname_rule(rules), 6, 144};
  if (format == "email") {
    hostname_rule(rules);
    rules.helper("fmt-email-atom", "[a-zA-Z0-9_%+\\x2D]{1,16}");
    return FormatGrammar{rules.helper("fmt-email", "fmt-email-atom ( \".\" fmt-email-atom ){0,3} \"@\" fmt-hostname"),
                         8, 212};
  }
  if (format == "uri") {
    hostname_rule(rules);
    ipv4_rule(rules);
    rules.helper("fmt-pchar", "[a-zA-Z0-9._~!$&'()*+,;=:@\\x2D] | \"%\" " + hex + " " + hex);
    return FormatGrammar{
        rules.helper("fmt-uri",
                     "[a-zA-Z] [a-zA-Z0-9+.\\x2D]{0,9} \"://\" ( fmt-hostname | fmt-ipv4 ) ( \":\" [0-9]{1,5} )?"
                     " ( \"/\" fmt-pchar{0,32} ){0,8} ( \"?\" ( fmt-pchar | [/?] ){0,64} )?"
                     " ( \"#\" ( fmt-pchar | [/?] ){0,64} )?"),
        11, 1325};
  }
  return std::nullopt;
}

}  // namespace volga::schema_detail
