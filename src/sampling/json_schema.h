// JSON Schema -> grammar (GBNF text, the dialect sampling/grammar.h parses).
//
// The grammar generates a subset of the JSON texts the schema accepts, never
// a superset: every string it can produce validates against the schema, and
// it can always finish (no dead ends; an empty language is an error).
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
// What is generated:
//   - Text: no whitespace before or after the value; between tokens at most
//     one space, or one newline and up to 20 spaces/tabs.
//   - Objects: declared properties in schema order; required ones always,
//     optional ones may be left out; never properties beyond the declared
//     ones (whatever additionalProperties says). With no declared properties
//     and additionalProperties not false, any keys with values of the
//     additionalProperties schema ({"type":"object"} is any object).
//     minProperties/maxProperties only where they hold anyway (minProperties
//     <= required count; with no declared properties minProperties <= 1);
//     maxProperties below the declared count leaves the optional ones out.
//   - Strings: any Unicode; JSON escapes (u-escaped surrogates only as
//     pairs); lengths count code points (an escape is one). `pattern` uses
//     search semantics (unanchored unless ^/$), over the decoded value.
//   - Numbers: JSON syntax, no leading zeros, no "-0" integers; integers up to
//     15 digits; numbers without bounds may have an exponent (2 digits); with
//     bounds (any decimal, exactly) no exponent and at most 15 significant
//     digits, so doubles compare the same way as the decimals.
//   - enum/const: the values as compact JSON; sibling type, length, bound and
//     item-count keywords filter them.
//   - oneOf only where no generated value can match two branches (disjoint
//     types, or a property one branch requires with const/enum values the
//     other excludes); `nullable: true` (OpenAPI 3.0) adds null to `type`;
//     no `type`: the types the other keywords are about, else any value.
// Refused: multipleOf, uniqueItems (unless maxItems <= 1), patternProperties,
// propertyNames, contains, not, if/then/else, dependentRequired,
// dependentSchemas, unevaluated*, remote or anchor $ref, unknown keywords and
// formats, boolean exclusiveMinimum/Maximum (draft 4), bounds beyond 15
// digits in the tight direction, allOf parts that cannot be merged exactly,
// regex features outside the subset (see json_schema_regex.cpp), schemas
// whose values could never finish (a required property that requires itself)
// and schemas nested deeper than 64 levels or too large to convert.
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
