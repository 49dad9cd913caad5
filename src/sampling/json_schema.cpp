// JSON Schema -> GBNF: keywords, the per-type dispatch, enums, objects and
// arrays. $ref/allOf/anyOf/oneOf live in json_schema_compose.cpp; strings,
// numbers and patterns in json_schema_text.cpp, json_schema_numeric.cpp and
// json_schema_regex.cpp.
//
// Choices (the generated texts are a subset of the valid ones):
//   - Objects: properties in schema order; required ones always, optional ones
//     may be left out; no properties beyond the declared ones, whatever
//     additionalProperties says. An object with no declared properties and
//     additionalProperties other than false takes any keys ("type": "object"
//     is any object), with values of the additionalProperties schema.
//   - allOf (and $ref with sibling keywords) is merged into one schema:
//     types intersect, properties and required unite, bounds tighten; keywords
//     that cannot be merged exactly (two different patterns) are refused.
//   - anyOf/oneOf with sibling keywords: the siblings join every branch.
//     oneOf is generated like anyOf only when no generated value can match two
//     branches: branches of disjoint types, or objects told apart by a
//     property that one branch requires with const/enum values the other
//     branch's declaration of it excludes. Otherwise it is refused.
//   - No `type`: the types the other keywords are about (properties ->
//     object, minLength -> string...), or any JSON value if there are none.
//   - `nullable: true` (OpenAPI 3.0) adds "null" to `type`.
#include <algorithm>
#include <cmath>

#include "sampling/json_schema_impl.h"

