// ChatFormat — what a model's chat template says about the shape of its
// output (tool-call markup, reasoning blocks) and about the shape of the
// messages it expects, detected once from the template's Jinja source.
//
// normalize_messages() turns an OpenAI request's `messages` into what the
// template can render: text content parts joined, "developer" -> "system",
// tool-call arguments parsed into objects, and the per-template quirks the
// format records (null content, string arguments, 9-character ids, one call
// per assistant turn).
//
// Everything here is a pure function of its arguments; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace volga {

enum class ToolCallStyle {
  None,
  Hermes,       // Qwen2.5 / Qwen3 / QwQ: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
  Qwen3Coder,   // Qwen3-Coder / Qwen3.5: <tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>...
  DeepSeekV3,   // V3 and R1 distills: <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```
  DeepSeekV31,  // <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>
  GigaChat3,    // 3.0: "function call<|role_sep|>\n{json}", 3.1: "<|function_call|>{json}"
  Llama3,       // bare {"name": ..., "parameters": {...}} or <|python_tag|>
  MistralNemo,  // [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}]
};

const char* tool_call_style_name(ToolCallStyle style);

struct ChatFormat {
  ToolCallStyle tools = ToolCallStyle::None;
  // Short name for logs and `volga info` ("qwen3-coder", "deepseek-v3.1",
  // "gigachat3.1"...). Also tells variants of one style apart (GigaChat 3 / 3.1).
  std::string name = "none";
  bool reasoning = false;  // the template knows reasoning blocks
  std::string think_open = "<think>", think_close = "</think>";

  // How the template wants an assistant turn with tool calls shaped
  // (normalize_messages applies these):
  bool null_content_with_tool_calls = false;  // wants null content next to calls (R1 distills test for it)
  bool string_arguments = false;              // concatenates `arguments` as text (R1 distill Llama)
  size_t tool_call_id_length = 0;             // ids must be exactly this many alphanumerics (Mistral: 9)
  bool single_call_per_turn = false;          // one call per assistant message (Llama 3, GigaChat)
};

// Detects the format from distinctive text of the Jinja source. Unknown
// templates (and ChatML) give ToolCallStyle::None.
ChatFormat detect_chat_format(std::string_view template_source);

// True when the rendered prompt leaves the model inside an opened reasoning
// block (ends with think_open, maybe followed by whitespace).
bool prompt_opens_reasoning(const ChatFormat& f, std::string_view rendered_prompt);

// OpenAI request messages -> what chat templates expect. Throws volga::Error
// naming the message (by index) that is malformed: not an object, a role that
// is not one of system/developer/user/assistant/tool, content that is not a
// string, null or a list of {"type": "text"} parts, tool_calls that are not a
// list of {"function": {"name", "arguments"}} objects.
// The one-argument form applies no template quirks (assistant content null ->
// "", arguments as objects); servers should pass the model's format.
nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages);
nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages, const ChatFormat& f);

}  // namespace volga
