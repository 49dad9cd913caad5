// JSON Schema -> GBNF (sampling/json_schema.h), through the grammar engine:
// for each construct, JSON texts that must be accepted and texts that must be
// rejected; numeric ranges against exact integer arithmetic; refusals name
// the keyword and the place. (tests/e2e/test_json_schema.py validates random
// sentences of random schemas with Python's jsonschema.)
#include <gtest/gtest.h>

#include <random>

#include "sampling/grammar.h"
#include "sampling/json_schema.h"

namespace volga {
namespace {

using json = nlohmann::ordered_json;

std::shared_ptr<const Grammar> compile(const std::string& schema) {
  return Grammar::parse(json_schema_to_gbnf(json::parse(schema)));
}

bool accepts(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  return m.accept_bytes(text) && m.is_complete();
}

// Expects every text in `good` accepted and every one in `bad` rejected.
void expect_language(const std::string& schema, const std::vector<std::string>& good,
                     const std::vector<std::string>& bad) {
  auto g = compile(schema);
  for (const auto& t : good) EXPECT_TRUE(accepts(g, t)) << schema << "\n  should accept: " << t;
  for (const auto& t : bad) EXPECT_FALSE(accepts(g, t)) << schema << "\n  should reject: " << t;
}

SchemaError refusal(const std::string& schema) {
  try {
    json_schema_to_gbnf(json::parse(schema));
  } catch (const SchemaError& e) {
    return e;
  }
  ADD_FAILURE() << "no SchemaError for " << schema;
  return SchemaError("", "");
}

TEST(JsonSchema, EmptySchemaIsAnyJsonValue) {
  expect_language("{}",
                  {"null", "true", "0", "-12.5e3", "\"x\"", "[]", "{}", "[1,[2,{\"a\":null}],\"b\"]",
                   "{\"k\":{\"n\":[true,false]},\"e\":\"\\u00e9\\ud83d\\ude00\"}"},
                  {"", "01", "+1", "1.", ".5", "NaN", "[1,]", "{\"a\":1,}", "[1 2]", "{'a':1}", "\"\\x41\"",
                   "\"\\ud800\"", "\"a\nb\"", "tru", "\"\\u12\""});
  expect_language("true", {"1", "{}"}, {"x"});
}

TEST(JsonSchema, JsonObjectModeIsAnyObject) {
  expect_language(R"({"type":"object"})", {"{}", "{\"a\":1}", "{\"a\":[{}],\"b\":\"c\",\"a\":null}"},
                  {"[]", "1", "\"{}\"", "{\"a\"}", "{1:2}"});
}

TEST(JsonSchema, WhitespaceIsBounded) {
  expect_language(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}}})",
                  {"{\"a\":1,\"b\":2}", "{ \"a\" : 1 , \"b\" : 2 }", "{\n  \"a\": 1,\n  \"b\": 2\n}", "{ }"},
                  {"{  \"a\":1}", "{\n\n\"a\":1}", " {\"a\":1}", "{\"a\":1} ", "{\"a\":1\t}"});
}

TEST(JsonSchema, StringEscapesAndLengthsInCodePoints) {
  expect_language(R"({"type":"string"})",
                  {"\"\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u00E9\\uD83D\\uDE00\"", "\"Привет 你好 🙂\""},
                  {"\"\\a\"", "\"\\uDC00\"", "\"\\uD83Dx\"", "\"\x01\"", "\"abc", "abc"});
  expect_language(R"({"type":"string","minLength":2,"maxLength":3})",
                  {"\"ab\"", "\"abc\"", "\"абв\"", "\"😀😀😀\"", "\"\\u0041b\"", "\"\\n\\t\\\"\"", "\"\\uD83D\\uDE00x\""},
                  {"\"a\"", "\"abcd\"", "\"абвг\"", "\"\\u0041\"", "\"😀😀😀😀\""});
}

