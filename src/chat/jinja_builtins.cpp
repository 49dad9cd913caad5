// Built-in filters, tests, global functions and the str/dict/list methods
// templates call, with Python's and Jinja2's semantics. As in Hugging
// Face's ImmutableSandboxedEnvironment, methods that mutate lists and dicts
// (append, update, pop, ...) are refused.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <set>

#include <utf8proc.h>

#include "chat/jinja_ast.h"

namespace volga::jinja {
namespace {

// ---- argument helpers ----

const Value* arg(const CallArgs& a, size_t index, const char* name) {
  if (index < a.positional.size()) return &a.positional[index];
  for (auto& [k, v] : a.keyword)
    if (k == name) return &v;
  return nullptr;
}
Value arg_or(const CallArgs& a, size_t index, const char* name, Value def) {
  const Value* v = arg(a, index, name);
  return v ? *v : def;
}
std::string str_arg(const CallArgs& a, size_t index, const char* name, const std::string& def) {
  const Value* v = arg(a, index, name);
  if (!v || v->is_none()) return def;
  if (!v->is_string()) throw Error(std::string("argument '") + name + "' must be a string");
  return v->s;
}
int64_t int_arg(const CallArgs& a, size_t index, const char* name, int64_t def) {
  const Value* v = arg(a, index, name);
  if (!v || v->is_none()) return def;
  if (v->kind == Value::Kind::Int) return v->i;
  if (v->kind == Value::Kind::Bool) return v->b;
  throw Error(std::string("argument '") + name + "' must be an integer");
}

// ---- Unicode-aware string helpers ----

bool is_py_space(const std::string& ch) {
  static const std::set<std::string> spaces = {
      " ", "\t", "\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x1f", "\xc2\x85", "\xc2\xa0",
      "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82", "\xe2\x80\x83", "\xe2\x80\x84",
      "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87", "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a",
      "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80"};
  return spaces.count(ch) > 0;
}

std::string join_chars(const std::vector<std::string>& cs, size_t b, size_t e) {
  std::string out;
  for (size_t k = b; k < e; ++k) out += cs[k];
  return out;
}

// Python str.strip/lstrip/rstrip; chars == nullptr means whitespace.
std::string py_strip(const std::string& s, const std::string* chars, bool left, bool right) {
  std::vector<std::string> cs = utf8_chars(s);
  std::vector<std::string> set_chars;
  if (chars) set_chars = utf8_chars(*chars);
  auto strip_me = [&](const std::string& c) {
    if (!chars) return is_py_space(c);
    return std::find(set_chars.begin(), set_chars.end(), c) != set_chars.end();
  };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strip_me(cs[b])) ++b;
  if (right)
    while (e > b && strip_me(cs[e - 1])) --e;
  return join_chars(cs, b, e);
}

std::string map_case(const std::string& s, int mode) {  // 0 lower, 1 upper
  std::string out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t n = static_cast<utf8proc_ssize_t>(s.size());
  while (n > 0) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t len = utf8proc_iterate(p, n, &cp);
    if (len <= 0) { out += static_cast<char>(*p); ++p; --n; continue; }
    // Python applies the full (multi-character) mappings of SpecialCasing.txt.
    const char* special = nullptr;
    if (mode == 1) {
      switch (cp) {
        case 0xDF: special = "SS"; break;
        case 0x149: special = "\xCA\xBCN"; break;
        case 0xFB00: special = "FF"; break;
        case 0xFB01: special = "FI"; break;
        case 0xFB02: special = "FL"; break;
        case 0xFB03: special = "FFI"; break;
        case 0xFB04: special = "FFL"; break;
        case 0xFB05: case 0xFB06: special = "ST"; break;
      }
    } else if (cp == 0x130) {
      special = "i\xCC\x87";
    }
    if (special) {
      out += special;
      p += len;
      n -= len;
      continue;
    }
    cp = mode == 0 ? utf8proc_tolower(cp) : utf8proc_toupper(cp);
    utf8proc_uint8_t buf[4];
    utf8proc_ssize_t w = utf8proc_encode_char(cp, buf);
    out.append(reinterpret_cast<char*>(buf), static_cast<size_t>(w));
    p += len;
    n -= len;
  }
  return out;
}

std::string capitalize(const std::string& s) {
  std::vector<std::string> cs = utf8_chars(s);
  if (cs.empty()) return s;
  return map_case(cs[0], 1) + map_case(join_chars(cs, 1, cs.size()), 0);
}