namespace volga {

using namespace schema_detail;

namespace schema_detail {

const std::set<std::string> kAnnotations = {"title",    "description", "default",   "examples",   "example",
                                            "$schema",  "$id",         "$comment",  "deprecated", "readOnly",
                                            "writeOnly", "strict",     "$defs",     "definitions", "discriminator"};
const std::set<std::string> kSupported = {
    "type",      "nullable",  "enum",     "const",     "properties",       "required",         "additionalProperties",
    "items",     "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems",      "minLength",
    "maxLength", "pattern",   "format",   "minimum",   "maximum",          "exclusiveMinimum", "exclusiveMaximum",
    "anyOf",     "oneOf",     "allOf",    "$ref",      "minProperties",    "maxProperties"};

bool is_annotation(const std::string& k) { return kAnnotations.count(k) || k.rfind("x-", 0) == 0; }

std::string pointer_token(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

void check_keywords(const json& s, const std::string& where) {
  if (!s.is_object()) fail("a schema must be an object or a boolean", where);
  for (auto it = s.begin(); it != s.end(); ++it)
    if (!is_annotation(it.key()) && !kSupported.count(it.key()))
      fail("unsupported JSON Schema keyword '" + it.key() + "'", where, it.key());
}

bool only_annotations_besides(const json& s, const std::string& key) {
  for (auto it = s.begin(); it != s.end(); ++it)
    if (it.key() != key && !is_annotation(it.key())) return false;
  return true;
}

uint64_t count_keyword(const json& s, const char* key, uint64_t fallback, const std::string& where) {
  auto it = s.find(key);
  if (it == s.end()) return fallback;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer() && it->get<int64_t>() >= 0) return static_cast<uint64_t>(it->get<int64_t>());
  if (it->is_number_float() && it->get<double>() >= 0 && it->get<double>() < 1e18 &&
      it->get<double>() == static_cast<double>(static_cast<uint64_t>(it->get<double>())))
    return static_cast<uint64_t>(it->get<double>());
  fail(std::string("'") + key + "' must be a non-negative integer", where, key);
}

// Type names as a set; "integer" is inside "number".
std::set<std::string> type_set(const json& s, const std::string& where) {
  auto it = s.find("type");
  if (it == s.end()) return {kTypeNames.begin(), kTypeNames.end()};
  std::set<std::string> out;
  auto add = [&](const json& t) {
    if (!t.is_string() || std::find(kTypeNames.begin(), kTypeNames.end(), t.get<std::string>()) == kTypeNames.end())
      fail("unknown type " + t.dump(), where, "type");
    out.insert(t.get<std::string>());
  };
  if (it->is_array()) {
    for (const auto& t : *it) add(t);
  } else {
    add(*it);
  }
  if (out.count("number")) out.insert("integer");
  return out;
}

json type_json(const std::set<std::string>& types) {
  json out = json::array();
  for (const auto& t : kTypeNames)
    if (types.count(t) && !(t == "integer" && types.count("number"))) out.push_back(t);
  return out;
}

bool value_has_type(const json& v, const std::string& t) {
  if (t == "null") return v.is_null();
  if (t == "boolean") return v.is_boolean();
  if (t == "string") return v.is_string();
  if (t == "array") return v.is_array();
  if (t == "object") return v.is_object();
  if (t == "number") return v.is_number();
  if (t == "integer")
    return v.is_number_integer() || v.is_number_unsigned() ||
           (v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>());
  return false;
}

std::string json_type_of(const json& v) {
  for (const auto& t : {"null", "boolean", "string", "array", "object", "integer", "number"})
    if (value_has_type(v, t)) return t;
  return "null";
}

}  // namespace schema_detail

// ---- dispatch -----------------------------------------------------------------

std::string SchemaConverter::Impl::named(const std::string& expr, const std::string& hint) {
  if (is_atom(expr) && expr.size() <= 40) return expr;
  return rules.add(hint, expr);
}

std::string SchemaConverter::Impl::value(const json& s, const std::string& where, const std::string& hint) {
  if (depth >= kMaxDepth) fail("schema nested more than 64 levels deep (or a $ref cycle)", where);
  if (++work > kMaxWork || rules.size() > kMaxRules) fail("schema too large to convert", where);
  struct Guard {
    int& d;
    ~Guard() { --d; }
  } guard{++depth};
  if (s.is_boolean()) {
    if (s.get<bool>()) return json_value_rule(rules);
    fail("the schema 'false' accepts no value", where);
  }
  check_keywords(s, where);
  if (s.contains("$ref") && only_annotations_besides(s, "$ref")) return ref_rule(s["$ref"], where);
  if (s.contains("allOf") && s["allOf"].is_array() && s["allOf"].size() == 1 && only_annotations_besides(s, "allOf"))
    return value(s["allOf"][0], where + "/allOf/0", hint);
  json flat = flatten(s, where);
  if (flat.contains("anyOf") || flat.contains("oneOf")) return alternatives_of(flat, where, hint);
  return typed(flat, where, hint);
}

std::vector<std::string> SchemaConverter::Impl::types_of(const json& flat, const std::string& where) {
  if (flat.contains("type")) {
    auto set = type_set(flat, where);
    std::vector<std::string> out;
    for (const auto& t : kTypeNames)
      if (set.count(t) && !(t == "integer" && set.count("number"))) out.push_back(t);
    return out;
  }
  std::vector<std::string> out;
  auto any = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (flat.contains(k)) return true;
    return false;
  };
  if (any({"properties", "required", "additionalProperties", "minProperties", "maxProperties"})) out.push_back("object");
  if (any({"items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems"})) out.push_back("array");
  if (any({"minLength", "maxLength", "pattern", "format"})) out.push_back("string");
  if (any({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})) out.push_back("number");
  return out;  // empty: any value
}

std::string SchemaConverter::Impl::typed(const json& flat, const std::string& where, const std::string& hint) {
  if (flat.contains("enum") || flat.contains("const")) return enum_expr(flat, where);
  std::vector<std::string> types = types_of(flat, where);
  if (types.empty()) return json_value_rule(rules);
  std::vector<std::string> alts;
  for (const auto& t : types) {
    std::string h = types.size() == 1 ? hint : hint + "-" + t;
    std::string e;
    if (t == "object") e = object_expr(flat, where, h);
    if (t == "array") e = array_expr(flat, where, h);
    if (t == "string") e = string_expr(flat, where, h);
    if (t == "integer") e = integer_expr(flat, where);
    if (t == "number") e = number_expr(flat, where);
    if (t == "boolean") e = json_bool_rule(rules);
    if (t == "null") e = "\"null\"";
    if (types.size() == 1) return e;  // the caller names it
    alts.push_back(named(e, h));
  }
  return atom(alternatives(alts));
}

