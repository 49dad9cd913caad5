#include "server/openai_api.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>

namespace volga::server {

Json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  Json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return Json{{"error", e}};
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& what) {
  throw ApiError(400, "'" + param + "' " + what, param);
}

const Json* field(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number(const Json& body, const char* name, double def, double lo, double hi) {
  const Json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number()) bad(name, "must be a number");
  double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad(name, "must be between " + Json(lo).dump() + " and " + Json(hi).dump() + ", got " + v->dump());
  return x;
}

int64_t integer(const Json& body, const char* name, int64_t def, int64_t lo, int64_t hi) {
  const Json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number_integer() && !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>()))
    bad(name, "must be an integer");
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) bad(name, "is out of range");
    return static_cast<int64_t>(d);
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) bad(name, "is out of range");
  int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) bad(name, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return x;
}

bool boolean(const Json& body, const char* name, bool def) {
  const Json* v = field(body, name);
  if (!v) return def;
  if (!v->is_boolean()) bad(name, "must be true or false");
  return v->get<bool>();
}

}  // namespace

Json parse_tools(const Json& tools, const std::string& param) {
  if (!tools.is_array()) bad(param, "must be an array of {\"type\": \"function\", \"function\": {...}} objects");
  Json out = Json::array();
  std::vector<std::string> names;
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string where = param + "[" + std::to_string(i) + "]";
    const Json& t = tools[i];
    if (!t.is_object()) bad(where, "must be an object");
    auto type = t.find("type");
    if (type != t.end() && (!type->is_string() || *type != "function"))
      bad(where + ".type", "must be \"function\" (the only tool type this server runs)");
    auto fn = t.find("function");
    if (fn == t.end() || !fn->is_object()) bad(where + ".function", "is required and must be an object");
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string() || name->get<std::string>().empty())
      bad(where + ".function.name", "is required and must be a non-empty string");
    for (char c : name->get<std::string>())
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
        bad(where + ".function.name", "may hold only letters, digits, '_', '-' and '.'");
    if (std::find(names.begin(), names.end(), name->get<std::string>()) != names.end())
      bad(where + ".function.name", "repeats the tool name '" + name->get<std::string>() + "'");
    names.push_back(name->get<std::string>());
    auto params = fn->find("parameters");
    if (params != fn->end() && !params->is_null() && !params->is_object()) bad(where + ".function.parameters", "must be a JSON Schema object");
    auto desc = fn->find("description");
    if (desc != fn->end() && !desc->is_null() && !desc->is_string()) bad(where + ".function.description", "must be a string");
    Json clean = {{"type", "function"}, {"function", *fn}};
    if (params == fn->end() || params->is_null())
      clean["function"]["parameters"] = Json{{"type", "object"}, {"properties", Json::object()}};
    out.push_back(clean);
  }
  return out;
}

void parse_tool_choice(const Json& choice, const Json& tools, CompletionParams& p, const std::string& param) {
  const bool have_tools = tools.is_array() && !tools.empty();
  if (choice.is_string()) {
    std::string c = choice.get<std::string>();
    if (c != "auto" && c != "none" && c != "required")
      bad(param, "must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    if (c == "required" && !have_tools) bad(param, "is \"required\" but the request has no tools");
    p.tool_choice = c;
    p.tool_choice_named = false;
    return;
  }
  if (!choice.is_object()) bad(param, "must be a string or an object");
  const Json* fn = field(choice, "function");
  const Json* name = fn && fn->is_object() ? field(*fn, "name") : field(choice, "name");  // Responses API: {type, name}
  if (!name || !name->is_string()) bad(param, "must name a function: {\"type\": \"function\", \"function\": {\"name\": ...}}");
  if (!have_tools) bad(param, "names a function but the request has no tools");
  bool found = false;
  for (const Json& t : tools) found |= t["function"]["name"] == *name;
  if (!found) bad(param, "names '" + name->get<std::string>() + "', which is not one of the request's tools");
  p.tool_choice = name->get<std::string>();
  p.tool_choice_named = true;
}

