// POST /v1/responses — OpenAI's Responses API over the same generation path
// as chat completions: input items become chat messages (rendered with the
// model's template), output deltas become typed output items and, when
// streaming, the API's typed events (response.created, ...output_item.added,
// ...output_text.delta, ...function_call_arguments.delta, response.completed).
// Responses are kept in memory for `previous_response_id` (ResponseStore)
// unless the request says "store": false.
#include "server/handlers.h"
#include "util/utf8.h"

namespace volga::server {

namespace {

constexpr size_t kMaxStoredResponses = 1000;
constexpr size_t kMaxStoredBytes = size_t(256) << 20;
constexpr auto kStoreLifetime = std::chrono::hours(1);

[[noreturn]] void bad(const std::string& param, const std::string& what) {
  throw ApiError(400, "'" + param + "' " + what, param);
}

std::string text_of(const Json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad(where, "must be a string or a list of content parts");
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    const std::string w = where + "[" + std::to_string(i) + "]";
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) bad(w, "must be an object with a 'type'");
    const std::string type = part["type"];
    if (type != "input_text" && type != "output_text" && type != "text" && type != "summary_text" && type != "reasoning_text")
      bad(w + ".type", "'" + type + "' is not supported (this server takes text parts only)");
    if (!part.contains("text") || !part["text"].is_string()) bad(w + ".text", "must be a string");
    text += part["text"].get<std::string>();
  }
  return text;
}

// Input items -> chat messages (function calls join the assistant turn before them).
void append_items(const Json& items, Json& messages, const std::string& param) {
  for (size_t i = 0; i < items.size(); ++i) {
    const Json& it = items[i];
    const std::string where = param + "[" + std::to_string(i) + "]";
    if (!it.is_object()) bad(where, "must be an object");
    std::string type = it.contains("type") && it["type"].is_string() ? it["type"].get<std::string>() : "message";
    if (type == "message") {
      if (!it.contains("role") || !it["role"].is_string()) bad(where + ".role", "is required");
      std::string role = it["role"];
      if (role != "user" && role != "assistant" && role != "system" && role != "developer")
        bad(where + ".role", "must be user, assistant, system or developer");
      messages.push_back({{"role", role}, {"content", text_of(it.value("content", Json("")), where + ".content")}});
    } else if (type == "function_call") {
      for (const char* k : {"call_id", "name", "arguments"})
        if (!it.contains(k) || !it[k].is_string()) bad(where + "." + k, "is required and must be a string");
      Json call = {{"id", it["call_id"]}, {"type", "function"},
                   {"function", {{"name", it["name"]}, {"arguments", it["arguments"]}}}};
      if (messages.empty() || messages.back()["role"] != "assistant" || !messages.back().contains("tool_calls"))
        messages.push_back({{"role", "assistant"}, {"content", nullptr}, {"tool_calls", Json::array()}});
      messages.back()["tool_calls"].push_back(call);
    } else if (type == "function_call_output") {
      if (!it.contains("call_id") || !it["call_id"].is_string()) bad(where + ".call_id", "is required and must be a string");
      if (!it.contains("output")) bad(where + ".output", "is required");
      std::string out = it["output"].is_string() ? it["output"].get<std::string>() : text_of(it["output"], where + ".output");
      messages.push_back({{"role", "tool"}, {"tool_call_id", it["call_id"]}, {"content", out}});
    } else if (type == "reasoning") {
      continue;  // earlier thoughts: chat templates drop them from history
    } else {
      bad(where + ".type", "'" + type + "' is not supported (message, function_call, function_call_output, reasoning)");
    }
  }
}

Json chat_tools(const Json& tools) {
  if (!tools.is_array()) bad("tools", "must be an array");
  Json out = Json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const Json& t = tools[i];
    const std::string where = "tools[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("type") || !t["type"].is_string()) bad(where, "must be an object with a 'type'");
    if (t["type"] != "function")
      bad(where + ".type", "'" + t["type"].get<std::string>() + "' tools are not supported (only function tools)");
    Json fn = Json::object();
    for (const char* k : {"name", "description", "parameters"})
      if (t.contains(k)) fn[k] = t[k];
    out.push_back({{"type", "function"}, {"function", fn}});
  }
  return parse_tools(out, "tools");
}

