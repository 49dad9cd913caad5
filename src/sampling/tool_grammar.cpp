#include "sampling/tool_grammar.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>

#include "sampling/grammar.h"
#include "sampling/json_schema.h"
#include "util/error.h"

namespace volga {

namespace {

using json = nlohmann::ordered_json;

struct ToolSpec {
  std::string name;
  json parameters;  // an object schema
};

std::string lit(const std::string& text) { return gbnf_literal(text); }

bool is_tool_name(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

ToolSpec read_tool(const json& tool, size_t i) {
  std::string at = "tools[" + std::to_string(i) + "]";
  if (!tool.is_object() || !tool.contains("function") || !tool["function"].is_object())
    throw Error(at + " must be {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": {...}}}");
  const json& fn = tool["function"];
  if (!fn.contains("name") || !fn["name"].is_string() || !is_tool_name(fn["name"].get<std::string>()))
    throw Error(at + ".function.name must be a string of letters, digits, '_', '-' or '.'");
  ToolSpec spec{fn["name"].get<std::string>(), fn.value("parameters", json::object())};
  if (spec.parameters.is_null()) spec.parameters = json::object();
  if (!spec.parameters.is_object()) throw Error(at + ".function.parameters must be a JSON Schema object");
  if (!spec.parameters.contains("type")) spec.parameters["type"] = "object";
  return spec;
}

std::vector<ToolSpec> read_tools(const json& tools, const std::string& only_name) {
  if (!tools.is_array() || tools.empty()) throw Error("tool_choice asks for a tool call, but the request has no tools");
  std::vector<ToolSpec> out;
  std::string names;
  for (size_t i = 0; i < tools.size(); ++i) {
    ToolSpec spec = read_tool(tools[i], i);
    names += (names.empty() ? "" : ", ") + spec.name;
    if (only_name.empty() || spec.name == only_name) out.push_back(std::move(spec));
  }
  if (out.empty())
    throw Error("tool_choice names function '" + only_name + "', which is not among the request's tools (" + names + ")");
  return out;
}

// ---- Qwen3-Coder: parameters as tagged text -----------------------------------------

const std::set<std::string> kAnnotations = {"description", "title",      "default",   "examples", "$comment",
                                            "deprecated",  "readOnly",   "writeOnly", "nullable", "type"};

std::set<std::string> declared_types(const json& schema) {
  std::set<std::string> types;
  const json t = schema.value("type", json());
  if (t.is_string()) types.insert(t.get<std::string>());
  if (t.is_array())
    for (const json& x : t)
      if (x.is_string()) types.insert(x.get<std::string>());
  if (schema.value("nullable", false)) types.insert("null");
  return types;
}

bool only_annotations(const json& schema) {
  for (auto it = schema.begin(); it != schema.end(); ++it)
    if (!kAnnotations.count(it.key())) return false;
  return true;
}

// enum / const of strings only: the raw strings.
bool string_choices(const json& schema, std::vector<std::string>& out) {
  json values = schema.contains("const") ? json::array({schema["const"]}) : schema.value("enum", json());
  if (!values.is_array() || values.empty()) return false;
  for (const json& v : values) {
    if (!v.is_string()) return false;
    out.push_back(v.get<std::string>());
  }
  for (auto it = schema.begin(); it != schema.end(); ++it)
    if (!kAnnotations.count(it.key()) && it.key() != "enum" && it.key() != "const") return false;
  return true;
}

struct CoderRules {
  SchemaConverter& converter;
  std::string raw_text;  // any text up to and including "</parameter>"
};

// The value of one parameter, through "</parameter>\n". The template writes
// strings raw and other values as JSON (Python's str() for True/False/None).
std::string coder_value(CoderRules& r, const json& schema, const std::string& hint, const std::string& where) {
  static const std::string kEnd = "\n</parameter>\n";
  if (schema == true || (schema.is_object() && only_annotations(schema))) {
    std::set<std::string> types = declared_types(schema);
    bool raw = types.empty() || types.count("string");
    for (const std::string& t : types) raw = raw && (t == "string" || t == "null" || t == "boolean" || t == "integer" || t == "number");
    if (raw) return r.raw_text + " " + lit("\n");
    if (types == std::set<std::string>{"boolean"}) return "( \"true\" | \"false\" | \"True\" | \"False\" ) " + lit(kEnd);
  }
  if (!schema.is_object()) return r.converter.add_schema(schema, hint) + " " + lit(kEnd);
  std::vector<std::string> choices;
  if (string_choices(schema, choices)) {
    std::string alts;
    for (const std::string& c : choices) alts += (alts.empty() ? "" : " | ") + lit(c);
    return "( " + alts + " ) " + lit(kEnd);
  }
  if (declared_types(schema).count("string"))
    for (const char* key : {"pattern", "format", "minLength", "maxLength"})
      if (schema.contains(key))
        throw SchemaError(std::string("this model writes string parameters as raw text, so '") + key +
                              "' cannot be enforced on a forced tool call; drop it or let the model call freely",
                          where, key);
  return r.converter.add_schema(schema, hint) + " " + lit(kEnd);
}

std::string coder_call(CoderRules& r, const ToolSpec& t) {
  std::string body = lit("<tool_call>\n<function=" + t.name + ">\n");
  const json props = t.parameters.value("properties", json::object());
  const json required = t.parameters.value("required", json::array());
  auto is_required = [&](const std::string& n) {
    return required.is_array() && std::find(required.begin(), required.end(), json(n)) != required.end();
  };
  if (props.is_object()) {
    for (auto it = props.begin(); it != props.end(); ++it) {
      const std::string& name = it.key();
      if (name.empty() || name.find_first_of("<>\n") != std::string::npos)
        throw SchemaError("parameter name '" + name + "' cannot be written in this model's tool-call format",
                          "/properties/" + name, "properties");
      std::string item = lit("<parameter=" + name + ">\n") + " " +
                         coder_value(r, it.value(), t.name + "-" + name, "/properties/" + name);
      if (!is_required(name)) item = "( " + item + " )?";
      body.append(" ").append(item);
    }
  }
  return body + " " + lit("</function>\n</tool_call>");
}

// ---- JSON-argument families ----------------------------------------------------------

std::string json_call(const ChatFormat& f, const std::string& name, const std::string& args) {
  const std::string quoted = json(name).dump();
  switch (f.tools) {
    case ToolCallStyle::Hermes:
      return lit("<tool_call>\n{\"name\": " + quoted + ", \"arguments\": ") + " " + args + " " + lit("}\n</tool_call>");
    case ToolCallStyle::DeepSeekV3:
      return lit("<｜tool▁call▁begin｜>function<｜tool▁sep｜>" + name + "\n```json\n") + " " + args + " " +
             lit("\n```<｜tool▁call▁end｜>");
    case ToolCallStyle::DeepSeekV31:
      return lit("<｜tool▁call▁begin｜>" + name + "<｜tool▁sep｜>") + " " + args + " " + lit("<｜tool▁call▁end｜>");
    case ToolCallStyle::GigaChat3: {
      // 3.0 ends the assistant message, then opens a "function call" one.
      std::string open = f.name == "gigachat3.1" ? "<|function_call|>" : "<|message_sep|>\n\nfunction call<|role_sep|>\n";
      return lit(open + "{\"name\": " + quoted + ", \"arguments\": ") + " " + args + " " + lit("}");
    }
    case ToolCallStyle::Llama3:
      return lit("{\"name\": " + quoted + ", \"parameters\": ") + " " + args + " " + lit("}");
    case ToolCallStyle::MistralNemo:
      return lit("{\"name\": " + quoted + ", \"arguments\": ") + " " + args + " " + lit(", \"id\": \"") +
             " [a-zA-Z0-9]{9} " + lit("\"}");
    default: break;
  }
  throw Error("no tool-call format for '" + f.name + "'");
}

// One call, or (parallel) one or more, with the family's framing.
std::string sentence(const ChatFormat& f, const std::string& call, bool parallel) {
  auto many = [&](const std::string& sep) { return parallel ? call + " ( " + sep + " " + call + " )*" : call; };
  switch (f.tools) {
    case ToolCallStyle::Hermes:
    case ToolCallStyle::Qwen3Coder: return many(lit("\n"));
    case ToolCallStyle::DeepSeekV3: return lit("<｜tool▁calls▁begin｜>") + " " + many(lit("\n")) + " " + lit("<｜tool▁calls▁end｜>");
    case ToolCallStyle::DeepSeekV31: return lit("<｜tool▁calls▁begin｜>") + " " + many("\"\"") + " " + lit("<｜tool▁calls▁end｜>");
    case ToolCallStyle::MistralNemo: return lit("[TOOL_CALLS][") + " " + many(lit(", ")) + " " + lit("]");
    default: return call;  // one call per turn (Llama 3, GigaChat)
  }
}

// Names of the rules defined in GBNF text ("name ::= ...").
std::set<std::string> rule_names(const std::string& gbnf) {
  std::set<std::string> names;
  for (size_t line = 0; line < gbnf.size();) {
    size_t end = gbnf.find('\n', line);
    if (end == std::string::npos) end = gbnf.size();
    size_t def = gbnf.find(" ::= ", line);
    if (def != std::string::npos && def < end) names.insert(gbnf.substr(line, def - line));
    line = end + 1;
  }
  return names;
}

// The grammar with its free-text rules named from `prefix`; empty when a
// rule name of the schemas' clashes with them.
std::string build_grammar(const ChatFormat& f, const std::vector<ToolSpec>& specs, bool parallel,
                          bool reasoning_first, const std::string& prefix) {
  SchemaConverter converter;
  std::string text_rules;
  CoderRules coder{converter, ""};
  if (f.tools == ToolCallStyle::Qwen3Coder)
    coder.raw_text = gbnf_text_until("</parameter>", prefix + "param", text_rules);
  std::string alts;
  for (const ToolSpec& t : specs) {
    std::string call = f.tools == ToolCallStyle::Qwen3Coder
                           ? coder_call(coder, t)
                           : json_call(f, t.name, converter.add_schema(t.parameters, t.name + "-args"));
    alts += (alts.empty() ? "" : " | ") + call;
  }
  std::string root = sentence(f, converter.add_rule("tool-call", alts), parallel);
  if (reasoning_first) root = gbnf_text_until(f.think_close, prefix + "think", text_rules) + " [ \\t\\n]{0,4} " + root;
  std::string grammar = converter.grammar(root);
  for (const std::string& name : rule_names(text_rules))
    if (rule_names(grammar).count(name)) return "";
  return grammar + text_rules;
}

}  // namespace

std::string tool_call_grammar(const ChatFormat& f, const json& tools, const std::string& only_name, bool parallel,
                              bool reasoning_first) {
  if (f.tools == ToolCallStyle::None)
    throw Error("this model's chat template ('" + f.name + "') has no tool-call format, so a tool call cannot be forced");
  std::vector<ToolSpec> specs = read_tools(tools, only_name);
  for (int attempt = 0;; ++attempt) {
    std::string grammar = build_grammar(f, specs, parallel, reasoning_first, "free-text" + std::to_string(attempt) + "-");
    if (!grammar.empty()) return grammar;
  }
}

}  // namespace volga