std::string title_case(const std::string& s) {
  std::string out;
  bool start = true;
  for (auto& c : utf8_chars(s)) {
    bool alpha = c.size() > 1 || std::isalnum(static_cast<unsigned char>(c[0]));
    out += alpha ? map_case(c, start ? 1 : 0) : c;
    start = !alpha;
  }
  return out;
}

Value py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
  Array out;
  if (!sep || sep->is_none()) {
    std::vector<std::string> cs = utf8_chars(s);
    size_t k = 0;
    while (k < cs.size()) {
      while (k < cs.size() && is_py_space(cs[k])) ++k;
      if (k == cs.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        out.push_back(Value::string(py_strip(join_chars(cs, k, cs.size()), nullptr, false, true)));
        break;
      }
      size_t b = k;
      while (k < cs.size() && !is_py_space(cs[k])) ++k;
      out.push_back(Value::string(join_chars(cs, b, k)));
    }
    return Value::new_list(std::move(out));
  }
  if (!sep->is_string()) throw Error("split() separator must be a string");
  if (sep->s.empty()) throw Error("split(): empty separator");
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep->s, start);
    if (at == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      out.push_back(Value::string(s.substr(start)));
      break;
    }
    out.push_back(Value::string(s.substr(start, at - start)));
    start = at + sep->s.size();
  }
  return Value::new_list(std::move(out));
}