struct ResponsesRequest {
  CompletionParams params;
  Json history = Json::array();  // the items of previous_response_id's conversation
  Json input_items;  // this request's input as items (stored for previous_response_id)
  Json echo;         // request fields echoed in the response object
  bool store = true;
};

ResponsesRequest parse_request(ServerState& s, const Json& body) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  ResponsesRequest r;
  // Sampling and limits through the chat-completions parser.
  Json chat = {{"messages", Json::array({{{"role", "user"}, {"content", ""}}})}};
  for (const char* k : {"temperature", "top_p", "top_k", "min_p", "seed", "presence_penalty", "frequency_penalty", "user"})
    if (body.contains(k)) chat[k] = body[k];
  if (body.contains("max_output_tokens")) chat["max_tokens"] = body["max_output_tokens"];
  r.params = parse_completion_request(chat, true);
  CompletionParams& p = r.params;
  if (body.contains("stream") && !body["stream"].is_null() && !body["stream"].is_boolean())
    bad("stream", "must be true or false");
  p.stream = body.contains("stream") && body["stream"].is_boolean() && body["stream"].get<bool>();
  if (body.contains("store") && !body["store"].is_null()) {
    if (!body["store"].is_boolean()) bad("store", "must be true or false");
    r.store = body["store"];
  }

  Json messages = Json::array();
  if (body.contains("instructions") && !body["instructions"].is_null()) {
    if (!body["instructions"].is_string()) bad("instructions", "must be a string");
    messages.push_back({{"role", "system"}, {"content", body["instructions"]}});
  }
  if (body.contains("previous_response_id") && !body["previous_response_id"].is_null()) {
    if (!body["previous_response_id"].is_string()) bad("previous_response_id", "must be a string");
    r.history = s.responses.get(body["previous_response_id"]);
    append_items(r.history, messages, "previous_response_id");
  }
  if (!body.contains("input")) bad("input", "is required");
  const Json& input = body["input"];
  if (input.is_string()) r.input_items = Json::array({{{"type", "message"}, {"role", "user"}, {"content", input}}});
  else if (input.is_array()) r.input_items = input;
  else bad("input", "must be a string or a list of input items");
  append_items(r.input_items, messages, "input");
  if (messages.empty()) bad("input", "holds no message");
  p.messages = messages;

  if (body.contains("tools") && !body["tools"].is_null()) p.tools = chat_tools(body["tools"]);
  if (body.contains("tool_choice") && !body["tool_choice"].is_null())
    parse_tool_choice(body["tool_choice"], p.tools, p, "tool_choice");
  if (body.contains("parallel_tool_calls") && !body["parallel_tool_calls"].is_null()) {
    if (!body["parallel_tool_calls"].is_boolean()) bad("parallel_tool_calls", "must be true or false");
    p.parallel_tool_calls = body["parallel_tool_calls"];
  }
  if (body.contains("text") && !body["text"].is_null()) {
    if (!body["text"].is_object()) bad("text", "must be an object like {\"format\": {...}}");
    if (body["text"].contains("format")) parse_response_format(body["text"]["format"], p, "text.format");
  }
  if (body.contains("reasoning") && body["reasoning"].is_object() && body["reasoning"].contains("effort")) {
    const Json& effort = body["reasoning"]["effort"];
    if (!effort.is_null() && !effort.is_string()) bad("reasoning.effort", "must be a string");
    if (effort.is_string()) p.template_kwargs["enable_thinking"] = effort != "none" && effort != "minimal";
  }
  r.echo = {{"instructions", body.value("instructions", Json(nullptr))},
            {"max_output_tokens", body.value("max_output_tokens", Json(nullptr))},
            {"parallel_tool_calls", p.parallel_tool_calls},
            {"previous_response_id", body.value("previous_response_id", Json(nullptr))},
            {"temperature", p.sampling.temperature},
            {"top_p", p.sampling.top_p},
            {"tool_choice", body.value("tool_choice", Json("auto"))},
            {"tools", body.value("tools", Json::array())},
            {"text", body.value("text", Json{{"format", {{"type", "text"}}}})},
            {"store", r.store},
            {"metadata", body.value("metadata", Json::object())}};
  return r;
}