// ---- enum / const ------------------------------------------------------------------

std::string SchemaConverter::Impl::enum_expr(const json& flat, const std::string& where) {
  static const std::set<std::string> kCheckable = {"type",     "enum",     "const",            "minLength",
                                                   "maxLength", "minimum", "maximum",          "exclusiveMinimum",
                                                   "exclusiveMaximum", "minItems", "maxItems"};
  for (auto it = flat.begin(); it != flat.end(); ++it)
    if (!kCheckable.count(it.key()))
      fail("'" + it.key() + "' together with 'enum'/'const' is not supported", where, it.key());
  json values = flat.contains("enum") ? flat["enum"] : json::array();
  if (!values.is_array()) fail("'enum' must be an array", where, "enum");
  if (flat.contains("const")) {
    json kept = json::array();
    for (const auto& v : values)
      if (v == flat["const"]) kept.push_back(v);
    values = flat.contains("enum") ? kept : json::array({flat["const"]});
  }
  auto types = type_set(flat, where);
  NumericBounds bounds = read_bounds(flat, where);
  uint64_t min_len = count_keyword(flat, "minLength", 0, where);
  uint64_t max_len = count_keyword(flat, "maxLength", kUnbounded, where);
  uint64_t min_items = count_keyword(flat, "minItems", 0, where);
  uint64_t max_items = count_keyword(flat, "maxItems", kUnbounded, where);
  std::vector<std::string> alts;
  for (const auto& v : values) {
    if (!std::any_of(types.begin(), types.end(), [&](const std::string& t) { return value_has_type(v, t); })) continue;
    if (v.is_string()) {
      size_t n = utf8_code_points(v.get<std::string>()).size();
      if (n < min_len || n > max_len) continue;
    }
    if (v.is_array() && (v.size() < min_items || v.size() > max_items)) continue;
    if (v.is_number()) {
      Decimal d = decimal_of(v);
      if (bounds.lo && (compare_decimal(d, *bounds.lo) < 0 || (bounds.lo_exclusive && compare_decimal(d, *bounds.lo) == 0)))
        continue;
      if (bounds.hi && (compare_decimal(d, *bounds.hi) > 0 || (bounds.hi_exclusive && compare_decimal(d, *bounds.hi) == 0)))
        continue;
      if (v.is_number_float() && !std::isfinite(v.get<double>())) continue;
    }
    alts.push_back(gbnf_literal(v.dump()));
  }
  if (alts.empty()) fail("no value of 'enum'/'const' satisfies the schema", where, flat.contains("enum") ? "enum" : "const");
  return alts.size() == 1 ? alts[0] : atom(alternatives(alts));
}

// ---- scalars -------------------------------------------------------------------------

std::string SchemaConverter::Impl::string_expr(const json& flat, const std::string& where, const std::string& hint) {
  uint64_t min_len = count_keyword(flat, "minLength", 0, where);
  uint64_t max_len = count_keyword(flat, "maxLength", kUnbounded, where);
  if (min_len > max_len) fail("minLength is above maxLength", where, "minLength");
  const std::string quote = "\"\\\"\"";
  if (flat.contains("format")) {
    if (!flat["format"].is_string()) fail("'format' must be a string", where, "format");
    std::string format = flat["format"].get<std::string>();
    auto fg = format_grammar(rules, format);
    if (!fg) fail("unsupported string format '" + format + "'", where, "format");
    if (flat.contains("pattern")) fail("'pattern' together with 'format' is not supported", where, "pattern");
    if (min_len > fg->min_len || max_len < fg->max_len)
      fail("minLength/maxLength that cut into format '" + format + "' are not supported", where, "format");
    return quote + " " + fg->expr + " " + quote;
  }
  if (flat.contains("pattern")) {
    if (!flat["pattern"].is_string()) fail("'pattern' must be a string", where, "pattern");
    std::string body = pattern_gbnf(rules, flat["pattern"].get<std::string>(), min_len, max_len, where);
    if (body.empty()) return quote + " " + quote;
    return quote + " " + atom(named(body, hint + "-pattern")) + " " + quote;
  }
  if (min_len == 0 && max_len == kUnbounded) return json_string_rule(rules);
  std::string chars = repeat(rules, json_char_rule(rules), min_len, max_len);
  return chars.empty() ? quote + " " + quote : quote + " " + chars + " " + quote;
}

