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
  Json tools;                    // chat, null if none
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

}  // namespace volga::server