TEST(JsonSchema, LongStringsStaySmall) {
  std::string gbnf = json_schema_to_gbnf(json::parse(R"({"type":"string","minLength":5000,"maxLength":10000})"));
  EXPECT_LT(gbnf.size(), 4000u);
  auto g = Grammar::parse(gbnf);
  EXPECT_LT(g->n_rules(), 400u);
  for (size_t n : {4999, 5000, 7777, 10000, 10001}) {
    bool ok = n >= 5000 && n <= 10000;
    EXPECT_EQ(accepts(g, "\"" + std::string(n, 'x') + "\""), ok) << n;
  }
  auto arr = compile(R"({"type":"array","items":{"type":"integer"},"minItems":3,"maxItems":500})");
  for (size_t n : {2, 3, 100, 500, 501}) {
    std::string text = "[";
    for (size_t i = 0; i < n; ++i) text += (i ? "," : "") + std::to_string(i);
    EXPECT_EQ(accepts(arr, text + "]"), n >= 3 && n <= 500) << n;
  }
}

// Integer bounds, against plain comparisons over a window around them.
TEST(JsonSchema, IntegerRangesAreExact) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> pick(-1200, 1200);
  for (int round = 0; round < 60; ++round) {
    json schema = {{"type", "integer"}};
    int lo = pick(rng), hi = lo + std::abs(pick(rng)) + (round % 3 == 0 ? 0 : 2);
    double flo = lo + (round % 4 == 1 ? 0.5 : 0.0), fhi = hi - (round % 5 == 2 ? 0.25 : 0.0);
    bool xlo = round % 2 == 1, xhi = round % 3 == 1;
    bool has_lo = round % 7 != 3, has_hi = round % 11 != 5;
    if (has_lo) schema[xlo ? "exclusiveMinimum" : "minimum"] = round % 4 == 1 ? json(flo) : json(lo);
    if (has_hi) schema[xhi ? "exclusiveMaximum" : "maximum"] = round % 5 == 2 ? json(fhi) : json(hi);
    auto in_range = [&](long n) {
      double x = static_cast<double>(n);
      double l = round % 4 == 1 ? flo : lo, h = round % 5 == 2 ? fhi : hi;
      return (!has_lo || (xlo ? x > l : x >= l)) && (!has_hi || (xhi ? x < h : x <= h));
    };
    bool any = false;
    for (long n = lo - 30; n <= hi + 30; ++n) any = any || in_range(n);
    if (!any) {
      EXPECT_EQ(refusal(schema.dump()).keyword, has_lo ? "minimum" : "maximum");
      continue;
    }
    auto g = Grammar::parse(json_schema_to_gbnf(schema));
    for (long n = lo - 30; n <= hi + 30; ++n) EXPECT_EQ(accepts(g, std::to_string(n)), in_range(n)) << schema << " " << n;
    EXPECT_FALSE(accepts(g, "-0"));
    EXPECT_FALSE(accepts(g, "0" + std::to_string(std::max(lo, 1))));
    EXPECT_FALSE(accepts(g, std::to_string(std::max(lo, 0)) + ".0"));
  }
  expect_language(R"({"type":"integer"})", {"0", "-7", "123456789012345", "-999999999999999"},
                  {"-0", "+1", "1234567890123456", "1e3", "1.5", "00"});
}

// Exact decimal comparison: value * 10^6 as an integer.
long long micro(const std::string& text) {
  bool neg = text[0] == '-';
  std::string s = neg ? text.substr(1) : text;
  size_t dot = s.find('.');
  std::string ip = s.substr(0, dot), fp = dot == std::string::npos ? "" : s.substr(dot + 1);
  fp.resize(6, '0');
  long long v = std::stoll(ip) * 1000000 + std::stoll(fp);
  return neg ? -v : v;
}