// Output deltas -> output items, and the typed stream events on the way.
class ResponseBuilder {
 public:
  ResponseBuilder(std::string id, int64_t created, std::string model, Json echo)
      : id_(std::move(id)), created_(created), model_(std::move(model)), echo_(std::move(echo)) {}

  Json response(const std::string& status, int64_t in, int64_t out, int64_t reasoning, const std::string& finish,
               int64_t cached = 0) const {
    Json r = {{"id", id_}, {"object", "response"}, {"created_at", created_}, {"status", status}, {"error", nullptr},
              {"incomplete_details", nullptr}, {"model", model_}, {"output", items_}};
    for (auto& [k, v] : echo_.items()) r[k] = v;
    if (status == "incomplete") r["incomplete_details"] = {{"reason", finish == "length" ? "max_output_tokens" : finish}};
    if (status != "in_progress")
      r["usage"] = {{"input_tokens", in}, {"input_tokens_details", {{"cached_tokens", cached}}}, {"output_tokens", out},
                    {"output_tokens_details", {{"reasoning_tokens", reasoning}}}, {"total_tokens", in + out}};
    else
      r["usage"] = nullptr;
    return r;
  }
  const Json& items() const { return items_; }

  void add(const OutputDelta& d, std::vector<Json>& events) {
    using K = OutputDelta::Kind;
    if (d.kind == K::Content) {
      if (open_ != "message") open_item("message", events);
      items_.back()["content"][0]["text"] = items_.back()["content"][0]["text"].get<std::string>() + d.text;
      events.push_back({{"type", "response.output_text.delta"}, {"item_id", items_.back()["id"]}, {"output_index", index()},
                        {"content_index", 0}, {"delta", d.text}, {"logprobs", Json::array()}});
    } else if (d.kind == K::Reasoning) {
      if (open_ != "reasoning") open_item("reasoning", events);
      items_.back()["content"][0]["text"] = items_.back()["content"][0]["text"].get<std::string>() + d.text;
      events.push_back({{"type", "response.reasoning_text.delta"}, {"item_id", items_.back()["id"]},
                        {"output_index", index()}, {"content_index", 0}, {"delta", d.text}});
    } else if (d.kind == K::ToolCallStart) {
      close(events);
      items_.push_back({{"type", "function_call"}, {"id", random_id("fc_")}, {"call_id", d.id}, {"name", d.name},
                        {"arguments", ""}, {"status", "in_progress"}});
      open_ = "function_call";
      events.push_back({{"type", "response.output_item.added"}, {"output_index", index()}, {"item", items_.back()}});
    } else if (d.kind == K::ToolCallArguments && open_ == "function_call") {
      items_.back()["arguments"] = items_.back()["arguments"].get<std::string>() + d.text;
      events.push_back({{"type", "response.function_call_arguments.delta"}, {"item_id", items_.back()["id"]},
                        {"output_index", index()}, {"delta", d.text}});
    }
  }

