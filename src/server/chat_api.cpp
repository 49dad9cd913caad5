// POST /v1/chat/completions and /v1/completions: OpenAI's response and
// chunk shapes over a ResultStream.
#include <random>

#include "server/handlers.h"
#include "util/utf8.h"

namespace volga::server {

namespace {

struct Reply {
  std::string id, object;
  int64_t created;
  std::string model;
  bool chat;
  bool include_usage;
};

Json usage_json(int64_t prompt, const ResultStream& rs, bool chat) {
  const int64_t completion = rs.completion_tokens();
  Json u = {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
  if (chat) u["completion_tokens_details"] = {{"reasoning_tokens", rs.reasoning_tokens()}};
  return u;
}

// The chat delta of one output piece.
Json chat_delta(const OutputDelta& d) {
  switch (d.kind) {
    case OutputDelta::Kind::Content: return {{"content", d.text}};
    case OutputDelta::Kind::Reasoning: return {{"reasoning_content", d.text}};
    case OutputDelta::Kind::ToolCallStart:
      return {{"tool_calls", Json::array({{{"index", d.index}, {"id", d.id}, {"type", "function"},
                                           {"function", {{"name", d.name}, {"arguments", ""}}}}})}};
    case OutputDelta::Kind::ToolCallArguments:
      return {{"tool_calls", Json::array({{{"index", d.index}, {"function", {{"arguments", d.text}}}}})}};
  }
  return Json::object();
}

std::string sse(const Json& j) {
  return "data: " + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

std::string chunk(const Reply& r, Json delta_or_text, const Json& logprobs, const Json& finish) {
  Json choice = {{"index", 0}};
  if (r.chat) {
    choice["delta"] = std::move(delta_or_text);
    choice["logprobs"] = logprobs.is_null() ? Json(nullptr) : Json{{"content", logprobs}};
  } else {
    choice["text"] = std::move(delta_or_text);
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = finish;
  Json c = {{"id", r.id}, {"object", r.object}, {"created", r.created}, {"model", r.model}, {"choices", Json::array({choice})}};
  if (r.include_usage) c["usage"] = nullptr;
  return sse(c);
}

Json completion_logprobs(const Json& lps) {
  Json tokens = Json::array(), token_lps = Json::array(), tops = Json::array();
  for (auto& e : lps) {
    tokens.push_back(e["token"]);
    token_lps.push_back(e["logprob"]);
    Json m = Json::object();
    for (auto& t : e["top_logprobs"]) m[t["token"].get<std::string>()] = t["logprob"];
    tops.push_back(m);
  }
  return {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}};
}

Json chat_message(const ResultStream& rs) {
  Json msg = {{"role", "assistant"}};
  const bool calls = !rs.tool_calls().empty();
  msg["content"] = calls && rs.content().empty() ? Json(nullptr) : Json(sanitize_utf8(rs.content()));
  if (!rs.reasoning().empty()) msg["reasoning_content"] = sanitize_utf8(rs.reasoning());
  if (calls) {
    Json list = Json::array();
    for (auto& c : rs.tool_calls())
      list.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    msg["tool_calls"] = list;
  }
  return msg;
}

void respond_whole(ServerState& s, const httplib::Request& req, httplib::Response& res, const CompletionParams& p,
                   const Reply& r, ResultStream& rs, int64_t prompt_tokens) {
  Json lps = Json::array();
  std::vector<OutputDelta> deltas;
  while (!rs.done()) rs.next(deltas, p.logprobs ? &lps : nullptr, 1000);
  --s.active;
  if (!rs.error().empty()) {
    send_json(res, 500, error_body("generation failed: " + rs.error(), "server_error"));
    s.metrics.count_request(500);
    log_request(s, req.method, req.path, 500, prompt_tokens, rs.completion_tokens(), rs.seconds());
    return;
  }
  Json choice = {{"index", 0}};
  if (r.chat) {
    choice["message"] = chat_message(rs);
    choice["logprobs"] = p.logprobs ? Json{{"content", lps}} : Json(nullptr);
  } else {
    choice["text"] = sanitize_utf8((p.echo ? p.prompt_text : "") + rs.content());
    choice["logprobs"] = p.logprobs ? completion_logprobs(lps) : Json(nullptr);
  }
  choice["finish_reason"] = rs.finish_reason();
  Json out = {{"id", r.id}, {"object", r.object}, {"created", r.created}, {"model", r.model},
              {"choices", Json::array({choice})}, {"usage", usage_json(prompt_tokens, rs, r.chat)}};
  send_json(res, 200, out);
  s.metrics.count_request(200);
  log_request(s, req.method, req.path, 200, prompt_tokens, rs.completion_tokens(), rs.seconds());
}

void respond_stream(ServerState& s, const httplib::Request& req, httplib::Response& res, const CompletionParams& p,
                    const Reply& r, std::shared_ptr<ResultStream> rs, int64_t prompt_tokens) {
  res.set_header("Cache-Control", "no-cache");
  const std::string method = req.method, path = req.path;
  res.set_chunked_content_provider("text/event-stream", [&s, p, r, rs, prompt_tokens, method, path](size_t, httplib::DataSink& sink) {
    auto write = [&](const std::string& str) { return sink.write(str.data(), str.size()); };
    bool ok = true;
    if (r.chat) ok = write(chunk(r, Json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr));
    if (!r.chat && p.echo && ok) ok = write(chunk(r, p.prompt_text, nullptr, nullptr));
    while (ok && !rs->done()) {
      std::vector<OutputDelta> deltas;
      Json lps = Json::array();
      if (!rs->next(deltas, p.logprobs ? &lps : nullptr, 100)) {
        if (!sink.is_writable()) ok = false;
        continue;
      }
      bool lp_sent = lps.empty();
      for (auto& d : deltas) {
        Json piece = r.chat ? chat_delta(d) : Json(d.text);
        ok = ok && write(chunk(r, piece, !lp_sent && p.logprobs ? lps : Json(nullptr), nullptr));
        lp_sent = true;
      }
      if (!lp_sent && ok) ok = write(chunk(r, r.chat ? Json{{"content", ""}} : Json(""), lps, nullptr));
    }
    if (!ok) {  // the client went away: free its slot
      rs->cancel();
      --s.active;
      s.metrics.count_request(499);
      log_request(s, method, path, 499, prompt_tokens, rs->completion_tokens(), rs->seconds());
      return false;
    }
    if (!rs->error().empty()) {
      write(sse(error_body("generation failed: " + rs->error(), "server_error")));
    } else {
      write(chunk(r, r.chat ? Json::object() : Json(""), nullptr, rs->finish_reason()));
      if (r.include_usage) {
        Json u = {{"id", r.id}, {"object", r.object}, {"created", r.created}, {"model", r.model},
                  {"choices", Json::array()}, {"usage", usage_json(prompt_tokens, *rs, r.chat)}};
        write(sse(u));
      }
    }
    write("data: [DONE]\n\n");
    sink.done();
    --s.active;
    const int status = rs->error().empty() ? 200 : 500;
    s.metrics.count_request(status);
    log_request(s, method, path, status, prompt_tokens, rs->completion_tokens(), rs->seconds());
    return true;
  });
}

}  // namespace

void handle_completion(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res,
                       bool chat) {
  Json j;
  if (!parse_body(s, req, body, res, j)) return;
  CompletionParams p;
  PreparedRequest prep;
  std::shared_ptr<RequestHandle> handle;
  try {
    p = parse_completion_request(j, chat);
    prep = prepare(s.model, p);
    handle = submit(s, prep);
  } catch (const std::exception& e) {
    answer_error(s, req, res, e);
    return;
  }
  s.metrics.add_prompt_tokens(prep.prompt_tokens);
  Reply r{random_id(chat ? "chatcmpl-" : "cmpl-"), chat ? "chat.completion" : "text_completion", unix_time(), s.name,
          chat, p.include_usage};
  auto rs = std::make_shared<ResultStream>(s.model, p, prep, handle);
  ++s.active;
  if (!p.stream) return respond_whole(s, req, res, p, r, *rs, prep.prompt_tokens);
  r.object = chat ? "chat.completion.chunk" : "text_completion";
  respond_stream(s, req, res, p, r, rs, prep.prompt_tokens);
}

}  // namespace volga::server
