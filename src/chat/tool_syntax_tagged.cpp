// Tool-call readers for the families with their own tags around names and
// values: Qwen3-Coder / Qwen3.5 (XML-like parameters) and DeepSeek V3 / V3.1
// (special-token markers, read as text).
#include <cctype>
#include <map>
#include <set>

#include "chat/tool_syntax.h"

namespace volga {

using json = nlohmann::ordered_json;
using namespace markup;

namespace {

// ---- Qwen3-Coder -----------------------------------------------------------

// JSON Schema type name of a value.
std::string type_of(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return "string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::boolean: return "boolean";
    case json::value_t::null: return "null";
    case json::value_t::array: return "array";
    default: return "object";
  }
}

// JSON Schema types a parameter may take ("string", "integer", ...), from
// `type`, `nullable`, `enum`/`const` values and anyOf/oneOf members. Empty: unknown.
void collect_types(const json& schema, std::set<std::string>& types, int depth = 0) {
  if (!schema.is_object() || depth > 8) return;
  if (schema.contains("type")) {
    const json& t = schema["type"];
    if (t.is_string()) types.insert(t.get<std::string>());
    if (t.is_array())
      for (const json& x : t)
        if (x.is_string()) types.insert(x.get<std::string>());
  }
  if (schema.contains("nullable") && schema["nullable"].is_boolean() && schema["nullable"].get<bool>()) types.insert("null");
  if (schema.contains("const")) types.insert(type_of(schema["const"]));
  if (schema.contains("enum") && schema["enum"].is_array())
    for (const json& v : schema["enum"]) types.insert(type_of(v));
  for (const char* key : {"anyOf", "oneOf"})
    if (schema.contains(key) && schema[key].is_array())
      for (const json& member : schema[key]) collect_types(member, types, depth + 1);
}

bool type_allowed(const json& v, const std::set<std::string>& types) {
  std::string t = type_of(v);
  return types.count(t) || (t == "integer" && types.count("number"));
}

// Python's str() of True / False / None, as the template writes non-JSON scalars.
bool python_literal(std::string_view raw, json& out) {
  if (raw == "True") out = true;
  else if (raw == "False") out = false;
  else if (raw == "None") out = nullptr;
  else return false;
  return true;
}

// The template writes strings raw and everything else as JSON (or Python's
// str()); the parameter's schema says which a value is. Without a schema,
// text that reads as a JSON number, literal, object or array is one.
json parameter_value(std::string_view raw, const std::set<std::string>* types) {
  bool only_string = types && types->size() == 1 && types->count("string");
  if (only_string) return std::string(raw);
  json v = parse_json(raw);
  bool valid = !v.is_discarded() || python_literal(raw, v);
  if (types && !types->empty()) {
    if (valid && type_allowed(v, *types)) return v;
    if (types->count("string") || !valid) return std::string(raw);
    return v;
  }
  return valid && !v.is_string() ? v : json(std::string(raw));
}

// <tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n...</function>\n</tool_call>
class Qwen3CoderSyntax : public ToolSyntax {
 public:
  explicit Qwen3CoderSyntax(const json& tools) : json_calls_(make_hermes_syntax()) {
    markers_ = {{"<tool_call>"}, {"<function="}};
    read_parameter_types(tools);
  }

  MarkupScan scan(std::string_view text, size_t marker, bool at_end) const override {
    bool wrapped = marker == 0;
    size_t pos = markers_[marker].text.size();
    if (wrapped) {
      pos = skip_ws(text, pos);
      if (pos < text.size() && text[pos] == '{') return json_calls_->scan(text, 0, at_end);  // a JSON call now and then
      Match m = match_at(text, pos, "<function=");
      if (m != Match::Yes) return m == Match::Partial ? need_more(at_end) : invalid();
      pos += 10;
    }
    ParsedCall call;
    MarkupScan body = read_function(text, pos, at_end, call);
    if (body.status != MarkupScan::Status::Complete) return body;
    return read_close(text, body.length, wrapped, at_end, std::move(call));
  }