TEST(JsonSchema, NumberRangesWithDecimalBoundsAreExact) {
  const std::vector<std::string> bounds = {"0", "1", "-1", "0.5", "-0.5", "0.1", "2.75", "-3.25", "10", "0.001", "123.456"};
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<int> digit(0, 9);
  std::vector<std::string> candidates;
  for (int i = 0; i < 400; ++i) {
    std::string c = (i % 3 == 0 ? "-" : "") + std::to_string(rng() % (i % 2 ? 4 : 200));
    int frac = static_cast<int>(rng() % 5);
    if (frac) c += ".";
    for (int k = 0; k < frac; ++k) c += static_cast<char>('0' + digit(rng));
    candidates.push_back(c);
  }
  for (const auto& b : bounds) candidates.push_back(b);
  candidates.insert(candidates.end(), {"0.10", "0.1000", "2.7500", "-0.50", "0.0", "-0.001", "0.0011"});
  for (int round = 0; round < 80; ++round) {
    std::string lo = bounds[rng() % bounds.size()], hi = bounds[rng() % bounds.size()];
    if (micro(lo) > micro(hi)) std::swap(lo, hi);
    bool xlo = rng() % 2, xhi = rng() % 2, has_lo = rng() % 5 != 0, has_hi = rng() % 5 != 0;
    if (micro(lo) == micro(hi)) xlo = xhi = false;
    std::string schema = R"({"type":"number")";
    if (has_lo) schema += std::string(",\"") + (xlo ? "exclusiveMinimum" : "minimum") + "\":" + lo;
    if (has_hi) schema += std::string(",\"") + (xhi ? "exclusiveMaximum" : "maximum") + "\":" + hi;
    schema += "}";
    auto g = compile(schema);
    for (const auto& c : candidates) {
      long long v = micro(c);
      bool ok = (!has_lo || (xlo ? v > micro(lo) : v >= micro(lo))) && (!has_hi || (xhi ? v < micro(hi) : v <= micro(hi)));
      bool canonical = c != "-0" && c.rfind("-0.", 0) != 0 ? true : v != 0;  // "-0" forms are not generated
      if (!canonical) continue;
      EXPECT_EQ(accepts(g, c), ok) << schema << " " << c;
    }
    if (has_lo || has_hi) {
      EXPECT_FALSE(accepts(g, "1e0")) << schema;  // no exponent with bounds
    }
  }
  expect_language(R"({"type":"number"})", {"0", "-1.5", "2e10", "3.25E-2", "-0.0"}, {"1.", "1e", "--1", "0x1", "1e123"});
  // At most 15 significant digits, so exclusive bounds hold for doubles too.
  expect_language(R"({"type":"number","exclusiveMinimum":1,"maximum":2})", {"1.00000000000001", "2", "1.5"},
                  {"1", "1.0000000000000001", "2.0000000000001"});
}

TEST(JsonSchema, EnumsAndConstsAreLiteralJson) {
  expect_language(R"({"enum":["Москва","北京",42,null,{"a":[1,"x"]},"q\"b\\s"]})",
                  {"\"Москва\"", "\"北京\"", "42", "null", "{\"a\":[1,\"x\"]}", "\"q\\\"b\\\\s\""},
                  {"\"Moskva\"", "43", "{\"a\": [1, \"x\"]}", "\"\""});
  expect_language(R"({"const":"🙂"})", {"\"🙂\""}, {"\"\\ud83d\\ude42\""});
  expect_language(R"({"type":"string","enum":["a","bb",1],"maxLength":1})", {"\"a\""}, {"\"bb\"", "1"});
  EXPECT_EQ(refusal(R"({"type":"integer","enum":["a"]})").keyword, "enum");
}