std::string SchemaConverter::Impl::integer_expr(const json& flat, const std::string& where) {
  NumericBounds b = read_bounds(flat, where);
  if (!b.lo && !b.hi) return json_integer_rule(rules);
  auto expr = integer_range_gbnf(rules, b, where);
  if (!expr) fail("no integer satisfies minimum/maximum/exclusiveMinimum/exclusiveMaximum", where, b.lo ? "minimum" : "maximum");
  return *expr;
}

std::string SchemaConverter::Impl::number_expr(const json& flat, const std::string& where) {
  NumericBounds b = read_bounds(flat, where);
  if (!b.lo && !b.hi) return json_number_rule(rules);
  auto expr = number_range_gbnf(rules, b, where);
  if (!expr) fail("no number satisfies minimum/maximum/exclusiveMinimum/exclusiveMaximum", where, b.lo ? "minimum" : "maximum");
  return *expr;
}

// ---- objects -----------------------------------------------------------------------------

// "{" members "}" for declared properties in order; required ones always.
std::string SchemaConverter::Impl::object_members(const std::vector<std::pair<std::string, std::string>>& members,
                                                  const std::vector<bool>& required, const std::string& hint) {
  const std::string ws = ws_rule(rules), sep = ws + " \",\" " + ws;
  size_t n = members.size();
  auto kv = [&](size_t i) { return gbnf_literal(json(members[i].first).dump()) + " " + ws + " \":\" " + ws + " " + members[i].second; };
  // tail[i]: the members from i on, each after a separator.
  std::vector<std::string> tail(n + 1);
  for (size_t i = n; i-- > 0;) {
    std::string item = sep + " " + kv(i);
    std::string own = required[i] ? item : "( " + item + " )?";
    tail[i] = tail[i + 1].empty() ? own : own + " " + tail[i + 1];
    if (tail[i].size() > 200 && i > 0) tail[i] = rules.add(hint + "-rest", tail[i]);
  }
  // The first member present: any optional one before the first required one, or that one.
  std::vector<std::string> firsts;
  bool has_required = false;
  for (size_t i = 0; i < n; ++i) {
    firsts.push_back(tail[i + 1].empty() ? kv(i) : kv(i) + " " + tail[i + 1]);
    if (required[i]) {
      has_required = true;
      break;
    }
  }
  std::string body = alternatives(firsts);
  if (firsts.size() > 1) body = "( " + body + " )";
  if (has_required) return "\"{\" " + ws + " " + body + " " + ws + " \"}\"";
  return "\"{\" " + ws + " ( " + body + " " + ws + " )? \"}\"";
}