std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every character
    auto cs = utf8_chars(s);
    int64_t done = 0;
    for (size_t k = 0; k <= cs.size(); ++k) {
      if (count < 0 || done < count) { out += to; ++done; }
      if (k < cs.size()) out += cs[k];
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

bool starts_or_ends(const std::string& s, const Value& what, bool start) {
  auto one = [&](const Value& p) {
    if (!p.is_string()) throw Error("startswith/endswith expects a string or a tuple of strings");
    if (p.s.size() > s.size()) return false;
    return start ? s.compare(0, p.s.size(), p.s) == 0 : s.compare(s.size() - p.s.size(), p.s.size(), p.s) == 0;
  };
  if (what.is_list()) {
    for (auto& p : *what.list)
      if (one(p)) return true;
    return false;
  }
  return one(what);
}

Value string_method(const std::string& s, const std::string& name) {
  auto m = [&](auto fn) { return Value::function([s, fn](CallArgs& a) -> Value { return fn(s, a); }); };
  if (name == "startswith" || name == "endswith") {
    bool start = name == "startswith";
    return m([start](const std::string& str, CallArgs& a) {
      const Value* p = arg(a, 0, "prefix");
      if (!p) throw Error("startswith/endswith needs an argument");
      return Value::boolean(starts_or_ends(str, *p, start));
    });
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    return m([l, r](const std::string& str, CallArgs& a) {
      const Value* c = arg(a, 0, "chars");
      std::string chars = c && c->is_string() ? c->s : "";
      return Value::string(py_strip(str, c && c->is_string() ? &chars : nullptr, l, r));
    });
  }
  if (name == "split" || name == "rsplit") {
    bool right = name == "rsplit";
    return m([right](const std::string& str, CallArgs& a) {
      int64_t maxsplit = int_arg(a, 1, "maxsplit", -1);
      const Value* sep = arg(a, 0, "sep");
      if (right && maxsplit >= 0 && sep && sep->is_string() && !sep->s.empty()) {
        Array parts;
        std::string rest = str;
        while (static_cast<int64_t>(parts.size()) < maxsplit) {
          size_t at = rest.rfind(sep->s);
          if (at == std::string::npos) break;
          parts.insert(parts.begin(), Value::string(rest.substr(at + sep->s.size())));
          rest.erase(at);
        }
        parts.insert(parts.begin(), Value::string(rest));
        return Value::new_list(std::move(parts));
      }
      return py_split(str, sep, maxsplit);
    });
  }
  if (name == "splitlines")
    return m([](const std::string& str, CallArgs&) {
      Array out;
      size_t start = 0;
      for (size_t k = 0; k < str.size(); ++k) {
        if (str[k] == '\n' || str[k] == '\r') {
          out.push_back(Value::string(str.substr(start, k - start)));
          if (str[k] == '\r' && k + 1 < str.size() && str[k + 1] == '\n') ++k;
          start = k + 1;
        }
      }
      if (start < str.size()) out.push_back(Value::string(str.substr(start)));
      return Value::new_list(std::move(out));
    });
  if (name == "upper") return m([](const std::string& str, CallArgs&) { return Value::string(map_case(str, 1)); });
  if (name == "lower") return m([](const std::string& str, CallArgs&) { return Value::string(map_case(str, 0)); });
  if (name == "title") return m([](const std::string& str, CallArgs&) { return Value::string(title_case(str)); });
  if (name == "capitalize")
    return m([](const std::string& str, CallArgs&) { return Value::string(capitalize(str)); });
  if (name == "replace")
    return m([](const std::string& str, CallArgs& a) {
      return Value::string(py_replace(str, str_arg(a, 0, "old", ""), str_arg(a, 1, "new", ""),
                                      int_arg(a, 2, "count", -1)));
    });
  if (name == "find" || name == "rfind" || name == "index" || name == "count")
    return m([name](const std::string& str, CallArgs& a) {
      std::string sub = str_arg(a, 0, "sub", "");
      if (name == "count") {
        if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(str) + 1));
        int64_t n = 0;
        for (size_t p = str.find(sub); p != std::string::npos; p = str.find(sub, p + sub.size())) ++n;
        return Value::integer(n);
      }
      size_t at = name == "rfind" ? str.rfind(sub) : str.find(sub);
      if (at == std::string::npos) {
        if (name == "index") throw Error("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(static_cast<int64_t>(utf8_length(str.substr(0, at))));
    });
  if (name == "join")
    return m([](const std::string& str, CallArgs& a) {
      const Value* items = arg(a, 0, "iterable");
      if (!items) throw Error("join() needs an argument");
      std::string out;
      bool first = true;
      for (auto& v : iterate(*items)) {
        if (!v.is_string()) throw Error("join(): sequence item is not a string");
        if (!first) out += str;
        first = false;
        out += v.s;
      }
      return Value::string(std::move(out));
    });
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
      name == "islower")
    return m([name](const std::string& str, CallArgs&) {
      if (str.empty()) return Value::boolean(false);
      bool ok = true, cased = false;
      for (auto& c : utf8_chars(str)) {
        unsigned char b = static_cast<unsigned char>(c[0]);
        bool ascii = c.size() == 1;
        if (name == "isdigit") ok &= ascii && std::isdigit(b);
        else if (name == "isalpha") ok &= !ascii || std::isalpha(b);
        else if (name == "isalnum") ok &= !ascii || std::isalnum(b);
        else if (name == "isspace") ok &= is_py_space(c);
        else {
          std::string other = map_case(c, name == "isupper" ? 1 : 0);
          std::string flipped = map_case(c, name == "isupper" ? 0 : 1);
          if (other != flipped) cased = true;
          ok &= other == c;
        }
      }
      if (name == "isupper" || name == "islower") ok &= cased;
      return Value::boolean(ok);
    });
  return Value::undefined(name);
}

Value dict_method(const Value& d, const std::string& name) {
  auto dict = d.dict;
  if (name == "get")
    return Value::function([dict](CallArgs& a) {
      const Value* key = arg(a, 0, "key");
      if (!key) throw Error("get() needs a key");
      if (key->is_string())
        if (const Value* v = dict->find(key->s)) return *v;
      return arg_or(a, 1, "default", Value::none());
    });
  if (name == "items")
    return Value::function([dict](CallArgs&) {
      Array out;
      for (auto& [k, v] : dict->items) out.push_back(Value::new_tuple({Value::string(k), v}));
      return Value::new_list(std::move(out));
    });
  if (name == "keys")
    return Value::function([dict](CallArgs&) {
      Array out;
      for (auto& kv : dict->items) out.push_back(Value::string(kv.first));
      return Value::new_list(std::move(out));
    });
  if (name == "values")
    return Value::function([dict](CallArgs&) {
      Array out;
      for (auto& kv : dict->items) out.push_back(kv.second);
      return Value::new_list(std::move(out));
    });
  static const std::set<std::string> mutating = {"update", "pop", "popitem", "setdefault", "clear"};
  if (mutating.count(name))
    throw Error("dict." + name + "() is not allowed: templates cannot modify their inputs");
  return Value::undefined(name);
}

