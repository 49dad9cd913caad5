// Values of the Jinja2 interpreter, with Python's semantics where templates
// can observe them: truthiness, equality, ordering, str() and repr(), and
// json.dumps as Hugging Face's `tojson` filter calls it.
//
// Values are cheap to copy: lists, dicts and namespaces are shared (as in
// Python), strings and scalars are copied. A Value is not thread-safe; each
// render owns its values.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace volga::jinja {

struct Value;
using Array = std::vector<Value>;

// An insertion-ordered dict with string keys (JSON objects, dict literals,
// namespaces). Lookups are linear: template dicts are small.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  void set(const std::string& key, Value v);
};

// Arguments of a call: positional, then keyword.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Function = std::function<Value(CallArgs&)>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Function };

  Kind kind = Kind::Undefined;
  bool b = false;
  bool tuple = false;                 // a List that Python would show as a tuple
  int64_t i = 0;
  double f = 0;
  std::string s;                      // String; the name for Undefined
  std::shared_ptr<Array> list;        // List (also Python tuples)
  std::shared_ptr<Dict> dict;         // Dict and Namespace
  std::shared_ptr<Function> fn;       // Function

  Value() = default;
  static Value undefined(std::string name = {}) { Value v; v.s = std::move(name); return v; }
  static Value none() { Value v; v.kind = Kind::None; return v; }
  static Value boolean(bool x) { Value v; v.kind = Kind::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.kind = Kind::Int; v.i = x; return v; }
  static Value number(double x) { Value v; v.kind = Kind::Float; v.f = x; return v; }
  static Value string(std::string x) { Value v; v.kind = Kind::String; v.s = std::move(x); return v; }
  static Value new_list(Array a = {}) {
    Value v; v.kind = Kind::List; v.list = std::make_shared<Array>(std::move(a)); return v;
  }
  static Value new_tuple(Array a) {
    Value v = new_list(std::move(a)); v.tuple = true; return v;
  }
  static Value new_dict(Dict d = {}) {
    Value v; v.kind = Kind::Dict; v.dict = std::make_shared<Dict>(std::move(d)); return v;
  }
  static Value new_namespace(Dict d = {}) {
    Value v = new_dict(std::move(d)); v.kind = Kind::Namespace; return v;
  }
  static Value function(Function f) {
    Value v; v.kind = Kind::Function; v.fn = std::make_shared<Function>(std::move(f)); return v;
  }

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_list() const { return kind == Kind::List; }
  bool is_mapping() const { return kind == Kind::Dict || kind == Kind::Namespace; }

  // Python bool(x).
  bool truthy() const;
  double as_double() const;
};

// Python str(x) as Jinja prints it ("None", "True", "1.5", "['a', 1]").
std::string to_str(const Value& v);
// Python repr(x).
std::string to_repr(const Value& v);
// Python float repr: shortest round-trip digits ("0.1", "1e-05", "100.0").
std::string python_float_repr(double x);
// json.dumps(x, ensure_ascii=..., indent=..., separators=..., sort_keys=...).
struct JsonStyle {
  int indent = -1;  // < 0: None (one line)
  bool sort_keys = false;
  bool ensure_ascii = false;
  std::string item_separator = ", ";  // Python uses "," when indent is set
  std::string key_separator = ": ";
};
std::string to_json(const Value& v, const JsonStyle& style = {});

// Python ==, and ordering (throws volga::Error for unorderable types).
bool equals(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);

Value from_json(const nlohmann::ordered_json& j);

// Python str length and indexing count code points, not bytes.
std::vector<std::string> utf8_chars(std::string_view s);
size_t utf8_length(std::string_view s);

}  // namespace volga::jinja
