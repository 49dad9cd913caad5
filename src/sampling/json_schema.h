// JSON Schema -> grammar (GBNF text, the dialect sampling/grammar.h parses).
//
// The grammar generates a subset of the JSON texts the schema accepts, never
// a superset: every string it can produce validates against the schema.
// What cannot be enforced is refused (SchemaError naming the keyword and its
// place in the schema) rather than silently ignored.
//
// Supported: `type` (a name or a list), `properties`, `required`,
// `additionalProperties` (false, true or a schema), `enum`, `const`, `items`,
// `prefixItems`, `minItems`/`maxItems`, `anyOf`/`oneOf`, `allOf` of object
// schemas, `$ref` to `#`, `#/$defs/...` and `#/definitions/...`, `nullable`,
// strings with `minLength`/`maxLength`, `pattern` (a regex subset) and the
// formats date, time, date-time, uuid, email, uri, ipv4, hostname; integers and
// numbers with `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`.
// Annotations (title, description, default, examples, $schema, $id, $comment,
// deprecated, readOnly, writeOnly, strict) are ignored.
//
// Thread-safety: a SchemaConverter is used by one thread; the functions are pure.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "util/error.h"

namespace volga {

// An unsupported or malformed schema. `where` is a JSON pointer into the
// schema ("/properties/age"), `keyword` the offending keyword if any.
class SchemaError : public Error {
 public:
  SchemaError(const std::string& message, std::string where, std::string keyword = "")
      : Error(message), where(std::move(where)), keyword(std::move(keyword)) {}
  std::string where, keyword;
};

// Builds one grammar out of several schemas (a tool-call grammar holds one
// per tool) plus rules the caller writes itself. Rule names are unique.
class SchemaConverter {
 public:
  // Adds the rules for `schema` and returns the name of the rule that
  // generates one JSON value of it. `name_hint` seeds the rule names
  // ("get-weather-args"). Throws SchemaError.
  std::string add_schema(const nlohmann::ordered_json& schema, const std::string& name_hint);

  // Adds a rule written by the caller (GBNF body) under a unique name
  // derived from `name_hint`; returns that name.
  std::string add_rule(const std::string& name_hint, const std::string& body);

  // All rules so far, with `root ::= root_body` first.
  std::string grammar(const std::string& root_body) const;

 private:
  struct Impl;
  std::map<std::string, std::string> rules_;   // name -> body
  std::set<std::string> reserved_;
  friend struct Impl;
};

// The grammar of one value of `schema`, as root. Throws SchemaError.
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);

// GBNF string literal for `text` ("..." with escapes), for callers that
// write rules around schema values.
std::string gbnf_literal(const std::string& text);

}  // namespace volga