 private:
  void read_parameter_types(const json& tools) {
    if (!tools.is_array()) return;
    for (const json& tool : tools) {
      const json& fn = tool.is_object() && tool.contains("function") ? tool["function"] : tool;
      if (!fn.is_object() || !fn.contains("name") || !fn["name"].is_string()) continue;
      const json* props = fn.contains("parameters") && fn["parameters"].is_object() &&
                                  fn["parameters"].contains("properties") && fn["parameters"]["properties"].is_object()
                              ? &fn["parameters"]["properties"]
                              : nullptr;
      if (!props) continue;
      auto& table = types_[fn["name"].get<std::string>()];
      for (auto& [name, schema] : props->items()) collect_types(schema, table[name]);
    }
  }

  const std::set<std::string>* types_of(const std::string& tool, const std::string& param) const {
    auto t = types_.find(tool);
    if (t == types_.end()) return nullptr;
    auto p = t->second.find(param);
    return p == t->second.end() ? nullptr : &p->second;
  }

  // From just after "<function=" to just after "</function>".
  MarkupScan read_function(std::string_view text, size_t pos, bool at_end, ParsedCall& call) const {
    size_t gt = text.find('>', pos);
    size_t nl = text.find('\n', pos);
    if (gt == std::string_view::npos) return nl == std::string_view::npos ? need_more(at_end) : invalid();
    call.name = std::string(text.substr(pos, gt - pos));
    if (call.name.empty() || nl < gt || call.name.find('<') != std::string::npos) return invalid();
    call.arguments = json::object();
    pos = gt + 1;
    for (;;) {
      pos = skip_ws(text, pos);
      Match param = match_at(text, pos, "<parameter=");
      if (param == Match::Yes) {
        MarkupScan p = read_parameter(text, pos + 11, at_end, call);
        if (p.status != MarkupScan::Status::Complete) return p;
        pos = p.length;
        continue;
      }
      Match close = match_at(text, pos, "</function>");
      if (close == Match::Yes) return complete(pos + 11, {});
      if (param == Match::Partial || close == Match::Partial) return need_more(at_end);
      return invalid();
    }
  }

  // From just after "<parameter=" to just after "</parameter>".
  MarkupScan read_parameter(std::string_view text, size_t pos, bool at_end, ParsedCall& call) const {
    size_t gt = text.find('>', pos);
    if (gt == std::string_view::npos) return need_more(at_end);
    std::string name(text.substr(pos, gt - pos));
    if (name.empty() || name.find_first_of("<\n") != std::string::npos) return invalid();
    const std::set<std::string>* types = types_of(call.name, name);
    size_t start = gt + 1 < text.size() && text[gt + 1] == '\n' ? gt + 2 : gt + 1;
    size_t close = std::string_view::npos;
    if (!(types && types->size() == 1 && types->count("string"))) {
      MarkupScan json_end = json_value_end(text, start, at_end, close);
      if (json_end.status != MarkupScan::Status::Complete) return json_end;
    }
    if (close == std::string_view::npos) close = text.find(kParamClose, start);
    if (close == std::string_view::npos) return need_more(at_end);
    std::string_view raw = text.substr(start, close - start);
    if (!raw.empty() && raw.back() == '\n') raw.remove_suffix(1);
    call.arguments[name] = parameter_value(raw, types);
    return complete(close + kParamClose.size(), {});
  }

  // A value that is a JSON object, array or string may hold "</parameter>":
  // its end is found by its brackets when "</parameter>" follows it. Sets
  // `close` to that "</parameter>", or leaves it npos (not such a value).
  static MarkupScan json_value_end(std::string_view text, size_t start, bool at_end, size_t& close) {
    if (start >= text.size()) return need_more(at_end);
    if (text[start] != '{' && text[start] != '[' && text[start] != '"') return complete(start, {});
    size_t end = json_extent(text, start);
    // Not closed yet (a "</parameter>" seen so far may be inside it); at the
    // end, plain text after all.
    if (end == std::string_view::npos) return at_end ? complete(start, {}) : need_more(false);
    if (parse_json(text.substr(start, end - start)).is_discarded()) return complete(start, {});
    size_t at = skip_ws(text, end);
    Match m = match_at(text, at, kParamClose);
    if (m == Match::Partial) return need_more(at_end);
    if (m == Match::Yes) close = at;
    return complete(start, {});
  }