Value list_method(const Value& l, const std::string& name) {
  static const std::set<std::string> mutating = {"append", "extend", "insert", "pop", "remove",
                                                 "clear", "sort", "reverse"};
  if (mutating.count(name))
    throw Error("list." + name + "() is not allowed: templates cannot modify their inputs");
  auto list = l.list;
  if (name == "index" || name == "count")
    return Value::function([list, name](CallArgs& a) {
      const Value* x = arg(a, 0, "value");
      if (!x) throw Error(name + "() needs an argument");
      int64_t n = 0;
      for (size_t k = 0; k < list->size(); ++k)
        if (equals((*list)[k], *x)) {
          if (name == "index") return Value::integer(static_cast<int64_t>(k));
          ++n;
        }
      if (name == "index") throw Error("value is not in list");
      return Value::integer(n);
    });
  return Value::undefined(name);
}

std::string undefined_name(const Value& v) { return v.s.empty() ? "value" : v.s; }

// ---- filters ----

std::string indent_text(const std::string& s, const std::string& pad, bool first, bool blank) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t k = 0; k <= s.size(); ++k) {
    if (k == s.size() || s[k] == '\n') {
      lines.push_back(s.substr(start, k - start));
      start = k + 1;
    }
  }
  std::string out;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (k) out += '\n';
    bool indent = k == 0 ? first : (blank || !lines[k].empty());
    if (k == 0 && first && !blank && lines[k].empty()) indent = false;
    if (indent) out += pad;
    out += lines[k];
  }
  return out;
}

Value attribute_of(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && part.size() < 18 && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = numeric ? get_item(cur, Value::integer(std::stoll(part))) : get_item(cur, Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value to_list(const Value& v) { return Value::new_list(iterate(v)); }

Value select_items(Renderer& r, const Value& input, CallArgs& args, bool by_attr, bool keep) {
  std::vector<Value> out;
  size_t next = 0;
  std::string attr;
  if (by_attr) attr = str_arg(args, next++, "attribute", "");
  const Value* test = arg(args, next, "test");
  CallArgs test_args;
  for (size_t k = next + 1; k < args.positional.size(); ++k) test_args.positional.push_back(args.positional[k]);
  for (auto& item : iterate(input)) {
    Value subject = by_attr ? attribute_of(item, attr) : item;
    bool pass;
    if (!test) pass = subject.truthy();
    else {
      if (!test->is_string()) throw Error("select: the test name must be a string");
      CallArgs ta = test_args;
      pass = apply_test(r, test->s, subject, ta);
    }
    if (pass == keep) out.push_back(item);
  }
  return Value::new_list(std::move(out));
}

}  // namespace

std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::List: return *v.list;
    case Value::Kind::Dict: {
      std::vector<Value> keys;
      for (auto& kv : v.dict->items) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> out;
      for (auto& c : utf8_chars(v.s)) out.push_back(Value::string(c));
      return out;
    }
    case Value::Kind::Undefined: return {};
    default: throw Error(std::string("'") + to_str(v) + "' is not iterable");
  }
}

Value get_attribute(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Value::Kind::Undefined: throw Error("'" + undefined_name(obj) + "' is undefined");
    case Value::Kind::String: return string_method(obj.s, name);
    case Value::Kind::Dict: {
      Value m = dict_method(obj, name);
      if (!m.is_undefined()) return m;
      if (const Value* v = obj.dict->find(name)) return *v;
      return Value::undefined(name);
    }
    case Value::Kind::Namespace: {
      if (const Value* v = obj.dict->find(name)) return *v;
      return Value::undefined(name);
    }
    case Value::Kind::List: return list_method(obj, name);
    default: return Value::undefined(name);
  }
}

