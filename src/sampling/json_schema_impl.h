// The converter's working state (SchemaConverter::Impl) and the keyword
// helpers shared by json_schema.cpp (dispatch, types, objects, arrays) and
// json_schema_compose.cpp ($ref, allOf merging, anyOf/oneOf); internal.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sampling/json_schema_internal.h"

namespace volga {

using json = nlohmann::ordered_json;

namespace schema_detail {

constexpr int kMaxDepth = 64;       // nested schemas while converting
constexpr int kMaxRefChain = 32;    // $ref/allOf expansions inside one merge
constexpr size_t kMaxWork = 20000;  // schema nodes visited per add_schema
constexpr size_t kMaxRules = 50000;

inline const std::vector<std::string> kTypeNames = {"object", "array", "string", "number", "integer", "boolean", "null"};

bool is_annotation(const std::string& k);
std::string pointer_token(const std::string& s);  // a JSON pointer segment (~0 ~1)
// Throws unless `s` is an object of known keywords.
void check_keywords(const json& s, const std::string& where);
bool only_annotations_besides(const json& s, const std::string& key);
uint64_t count_keyword(const json& s, const char* key, uint64_t fallback, const std::string& where);
// Type names as a set; "integer" is inside "number".
std::set<std::string> type_set(const json& s, const std::string& where);
json type_json(const std::set<std::string>& types);
bool value_has_type(const json& v, const std::string& t);
std::string json_type_of(const json& v);

}  // namespace schema_detail

struct SchemaConverter::Impl {
  Impl(SchemaConverter& self, const json& root) : rules(self.rules_, self.reserved_), root(root) {}

  schema_detail::RuleSet rules;
  const json& root;
  std::map<std::string, std::string> ref_rules;  // JSON pointer -> rule
  int depth = 0;
  size_t work = 0;

  // ---- $ref and allOf ---------------------------------------------------------

  std::pair<const json*, std::string> resolve(const json& ref, const std::string& where);

  // The schema's own constraints, its $ref target's and its allOf items', in order.
  void collect(const json& s, const std::string& where, int chain, std::vector<json>& out);

  json flatten(const json& s, const std::string& where);

  static void tighten(json& out, const std::string& key, const json& v, bool take_max);

  json merge(const std::vector<json>& parts, const std::string& where);

  // A property declared by one part is an "additional" one for the others.
  void merge_additional(const std::vector<json>& parts, json& out, const std::string& where);

  std::string ref_rule(const json& ref, const std::string& where);

  // ---- dispatch -----------------------------------------------------------------

  std::string named(const std::string& expr, const std::string& hint);

  std::string value(const json& s, const std::string& where, const std::string& hint);

  std::string alternatives_of(const json& flat, const std::string& where, const std::string& hint);

  // ---- oneOf ----------------------------------------------------------------------

  // Types a schema accepts (declared; all when it does not say).
  std::set<std::string> accepted_types(const json& s, const std::string& where);

  // The const/enum values a schema allows for property `name`, if it says.
  std::optional<json> property_values(const json& flat, const std::string& name, const std::string& where);

  // No value generated from `a` validates against `b`.
  bool excludes(const json& a, const json& b, const std::string& where);

  void check_exclusive(const std::vector<json>& branches, const std::string& where);

  // ---- types ------------------------------------------------------------------------

  std::vector<std::string> types_of(const json& flat, const std::string& where);

  std::string typed(const json& flat, const std::string& where, const std::string& hint);

  std::string enum_expr(const json& flat, const std::string& where);
  std::string string_expr(const json& flat, const std::string& where, const std::string& hint);
  std::string integer_expr(const json& flat, const std::string& where);
  std::string number_expr(const json& flat, const std::string& where);
  std::string object_expr(const json& flat, const std::string& where, const std::string& hint);
  std::string array_expr(const json& flat, const std::string& where, const std::string& hint);
  std::string object_members(const std::vector<std::pair<std::string, std::string>>& members,
                             const std::vector<bool>& required, const std::string& hint);
};

}  // namespace volga