TEST(JsonSchema, ObjectsKeepOrderRequiredAndNoExtras) {
  const std::string s = R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},
    "c":{"type":"boolean"}},"required":["b"],"additionalProperties":true})";
  expect_language(s, {"{\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\",\"c\":true}", "{\"b\":\"\",\"c\":false}"},
                  {"{}", "{\"a\":1}", "{\"b\":\"x\",\"a\":1}", "{\"b\":\"x\",\"d\":1}", "{\"b\":1}", "{\"b\":\"x\",}"});
  // Keys are escaped JSON; required names without a declaration take additionalProperties.
  expect_language(R"({"type":"object","properties":{"q\"k":{"const":1},"Имя":{"type":"null"}},
                      "required":["Имя","extra"],"additionalProperties":{"type":"integer"}})",
                  {"{\"Имя\":null,\"extra\":5}", "{\"q\\\"k\":1,\"Имя\":null,\"extra\":-1}"},
                  {"{\"Имя\":null}", "{\"Имя\":null,\"extra\":\"x\"}"});
  // No declared properties: any keys, values of the additionalProperties schema.
  expect_language(R"({"type":"object","additionalProperties":{"type":"integer"},"maxProperties":2})",
                  {"{}", "{\"x\":1}", "{\"x\":1,\"y\":2}"}, {"{\"x\":\"1\"}", "{\"a\":1,\"b\":2,\"c\":3}"});
  expect_language(R"({"type":"object","additionalProperties":false})", {"{}"}, {"{\"a\":1}"});
}

TEST(JsonSchema, ArraysWithPrefixItemsAndCounts) {
  expect_language(R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false,"minItems":1})",
                  {"[\"a\"]", "[\"a\",1]", "[ \"a\" , 1 ]"}, {"[]", "[1]", "[\"a\",1,2]", "[\"a\",\"b\"]"});
  expect_language(R"({"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"null"},"minItems":3})",
                  {"[\"a\",null,null]", "[\"a\",null,null,null]"}, {"[\"a\",null]", "[\"a\",null,1]"});
  expect_language(R"({"$schema":"http://json-schema.org/draft-07/schema#","type":"array",
                      "items":[{"type":"boolean"}],"additionalItems":{"type":"integer"},"maxItems":3})",
                  {"[]", "[true]", "[false,1,2]"}, {"[1]", "[true,1,2,3]", "[true,true]"});
  expect_language(R"({"type":"array","items":{"type":"integer"},"uniqueItems":true,"maxItems":1})", {"[]", "[3]"},
                  {"[1,2]"});
}

TEST(JsonSchema, AnyOfNullableTypeListsAndOneOf) {
  expect_language(R"({"anyOf":[{"type":"string","maxLength":2},{"type":"null"}]})", {"\"ab\"", "null"}, {"\"abc\"", "1"});
  expect_language(R"({"type":"integer","nullable":true,"minimum":1})", {"null", "1"}, {"0", "\"1\""});
  expect_language(R"({"type":["string","integer"],"minLength":1,"maximum":3})", {"\"x\"", "3", "-5"}, {"\"\"", "4", "null"});
  // Siblings of anyOf join every branch.
  expect_language(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},
                      "anyOf":[{"required":["a"]},{"required":["b"]}]})",
                  {"{\"a\":1}", "{\"b\":1}", "{\"a\":1,\"b\":2}"}, {"{}"});
  // oneOf: disjoint by type, or by a required const property.
  expect_language(R"({"oneOf":[{"type":"string"},{"type":"array","items":{"type":"integer"}}]})", {"\"s\"", "[1]"}, {"1"});
  expect_language(R"({"oneOf":[
      {"type":"object","properties":{"kind":{"const":"cat"},"lives":{"type":"integer"}},"required":["kind","lives"]},
      {"type":"object","properties":{"kind":{"enum":["dog","wolf"]},"bark":{"type":"boolean"}},"required":["kind"]}]})",
                  {"{\"kind\":\"cat\",\"lives\":9}", "{\"kind\":\"wolf\"}"}, {"{\"kind\":\"cat\"}", "{\"kind\":\"cow\"}"});
  auto e = refusal(R"({"properties":{"x":{"oneOf":[{"type":"integer"},{"minimum":0}]}}})");
  EXPECT_EQ(e.keyword, "oneOf");
  EXPECT_EQ(e.where, "/properties/x");
}

