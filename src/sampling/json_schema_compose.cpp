// JSON Schema -> GBNF: $ref resolution, allOf merging (a $ref with sibling
// keywords is merged the same way), anyOf/oneOf and the oneOf exclusivity
// check. See json_schema.cpp for the choices.
#include <algorithm>

#include "sampling/json_schema_impl.h"

namespace volga {

using namespace schema_detail;

std::pair<const json*, std::string> SchemaConverter::Impl::resolve(const json& ref, const std::string& where) {
  if (!ref.is_string()) fail("'$ref' must be a string", where, "$ref");
  std::string r = ref.get<std::string>();
  if (r.empty() || r[0] != '#')
    fail("only local $ref ('#', '#/$defs/...') are supported, not '" + r + "'", where, "$ref");
  std::string pointer;  // percent-decoded
  for (size_t i = 1; i < r.size(); ++i) {
    if (r[i] == '%' && i + 2 < r.size() && std::isxdigit(static_cast<unsigned char>(r[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(r[i + 2]))) {
      pointer += static_cast<char>(std::stoi(r.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      pointer += r[i];
    }
  }
  if (!pointer.empty() && pointer[0] != '/') fail("$ref anchors ('" + r + "') are not supported", where, "$ref");
  const json* node = &root;
  size_t pos = 1;
  while (pos <= pointer.size() && !pointer.empty()) {
    size_t next = pointer.find('/', pos);
    std::string token = pointer.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    std::string key;
    for (size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
        key += token[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        key += token[i];
      }
    }
    if (node->is_object() && node->contains(key)) {
      node = &(*node)[key];
    } else if (node->is_array() && !key.empty() && key.find_first_not_of("0123456789") == std::string::npos &&
               key.size() < 9 && std::stoul(key) < node->size()) {
      node = &(*node)[std::stoul(key)];
    } else {
      fail("$ref target '" + r + "' does not exist", where, "$ref");
    }
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return {node, pointer};
}

// The schema's own constraints, its $ref target's and its allOf items', in order.
void SchemaConverter::Impl::collect(const json& s, const std::string& where, int chain, std::vector<json>& out) {
  if (chain > kMaxRefChain) fail("$ref/allOf nested too deeply (a cycle?)", where, "$ref");
  if (++work > kMaxWork) fail("schema too large to convert", where);
  if (s.is_boolean()) {
    if (s.get<bool>()) return;
    fail("the schema 'false' accepts no value", where);
  }
  check_keywords(s, where);
  json own = json::object();
  for (auto it = s.begin(); it != s.end(); ++it)
    if (it.key() != "$ref" && it.key() != "allOf" && !is_annotation(it.key())) own[it.key()] = it.value();
  if (own.contains("nullable")) {
    if (!own["nullable"].is_boolean()) fail("'nullable' must be a boolean", where, "nullable");
    if (own["nullable"].get<bool>() && own.contains("type")) {
      auto types = type_set(own, where);
      types.insert("null");
      own["type"] = type_json(types);
    }
    own.erase("nullable");
  }
  out.push_back(std::move(own));
  if (s.contains("$ref")) {
    auto [target, pointer] = resolve(s["$ref"], where);
    collect(*target, pointer, chain + 1, out);
  }
  if (s.contains("allOf")) {
    const json& all = s["allOf"];
    if (!all.is_array() || all.empty()) fail("'allOf' must be a nonempty array", where, "allOf");
    for (size_t i = 0; i < all.size(); ++i) collect(all[i], where + "/allOf/" + std::to_string(i), chain + 1, out);
  }
}

json SchemaConverter::Impl::flatten(const json& s, const std::string& where) {
  std::vector<json> parts;
  collect(s, where, 0, parts);
  if (parts.size() == 1) return parts[0];
  return merge(parts, where);
}

void SchemaConverter::Impl::tighten(json& out, const std::string& key, const json& v, bool take_max) {
  if (!out.contains(key)) {
    out[key] = v;
    return;
  }
  if (!v.is_number() || !out[key].is_number()) return;  // reported when used
  int c = compare_decimal(decimal_of(v), decimal_of(out[key]));
  if ((take_max && c > 0) || (!take_max && c < 0)) out[key] = v;
}

json SchemaConverter::Impl::merge(const std::vector<json>& parts, const std::string& where) {
  json out = json::object();
  std::set<std::string> types = {kTypeNames.begin(), kTypeNames.end()};
  bool typed = false;
  std::optional<json> values;  // enum/const intersection
  std::vector<std::string> required;
  std::vector<json> items;
  bool has_alternatives = false;
  for (const auto& p : parts) {
    for (auto it = p.begin(); it != p.end(); ++it) {
      const std::string& k = it.key();
      const json& v = it.value();
      if (k == "type") {
        auto t = type_set(p, where);
        std::set<std::string> both;
        for (const auto& x : t)
          if (types.count(x)) both.insert(x);
        types = both;
        typed = true;
      } else if (k == "enum" || k == "const") {
        json list = k == "const" ? json::array({v}) : v;
        if (!list.is_array()) fail("'enum' must be an array", where, "enum");
        if (!values) {
          values = list;
        } else {
          json kept = json::array();
          for (const auto& x : *values)
            if (std::find(list.begin(), list.end(), x) != list.end()) kept.push_back(x);
          values = kept;
        }
      } else if (k == "properties") {
        if (!v.is_object()) fail("'properties' must be an object", where, "properties");
        json& props = out["properties"];
        if (props.is_null()) props = json::object();
        for (auto pi = v.begin(); pi != v.end(); ++pi) {
          if (!props.contains(pi.key())) {
            props[pi.key()] = pi.value();
          } else if (props[pi.key()] != pi.value()) {
            props[pi.key()] = json{{"allOf", json::array({props[pi.key()], pi.value()})}};
          }
        }
      } else if (k == "required") {
        if (!v.is_array()) fail("'required' must be an array of strings", where, "required");
        for (const auto& r : v) {
          if (!r.is_string()) fail("'required' must be an array of strings", where, "required");
          if (std::find(required.begin(), required.end(), r.get<std::string>()) == required.end())
            required.push_back(r.get<std::string>());
        }
      } else if (k == "items") {
        if (v.is_array()) {
          if (out.contains("items") && out["items"] != v) fail("'allOf' with two different tuple 'items'", where, "allOf");
          out["items"] = v;
        } else {
          items.push_back(v);
        }
      } else if (k == "minimum" || k == "exclusiveMinimum" || k == "minLength" || k == "minItems" ||
                 k == "minProperties") {
        tighten(out, k, v, true);
      } else if (k == "maximum" || k == "exclusiveMaximum" || k == "maxLength" || k == "maxItems" ||
                 k == "maxProperties") {
        tighten(out, k, v, false);
      } else if (k == "uniqueItems") {
        if (!out.contains(k) || v == true) out[k] = v;
      } else if (k == "anyOf" || k == "oneOf") {
        if (has_alternatives) fail("'allOf' combining several anyOf/oneOf is not supported", where, k);
        has_alternatives = true;
        out[k] = v;
      } else if (k == "additionalProperties") {
        continue;  // below
      } else if (out.contains(k) && out[k] != v) {
        fail("'allOf' with two different '" + k + "' is not supported", where, k);
      } else {
        out[k] = v;
      }
    }
  }
  if (typed) {
    if (types.empty()) fail("'allOf' whose types have nothing in common accepts no value", where, "type");
    out["type"] = type_json(types);
  }
  if (values) out["enum"] = *values;
  if (!required.empty()) out["required"] = required;
  if (items.size() == 1) out["items"] = items[0];
  if (items.size() > 1) out["items"] = json{{"allOf", items}};
  merge_additional(parts, out, where);
  return out;
}

// A property declared by one part is an "additional" one for the others.
void SchemaConverter::Impl::merge_additional(const std::vector<json>& parts, json& out, const std::string& where) {
  std::vector<json> extra;  // additionalProperties schemas
  bool forbidden = false;
  for (const auto& p : parts) {
    if (!p.contains("additionalProperties")) continue;
    const json& ap = p["additionalProperties"];
    if (ap == true || ap == json::object()) continue;
    if (ap == false) {
      forbidden = true;
    } else {
      extra.push_back(ap);
    }
    if (!out.contains("properties")) continue;
    json& props = out["properties"];
    json kept = json::object();
    for (auto it = props.begin(); it != props.end(); ++it) {
      bool declared = p.contains("properties") && p["properties"].is_object() && p["properties"].contains(it.key());
      if (declared) {
        kept[it.key()] = it.value();
      } else if (ap != false) {
        kept[it.key()] = json{{"allOf", json::array({it.value(), ap})}};
      } else if (out.contains("required") &&
                 std::find(out["required"].begin(), out["required"].end(), it.key()) != out["required"].end()) {
        fail("required property '" + it.key() + "' is forbidden by another part's additionalProperties: false",
             where, "additionalProperties");
      }
    }
    props = kept;
  }
  if (forbidden) {
    out["additionalProperties"] = false;
  } else if (extra.size() == 1) {
    out["additionalProperties"] = extra[0];
  } else if (extra.size() > 1) {
    out["additionalProperties"] = json{{"allOf", extra}};
  }
}

std::string SchemaConverter::Impl::ref_rule(const json& ref, const std::string& where) {
  auto [target, pointer] = resolve(ref, where);
  auto it = ref_rules.find(pointer);
  if (it != ref_rules.end()) return it->second;
  std::string last = pointer.substr(pointer.rfind('/') == std::string::npos ? 0 : pointer.rfind('/') + 1);
  std::string name = rules.reserve(last.empty() ? "ref" : last);
  ref_rules[pointer] = name;
  rules.define(name, value(*target, pointer, name));
  return name;
}

std::string SchemaConverter::Impl::alternatives_of(const json& flat, const std::string& where, const std::string& hint) {
  if (flat.contains("anyOf") && flat.contains("oneOf"))
    fail("'anyOf' and 'oneOf' in one schema are not supported", where, "oneOf");
  const std::string key = flat.contains("anyOf") ? "anyOf" : "oneOf";
  const json& branches = flat[key];
  if (!branches.is_array() || branches.empty()) fail("'" + key + "' must be a nonempty array", where, key);
  json siblings = flat;
  siblings.erase(key);
  std::vector<json> merged;
  std::vector<std::string> exprs;
  for (size_t i = 0; i < branches.size(); ++i) {
    if (branches[i] == false) continue;
    json b = siblings.empty() ? branches[i] : json{{"allOf", json::array({siblings, branches[i]})}};
    exprs.push_back(value(b, where + "/" + key + "/" + std::to_string(i), hint + "-" + std::to_string(i)));
    merged.push_back(b);
  }
  if (exprs.empty()) fail("no branch of '" + key + "' accepts a value", where, key);
  if (key == "oneOf") check_exclusive(merged, where);
  return atom(alternatives(exprs));
}

// Types a schema accepts (declared; all when it does not say).
std::set<std::string> SchemaConverter::Impl::accepted_types(const json& s, const std::string& where) {
  if (s.is_boolean()) return s.get<bool>() ? std::set<std::string>(kTypeNames.begin(), kTypeNames.end())
                                           : std::set<std::string>{};
  json flat = flatten(s, where);
  std::set<std::string> types = type_set(flat, where);
  if (flat.contains("enum") && flat["enum"].is_array()) {
    std::set<std::string> of_values;
    for (const auto& v : flat["enum"]) {
      of_values.insert(json_type_of(v));
      if (json_type_of(v) == "integer") of_values.insert("number");
    }
    std::set<std::string> both;
    for (const auto& t : types)
      if (of_values.count(t)) both.insert(t);
    types = both;
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    if (!flat.contains(key) || !flat[key].is_array()) continue;
    std::set<std::string> any;
    for (const auto& b : flat[key])
      for (const auto& t : accepted_types(b, where)) any.insert(t);
    std::set<std::string> both;
    for (const auto& t : types)
      if (any.count(t)) both.insert(t);
    types = both;
  }
  if (types.count("number")) types.insert("integer");
  if (types.count("integer")) types.insert("number");  // an integral value is both
  return types;
}

// The const/enum values a schema allows for property `name`, if it says.
std::optional<json> SchemaConverter::Impl::property_values(const json& flat, const std::string& name, const std::string& where) {
  if (!flat.contains("properties") || !flat["properties"].is_object() || !flat["properties"].contains(name))
    return std::nullopt;
  const json& ps = flat["properties"][name];
  if (ps.is_boolean()) return std::nullopt;
  json pf = flatten(ps, where);
  if (pf.contains("anyOf") || pf.contains("oneOf")) return std::nullopt;
  if (pf.contains("const")) return json::array({pf["const"]});  // enum beside it only narrows
  if (pf.contains("enum") && pf["enum"].is_array()) return pf["enum"];
  return std::nullopt;
}

// No value generated from `a` validates against `b`.
bool SchemaConverter::Impl::excludes(const json& a, const json& b, const std::string& where) {
  if (a.is_boolean() || b.is_boolean()) return a == false || b == false;
  json fa = flatten(a, where), fb = flatten(b, where);
  if (fa.contains("anyOf") || fa.contains("oneOf")) return false;
  if (!fa.contains("required") || !fa["required"].is_array()) return false;
  for (const auto& r : fa["required"]) {
    if (!r.is_string()) continue;
    std::string name = r.get<std::string>();
    bool b_declares = fb.contains("properties") && fb["properties"].is_object() && fb["properties"].contains(name);
    if (!b_declares && fb.contains("additionalProperties") && fb["additionalProperties"] == false) return true;
    auto va = property_values(fa, name, where), vb = property_values(fb, name, where);
    if (!va || !vb) continue;
    bool overlap = false;
    for (const auto& x : *va)
      if (std::find(vb->begin(), vb->end(), x) != vb->end()) overlap = true;
    if (!overlap) return true;
  }
  return false;
}

void SchemaConverter::Impl::check_exclusive(const std::vector<json>& branches, const std::string& where) {
  for (size_t i = 0; i < branches.size(); ++i) {
    for (size_t j = i + 1; j < branches.size(); ++j) {
      auto ti = accepted_types(branches[i], where), tj = accepted_types(branches[j], where);
      bool type_overlap = std::any_of(ti.begin(), ti.end(), [&](const std::string& t) { return tj.count(t) > 0; });
      if (!type_overlap) continue;
      bool objects_only = !std::any_of(ti.begin(), ti.end(), [&](const std::string& t) {
        return t != "object" && tj.count(t) > 0;
      });
      if (objects_only && excludes(branches[i], branches[j], where) && excludes(branches[j], branches[i], where))
        continue;
      fail("'oneOf' branches " + std::to_string(i) + " and " + std::to_string(j) +
               " may both match one value; use anyOf, or tell them apart by type or by a required const/enum "
               "property",
           where, "oneOf");
    }
  }
}

}  // namespace volga
