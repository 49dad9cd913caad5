// The OpenAI API schema <-> Volga structs: request validation (with the
// offending field named, as OpenAI's 400 errors do) and response/chunk
// building. No I/O here; server.cpp does HTTP.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sampling/sampler.h"
#include "util/error.h"

namespace volga::server {

using Json = nlohmann::ordered_json;

// A request the client got wrong: HTTP `status`, OpenAI error `type`, the field.
class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = "", std::string type = "invalid_request_error",
           std::string code = "")
      : Error(message), status(status), param(std::move(param)), type(std::move(type)), code(std::move(code)) {}
  int status;
  std::string param, type, code;
};

Json error_body(const std::string& message, const std::string& type, const std::string& param = "",
                const std::string& code = "");

struct CompletionParams {
  bool chat = false;
  Json messages;                 // chat
  Json tools;                    // chat, null if none (validated: [{type: function, function: {name, parameters}}])
  // "auto", "none", "required", or the name of the one function to call.
  std::string tool_choice = "auto";
  bool tool_choice_named = false;
  bool parallel_tool_calls = true;
  // Structured output: a JSON Schema (json_object = {"type": "object"}) or a
  // GBNF grammar; at most one of them.
  Json json_schema;              // null if none
  std::string grammar;           // "" if none
  Json template_kwargs = Json::object();  // chat_template_kwargs (e.g. enable_thinking)
  std::string prompt_text;       // completions with a text prompt
  std::vector<int32_t> prompt_ids;  // completions with a token-id prompt
  bool prompt_is_ids = false;
  int32_t max_tokens = -1;       // -1: until the context is full
  SamplingParams sampling;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool echo = false;
};

// Throws ApiError (400) naming the field that is missing or has the wrong type.
CompletionParams parse_completion_request(const Json& body, bool chat);

// The parts shared with the Responses API (throw ApiError naming the field):
// `tools` as OpenAI chat tools, `tool_choice`, and a response_format object.
Json parse_tools(const Json& tools, const std::string& param);
void parse_tool_choice(const Json& choice, const Json& tools, CompletionParams& p, const std::string& param);
void parse_response_format(const Json& format, CompletionParams& p, const std::string& param);

}  // namespace volga::server
