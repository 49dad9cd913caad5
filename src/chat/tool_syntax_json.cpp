// Tool-call readers for the families whose calls are JSON objects inside
// markers: Hermes (Qwen2.5/Qwen3/QwQ), Llama 3, Mistral Nemo, GigaChat 3.
#include <cctype>
#include <cstring>

#include "chat/tool_syntax.h"

namespace volga {

using json = nlohmann::ordered_json;

namespace markup {

Match match_at(std::string_view text, size_t pos, std::string_view literal) {
  std::string_view rest = pos < text.size() ? text.substr(pos) : std::string_view();
  if (rest.size() >= literal.size()) return rest.substr(0, literal.size()) == literal ? Match::Yes : Match::No;
  return literal.substr(0, rest.size()) == rest ? Match::Partial : Match::No;
}

size_t skip_ws(std::string_view text, size_t pos) {
  while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
  return pos;
}

// Index of the quote that ends the string whose body starts at `i`, or npos.
// memchr jumps from quote to quote (arguments can be long strings of code).
size_t string_end(std::string_view text, size_t i) {
  while (i < text.size()) {
    const void* hit = std::memchr(text.data() + i, '"', text.size() - i);
    if (!hit) return std::string_view::npos;
    size_t q = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
    size_t backslashes = 0;
    while (q - backslashes > i && text[q - backslashes - 1] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return q;
    i = q + 1;
  }
  return std::string_view::npos;
}

size_t json_extent(std::string_view text, size_t pos) {
  int depth = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      i = string_end(text, i + 1);
      if (i == std::string_view::npos) return i;
      if (depth == 0) return i + 1;  // a lone string
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

json parse_json(std::string_view text) {
  return json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

bool arguments_object(const json& value, json& out) {
  if (value.is_null()) {
    out = json::object();
    return true;
  }
  if (value.is_object()) {
    out = value;
    return true;
  }
  if (!value.is_string()) return false;
  json parsed = parse_json(value.get<std::string>());
  if (!parsed.is_object()) return false;
  out = std::move(parsed);
  return true;
}

bool call_from_object(const json& obj, ParsedCall& call) {
  if (!obj.is_object() || !obj.contains("name") || !obj["name"].is_string()) return false;
  call.name = obj["name"].get<std::string>();
  if (call.name.empty()) return false;
  json args;
  if (obj.contains("arguments")) args = obj["arguments"];
  else if (obj.contains("parameters")) args = obj["parameters"];
  return arguments_object(args, call.arguments);
}

MarkupScan need_more(bool at_end) {
  MarkupScan s;
  s.status = at_end ? MarkupScan::Status::Invalid : MarkupScan::Status::NeedMore;
  return s;
}

MarkupScan invalid() {
  MarkupScan s;
  s.status = MarkupScan::Status::Invalid;
  return s;
}

MarkupScan complete(size_t length, std::vector<ParsedCall> calls) {
  MarkupScan s;
  s.status = MarkupScan::Status::Complete;
  s.length = length;
  s.calls = std::move(calls);
  return s;
}

}  // namespace markup

namespace {

using namespace markup;

// One JSON call object at text[pos] (after whitespace). On success `end` is
// one past the object. Returns NeedMore / Invalid / Complete (length = end).
MarkupScan json_call_at(std::string_view text, size_t pos, bool at_end, ParsedCall& call) {
  pos = skip_ws(text, pos);
  if (pos == text.size()) return need_more(at_end);
  if (text[pos] != '{') return invalid();
  size_t end = json_extent(text, pos);
  if (end == std::string_view::npos) return need_more(at_end);
  if (!call_from_object(parse_json(text.substr(pos, end - pos)), call)) return invalid();
  return complete(end, {});
}

// <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
class HermesSyntax : public ToolSyntax {
 public:
  HermesSyntax() { markers_ = {{"<tool_call>"}}; }
  MarkupScan scan(std::string_view text, size_t, bool at_end) const override {
    ParsedCall call;
    MarkupScan body = json_call_at(text, markers_[0].text.size(), at_end, call);
    if (body.status != MarkupScan::Status::Complete) return body;
    size_t pos = skip_ws(text, body.length);
    static constexpr std::string_view kClose = "</tool_call>";
    switch (match_at(text, pos, kClose)) {
      case Match::Yes: return complete(pos + kClose.size(), {std::move(call)});
      case Match::Partial: return need_more(at_end);
      case Match::No: break;
    }
    return invalid();
  }
};

// <|python_tag|>name.call(key="value", ...) — Llama 3.1's built-in tools.
MarkupScan builtin_call_at(std::string_view text, size_t pos, bool at_end, ParsedCall& call) {
  size_t start = pos;
  while (pos < text.size() && (std::isalnum(static_cast<unsigned char>(text[pos])) || text[pos] == '_')) ++pos;
  if (pos == text.size()) return need_more(at_end);
  call.name = std::string(text.substr(start, pos - start));
  Match m = match_at(text, pos, ".call(");
  if (m != Match::Yes || call.name.empty()) return m == Match::Partial ? need_more(at_end) : invalid();
  pos += 6;
  call.arguments = json::object();
  for (;;) {
    pos = skip_ws(text, pos);
    if (pos == text.size()) return need_more(at_end);
    if (text[pos] == ')') return complete(pos + 1, {});
    size_t key_start = pos;
    while (pos < text.size() && (std::isalnum(static_cast<unsigned char>(text[pos])) || text[pos] == '_')) ++pos;
    if (pos + 1 >= text.size()) return need_more(at_end);
    if (pos == key_start || text[pos] != '=' || text[pos + 1] != '"') return invalid();
    size_t close = text.find('"', pos + 2);
    if (close == std::string_view::npos) return need_more(at_end);
    call.arguments[std::string(text.substr(key_start, pos - key_start))] = std::string(text.substr(pos + 2, close - pos - 2));
    pos = skip_ws(text, close + 1);
    if (pos < text.size() && text[pos] == ',') ++pos;
  }
}

// Bare {"name": ..., "parameters": {...}} at the start of the reply, or after <|python_tag|>;
// several calls may be separated by ';'.
class Llama3Syntax : public ToolSyntax {
 public:
  Llama3Syntax() {
    markers_ = {{"{", true}, {"<|python_tag|>"}, {";", false, true}};
  }
  MarkupScan scan(std::string_view text, size_t marker, bool at_end) const override {
    if (marker == 2) return complete(1, {});  // separator between calls
    ParsedCall call;
    size_t pos = marker == 0 ? 0 : skip_ws(text, markers_[1].text.size());
    if (pos == text.size()) return need_more(at_end);
    MarkupScan s = text[pos] == '{' ? json_call_at(text, pos, at_end, call) : builtin_call_at(text, pos, at_end, call);
    if (s.status == MarkupScan::Status::Complete) s.calls.push_back(std::move(call));
    return s;
  }
};

// [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": "..."}, ...]
class MistralSyntax : public ToolSyntax {
 public:
  MistralSyntax() { markers_ = {{"[TOOL_CALLS]"}}; }
  MarkupScan scan(std::string_view text, size_t, bool at_end) const override {
    size_t pos = skip_ws(text, markers_[0].text.size());
    if (pos == text.size()) return need_more(at_end);
    if (text[pos] != '[' && text[pos] != '{') return invalid();
    size_t end = json_extent(text, pos);
    if (end == std::string_view::npos) return need_more(at_end);
    json list = parse_json(text.substr(pos, end - pos));
    if (list.is_object()) list = json::array({list});
    if (!list.is_array()) return invalid();
    std::vector<ParsedCall> calls(list.size());
    for (size_t i = 0; i < list.size(); ++i)
      if (!call_from_object(list[i], calls[i])) return invalid();
    return complete(end, std::move(calls));
  }
};

// GigaChat 3.1: <|function_call|>{"name": ..., "arguments": {...}}
// GigaChat 3:   <|message_sep|>\n\nfunction call<|role_sep|>\n{...}
// Either may be followed by the end-of-turn <|message_sep|>.
class GigaChatSyntax : public ToolSyntax {
 public:
  GigaChatSyntax() {
    markers_ = {{"<|function_call|>"},
                {"<|message_sep|>\n\nfunction call<|role_sep|>"},
                {"function call<|role_sep|>", true}};
  }
  MarkupScan scan(std::string_view text, size_t marker, bool at_end) const override {
    ParsedCall call;
    MarkupScan body = json_call_at(text, markers_[marker].text.size(), at_end, call);
    if (body.status != MarkupScan::Status::Complete) return body;
    static constexpr std::string_view kEnd = "<|message_sep|>";
    size_t end = body.length;
    switch (match_at(text, end, kEnd)) {
      case Match::Yes: end += kEnd.size(); break;
      case Match::Partial:
        if (!at_end) return need_more(false);
        break;
      case Match::No: break;
    }
    return complete(end, {std::move(call)});
  }
};

}  // namespace

std::unique_ptr<ToolSyntax> make_hermes_syntax() { return std::make_unique<HermesSyntax>(); }
std::unique_ptr<ToolSyntax> make_llama3_syntax() { return std::make_unique<Llama3Syntax>(); }
std::unique_ptr<ToolSyntax> make_mistral_syntax() { return std::make_unique<MistralSyntax>(); }
std::unique_ptr<ToolSyntax> make_gigachat_syntax() { return std::make_unique<GigaChatSyntax>(); }

std::unique_ptr<ToolSyntax> make_tool_syntax(const ChatFormat& f, const json& tools) {
  switch (f.tools) {
    case ToolCallStyle::None: return nullptr;
    case ToolCallStyle::Hermes: return make_hermes_syntax();
    case ToolCallStyle::Qwen3Coder: return make_qwen3_coder_syntax(tools);
    case ToolCallStyle::DeepSeekV3:
    case ToolCallStyle::DeepSeekV31: return make_deepseek_syntax();
    case ToolCallStyle::GigaChat3: return make_gigachat_syntax();
    case ToolCallStyle::Llama3: return make_llama3_syntax();
    case ToolCallStyle::MistralNemo: return make_mistral_syntax();
  }
  return nullptr;
}

}  // namespace volga