Value get_item(const Value& obj, const Value& key) {
  switch (obj.kind) {
    case Value::Kind::Undefined: throw Error("'" + undefined_name(obj) + "' is undefined");
    case Value::Kind::Dict: case Value::Kind::Namespace:
      if (key.is_string()) {
        if (const Value* v = obj.dict->find(key.s)) return *v;
        if (obj.kind == Value::Kind::Dict) return get_attribute(obj, key.s);
        return Value::undefined(key.s);
      }
      return Value::undefined(to_str(key));
    case Value::Kind::List: case Value::Kind::String: {
      if (key.kind != Value::Kind::Int && key.kind != Value::Kind::Bool) {
        if (key.is_string()) return get_attribute(obj, key.s);
        return Value::undefined();
      }
      int64_t i = key.kind == Value::Kind::Bool ? key.b : key.i;
      if (obj.is_list()) {
        int64_t n = static_cast<int64_t>(obj.list->size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined("[" + std::to_string(key.i) + "]");
        return (*obj.list)[static_cast<size_t>(i)];
      }
      auto cs = utf8_chars(obj.s);
      int64_t n = static_cast<int64_t>(cs.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined("[" + std::to_string(key.i) + "]");
      return Value::string(cs[static_cast<size_t>(i)]);
    }
    default: return Value::undefined();
  }
}

Value slice_value(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
                  std::optional<int64_t> step) {
  int64_t st = step.value_or(1);
  if (st == 0) throw Error("slice step cannot be zero");
  std::vector<std::string> chars;
  int64_t n;
  if (obj.is_list()) n = static_cast<int64_t>(obj.list->size());
  else if (obj.is_string()) {
    chars = utf8_chars(obj.s);
    n = static_cast<int64_t>(chars.size());
  } else if (obj.is_undefined()) {
    throw Error("'" + undefined_name(obj) + "' is undefined");
  } else {
    throw Error("object is not subscriptable with a slice");
  }
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = clamp(start, st > 0 ? 0 : n - 1);
  int64_t e = clamp(stop, st > 0 ? n : -1);
  std::vector<int64_t> idx;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) idx.push_back(k);
  if (obj.is_list()) {
    Array out;
    for (int64_t k : idx) out.push_back((*obj.list)[static_cast<size_t>(k)]);
    return Value::new_list(std::move(out));
  }
  std::string out;
  for (int64_t k : idx) out += chars[static_cast<size_t>(k)];
  return Value::string(std::move(out));
}

Value call_value(const Value& callee, CallArgs& args) {
  if (callee.kind == Value::Kind::Function) return (*callee.fn)(args);
  if (callee.is_undefined()) throw Error("'" + undefined_name(callee) + "' is undefined");
  throw Error("'" + to_str(callee) + "' is not callable");
}

Value apply_filter(Renderer& r, const std::string& name, Value v, CallArgs& a) {
  using K = Value::Kind;
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return v;
    std::string out;
    for (char c : to_str(v)) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return Value::string(out);
  }
  if (name == "trim") {
    const Value* chars = arg(a, 0, "chars");
    std::string cs = chars && chars->is_string() ? chars->s : "";
    return Value::string(py_strip(to_str(v), chars && chars->is_string() ? &cs : nullptr, true, true));
  }
  if (name == "tojson") {
    int indent = static_cast<int>(int_arg(a, 0, "indent", -1));
    bool sort_keys = arg_or(a, 3, "sort_keys", Value::boolean(false)).truthy();
    bool ensure_ascii = arg_or(a, 1, "ensure_ascii", Value::boolean(false)).truthy();
    JsonStyle style;
    style.indent = indent;
    style.sort_keys = sort_keys;
    style.ensure_ascii = ensure_ascii;
    if (const Value* sep = arg(a, 2, "separators"); sep && sep->is_list() && sep->list->size() == 2) {
      style.item_separator = to_str((*sep->list)[0]);
      style.key_separator = to_str((*sep->list)[1]);
    } else if (indent >= 0) {
      style.item_separator = ",";
    }
    return Value::string(to_json(v, style));
  }
  if (name == "length" || name == "count") {
    switch (v.kind) {
      case K::String: return Value::integer(static_cast<int64_t>(utf8_length(v.s)));
      case K::List: return Value::integer(static_cast<int64_t>(v.list->size()));
      case K::Dict: return Value::integer(static_cast<int64_t>(v.dict->items.size()));
      case K::Undefined: return Value::integer(0);
      default: throw Error(std::string("object of this type has no length: ") + to_repr(v));
    }
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::new_list();
    if (!v.is_mapping()) throw Error("items filter expects a mapping");
    return call_value(dict_method(v, "items"), a);
  }
  if (name == "join") {
    std::string sep = str_arg(a, 0, "d", "");
    const Value* attr = arg(a, 1, "attribute");
    std::string out;
    bool first = true;
    for (auto& item : iterate(v)) {
      if (!first) out += sep;
      first = false;
      out += to_str(attr ? attribute_of(item, to_str(*attr)) : item);
    }
    return Value::string(out);
  }
  if (name == "upper") return Value::string(map_case(to_str(v), 1));
  if (name == "lower") return Value::string(map_case(to_str(v), 0));
  if (name == "capitalize") return Value::string(capitalize(to_str(v)));
  if (name == "title") return Value::string(title_case(to_str(v)));
  if (name == "replace")
    return Value::string(py_replace(to_str(v), to_str(arg_or(a, 0, "old", Value::string(""))),
                                    to_str(arg_or(a, 1, "new", Value::string(""))), int_arg(a, 2, "count", -1)));
  if (name == "default" || name == "d") {
    bool boolean = arg_or(a, 1, "boolean", Value::boolean(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return arg_or(a, 0, "default_value", Value::string(""));
    return v;
  }
  if (name == "first" || name == "last") {
    auto items = iterate(v);
    if (items.empty()) return Value::undefined(name);
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return to_list(v);
  if (name == "string") return Value::string(to_str(v));
  if (name == "int") {
    int64_t def = int_arg(a, 0, "default", 0);
    if (v.kind == K::Int) return v;
    if (v.kind == K::Bool) return Value::integer(v.b);
    if (v.kind == K::Float) {
      if (!(std::fabs(v.f) < 9.2e18)) return Value::integer(def);
      return Value::integer(static_cast<int64_t>(v.f));
    }
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string s = py_strip(v.s, nullptr, true, true);
        int64_t x = std::stoll(s, &used, static_cast<int>(int_arg(a, 1, "base", 10)));
        if (used == s.size()) return Value::integer(x);
        double f = std::stod(s, &used);
        if (used == s.size() && std::fabs(f) < 9.2e18) return Value::integer(static_cast<int64_t>(f));
      } catch (const std::exception&) {
      }
    }
    return Value::integer(def);
  }
  if (name == "float") {
    if (v.is_number()) return Value::number(v.as_double());
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string s = py_strip(v.s, nullptr, true, true);
        double f = std::stod(s, &used);
        if (used == s.size()) return Value::number(f);
      } catch (const std::exception&) {
      }
    }
    return arg_or(a, 0, "default", Value::number(0.0));
  }
  if (name == "abs") {
    if (v.kind == K::Float) return Value::number(std::fabs(v.f));
    if (v.kind == K::Int) {
      if (v.i == INT64_MIN) throw Error("integer overflow in abs");
      return Value::integer(v.i < 0 ? -v.i : v.i);
    }
    throw Error("abs expects a number");
  }
  if (name == "round") {
    int64_t precision = int_arg(a, 0, "precision", 0);
    std::string method = str_arg(a, 1, "method", "common");
    double x = v.as_double(), scale = std::pow(10.0, static_cast<double>(precision));
    double y = method == "ceil" ? std::ceil(x * scale) : method == "floor" ? std::floor(x * scale) : std::round(x * scale);
    return Value::number(y / scale);
  }
  if (name == "indent") {
    Value width = arg_or(a, 0, "width", Value::integer(4));
    std::string pad = width.is_string() ? width.s : std::string(static_cast<size_t>(std::clamp<int64_t>(width.i, 0, 1024)), ' ');
    return Value::string(indent_text(to_str(v), pad, arg_or(a, 1, "first", Value::boolean(false)).truthy(),
                                     arg_or(a, 2, "blank", Value::boolean(false)).truthy()));
  }
  if (name == "map") {
    Array out;
    const Value* attr = nullptr;
    for (auto& [k, val] : a.keyword)
      if (k == "attribute") attr = &val;
    if (attr) {
      Value def = arg_or(CallArgs{}, 99, "", Value::undefined());
      for (auto& [k, val] : a.keyword)
        if (k == "default") def = val;
      for (auto& item : iterate(v)) {
        Value x = attribute_of(item, to_str(*attr));
        out.push_back(x.is_undefined() && !def.is_undefined() ? def : x);
      }
      return Value::new_list(std::move(out));
    }
    if (a.positional.empty() || !a.positional[0].is_string()) throw Error("map needs a filter name or attribute=");
    std::string filter = a.positional[0].s;
    for (auto& item : iterate(v)) {
      CallArgs rest;
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      rest.keyword = a.keyword;
      out.push_back(apply_filter(r, filter, item, rest));
    }
    return Value::new_list(std::move(out));
  }
  if (name == "select" || name == "reject") return select_items(r, v, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") return select_items(r, v, a, true, name == "selectattr");
  if (name == "reverse") {
    if (v.is_string()) return slice_value(v, std::nullopt, std::nullopt, -1);
    auto items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::new_list(std::move(items));
  }
  if (name == "sort" || name == "unique" || name == "min" || name == "max") {
    bool reverse = name == "sort" && arg_or(a, 0, "reverse", Value::boolean(false)).truthy();
    bool case_sensitive = arg_or(a, name == "sort" ? 1 : 0, "case_sensitive", Value::boolean(false)).truthy();
    const Value* attr = arg(a, name == "sort" ? 2 : 1, "attribute");
    auto key = [&](const Value& x) {
      Value k = attr ? attribute_of(x, to_str(*attr)) : x;
      if (!case_sensitive && k.is_string()) k = Value::string(map_case(k.s, 0));
      return k;
    };
    auto items = iterate(v);
    if (name == "unique") {
      std::vector<Value> out, seen;
      for (auto& x : items) {
        Value k = key(x);
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
          seen.push_back(k);
          out.push_back(x);
        }
      }
      return Value::new_list(std::move(out));
    }
    std::stable_sort(items.begin(), items.end(),
                     [&](const Value& x, const Value& y) { return compare(key(x), key(y)) < 0; });
    if (name == "min") return items.empty() ? Value::undefined("min") : items.front();
    if (name == "max") return items.empty() ? Value::undefined("max") : items.back();
    if (reverse) std::reverse(items.begin(), items.end());
    return Value::new_list(std::move(items));
  }
  if (name == "dictsort") {
    if (!v.is_mapping()) throw Error("dictsort expects a mapping");
    Value items = call_value(dict_method(v, "items"), a);
    bool by_value = str_arg(a, 1, "by", "key") == "value";
    bool reverse = arg_or(a, 2, "reverse", Value::boolean(false)).truthy();
    std::stable_sort(items.list->begin(), items.list->end(), [&](const Value& x, const Value& y) {
      return compare((*x.list)[by_value], (*y.list)[by_value]) < 0;
    });
    if (reverse) std::reverse(items.list->begin(), items.list->end());
    return items;
  }
  if (name == "sum") {
    const Value* attr = arg(a, 0, "attribute");
    Value total = arg_or(a, 1, "start", Value::integer(0));
    for (auto& x : iterate(v)) {
      Value term = attr ? attribute_of(x, to_str(*attr)) : x;
      bool ints = total.kind != K::Float && term.kind != K::Float;
      int64_t r = 0;
      if (ints && __builtin_add_overflow(total.kind == K::Bool ? int64_t(total.b) : total.i,
                                         term.kind == K::Bool ? int64_t(term.b) : term.i, &r))
        throw Error("integer overflow in sum");
      total = ints ? Value::integer(r) : Value::number(total.as_double() + term.as_double());
    }
    return total;
  }
  if (name == "batch") {
    int64_t size = int_arg(a, 0, "linecount", 1);
    if (size <= 0) throw Error("batch size must be positive");
    Array out;
    Array cur;
    for (auto& x : iterate(v)) {
      cur.push_back(x);
      if (static_cast<int64_t>(cur.size()) == size) {
        out.push_back(Value::new_list(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (const Value* fill = arg(a, 1, "fill_with"))
        while (static_cast<int64_t>(cur.size()) < size) cur.push_back(*fill);
      out.push_back(Value::new_list(std::move(cur)));
    }
    return Value::new_list(std::move(out));
  }
  if (name == "wordcount") return Value::integer(static_cast<int64_t>(py_split(to_str(v), nullptr, -1).list->size()));
  if (name == "attr") return get_attribute(v, str_arg(a, 0, "name", ""));
  if (name == "center") {
    int64_t width = std::min<int64_t>(int_arg(a, 0, "width", 80), 1 << 20);
    std::string s = to_str(v);
    int64_t len = static_cast<int64_t>(utf8_length(s));
    if (len >= width) return Value::string(s);
    int64_t total = width - len, left = total / 2 + (total & width & 1);
    return Value::string(std::string(static_cast<size_t>(left), ' ') + s +
                         std::string(static_cast<size_t>(total - left), ' '));
  }
  if (name == "format") {
    std::string fmt = to_str(v), out;
    size_t next = 0;
    for (size_t k = 0; k < fmt.size(); ++k) {
      if (fmt[k] != '%' || k + 1 == fmt.size()) { out += fmt[k]; continue; }
      char c = fmt[++k];
      if (c == '%') { out += '%'; continue; }
      if (next >= a.positional.size()) throw Error("format: not enough arguments");
      const Value& x = a.positional[next++];
      out += c == 'r' ? to_repr(x) : (c == 'd' || c == 'i') ? std::to_string(static_cast<int64_t>(x.as_double())) : to_str(x);
    }
    return Value::string(out);
  }
  throw Error("unknown filter '" + name + "'");
}

bool apply_test(Renderer&, const std::string& name, const Value& v, CallArgs& a) {
  using K = Value::Kind;
  auto other = [&]() -> const Value& {
    if (a.positional.empty()) throw Error("test '" + name + "' needs an argument");
    return a.positional[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == K::Bool;
  if (name == "true") return v.kind == K::Bool && v.b;
  if (name == "false") return v.kind == K::Bool && !v.b;
  if (name == "integer") return v.kind == K::Int;
  if (name == "float") return v.kind == K::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.kind == K::Dict;
  if (name == "iterable") return v.is_string() || v.is_list() || v.kind == K::Dict || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_list() || v.kind == K::Dict || v.is_undefined();
  if (name == "callable") return v.kind == K::Function;
  if (name == "escaped") return false;
  if (name == "odd" || name == "even") {
    if (v.kind != K::Int) throw Error("test '" + name + "' expects an integer");
    return (v.i % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value& d = other();
    if (d.as_double() == 0) throw Error("divisibleby 0");
    return std::fmod(v.as_double(), d.as_double()) == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, other());
  if (name == "ne" || name == "!=") return !equals(v, other());
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, other()) < 0;
  if (name == "le" || name == "<=") return compare(v, other()) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, other()) > 0;
  if (name == "ge" || name == ">=") return compare(v, other()) >= 0;
  if (name == "in") {
    const Value& c = other();
    if (c.is_string()) return v.is_string() && c.s.find(v.s) != std::string::npos;
    if (c.is_mapping()) return v.is_string() && c.dict->find(v.s);
    for (auto& x : iterate(c))
      if (equals(x, v)) return true;
    return false;
  }
  if (name == "sameas") {
    const Value& o = other();
    if (v.kind != o.kind) return false;
    if (v.is_list()) return v.list == o.list;
    if (v.is_mapping()) return v.dict == o.dict;
    return equals(v, o);
  }
  if (name == "lower") return v.is_string() && map_case(v.s, 0) == v.s;
  if (name == "upper") return v.is_string() && map_case(v.s, 1) == v.s;
  throw Error("unknown test '" + name + "'");
}

void add_builtin_globals(Dict& g) {
  g.set("range", Value::function([](CallArgs& a) {
    int64_t start = 0, stop, step = 1;
    if (a.positional.size() == 1) stop = int_arg(a, 0, "stop", 0);
    else {
      start = int_arg(a, 0, "start", 0);
      stop = int_arg(a, 1, "stop", 0);
      step = int_arg(a, 2, "step", 1);
    }
    if (step == 0) throw Error("range() step must not be zero");
    Array out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop;) {
      if (out.size() >= 1'000'000) throw Error("range() is too long (more than 1,000,000 items)");
      out.push_back(Value::integer(k));
      if (__builtin_add_overflow(k, step, &k)) break;
    }
    return Value::new_list(std::move(out));
  }));
  auto make_dict = [](bool ns) {
    return [ns](CallArgs& a) {
      Dict d;
      for (auto& p : a.positional) {
        if (!p.is_mapping()) throw Error(ns ? "namespace() takes keyword arguments or a dict" : "dict() takes keyword arguments or a dict");
        for (auto& [k, v] : p.dict->items) d.set(k, v);
      }
      for (auto& [k, v] : a.keyword) d.set(k, v);
      return ns ? Value::new_namespace(std::move(d)) : Value::new_dict(std::move(d));
    };
  };
  g.set("namespace", Value::function(make_dict(true)));
  g.set("dict", Value::function(make_dict(false)));
  g.set("raise_exception", Value::function([](CallArgs& a) -> Value {
    throw Error("template raised an error: " + (a.positional.empty() ? std::string() : to_str(a.positional[0])));
  }));
  g.set("strftime_now", Value::function([](CallArgs& a) {
    std::string fmt = str_arg(a, 0, "format", "%Y-%m-%d");
    std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
    return Value::string(std::string(buf, n));
  }));
}

}  // namespace volga::jinja
