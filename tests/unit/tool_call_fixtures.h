// Shared by the tool-call tests (test_tool_calls.cpp, test_tool_grammar.cpp):
// the real chat templates, a conversation with tool calls, and how to cut
// the assistant's turn ("what the model generated") out of a rendering.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "chat/chat_format.h"
#include "chat/chat_template.h"

#ifndef VOLGA_TESTDATA_DIR
#error "VOLGA_TESTDATA_DIR must be defined by the build"
#endif

namespace volga::tool_call_fixtures {

using json = nlohmann::ordered_json;

inline std::string template_source(const std::string& file) {
  return read_text_file(std::string(VOLGA_TESTDATA_DIR) + "/templates/" + file);
}

// ---- the conversation --------------------------------------------------------

inline json tool_definitions() {
  return json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
      "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "zip": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "search", "description": "Search the web",
      "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "filters": {"type": "object"}}, "required": ["query"]}}},
    {"type": "function", "function": {"name": "set_flags", "description": "Set flags",
      "parameters": {"type": "object", "properties": {
        "enabled": {"type": "boolean"}, "count": {"type": "integer"}, "ratio": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}}, "note": {"type": ["string", "null"]}}}}},
    {"type": "function", "function": {"name": "noop", "description": "Does nothing",
      "parameters": {"type": "object", "properties": {}}}}
  ])");
}

struct Call {
  std::string name;
  json arguments;
};

inline std::vector<Call> sample_calls() {
  return {
      {"get_weather", json::parse(R"({"city": "Москва", "units": "celsius", "zip": "101000"})")},
      {"search", json::parse(R"({"query": "北京 天气 \"quoted\" back\\slash <b>&amp;",
                                 "filters": {"lang": ["zh", "ru"], "limit": 5, "exact": true,
                                             "nested": {"a": null, "b": [1.5, -2, {"c": "d\n e", "path": "C:\\dir\\"}]}}})")},
      {"set_flags", json::parse(R"({"enabled": true, "count": 3, "ratio": 0.25, "tags": ["x", "й"], "note": null})")},
      {"noop", json::object()},
  };
}

// OpenAI shape: arguments as a JSON string, ids "call_…".
inline json assistant_message(const std::vector<Call>& calls, const json& content, const json& reasoning = nullptr) {
  json m = {{"role", "assistant"}, {"content", content}};
  if (!reasoning.is_null()) m["reasoning_content"] = reasoning;
  json list = json::array();
  for (size_t i = 0; i < calls.size(); ++i)
    list.push_back({{"id", "call_" + std::to_string(1000 + i)},
                    {"type", "function"},
                    {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments.dump()}}}});
  if (!list.empty()) m["tool_calls"] = list;
  return m;
}

// ---- cutting the assistant's turn out of a rendered conversation -------------

struct Generated {
  std::string text;
  bool in_reasoning = false;
};

inline const char* const kEndMarkers[] = {"<|im_end|>\n", "<|eot_id|>", "<｜end▁of▁sentence｜>", "<|message_sep|>\n\n", "</s>"};
inline const char* const kRoleHeaders[] = {"<｜Assistant｜>", "<|im_start|>assistant\n"};

inline std::string strip_end_marker(std::string s) {
  for (const char* end : kEndMarkers) {
    std::string e = end;
    if (s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0) return s.substr(0, s.size() - e.size());
  }
  return s;
}

// What the model would have generated for `assistant` after `history`: the
// rendering with the assistant turn minus the prompt (generation prompt
// included when the rendering starts with it, else the role header).
inline Generated generated_turn(const ChatTemplate& t, const ChatFormat& f, const json& history, const json& assistant) {
  json with = history;
  with.push_back(assistant);
  ChatRenderOptions gen, plain;
  plain.add_generation_prompt = false;
  std::string prompt = t.render(normalize_messages(history, f), gen);
  std::string full = t.render(normalize_messages(with, f), plain);
  Generated g;
  if (full.compare(0, prompt.size(), prompt) == 0) {
    g.text = full.substr(prompt.size());
    g.in_reasoning = prompt_opens_reasoning(f, prompt);
  } else {
    std::string base = t.render(normalize_messages(history, f), plain);
    EXPECT_EQ(full.compare(0, base.size(), base), 0) << "the rendering with the assistant turn does not extend the one without";
    g.text = full.substr(base.size());
    for (std::string header : kRoleHeaders)
      if (g.text.compare(0, header.size(), header) == 0) g.text = g.text.substr(header.size());
  }
  g.text = strip_end_marker(g.text);
  return g;
}

// ---- the templates ---------------------------------------------------------------

struct TemplateCase {
  const char* file;
  ToolCallStyle style;
  const char* name;
  bool reasoning;
  size_t max_calls;           // calls one assistant turn renders faithfully
  bool content_with_calls;    // renders content next to calls
  bool renders_reasoning;     // renders reasoning_content of the last turn
};

inline const TemplateCase kTemplates[] = {
    {"Qwen-Qwen2.5-7B-Instruct.jinja", ToolCallStyle::Hermes, "qwen2.5", false, 4, true, false},
    {"Qwen-Qwen3-0.6B.jinja", ToolCallStyle::Hermes, "qwen3", true, 4, true, true},
    {"Qwen-QwQ-32B.jinja", ToolCallStyle::Hermes, "qwq", true, 4, true, false},
    {"Qwen3-Coder.jinja", ToolCallStyle::Qwen3Coder, "qwen3-coder", false, 4, true, false},
    {"Qwen3.5-4B.jinja", ToolCallStyle::Qwen3Coder, "qwen3.5", true, 4, true, true},
    {"deepseek-ai-DeepSeek-V3.1.jinja", ToolCallStyle::DeepSeekV31, "deepseek-v3.1", true, 4, true, false},
    // The Llama distill's template closes the call list after every call but the first.
    {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", ToolCallStyle::DeepSeekV3, "deepseek-r1", true, 2, false, false},
    {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", ToolCallStyle::DeepSeekV3, "deepseek-r1", true, 4, false, false},
    {"GigaChat3-10B-A1.8B.jinja", ToolCallStyle::GigaChat3, "gigachat3", false, 1, true, false},
    {"GigaChat3.1-10B-A1.8B.jinja", ToolCallStyle::GigaChat3, "gigachat3.1", false, 1, true, false},
    {"meta-llama-Llama-3.1-8B-Instruct.jinja", ToolCallStyle::Llama3, "llama3", false, 1, false, false},
    {"meta-llama-Llama-3.2-3B-Instruct.jinja", ToolCallStyle::Llama3, "llama3", false, 1, false, false},
    {"meta-llama-Llama-3.3-70B-Instruct.jinja", ToolCallStyle::Llama3, "llama3", false, 1, false, false},
    {"mistralai-Mistral-Nemo-Instruct-2407.jinja", ToolCallStyle::MistralNemo, "mistral-nemo", false, 4, false, false},
};

inline ChatFormat format_of(const char* file) { return detect_chat_format(template_source(file)); }

// Test names for suites parametrised over kTemplates: the file name without
// its extension, other characters than letters and digits as '_'.
inline std::string template_test_name(const ::testing::TestParamInfo<TemplateCase>& info) {
  std::string name = info.param.file;
  name = name.substr(0, name.rfind('.'));
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

}  // namespace volga::tool_call_fixtures