void parse_response_format(const Json& format, CompletionParams& p, const std::string& param) {
  if (!format.is_object()) bad(param, "must be an object like {\"type\": \"json_schema\", \"json_schema\": {...}}");
  const Json* type = field(format, "type");
  if (!type || !type->is_string()) bad(param + ".type", "is required: \"text\", \"json_object\" or \"json_schema\"");
  const std::string t = type->get<std::string>();
  if (t == "text") return;
  if (t == "json_object") {
    const Json* schema = field(format, "schema");  // llama.cpp's extension: a schema beside json_object
    if (schema && !schema->is_object() && !schema->is_boolean()) bad(param + ".schema", "must be a JSON Schema object");
    p.json_schema = schema ? *schema : Json{{"type", "object"}};
    return;
  }
  if (t != "json_schema") bad(param + ".type", "must be \"text\", \"json_object\" or \"json_schema\", got \"" + t + "\"");
  // Chat Completions nests the schema in "json_schema"; the Responses API puts it beside "type".
  const Json* holder = field(format, "json_schema");
  std::string where = param + ".json_schema";
  if (!holder) holder = &format, where = param;
  if (!holder->is_object()) bad(where, "must be an object with a \"schema\"");
  const Json* schema = field(*holder, "schema");
  if (!schema || (!schema->is_object() && !schema->is_boolean())) bad(where + ".schema", "is required and must be a JSON Schema object");
  const Json* name = field(*holder, "name");
  if (name && !name->is_string()) bad(where + ".name", "must be a string");
  const Json* strict = field(*holder, "strict");
  if (strict && !strict->is_boolean()) bad(where + ".strict", "must be true or false");
  p.json_schema = *schema;  // enforced whether or not "strict" is set
}

