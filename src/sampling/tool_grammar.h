// Forced tool calls (tool_choice "required" or a named function): a GBNF
// grammar (sampling/grammar.h) whose every sentence is one call — or, when
// `parallel`, one or more — written the way the model's family writes calls
// (chat/chat_format.h), with arguments valid against each tool's
// `function.parameters` JSON Schema (sampling/json_schema.h). The output
// parser (chat/output_parser.h) reads every sentence back into calls.
//
// Families whose templates render one call per turn (Llama 3, GigaChat) get
// one call even when `parallel`. Qwen3-Coder writes string parameters as raw
// text (any text without "</parameter>"); string parameters with pattern,
// format or length limits cannot be enforced there and are refused.
//
// Pure function; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "chat/chat_format.h"

namespace volga {

// `tools`: the request's OpenAI tool list ([{"type": "function", "function":
// {"name", "parameters"}}]). `only_name` empty = any of the tools.
// `reasoning_first`: the sentence starts with free reasoning text (without
// f.think_close), then f.think_close, then the call(s).
// Throws volga::Error for a format without tool calls, a malformed tool list
// or an unknown `only_name`; SchemaError (a volga::Error) for a schema that
// cannot be enforced.
std::string tool_call_grammar(const ChatFormat& f, const nlohmann::ordered_json& tools, const std::string& only_name,
                              bool parallel, bool reasoning_first);

}  // namespace volga
