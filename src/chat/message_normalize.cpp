// normalize_messages: OpenAI request messages -> what chat templates render.
#include <cctype>
#include <cstdint>
#include <map>

#include "chat/chat_format.h"
#include "util/error.h"

namespace volga {

namespace {

using json = nlohmann::ordered_json;

std::string where(size_t index) { return "messages[" + std::to_string(index) + "]"; }

// Content as a string: text parts joined; null stays null (the caller decides).
json normalize_content(const json& content, size_t index) {
  if (content.is_string() || content.is_null()) return content;
  if (!content.is_array())
    throw Error(where(index) + ".content must be a string, null or a list of {\"type\": \"text\", \"text\": ...} parts, not " +
                std::string(content.type_name()));
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    std::string at = where(index) + ".content[" + std::to_string(i) + "]";
    if (!part.is_object()) throw Error(at + " must be an object like {\"type\": \"text\", \"text\": \"...\"}");
    std::string type = part.contains("type") && part["type"].is_string() ? part["type"].get<std::string>() : "";
    if (type != "text")
      throw Error(at + " has type '" + (type.empty() ? std::string("(missing)") : type) +
                  "': only \"text\" content parts are supported by this server");
    if (!part.contains("text") || !part["text"].is_string()) throw Error(at + " (type text) needs a string \"text\"");
    text += part["text"].get<std::string>();
  }
  return text;
}

std::string normalize_role(const json& m, size_t index) {
  if (!m.contains("role")) throw Error(where(index) + " has no \"role\"");
  if (!m["role"].is_string()) throw Error(where(index) + ".role must be a string");
  std::string role = m["role"].get<std::string>();
  if (role == "developer") return "system";
  if (role == "system" || role == "user" || role == "assistant" || role == "tool") return role;
  throw Error(where(index) + " has role '" + role + "': expected system, developer, user, assistant or tool");
}

// A deterministic id of `length` alphanumerics for `id` (same input, same output),
// for templates that insist on a length (Mistral: 9).
std::string fixed_length_id(const std::string& id, size_t length) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  bool alnum = id.size() == length;
  for (char c : id) alnum = alnum && std::isalnum(static_cast<unsigned char>(c));
  if (alnum) return id;
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  std::string out;
  for (size_t i = 0; i < length; ++i) {
    out += kAlphabet[h % 62];
    h = h / 62 ^ (h << 29) ^ (i * 0x9e3779b97f4a7c15ull);
  }
  return out;
}

json normalize_arguments(const json& args, const ChatFormat& f, const std::string& at) {
  json value = args;
  if (args.is_null()) value = json::object();
  if (value.is_string()) {
    json parsed = json::parse(value.get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) value = std::move(parsed);
  }
  if (!value.is_object() && !value.is_string())
    throw Error(at + ".function.arguments must be a JSON object or a string holding one");
  if (f.string_arguments && value.is_object()) return value.dump();
  return value;
}

json normalize_tool_call(const json& call, const ChatFormat& f, const std::string& at) {
  if (!call.is_object() || !call.contains("function") || !call["function"].is_object())
    throw Error(at + " must be an object {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
  const json& fn = call["function"];
  if (!fn.contains("name") || !fn["name"].is_string()) throw Error(at + ".function.name must be a string");
  json out = json::object();
  if (call.contains("id") && call["id"].is_string()) out["id"] = call["id"];
  if (f.tool_call_id_length > 0)
    out["id"] = fixed_length_id(out.value("id", std::string()), f.tool_call_id_length);
  out["type"] = "function";
  json function = json::object();
  function["name"] = fn["name"];
  function["arguments"] = normalize_arguments(fn.value("arguments", json()), f, at);
  out["function"] = std::move(function);
  return out;
}

json normalize_tool_calls(const json& calls, const ChatFormat& f, size_t index) {
  if (!calls.is_array()) throw Error(where(index) + ".tool_calls must be a list");
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i)
    out.push_back(normalize_tool_call(calls[i], f, where(index) + ".tool_calls[" + std::to_string(i) + "]"));
  return out;
}