  // `cut_off`: generation stopped at max_output_tokens inside this item.
  void close(std::vector<Json>& events, bool cut_off = false) {
    if (open_.empty()) return;
    Json& it = items_.back();
    it["status"] = cut_off ? "incomplete" : "completed";
    if (open_ == "message") {
      const Json& part = it["content"][0];
      events.push_back({{"type", "response.output_text.done"}, {"item_id", it["id"]}, {"output_index", index()},
                        {"content_index", 0}, {"text", part["text"]}, {"logprobs", Json::array()}});
      events.push_back({{"type", "response.content_part.done"}, {"item_id", it["id"]}, {"output_index", index()},
                        {"content_index", 0}, {"part", part}});
    } else if (open_ == "reasoning") {
      events.push_back({{"type", "response.reasoning_text.done"}, {"item_id", it["id"]}, {"output_index", index()},
                        {"content_index", 0}, {"text", it["content"][0]["text"]}});
    } else if (open_ == "function_call") {
      events.push_back({{"type", "response.function_call_arguments.done"}, {"item_id", it["id"]},
                        {"output_index", index()}, {"arguments", it["arguments"]}});
    }
    if (open_ == "reasoning") it.erase("status");
    events.push_back({{"type", "response.output_item.done"}, {"output_index", index()}, {"item", it}});
    open_.clear();
  }

