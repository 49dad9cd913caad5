// Internals of the JSON Schema -> GBNF converter, shared by its source files
// (json_schema*.cpp); not part of the public API.
//
//   json_schema.cpp          keywords, $ref/allOf/anyOf/oneOf, objects, arrays, enums
//   json_schema_text.cpp     rule bookkeeping, GBNF literals and classes, repetition,
//                            code point sets, the shared JSON helper rules, formats
//   json_schema_numeric.cpp  integer and decimal ranges as digit grammars
//   json_schema_regex.cpp    the `pattern` regex subset -> grammar
//   json_schema_check.cpp    a structural GBNF reader: undefined, unproductive and
//                            left-recursive rules
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sampling/json_schema.h"
#include "util/utf8.h"

namespace volga::schema_detail {

constexpr uint64_t kUnbounded = UINT64_MAX;

// "unsupported JSON Schema keyword 'x' at /a/b" and friends: every error
// names the place ("the schema root" for "").
std::string place(const std::string& where);
[[noreturn]] void fail(const std::string& message, const std::string& where, const std::string& keyword = "");

// ---- rules -----------------------------------------------------------------

// The converter's rule table: unique names from hints, helper rules defined
// once under fixed names, rules with identical bodies shared.
class RuleSet {
 public:
  RuleSet(std::map<std::string, std::string>& rules, std::set<std::string>& reserved);
  // A new rule named after `hint` (or an existing rule with the same body).
  std::string add(const std::string& hint, const std::string& body);
  // A name for a rule whose body is written later with define() (recursion).
  std::string reserve(const std::string& hint);
  void define(const std::string& name, const std::string& body);
  // A helper under its fixed name, defined on first use.
  std::string helper(const std::string& name, const std::string& body);
  size_t size() const { return rules_.size(); }

 private:
  std::map<std::string, std::string>& rules_;
  std::set<std::string>& reserved_;
  std::map<std::string, std::string> by_body_;
};

std::string sanitize_rule_name(const std::string& hint);
// True when `expr` is one GBNF primary (a name, literal, class or group).
bool is_atom(const std::string& expr);
// `expr` as one primary: parenthesised unless it already is one.
std::string atom(const std::string& expr);
// `item` (a primary) repeated min..max times (max may be kUnbounded). Large
// counts are split into blocks of rules so the grammar stays small.
std::string repeat(RuleSet& rules, const std::string& item, uint64_t min, uint64_t max);
// "a | b | c" (duplicates removed); an empty list is a bug of the caller.
std::string alternatives(const std::vector<std::string>& alts);

// ---- code point sets ---------------------------------------------------------

struct CodeRange {
  uint32_t lo, hi;  // inclusive
};
using CodeSet = std::vector<CodeRange>;  // sorted, disjoint, not adjacent, no surrogates

CodeSet cs_normalize(CodeSet set);  // sorts, merges, removes surrogates
CodeSet cs_union(const CodeSet& a, const CodeSet& b);
CodeSet cs_complement(const CodeSet& a);  // within the Unicode scalar values
CodeSet cs_intersect(const CodeSet& a, const CodeSet& b);
CodeSet cs_single(uint32_t cp);
CodeSet cs_range(uint32_t lo, uint32_t hi);
bool cs_contains(const CodeSet& a, uint32_t cp);
uint64_t cs_size(const CodeSet& a);
// [...] GBNF class of the set (nonempty).
std::string gbnf_class(const CodeSet& set);
// One character of `set` as it appears inside a JSON string literal: raw
// where JSON allows it, else its canonical escape. Nonempty set.
std::string json_char_of(const CodeSet& set);
// The JSON string-literal content of one code point (canonical escape).
std::string json_escape_code_point(uint32_t cp);

// Code points of a UTF-8 string (nlohmann validated it).

// ---- shared helper rules -------------------------------------------------------

std::string ws_rule(RuleSet& rules);          // bounded whitespace between tokens
std::string json_char_rule(RuleSet& rules);   // one character of a string, any escape
std::string json_string_rule(RuleSet& rules); // any string
std::string json_value_rule(RuleSet& rules);  // any JSON value
std::string json_number_rule(RuleSet& rules); // any number (bounded length)
std::string json_integer_rule(RuleSet& rules);
std::string json_bool_rule(RuleSet& rules);

// Formats: the rule generating the string content (without quotes), and the
// lengths it can have in characters.
struct FormatGrammar {
  std::string expr;
  uint64_t min_len, max_len;
};
std::optional<FormatGrammar> format_grammar(RuleSet& rules, const std::string& format);

// ---- numbers -----------------------------------------------------------------

// A bound as an exact decimal: sign, integer digits (no leading zeros, "0" for
// zero) and fraction digits (no trailing zeros).
struct Decimal {
  bool negative = false;
  std::string int_digits = "0";
  std::string frac_digits;
};
struct NumericBounds {
  std::optional<Decimal> lo, hi;
  bool lo_exclusive = false, hi_exclusive = false;
};
// Reads minimum/maximum/exclusiveMinimum/exclusiveMaximum of a flat schema.
NumericBounds read_bounds(const nlohmann::ordered_json& schema, const std::string& where);
// Grammar of the integers (canonical JSON) inside the bounds; nullopt if none.
std::optional<std::string> integer_range_gbnf(RuleSet& rules, const NumericBounds& b, const std::string& where);
// Grammar of the numbers (no exponent, at most 15 significant digits) inside
// the bounds; nullopt if none.
std::optional<std::string> number_range_gbnf(RuleSet& rules, const NumericBounds& b, const std::string& where);
// Digits of non-negative integers in [lo, hi] (decimal strings, no leading
// zeros), one (length, GBNF expression) per digit count.
std::vector<std::pair<int, std::string>> digit_range_by_length(const std::string& lo, const std::string& hi);
Decimal decimal_of(const nlohmann::ordered_json& number);  // exact / shortest round-trip
int compare_decimal(const Decimal& a, const Decimal& b);

// ---- patterns ----------------------------------------------------------------

// Grammar of the string content (without quotes) of the strings matching
// `pattern` (search semantics: unanchored unless ^/$) whose length in code
// points is within [min_len, max_len]. Throws SchemaError at `where`.
std::string pattern_gbnf(RuleSet& rules, const std::string& pattern, uint64_t min_len, uint64_t max_len,
                         const std::string& where);

// ---- checks ------------------------------------------------------------------

// Problems of the rules reachable from `start` that make a grammar unusable
// for decoding: rules referenced but not defined, rules that derive no finite
// string (dead ends), left recursion, bodies that do not parse. Empty when fine.
std::string grammar_problem(const std::map<std::string, std::string>& rules, const std::string& start);

}  // namespace volga::schema_detail
