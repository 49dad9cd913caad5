#include "chat/chat_format.h"

#include <cctype>

namespace volga {

namespace {

bool has(std::string_view s, std::string_view needle) { return s.find(needle) != std::string_view::npos; }

// "tool_call.id|length != 9" (Mistral) -> 9; 0 when the template has no such check.
size_t required_id_length(std::string_view src) {
  for (std::string_view probe : {"id|length != ", "id | length != "}) {
    size_t at = src.find(probe);
    if (at == std::string_view::npos) continue;
    size_t n = 0;
    for (size_t i = at + probe.size(); i < src.size() && std::isdigit(static_cast<unsigned char>(src[i])); ++i)
      n = n * 10 + static_cast<size_t>(src[i] - '0');
    if (n > 0) return n;
  }
  return 0;
}

void detect_style(std::string_view src, ChatFormat& f) {
  using S = ToolCallStyle;
  if (has(src, "<｜tool▁calls▁begin｜>") || has(src, "<｜tool▁call▁begin｜>")) {
    bool fenced = has(src, "```json");
    f.tools = fenced ? S::DeepSeekV3 : S::DeepSeekV31;
    f.name = fenced ? (f.reasoning ? "deepseek-r1" : "deepseek-v3") : "deepseek-v3.1";
  } else if (has(src, "<function=") && has(src, "<parameter=")) {
    f.tools = S::Qwen3Coder;
    f.name = f.reasoning ? "qwen3.5" : "qwen3-coder";
  } else if (has(src, "<tool_call>")) {
    f.tools = S::Hermes;
    f.name = !f.reasoning ? "qwen2.5" : has(src, "assistant\\n<think>\\n'") ? "qwq" : "qwen3";
  } else if (has(src, "<|function_call|>")) {
    f.tools = S::GigaChat3;
    f.name = "gigachat3.1";
  } else if (has(src, "function call") && has(src, "<|role_sep|>")) {
    f.tools = S::GigaChat3;
    f.name = "gigachat3";
  } else if (has(src, "[TOOL_CALLS]")) {
    f.tools = S::MistralNemo;
    f.name = "mistral-nemo";
  } else if (has(src, "<|start_header_id|>")) {
    bool calls = has(src, "tool_call") || has(src, "<|python_tag|>");
    f.tools = calls ? S::Llama3 : S::None;
    f.name = "llama3";
  } else {
    f.tools = S::None;
    f.name = has(src, "<|im_start|>") ? "chatml" : "none";
  }
}

}  // namespace

const char* tool_call_style_name(ToolCallStyle style) {
  switch (style) {
    case ToolCallStyle::None: return "none";
    case ToolCallStyle::Hermes: return "hermes";
    case ToolCallStyle::Qwen3Coder: return "qwen3-coder";
    case ToolCallStyle::DeepSeekV3: return "deepseek-v3";
    case ToolCallStyle::DeepSeekV31: return "deepseek-v3.1";
    case ToolCallStyle::GigaChat3: return "gigachat3";
    case ToolCallStyle::Llama3: return "llama3";
    case ToolCallStyle::MistralNemo: return "mistral-nemo";
  }
  return "none";
}

ChatFormat detect_chat_format(std::string_view src) {
  ChatFormat f;
  f.reasoning = has(src, f.think_open) && has(src, f.think_close);
  detect_style(src, f);
  // A template that tests for null content renders tool-call turns with it (R1 distills).
  f.null_content_with_tool_calls = has(src, "message['content'] is none") || has(src, "message.content is none") ||
                                   has(src, "message['content'] is not none") || has(src, "message.content is not none");
  f.string_arguments = has(src, "['arguments'] +") || has(src, ".arguments +");
  f.tool_call_id_length = required_id_length(src);
  f.single_call_per_turn = f.tools == ToolCallStyle::Llama3 || f.tools == ToolCallStyle::GigaChat3;
  return f;
}

bool prompt_opens_reasoning(const ChatFormat& f, std::string_view prompt) {
  if (!f.reasoning || f.think_open.empty()) return false;
  size_t end = prompt.size();
  while (end > 0 && std::isspace(static_cast<unsigned char>(prompt[end - 1]))) --end;
  std::string_view trimmed = prompt.substr(0, end);
  return trimmed.size() >= f.think_open.size() &&
         trimmed.substr(trimmed.size() - f.think_open.size()) == f.think_open;
}

}  // namespace volga