TEST(JsonSchema, RefsDefsAllOfAndRecursion) {
  const std::string tree = R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
    "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v","kids"],"additionalProperties":false}},
    "$ref":"#/$defs/node"})";
  expect_language(tree, {"{\"v\":1,\"kids\":[]}", "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[{\"v\":3,\"kids\":[]}]}]}"},
                  {"{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2}]}"});
  expect_language(R"({"definitions":{"a~b/c":{"type":"boolean"}},"properties":{"x":{"$ref":"#/definitions/a~0b~1c"}},
                      "required":["x"]})",
                  {"{\"x\":true}"}, {"{\"x\":1}"});
  // allOf merges: properties unite, required unite, bounds tighten.
  expect_language(R"({"allOf":[{"type":"object","properties":{"a":{"type":"integer","minimum":0}},"required":["a"]},
                      {"properties":{"a":{"maximum":5},"b":{"type":"string"}},"required":["b"]}]})",
                  {"{\"a\":0,\"b\":\"\"}", "{\"a\":5,\"b\":\"x\"}"}, {"{\"a\":6,\"b\":\"\"}", "{\"a\":1}", "{\"b\":\"\"}"});
  // A $ref with sibling keywords is merged too (2019-09 and later).
  expect_language(R"({"$defs":{"s":{"type":"string"}},"$ref":"#/$defs/s","maxLength":1})", {"\"a\""}, {"\"ab\""});
  EXPECT_EQ(refusal(R"({"type":"object","properties":{"me":{"$ref":"#"}},"required":["me"]})").where, "");
  EXPECT_NO_THROW(compile(R"({"type":"object","properties":{"me":{"$ref":"#"}}})"));
  EXPECT_EQ(refusal(R"({"anyOf":[{"$ref":"#"},{"type":"string"}]})").keyword, "");
  EXPECT_EQ(refusal(R"({"$ref":"other.json#/a"})").keyword, "$ref");
  EXPECT_EQ(refusal(R"({"$ref":"#/$defs/none"})").keyword, "$ref");
}

TEST(JsonSchema, PatternsMatchTheDecodedValue) {
  expect_language(R"({"type":"string","pattern":"^[A-Z][a-z]+ \\d{2,3}$"})", {"\"Abc 12\"", "\"Xy 999\""},
                  {"\"abc 12\"", "\"Abc 1\"", "\"Abc 12x\"", "\"Abc ١٢\""});
  // Unanchored: a match anywhere; quotes and backslashes of the value appear escaped.
  expect_language(R"({"type":"string","pattern":"a\"b\\\\"})", {"\"a\\\"b\\\\\"", "\"xx a\\\"b\\\\ yy\""},
                  {"\"a\\\"b\"", "\"ab\""});
  expect_language(R"({"type":"string","pattern":"^[^a]$"})", {"\"b\"", "\"é\"", "\"\\\"\"", "\"\\n\""}, {"\"a\"", "\"\""});
  expect_language(R"({"type":"string","pattern":"^.$"})", {"\"x\"", "\"🙂\""}, {"\"\\n\"", "\"\\r\"", "\"\u2028\""});
  expect_language(R"({"type":"string","pattern":"^\\D\\W\\S$"})", {"\"a!x\""}, {"\"1!x\"", "\"a_x\"", "\"a! \"", "\"٣!x\""});
  expect_language(R"({"type":"string","pattern":"^(ab|c)+$|^x"})", {"\"abcab\"", "\"c\"", "\"xyz\""}, {"\"a\"", "\"yx\""});
  expect_language(R"({"type":"string","pattern":"^[а-яё\\-]{2}$"})", {"\"ёж\"", "\"а-\""}, {"\"ab\"", "\"жжж\""});
  // With length bounds the pattern's variable parts share the room.
  expect_language(R"({"type":"string","pattern":"^[a-z]+$","maxLength":4})", {"\"a\"", "\"abcd\""}, {"\"abcde\""});
  expect_language(R"({"type":"string","pattern":"ab","minLength":4,"maxLength":6})", {"\"xabx\"", "\"ab12\""},
                  {"\"ab\"", "\"abcdefg\""});
  for (const char* p : {"(?=a)", "(a)\\\\1", "\\\\bx", "a^b", "(?i)a", "a{,3}", "\\\\p{L}", "[]a]", "x*+", "(?<n>a)"})
    EXPECT_EQ(refusal(std::string(R"({"type":"string","pattern":")") + p + "\"}").keyword, "pattern") << p;
}

TEST(JsonSchema, Formats) {
  auto g = [](const std::string& f) { return R"({"type":"string","format":")" + f + "\"}"; };
  expect_language(g("date"), {"\"2024-02-29\"", "\"2000-02-29\"", "\"1999-12-31\"", "\"0001-01-01\""},
                  {"\"2023-02-29\"", "\"1900-02-29\"", "\"2023-04-31\"", "\"2023-13-01\"", "\"0000-01-01\"", "\"2023-1-01\""});
  expect_language(g("time"), {"\"23:59:59Z\"", "\"00:00:00.123+05:30\"", "\"12:00:00-08:00\""},
                  {"\"24:00:00Z\"", "\"12:60:00Z\"", "\"12:00:00\"", "\"12:00Z\""});
  expect_language(g("date-time"), {"\"2024-06-11T10:20:30Z\"", "\"2024-06-11T10:20:30.5+01:00\""},
                  {"\"2024-06-11 10:20:30Z\"", "\"2024-06-31T10:20:30Z\""});
  expect_language(g("uuid"), {"\"123e4567-e89b-12d3-a456-426614174000\""}, {"\"123e4567e89b12d3a456426614174000\""});
  expect_language(g("ipv4"), {"\"192.168.0.1\"", "\"255.255.255.255\"", "\"0.0.0.0\""}, {"\"256.1.1.1\"", "\"01.2.3.4\"", "\"1.2.3\""});
  expect_language(g("email"), {"\"john.doe+x@mail.example.com\""}, {"\"john@\"", "\"@x.com\"", "\"a b@x.com\"", "\"a..b@x.com\""});
  expect_language(g("hostname"), {"\"api.example.org\"", "\"a-b.co\""}, {"\"-a.com\"", "\"a_b.com\"", "\"a..com\""});
  expect_language(g("uri"), {"\"https://example.com/a/b?q=1&r=%20#top\"", "\"ftp://10.0.0.1:21/x\""},
                  {"\"example.com\"", "\"http://exa mple.com\""});
  EXPECT_EQ(refusal(g("ipv6")).keyword, "format");
  EXPECT_EQ(refusal(R"({"type":"string","format":"date","maxLength":5})").keyword, "format");
}

TEST(JsonSchema, RefusalsNameKeywordAndPlace) {
  struct Case {
    const char* schema;
    const char* keyword;
    const char* where;
  };
  const Case cases[] = {
      {R"({"properties":{"x":{"type":"number","multipleOf":2}}})", "multipleOf", "/properties/x"},
      {R"({"type":"array","items":{"uniqueItems":true,"type":"array"}})", "uniqueItems", "/items"},
      {R"({"patternProperties":{"a":{}}})", "patternProperties", ""},
      {R"({"propertyNames":{"maxLength":2}})", "propertyNames", ""},
      {R"({"properties":{"a":{}},"minProperties":1})", "minProperties", ""},
      {R"({"contains":{}})", "contains", ""},
      {R"({"not":{}})", "not", ""},
      {R"({"if":{},"then":{}})", "if", ""},
      {R"({"dependentRequired":{}})", "dependentRequired", ""},
      {R"({"dependentSchemas":{}})", "dependentSchemas", ""},
      {R"({"unevaluatedProperties":false})", "unevaluatedProperties", ""},
      {R"({"anyOf":[{"type":"string"},{"foo":1}]})", "foo", "/anyOf/1"},
      {R"({"type":"integer","minimum":10,"maximum":9})", "minimum", ""},
      {R"({"type":"integer","minimum":1e18})", "minimum", ""},
      {R"({"type":"number","minimum":0,"exclusiveMinimum":true})", "exclusiveMinimum", ""},
      {R"({"type":"string","minLength":3,"maxLength":2})", "minLength", ""},
      {R"({"type":"array","minItems":2,"prefixItems":[{}],"items":false})", "minItems", ""},
      {R"({"type":"object","required":["a"],"additionalProperties":false})", "required", ""},
  };
  for (const auto& c : cases) {
    SchemaError e = refusal(c.schema);
    EXPECT_EQ(e.keyword, c.keyword) << c.schema;
    EXPECT_EQ(e.where, c.where) << c.schema;
    EXPECT_NE(std::string(e.what()).find(c.keyword), std::string::npos) << e.what();
  }
  EXPECT_STREQ(refusal(R"({"properties":{"x":{"multipleOf":3}}})").what(),
               "unsupported JSON Schema keyword 'multipleOf' at /properties/x");
}

TEST(JsonSchema, HostileSchemasFailCleanly) {
  std::string deep = "{}";
  for (int i = 0; i < 300; ++i) deep = R"({"type":"array","items":)" + deep + "}";
  EXPECT_THROW(json_schema_to_gbnf(json::parse(deep)), SchemaError);
  // Each definition used twice by the next: merged inline, this would double 40 times.
  json doubling = {{"$defs", json::object()}};
  doubling["$defs"]["d0"] = {{"type", "object"}, {"properties", {{"x", {{"type", "integer"}}}}}};
  for (int i = 1; i <= 40; ++i) {
    std::string prev = "#/$defs/d" + std::to_string(i - 1);
    doubling["$defs"]["d" + std::to_string(i)] = {{"allOf", {{{"$ref", prev}}, {{"$ref", prev}}}}};
  }
  doubling["$ref"] = "#/$defs/d40";
  try {
    compile(doubling.dump());
  } catch (const SchemaError&) {
  }
  EXPECT_THROW(json_schema_to_gbnf(json::parse(R"({"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/b"},
                                                   "b":{"$ref":"#/$defs/a"}}})")),
               SchemaError);
}

TEST(JsonSchema, ConverterSharesHelpersAcrossSchemas) {
  SchemaConverter c;
  std::string a = c.add_schema(json::parse(R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})"),
                               "get-weather-args");
  std::string b = c.add_schema(json::parse(R"({"type":"object","properties":{"q":{"type":"string"}},"required":["q"]})"),
                               "get-weather-args");
  EXPECT_NE(a, b);
  std::string call = c.add_rule("call", "\"<call>\" ( " + a + " | " + b + " ) \"</call>\"");
  std::string ws = c.add_rule("ws", "\" \"");  // a hint that is a helper's name gets another name
  EXPECT_NE(ws, "ws");
  std::string text = c.grammar(call);
  EXPECT_EQ(text.rfind("root ::= " + call + "\n", 0), 0u);
  size_t first = text.find("\njson-string ::=");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(text.find("\njson-string ::=", first + 1), std::string::npos);
  auto g = Grammar::parse(text);
  EXPECT_TRUE(accepts(g, "<call>{\"city\":\"Kazan\"}</call>"));
  EXPECT_TRUE(accepts(g, "<call>{\"q\":\"x\"}</call>"));
  EXPECT_FALSE(accepts(g, "<call>{\"city\":1}</call>"));
}

TEST(JsonSchema, LiteralHelperRoundTrips) {
  for (const std::string& s : std::vector<std::string>{"", "plain", "q\"b\\s", "tab\tnl\nrt\r", "\x01\x7f", "Ёж 北京 🙂"}) {
    auto g = Grammar::parse("root ::= " + gbnf_literal(s) + "\n");
    EXPECT_TRUE(accepts(g, s)) << s;
    EXPECT_FALSE(accepts(g, s + "x")) << s;
  }
}

}  // namespace
}  // namespace volga