  static constexpr std::string_view kParamClose = "</parameter>";

  // After "</function>": "</tool_call>" (required when the call opened with <tool_call>).
  MarkupScan read_close(std::string_view text, size_t pos, bool wrapped, bool at_end, ParsedCall call) const {
    static constexpr std::string_view kClose = "</tool_call>";
    size_t at = skip_ws(text, pos);
    Match m = match_at(text, at, kClose);
    if (m == Match::Yes) return complete(at + kClose.size(), {std::move(call)});
    if (m == Match::Partial && !at_end) return need_more(false);
    if (wrapped) return invalid();
    return complete(pos, {std::move(call)});
  }

  std::unique_ptr<ToolSyntax> json_calls_;  // <tool_call>{"name": ..., "arguments": ...}</tool_call>
  std::map<std::string, std::map<std::string, std::set<std::string>>> types_;
};

// ---- DeepSeek --------------------------------------------------------------

constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";

std::string_view trim(std::string_view s) {
  size_t b = skip_ws(s, 0), e = s.size();
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// V3.1: <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>
// V3:   <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>
// Either form is read for either style. The section markers around the calls
// are markup of their own (consumed, no calls).
class DeepSeekSyntax : public ToolSyntax {
 public:
  DeepSeekSyntax() {
    markers_ = {{std::string(kCallsBegin)}, {std::string(kCallBegin)}, {std::string(kCallsEnd), false, true}};
  }

  MarkupScan scan(std::string_view text, size_t marker, bool at_end) const override {
    if (marker != 1) return complete(markers_[marker].text.size(), {});
    size_t pos = kCallBegin.size();
    size_t sep = text.find(kSep, pos);
    if (sep == std::string_view::npos) return text.find(kCallEnd, pos) == std::string_view::npos ? need_more(at_end) : invalid();
    std::string_view head = trim(text.substr(pos, sep - pos));
    pos = skip_ws(text, sep + kSep.size());
    if (pos == text.size()) return need_more(at_end);
    ParsedCall call;
    bool fenced = text[pos] != '{' && text[pos] != '"';
    if (!fenced) {
      call.name = std::string(head);
    } else {
      size_t nl = text.find('\n', pos);
      if (nl == std::string_view::npos) return need_more(at_end);
      call.name = std::string(trim(text.substr(pos, nl - pos)));
      pos = skip_ws(text, nl);
      Match fence = match_at(text, pos, "```");
      if (fence != Match::Yes) return fence == Match::Partial ? need_more(at_end) : invalid();
      pos += 3;
      Match lang = match_at(text, pos, "json");
      if (lang == Match::Partial && !at_end) return need_more(false);
      if (lang == Match::Yes) pos += 4;
      pos = skip_ws(text, pos);
    }
    if (call.name.empty() || call.name.find_first_of("<\n") != std::string::npos) return invalid();
    return read_arguments(text, pos, fenced, at_end, std::move(call));
  }

 private:
  static MarkupScan read_arguments(std::string_view text, size_t pos, bool fenced, bool at_end, ParsedCall call) {
    if (pos == text.size()) return need_more(at_end);
    if (text[pos] != '{' && text[pos] != '"') return invalid();
    size_t end = json_extent(text, pos);
    if (end == std::string_view::npos) return need_more(at_end);
    if (!arguments_object(parse_json(text.substr(pos, end - pos)), call.arguments)) return invalid();
    pos = skip_ws(text, end);
    if (fenced) {
      Match fence = match_at(text, pos, "```");
      if (fence != Match::Yes) return fence == Match::Partial ? need_more(at_end) : invalid();
      pos = skip_ws(text, pos + 3);
    }
    Match close = match_at(text, pos, kCallEnd);
    if (close == Match::Yes) return complete(pos + kCallEnd.size(), {std::move(call)});
    return close == Match::Partial ? need_more(at_end) : invalid();
  }
};

}  // namespace

std::unique_ptr<ToolSyntax> make_qwen3_coder_syntax(const json& tools) { return std::make_unique<Qwen3CoderSyntax>(tools); }
std::unique_ptr<ToolSyntax> make_deepseek_syntax() { return std::make_unique<DeepSeekSyntax>(); }

}  // namespace volga
