// POST /v1/chat/completions and /v1/completions: OpenAI's response and
// chunk shapes over a ResultStream.
#include <random>

#include "server/handlers.h"
#include "server/retrieval_api.h"
#include "util/utf8.h"

namespace volga::server {

namespace {

struct Reply {
  std::string id, object;
  int64_t created;
  std::string model;
  bool chat;
  bool include_usage;
  Json sources;  // volga_sources of a retrieval-augmented chat (null: none)
};

Json usage_json(int64_t prompt, const ResultStream& rs, bool chat) {
  const int64_t completion = rs.completion_tokens();
  Json u = {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
  u["prompt_tokens_details"] = {{"cached_tokens", rs.cached_tokens()}};
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

Json chunk_json(const Reply& r, Json delta_or_text, const Json& logprobs, const Json& finish) {
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
  return c;
}

std::string chunk(const Reply& r, Json delta_or_text, const Json& logprobs, const Json& finish) {
  return sse(chunk_json(r, std::move(delta_or_text), logprobs, finish));
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

void respond_whole(ServerState& s, httplib::Response& res, const CompletionParams& p, const Reply& r, ResultStream& rs,
                   RequestScope& scope, int64_t prompt_tokens) {
  Json lps = Json::array();
  std::vector<OutputDelta> deltas;
  while (!rs.done()) rs.next(deltas, p.logprobs ? &lps : nullptr, 1000);
  if (!rs.error().empty()) {
    send_json(res, rs.error_status(), rs.error_json());
    scope.finish(rs.error_status());
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
  if (!r.sources.is_null()) out["volga_sources"] = r.sources;
  send_json(res, 200, out);
  scope.finish(200);
}

// One SSE stream; returns the status it ended with (499: the client went away).
int stream_events(httplib::DataSink& sink, const CompletionParams& p, const Reply& r, ResultStream& rs,
                  int64_t prompt_tokens) {
  auto write = [&](const std::string& str) { return sink.write(str.data(), str.size()); };
  bool ok = true;
  if (r.chat) ok = write(chunk(r, Json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr));
  if (!r.chat && p.echo && ok) ok = write(chunk(r, p.prompt_text, nullptr, nullptr));
  while (ok && !rs.done()) {
    std::vector<OutputDelta> deltas;
    Json lps = Json::array();
    if (!rs.next(deltas, p.logprobs ? &lps : nullptr, 100)) {
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
  if (!ok) return 499;
  if (!rs.error().empty()) {
    write(sse(rs.error_json()));
  } else {
    Json last = chunk_json(r, r.chat ? Json::object() : Json(""), nullptr, rs.finish_reason());
    if (!r.sources.is_null()) last["volga_sources"] = r.sources;  // the final chunk carries the citations
    write(sse(last));
    if (r.include_usage) {
      Json u = {{"id", r.id}, {"object", r.object}, {"created", r.created}, {"model", r.model},
                {"choices", Json::array()}, {"usage", usage_json(prompt_tokens, rs, r.chat)}};
      write(sse(u));
    }
  }
  write("data: [DONE]\n\n");
  sink.done();
  return rs.error().empty() ? 200 : rs.error_status();
}

void respond_stream(httplib::Response& res, const CompletionParams& p, const Reply& r, std::shared_ptr<ResultStream> rs,
                    std::shared_ptr<RequestScope> scope, int64_t prompt_tokens) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [p, r, rs, scope, prompt_tokens](size_t, httplib::DataSink& sink) {
    int status = 500;
    try {
      status = stream_events(sink, p, r, *rs, prompt_tokens);
    } catch (const std::exception&) {
    }
    scope->finish(status);
    return status != 499;
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
  std::shared_ptr<ResultStream> rs;
  Json sources;
  try {
    if (j.is_object()) sources = apply_retrieval(s, j, chat);
    p = parse_completion_request(j, chat);
    prep = prepare(s.model, p);
    const int64_t n_prompt = prep.prompt_tokens;
    handle = submit(s, prep);
    rs = std::make_shared<ResultStream>(s.model, p, prep, handle);
    prep.prompt_tokens = n_prompt;
  } catch (const std::exception& e) {
    if (handle) handle->cancel();
    answer_error(s, req, res, e);
    return;
  }
  s.metrics.add_prompt_tokens(prep.prompt_tokens);
  Reply r{random_id(chat ? "chatcmpl-" : "cmpl-"), chat ? "chat.completion" : "text_completion", unix_time(), s.name,
          chat, p.include_usage, sources};
  auto scope = std::make_shared<RequestScope>(s, req.method, req.path, rs, prep.prompt_tokens);
  if (!p.stream) return respond_whole(s, res, p, r, *rs, *scope, prep.prompt_tokens);
  r.object = chat ? "chat.completion.chunk" : "text_completion";
  respond_stream(res, p, r, rs, scope, prep.prompt_tokens);
}

}  // namespace volga::server