std::string SchemaConverter::Impl::object_expr(const json& flat, const std::string& where, const std::string& hint) {
  std::vector<std::pair<std::string, json>> props;
  if (flat.contains("properties")) {
    if (!flat["properties"].is_object()) fail("'properties' must be an object", where, "properties");
    for (auto it = flat["properties"].begin(); it != flat["properties"].end(); ++it) props.emplace_back(it.key(), it.value());
  }
  std::vector<std::string> required;
  if (flat.contains("required")) {
    if (!flat["required"].is_array()) fail("'required' must be an array of strings", where, "required");
    for (const auto& r : flat["required"]) {
      if (!r.is_string()) fail("'required' must be an array of strings", where, "required");
      if (std::find(required.begin(), required.end(), r.get<std::string>()) == required.end())
        required.push_back(r.get<std::string>());
    }
  }
  json additional = flat.contains("additionalProperties") ? flat["additionalProperties"] : json(true);
  for (const auto& r : required) {
    bool declared = std::any_of(props.begin(), props.end(), [&](const auto& p) { return p.first == r; });
    if (declared) continue;
    if (additional == false)
      fail("required property '" + r + "' is not declared and additionalProperties is false", where, "required");
    props.emplace_back(r, additional);
  }
  uint64_t min_props = count_keyword(flat, "minProperties", 0, where);
  uint64_t max_props = count_keyword(flat, "maxProperties", kUnbounded, where);
  const std::string ws = ws_rule(rules);
  if (props.empty() && additional == false) {
    if (min_props > 0) fail("minProperties above 0 with no property allowed", where, "minProperties");
    return "\"{\" " + ws + " \"}\"";
  }
  if (props.empty()) {  // any keys
    if (min_props > 1)
      fail("minProperties above 1 is supported only with declared properties (keys could repeat)", where,
           "minProperties");
    std::string val = additional == true ? json_value_rule(rules)
                                         : atom(named(value(additional, where + "/additionalProperties", hint + "-value"),
                                                      hint + "-value"));
    std::string member = rules.add(hint + "-member", json_string_rule(rules) + " " + ws + " \":\" " + ws + " " + val);
    if (max_props == 0) return "\"{\" " + ws + " \"}\"";
    std::string more = repeat(rules, "( " + ws + " \",\" " + ws + " " + member + " )", 0,
                              max_props == kUnbounded ? kUnbounded : max_props - 1);
    std::string body = member + (more.empty() ? "" : " " + more) + " " + ws;
    return "\"{\" " + ws + (min_props == 1 ? " " + body : " ( " + body + " )?") + " \"}\"";
  }
  std::vector<std::pair<std::string, std::string>> members;
  std::vector<bool> is_required;
  size_t n_required = 0;
  for (const auto& [name, schema] : props) {
    bool req = std::find(required.begin(), required.end(), name) != required.end();
    n_required += req;
  }
  if (min_props > n_required)
    fail("minProperties above the number of required properties is not supported", where, "minProperties");
  if (max_props < n_required) fail("maxProperties below the number of required properties", where, "maxProperties");
  bool only_required = max_props < props.size();  // then optional ones are left out
  for (const auto& [name, schema] : props) {
    bool req = std::find(required.begin(), required.end(), name) != required.end();
    if (!req && (schema == false || only_required)) continue;
    std::string pw = where + "/properties/" + pointer_token(name);
    if (schema == false) fail("required property '" + name + "' has the schema false", pw, "required");
    members.emplace_back(name, atom(named(value(schema, pw, hint + "-" + name), hint + "-" + name)));
    is_required.push_back(req);
  }
  if (members.empty()) return "\"{\" " + ws + " \"}\"";
  return object_members(members, is_required, hint);
}

// ---- arrays ------------------------------------------------------------------------------