 private:
  int64_t index() const { return static_cast<int64_t>(items_.size()) - 1; }
  void open_item(const std::string& kind, std::vector<Json>& events) {
    close(events);
    if (kind == "message") {
      items_.push_back({{"type", "message"}, {"id", random_id("msg_")}, {"status", "in_progress"}, {"role", "assistant"},
                        {"content", Json::array({{{"type", "output_text"}, {"text", ""}, {"annotations", Json::array()}}})}});
      events.push_back({{"type", "response.output_item.added"}, {"output_index", index()},
                        {"item", {{"type", "message"}, {"id", items_.back()["id"]}, {"status", "in_progress"},
                                  {"role", "assistant"}, {"content", Json::array()}}}});
      events.push_back({{"type", "response.content_part.added"}, {"item_id", items_.back()["id"]}, {"output_index", index()},
                        {"content_index", 0}, {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", Json::array()}}}});
    } else {
      items_.push_back({{"type", "reasoning"}, {"id", random_id("rs_")}, {"summary", Json::array()},
                        {"content", Json::array({{{"type", "reasoning_text"}, {"text", ""}}})}});
      events.push_back({{"type", "response.output_item.added"}, {"output_index", index()},
                        {"item", {{"type", "reasoning"}, {"id", items_.back()["id"]}, {"summary", Json::array()}}}});
    }
    open_ = kind;
  }

  std::string id_;
  int64_t created_;
  std::string model_;
  Json echo_;
  Json items_ = Json::array();
  std::string open_;  // kind of the item still receiving deltas
};

std::string event_text(Json ev, int64_t& seq) {
  ev["sequence_number"] = seq++;
  const std::string type = ev["type"];
  return "event: " + type + "\ndata: " + ev.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

// One SSE stream of typed events; returns the status it ended with (499: the client went away).
template <class Finish>
int stream_response(httplib::DataSink& sink, ResultStream& rs, ResponseBuilder& builder, Finish& finish, int64_t n_in) {
  int64_t seq = 0;
  auto write = [&](const Json& ev) {
    std::string t = event_text(ev, seq);
    return sink.write(t.data(), t.size());
  };
  Json start = builder.response("in_progress", n_in, 0, 0, "");
  bool ok = write({{"type", "response.created"}, {"response", start}}) &&
            write({{"type", "response.in_progress"}, {"response", start}});
  while (ok && !rs.done()) {
    std::vector<OutputDelta> deltas;
    if (!rs.next(deltas, nullptr, 100)) {
      if (!sink.is_writable()) ok = false;
      continue;
    }
    std::vector<Json> events;
    for (auto& d : deltas) builder.add(d, events);
    for (auto& ev : events) ok = ok && write(ev);
  }
  if (!ok) return 499;
  int status = 200;
  if (!rs.error().empty()) {
    status = rs.error_status();
    const Json e = rs.error_json()["error"];
    write({{"type", "error"}, {"code", status == 503 ? "service_unavailable" : "server_error"}, {"message", e["message"]},
           {"param", nullptr}});
  } else {
    std::vector<Json> events;
    Json final_response = finish(events);
    for (auto& ev : events) write(ev);
    const std::string type = final_response["status"] == "completed" ? "response.completed" : "response.incomplete";
    write({{"type", type}, {"response", final_response}});
  }
  sink.done();
  return status;
}

}  // namespace

void ResponseStore::put(const std::string& id, Json items) {
  const size_t bytes = items.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size();
  std::lock_guard<std::mutex> lock(mutex_);
  entries_[id] = {std::move(items), std::chrono::steady_clock::now(), bytes};
  bytes_ += bytes;
  order_.push_back(id);
  // Oldest first: beyond the count, the byte budget or the lifetime.
  while (!order_.empty() && (order_.size() > kMaxStoredResponses || bytes_ > kMaxStoredBytes ||
                             std::chrono::steady_clock::now() - entries_[order_.front()].at > kStoreLifetime)) {
    bytes_ -= entries_[order_.front()].bytes;
    entries_.erase(order_.front());
    order_.pop_front();
  }
}

Json ResponseStore::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end() || std::chrono::steady_clock::now() - it->second.at > kStoreLifetime)
    throw ApiError(400, "previous response '" + id + "' is not known to this server (responses are kept in memory for "
                   "an hour, the last " + std::to_string(kMaxStoredResponses) + " within 256 MiB, and only when 'store' is not false)",
                   "previous_response_id", "invalid_request_error", "previous_response_not_found");
  return it->second.items;
}

void handle_responses(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res) {
  Json j;
  if (!parse_body(s, req, body, res, j)) return;
  ResponsesRequest rr;
  PreparedRequest prep;
  std::shared_ptr<RequestHandle> handle;
  std::shared_ptr<ResultStream> rs;
  try {
    rr = parse_request(s, j);
    prep = prepare(s.model, rr.params);
    handle = submit(s, prep);
    rs = std::make_shared<ResultStream>(s.model, rr.params, prep, handle);
  } catch (const std::exception& e) {
    if (handle) handle->cancel();
    answer_error(s, req, res, e);
    return;
  }
  s.metrics.add_prompt_tokens(prep.prompt_tokens);
  auto builder = std::make_shared<ResponseBuilder>(random_id("resp_"), unix_time(), s.name, rr.echo);
  const int64_t n_in = prep.prompt_tokens;
  // The conversation so far, as stored for previous_response_id: past
  // reasoning items are left out (they never reach the prompt).
  Json items = Json::array();
  for (const Json* list : {&rr.history, &rr.input_items})
    for (auto& it : *list)
      if (!(it.is_object() && it.value("type", Json("")) == "reasoning")) items.push_back(it);
  const bool store = rr.store;
  // Ends the response: its final object, stored for previous_response_id.
  auto finish = [&s, rs, builder, n_in, items, store](std::vector<Json>& events) {
    const bool cut_off = rs->finish_reason() == "length";
    builder->close(events, cut_off);
    Json r = builder->response(cut_off ? "incomplete" : "completed", n_in, rs->completion_tokens(),
                               rs->reasoning_tokens(), rs->finish_reason(), rs->cached_tokens());
    if (store) {
      Json all = items;
      for (auto& it : builder->items())
        if (it.value("type", Json("")) != "reasoning") all.push_back(it);
      s.responses.put(r["id"], all);
    }
    return r;
  };
  auto scope = std::make_shared<RequestScope>(s, req.method, req.path, rs, n_in);
  if (!rr.params.stream) {
    std::vector<OutputDelta> deltas;
    while (!rs->done()) rs->next(deltas, nullptr, 1000);
    if (!rs->error().empty()) {
      send_json(res, rs->error_status(), rs->error_json());
      scope->finish(rs->error_status());
      return;
    }
    std::vector<Json> events;
    for (auto& d : deltas) builder->add(d, events);
    send_json(res, 200, finish(events));
    scope->finish(200);
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [rs, builder, finish, n_in, scope](size_t, httplib::DataSink& sink) {
    int status = 500;
    try {
      status = stream_response(sink, *rs, *builder, finish, n_in);
    } catch (const std::exception&) {
    }
    scope->finish(status);
    return status != 499;
  });
}

}  // namespace volga::server