// Assistant fields: reasoning_content, tool_calls (whose names are noted in `call_names`).
void add_assistant_fields(json& out, const json& m, size_t index, const ChatFormat& f,
                          std::map<std::string, std::string>& call_names) {
  if (m.contains("reasoning_content") && m["reasoning_content"].is_string()) out["reasoning_content"] = m["reasoning_content"];
  if (!out.contains("tool_calls")) return;
  out["tool_calls"] = normalize_tool_calls(m["tool_calls"], f, index);
  for (const json& call : m["tool_calls"])
    if (call.contains("id") && call["id"].is_string())
      call_names[call["id"].get<std::string>()] = call["function"]["name"].get<std::string>();
}

// Tool-result fields: tool_call_id (fixed-length where the template wants it)
// and the called function's name.
void add_tool_fields(json& out, const json& m, size_t index, const ChatFormat& f,
                     const std::map<std::string, std::string>& call_names) {
  const json id_value = m.value("tool_call_id", json());
  if (!id_value.is_string() && !id_value.is_null()) throw Error(where(index) + ".tool_call_id must be a string");
  std::string id = id_value.is_string() ? id_value.get<std::string>() : "";
  auto found = call_names.find(id);
  if (!out.contains("name") && found != call_names.end()) out["name"] = found->second;
  if (f.tool_call_id_length > 0) id = fixed_length_id(id, f.tool_call_id_length);
  if (id_value.is_string() || f.tool_call_id_length > 0) out["tool_call_id"] = id;
}

bool has_tool_calls(const json& m) {
  return m.contains("tool_calls") && !m["tool_calls"].is_null() && !(m["tool_calls"].is_array() && m["tool_calls"].empty());
}

// One normalised message (tool-call names are noted and looked up in `call_names`).
json normalize_message(const json& m, size_t index, const ChatFormat& f, std::map<std::string, std::string>& call_names) {
  if (!m.is_object()) throw Error(where(index) + " must be a JSON object with \"role\" and \"content\"");
  json out = json::object();
  std::string role = normalize_role(m, index);
  out["role"] = role;
  bool calls = role == "assistant" && has_tool_calls(m);
  json content = normalize_content(m.value("content", json()), index);
  if (calls && f.null_content_with_tool_calls && content == "") content = nullptr;
  if (content.is_null() && !(calls && f.null_content_with_tool_calls)) content = "";
  out["content"] = std::move(content);
  if (m.contains("name") && m["name"].is_string()) out["name"] = m["name"];
  if (calls) out["tool_calls"] = nullptr;  // placeholder, filled below (keeps the key order)
  if (role == "assistant") add_assistant_fields(out, m, index, f, call_names);
  if (role == "tool") add_tool_fields(out, m, index, f, call_names);
  return out;
}

// Templates that render one call per assistant turn: a turn with several
// calls becomes several turns (the first keeps the content).
void append_split(json& out, json message, const ChatFormat& f) {
  if (!f.single_call_per_turn || !message.contains("tool_calls") || message["tool_calls"].size() <= 1) {
    out.push_back(std::move(message));
    return;
  }
  json calls = std::move(message["tool_calls"]);
  for (size_t i = 0; i < calls.size(); ++i) {
    json part = message;
    if (i > 0) {
      part["content"] = f.null_content_with_tool_calls ? json() : json("");
      part.erase("reasoning_content");
    }
    part["tool_calls"] = json::array({calls[i]});
    out.push_back(std::move(part));
  }
}

// Several system (or developer) messages at the start become one: templates
// take only the first, or refuse a system message after it (Qwen3.5).
bool merge_leading_system(json& out, const json& message) {
  if (out.size() != 1 || out[0]["role"] != "system" || message["role"] != "system") return false;
  std::string a = out[0]["content"].get<std::string>(), b = message["content"].get<std::string>();
  out[0]["content"] = a.empty() ? b : b.empty() ? a : a + "\n\n" + b;
  return true;
}

}  // namespace

nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages, const ChatFormat& f) {
  if (!messages.is_array()) throw Error("messages must be a list of {\"role\", \"content\"} objects");
  json out = json::array();
  std::map<std::string, std::string> call_names;
  for (size_t i = 0; i < messages.size(); ++i) {
    json message = normalize_message(messages[i], i, f, call_names);
    if (!merge_leading_system(out, message)) append_split(out, std::move(message), f);
  }
  return out;
}

nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages) {
  return normalize_messages(messages, ChatFormat{});
}

}  // namespace volga