CompletionParams parse_completion_request(const Json& body, bool chat) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  CompletionParams p;
  p.chat = chat;
  if (chat) {
    const Json* m = field(body, "messages");
    if (!m) bad("messages", "is required");
    if (!m->is_array() || m->empty()) bad("messages", "must be a non-empty array of messages");
    for (size_t i = 0; i < m->size(); ++i) {
      const Json& msg = (*m)[i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!msg.is_object()) bad(where, "must be an object with 'role' and 'content'");
      auto role = msg.find("role");
      if (role == msg.end() || !role->is_string()) bad(where + ".role", "is required and must be a string");
      auto content = msg.find("content");
      if (content != msg.end() && !content->is_null() && !content->is_string() && !content->is_array())
        bad(where + ".content", "must be a string or an array of content parts");
      if (content != msg.end() && content->is_array())
        for (const Json& part : *content)
          if (!part.is_object()) bad(where + ".content", "parts must be objects like {\"type\": \"text\", \"text\": ...}");
    }
    p.messages = *m;
    if (const Json* t = field(body, "tools")) p.tools = parse_tools(*t, "tools");
    if (const Json* c = field(body, "tool_choice")) parse_tool_choice(*c, p.tools, p, "tool_choice");
    p.parallel_tool_calls = boolean(body, "parallel_tool_calls", true);
    if (const Json* k = field(body, "chat_template_kwargs")) {
      if (!k->is_object()) bad("chat_template_kwargs", "must be an object");
      p.template_kwargs = *k;
    }
  } else {
    const Json* pr = field(body, "prompt");
    if (!pr) bad("prompt", "is required");
    if (pr->is_string()) {
      p.prompt_text = pr->get<std::string>();
    } else if (pr->is_array() && pr->size() == 1 && (*pr)[0].is_string()) {
      p.prompt_text = (*pr)[0].get<std::string>();
    } else if (pr->is_array() && !pr->empty() && (*pr)[0].is_number_integer()) {
      p.prompt_is_ids = true;
      for (const Json& id : *pr) {
        if (!id.is_number_integer()) bad("prompt", "must be a string or an array of token ids");
        int64_t v = id.get<int64_t>();
        if (v < 0 || v > INT32_MAX) bad("prompt", "contains an invalid token id");
        p.prompt_ids.push_back(static_cast<int32_t>(v));
      }
    } else {
      bad("prompt", "must be a string (batches of several prompts are not supported; send one request each)");
    }
    p.echo = boolean(body, "echo", false);
    if (const Json* g = field(body, "grammar")) {
      if (!g->is_string() || g->get<std::string>().empty()) bad("grammar", "must be a non-empty GBNF grammar string");
      p.grammar = g->get<std::string>();
    }
    if (const Json* js = field(body, "json_schema")) {
      if (!js->is_object() && !js->is_boolean()) bad("json_schema", "must be a JSON Schema object");
      if (!p.grammar.empty()) bad("json_schema", "cannot be combined with 'grammar'");
      p.json_schema = *js;
    }
  }
  if (const Json* rf = field(body, "response_format")) {
    if (!p.grammar.empty() || !p.json_schema.is_null()) bad("response_format", "cannot be combined with 'grammar' or 'json_schema'");
    parse_response_format(*rf, p, "response_format");
  }
  if (const Json* mt = field(body, "max_completion_tokens"))
    p.max_tokens = static_cast<int32_t>(integer(body, "max_completion_tokens", -1, 1, INT32_MAX)), (void)mt;
  else
    p.max_tokens = static_cast<int32_t>(integer(body, "max_tokens", -1, 1, INT32_MAX));
  // OpenAI's defaults: temperature 1, top_p 1, no top-k or min-p.
  p.sampling.temperature = static_cast<float>(number(body, "temperature", 1.0, 0.0, 2.0));
  p.sampling.top_p = static_cast<float>(number(body, "top_p", 1.0, 0.0, 1.0));
  if (p.sampling.top_p <= 0) bad("top_p", "must be greater than 0");
  p.sampling.top_k = static_cast<int32_t>(integer(body, "top_k", 0, -1, INT32_MAX));
  p.sampling.min_p = static_cast<float>(number(body, "min_p", 0.0, 0.0, 1.0));
  p.sampling.presence_penalty = static_cast<float>(number(body, "presence_penalty", 0.0, -2.0, 2.0));
  p.sampling.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", 0.0, -2.0, 2.0));
  p.sampling.repeat_penalty = static_cast<float>(number(body, "repetition_penalty", 1.0, 0.01, 10.0));
  if (const Json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) bad("seed", "must be an integer");
    p.sampling.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
  } else {
    p.sampling.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  if (integer(body, "n", 1, 1, 1) != 1) bad("n", "must be 1");
  if (const Json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      p.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > 16) bad("stop", "may hold at most 16 sequences");
      for (const Json& s : *stop) {
        if (!s.is_string()) bad("stop", "must be a string or an array of strings");
        p.stop.push_back(s.get<std::string>());
      }
    } else {
      bad("stop", "must be a string or an array of strings");
    }
    for (auto& s : p.stop)
      if (s.empty()) bad("stop", "sequences must not be empty");
  }
  p.stream = boolean(body, "stream", false);
  if (const Json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "must be an object");
    p.include_usage = boolean(*so, "include_usage", false);
  }
  if (chat) {
    p.logprobs = boolean(body, "logprobs", false);
    p.top_logprobs = static_cast<int32_t>(integer(body, "top_logprobs", 0, 0, 20));
    if (p.top_logprobs > 0 && !p.logprobs) bad("top_logprobs", "requires 'logprobs': true");
  } else if (const Json* lp = field(body, "logprobs")) {
    if (!lp->is_number_integer()) bad("logprobs", "must be an integer between 0 and 5 for completions");
    p.logprobs = true;
    p.top_logprobs = static_cast<int32_t>(integer(body, "logprobs", 0, 0, 5));
  }
  if (const Json* user = field(body, "user"))
    if (!user->is_string()) bad("user", "must be a string");
  return p;
}

}  // namespace volga::server