std::string SchemaConverter::Impl::array_expr(const json& flat, const std::string& where, const std::string& hint) {
  if (flat.contains("uniqueItems") && flat["uniqueItems"] == true && count_keyword(flat, "maxItems", kUnbounded, where) > 1)
    fail("unsupported JSON Schema keyword 'uniqueItems'", where, "uniqueItems");
  json prefix = json::array();
  json rest = true;
  std::string rest_where = where + "/items";
  if (flat.contains("prefixItems")) {
    prefix = flat["prefixItems"];
    if (!prefix.is_array()) fail("'prefixItems' must be an array", where, "prefixItems");
    if (flat.contains("items")) rest = flat["items"];
    if (flat.contains("items") && rest.is_array()) fail("'items' must be a schema next to 'prefixItems'", where, "items");
  } else if (flat.contains("items") && flat["items"].is_array()) {
    prefix = flat["items"];
    if (flat.contains("additionalItems")) rest = flat["additionalItems"];
    rest_where = where + "/additionalItems";
  } else if (flat.contains("items")) {
    rest = flat["items"];
  }
  uint64_t min_items = count_keyword(flat, "minItems", 0, where);
  uint64_t max_items = count_keyword(flat, "maxItems", kUnbounded, where);
  uint64_t k = prefix.size();
  if (rest == false) max_items = std::min(max_items, k);
  if (min_items > max_items) fail("minItems above the number of items allowed", where, "minItems");
  const std::string ws = ws_rule(rules), sep = ws + " \",\" " + ws;
  std::vector<std::string> elems;
  for (uint64_t i = 0; i < k && i < max_items; ++i)
    elems.push_back(atom(named(value(prefix[i], where + "/prefixItems/" + std::to_string(i), hint + "-" + std::to_string(i)),
                               hint + "-" + std::to_string(i))));
  std::string item;
  if (max_items > k) item = atom(named(value(rest, rest_where, hint + "-item"), hint + "-item"));
  if (max_items == 0) return "\"[\" " + ws + " \"]\"";
  // seq(i): element i and what may follow it.
  std::string tail;  // after the prefix
  if (max_items > k) {
    uint64_t t_min = min_items > k ? min_items - k : 0;
    uint64_t t_max = max_items == kUnbounded ? kUnbounded : max_items - k;
    if (k == 0) {
      std::string more = repeat(rules, "( " + sep + " " + item + " )", t_min > 0 ? t_min - 1 : 0,
                                t_max == kUnbounded ? kUnbounded : t_max - 1);
      tail = item + (more.empty() ? "" : " " + more);
    } else {
      tail = repeat(rules, "( " + sep + " " + item + " )", t_min, t_max);
    }
  }
  std::string seq = tail;  // k == 0: the tail is all of it
  uint64_t n_prefix = std::min(k, max_items);
  for (uint64_t i = n_prefix; i-- > 0;) {
    // Element i, then element i+1 and the rest (required while below minItems).
    std::string after;
    if (i + 1 == n_prefix) {
      after = tail;
    } else {
      after = i + 1 < min_items ? sep + " " + seq : "( " + sep + " " + seq + " )?";
    }
    seq = elems[i] + (after.empty() ? "" : " " + after);
    if (seq.size() > 200 && i > 0) seq = rules.add(hint + "-from-" + std::to_string(i), seq);
  }
  if (min_items > 0) return "\"[\" " + ws + " " + seq + " " + ws + " \"]\"";
  return "\"[\" " + ws + " ( " + seq + " " + ws + " )? \"]\"";
}

// ---- public API ------------------------------------------------------------------------------

std::string SchemaConverter::add_schema(const json& schema, const std::string& name_hint) {
  Impl impl(*this, schema);
  std::string expr = impl.value(schema, "", name_hint);
  bool is_name = !expr.empty() && expr.find_first_not_of(
                                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == std::string::npos;
  std::string name = is_name ? expr : impl.rules.add(name_hint, expr);
  std::string problem = grammar_problem(rules_, name);
  if (!problem.empty()) fail("schema cannot be turned into a usable grammar: " + problem, "");
  return name;
}

std::string SchemaConverter::add_rule(const std::string& name_hint, const std::string& body) {
  RuleSet rules(rules_, reserved_);
  std::string name = rules.reserve(name_hint);
  rules.define(name, body);
  return name;
}

std::string SchemaConverter::grammar(const std::string& root_body) const {
  std::string out = "root ::= " + root_body + "\n";
  for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
  return out;
}

std::string json_schema_to_gbnf(const json& schema) {
  SchemaConverter c;
  return c.grammar(c.add_schema(schema, "value"));
}

}  // namespace volga
