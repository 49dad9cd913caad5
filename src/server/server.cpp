#include "server/server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>

#include "chat/chat_template.h"
#include "format/gguf.h"
#include "model/model.h"
#include "runtime/scheduler.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace volga::server {

namespace {

using Clock = std::chrono::steady_clock;

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* hex = "0123456789abcdef";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += hex[rng() % 16];
  return s;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, error_body(e.what(), e.type, e.param, e.code));
}

// Text of the generated tokens, released only when it can no longer be the
// start of a stop sequence.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Adds decoded text; returns what may be sent now. Sets `stopped` when a
  // stop sequence appeared (the text before it is returned, the rest dropped).
  std::string push(const std::string& text, bool& stopped) {
    held_ += text;
    size_t first = std::string::npos;
    for (auto& s : stops_) first = std::min(first, held_.find(s));
    if (first != std::string::npos) {
      stopped = true;
      std::string out = held_.substr(0, first);
      held_.clear();
      return out;
    }
    size_t keep = 0;  // longest suffix of held_ that begins some stop sequence
    for (auto& s : stops_)
      for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
        if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
    // Never split a UTF-8 character.
    size_t cut = held_.size() - keep;
    while (cut > 0 && cut < held_.size() && (static_cast<unsigned char>(held_[cut]) & 0xC0) == 0x80) --cut;
    std::string out = held_.substr(0, cut);
    held_.erase(0, cut);
    return out;
  }
  std::string flush() { return std::exchange(held_, {}); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
};

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
  Json json() const {
    return {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
  }
};

class Server {
 public:
  explicit Server(const ServerOptions& o) : opts_(o), pool_(o.threads > 0 ? o.threads : 0) {
    file_ = GgufFile::open(o.model_path);
    tok_ = Tokenizer::from_gguf(*file_);
    tmpl_ = std::make_unique<ChatTemplate>(ChatTemplate::for_tokenizer(*tok_, o.chat_template_file));
    model_ = load_model(*file_, pool_);
    ctx_ = static_cast<int>(std::min<int64_t>(o.ctx_size, model_->spec().n_ctx_train));
    SchedulerOptions so;
    so.n_slots = o.parallel;
    so.n_ctx = ctx_;
    so.max_queue = o.max_queue;
    so.step_tokens = std::max(256, o.parallel);
    scheduler_ = std::make_unique<Scheduler>(*model_, so);
    for (int32_t id = 0; id < tok_->n_vocab(); ++id)
      if (tok_->is_end_of_generation(id)) stop_ids_.push_back(id);
    name_ = o.model_name;
  }

  int run();

 private:
  bool authorized(const httplib::Request& req, httplib::Response& res);
  void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
  Json logprob_entry(int32_t id, float logprob) const;
  std::vector<int32_t> build_prompt(const CompletionParams& p) const;

  ServerOptions opts_;
  ThreadPool pool_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ChatTemplate> tmpl_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<int32_t> stop_ids_;
  std::string name_;
  int ctx_ = 0;
  Metrics metrics_;
  std::atomic<int> active_{0};
  std::atomic<bool> draining_{false};
  httplib::Server http_;
};

bool Server::authorized(const httplib::Request& req, httplib::Response& res) {
  if (opts_.api_keys.empty()) return true;
  std::string auth = req.get_header_value("Authorization");
  const std::string bearer = "Bearer ";
  if (auth.compare(0, bearer.size(), bearer) == 0) {
    std::string key = auth.substr(bearer.size());
    for (auto& k : opts_.api_keys)
      if (key.size() == k.size() && key == k) return true;
  }
  send_json(res, 401, error_body(auth.empty() ? "Missing API key: send 'Authorization: Bearer KEY'" : "Incorrect API key provided",
                                 "invalid_request_error", "", "invalid_api_key"));
  metrics_.count_request(401);
  return false;
}

std::vector<int32_t> Server::build_prompt(const CompletionParams& p) const {
  std::vector<int32_t> ids;
  if (p.chat) {
    ChatRenderOptions ro;
    ro.add_generation_prompt = true;
    ro.tools = p.tools;
    ro.extra_vars = p.template_kwargs;
    std::string text;
    try {
      text = tmpl_->render(p.messages, ro);
    } catch (const Error& e) {
      throw ApiError(400, std::string("the chat template rejected these messages: ") + e.what(), "messages");
    }
    ids = tok_->encode(text, false, true);
    if (tok_->add_bos() && (ids.empty() || ids[0] != tok_->bos_id())) ids.insert(ids.begin(), tok_->bos_id());
  } else if (p.prompt_is_ids) {
    for (int32_t id : p.prompt_ids)
      if (id >= tok_->n_vocab())
        throw ApiError(400, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                std::to_string(tok_->n_vocab()) + " tokens)", "prompt");
    ids = p.prompt_ids;
  } else {
    ids = tok_->encode(p.prompt_text, true, false);
  }
  if (ids.empty()) throw ApiError(400, "the prompt is empty", p.chat ? "messages" : "prompt");
  return ids;
}

Json Server::logprob_entry(int32_t id, float logprob) const {
  std::string bytes = tok_->token_bytes(id);
  Json b = Json::array();
  for (unsigned char c : bytes) b.push_back(c);
  return {{"token", sanitize_utf8(bytes)}, {"logprob", logprob}, {"bytes", b}};
}

void Server::handle_completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  if (!authorized(req, res)) return;
  if (draining_) {
    send_json(res, 503, error_body("the server is shutting down", "server_error"));
    metrics_.count_request(503);
    return;
  }
  const auto t_start = Clock::now();
  Json body;
  try {
    body = Json::parse(req.body);
  } catch (const nlohmann::json::parse_error& e) {
    send_json(res, 400, error_body(std::string("the request body is not valid JSON: ") + e.what(), "invalid_request_error"));
    metrics_.count_request(400);
    return;
  }
  CompletionParams p;
  std::shared_ptr<RequestHandle> handle;
  Usage usage;
  try {
    p = parse_completion_request(body, chat);
    std::vector<int32_t> prompt = build_prompt(p);
    usage.prompt_tokens = static_cast<int64_t>(prompt.size());
    const int64_t n_prompt = usage.prompt_tokens;
    if (n_prompt >= ctx_)
      throw ApiError(400, "This model's maximum context length is " + std::to_string(ctx_) + " tokens. However, your " +
                              (chat ? "messages" : "prompt") + " resulted in " + std::to_string(n_prompt) +
                              " tokens. Please reduce the length of the " + (chat ? "messages." : "prompt."),
                     chat ? "messages" : "prompt", "invalid_request_error", "context_length_exceeded");
    int64_t max_tokens = p.max_tokens > 0 ? p.max_tokens : ctx_ - n_prompt;
    if (n_prompt + max_tokens > ctx_)
      throw ApiError(400, "This model's maximum context length is " + std::to_string(ctx_) + " tokens. However, you requested " +
                              std::to_string(n_prompt + max_tokens) + " tokens (" + std::to_string(n_prompt) + " in the " +
                              (chat ? "messages" : "prompt") + ", " + std::to_string(max_tokens) +
                              " in the completion). Please reduce the length of the messages or completion.",
                     "max_tokens", "invalid_request_error", "context_length_exceeded");
    GenerationRequest g;
    g.prompt = std::move(prompt);
    g.sampling = p.sampling;
    g.max_tokens = static_cast<int32_t>(max_tokens);
    g.stop_ids = stop_ids_;
    g.top_logprobs = p.logprobs ? p.top_logprobs : -1;
    try {
      g.sampling.validate();
      handle = scheduler_->submit(std::move(g));
    } catch (const QueueFullError& e) {
      throw ApiError(503, e.what(), "", "server_error");
    }
  } catch (const ApiError& e) {
    send_error(res, e);
    metrics_.count_request(e.status);
    return;
  } catch (const Error& e) {
    send_json(res, 400, error_body(e.what(), "invalid_request_error"));
    metrics_.count_request(400);
    return;
  }
  metrics_.add_prompt_tokens(usage.prompt_tokens);

  const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = unix_time();
  struct State {
    explicit State(const Tokenizer& tok, std::vector<std::string> stops, Clock::time_point t0)
        : dec(tok), stops(std::move(stops)), last(t0) {}
    StreamDecoder dec;
    StopMatcher stops;
    Usage usage;
    std::string finish_reason;
    std::string error;
    bool done = false;
    bool first = true;
    Clock::time_point last;
  };
  auto st = std::make_shared<State>(*tok_, p.stop, t_start);
  st->usage = usage;

  // Advances the request by one event; returns the text that may be sent now.
  auto advance = [this, st, handle, t_start](const TokenEvent& ev, Json* lp_out) -> std::string {
    if (ev.kind == TokenEvent::Kind::Error) {
      st->error = ev.error;
      st->done = true;
      return "";
    }
    if (ev.kind == TokenEvent::Kind::Done) {
      st->finish_reason = ev.finish_reason;
      st->done = true;
      bool stopped = false;
      return st->stops.push(st->dec.flush(), stopped) + st->stops.flush();
    }
    auto now = Clock::now();
    if (st->first) metrics_.observe_ttft(std::chrono::duration<double>(now - t_start).count());
    else metrics_.observe_token_latency(std::chrono::duration<double>(now - st->last).count());
    st->first = false;
    st->last = now;
    ++st->usage.completion_tokens;
    metrics_.add_generated_tokens(1);
    const bool eog = std::find(stop_ids_.begin(), stop_ids_.end(), ev.id) != stop_ids_.end();
    if (lp_out && !eog) {
      Json e = logprob_entry(ev.id, ev.logprob);
      Json top = Json::array();
      for (auto& [tid, lp] : ev.top) top.push_back(logprob_entry(tid, lp));
      e["top_logprobs"] = top;
      lp_out->push_back(e);
    }
    if (eog) return "";
    bool stopped = false;
    std::string out = st->stops.push(st->dec.push(ev.id), stopped);
    if (stopped) {
      st->finish_reason = "stop";
      st->done = true;
      handle->cancel();
    }
    return out;
  };

  const bool include_usage = p.include_usage;
  auto chunk = [this, id, created, chat, include_usage](const std::string& text, const Json& lp, const Json& finish, bool role) {
    Json choice = {{"index", 0}};
    if (chat) {
      Json delta = Json::object();
      if (role) delta["role"] = "assistant";
      if (!text.empty() || role) delta["content"] = text;
      choice["delta"] = delta;
      choice["logprobs"] = lp.is_null() ? Json(nullptr) : Json{{"content", lp}};
    } else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = finish;
    Json c = {{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
              {"model", name_}, {"choices", Json::array({choice})}};
    if (include_usage) c["usage"] = nullptr;
    return "data: " + c.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
  };

  ++active_;
  if (!p.stream) {
    TokenEvent ev;
    std::string text = chat || !p.echo ? "" : p.prompt_text;
    Json lps = Json::array();
    while (!st->done) {
      if (!handle->next(ev, 1000)) continue;
      text += advance(ev, p.logprobs ? &lps : nullptr);
    }
    // A stop sequence cancels the request; drain what the engine already sent.
    --active_;
    if (!st->error.empty()) {
      send_json(res, 500, error_body("generation failed: " + st->error, "server_error"));
      metrics_.count_request(500);
      return;
    }
    Json choice = {{"index", 0}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", sanitize_utf8(text)}};
      choice["logprobs"] = p.logprobs ? Json{{"content", lps}} : Json(nullptr);
    } else {
      choice["text"] = sanitize_utf8(text);
      choice["logprobs"] = nullptr;
      if (p.logprobs) {
        Json tokens = Json::array(), token_lps = Json::array(), tops = Json::array();
        for (auto& e : lps) {
          tokens.push_back(e["token"]);
          token_lps.push_back(e["logprob"]);
          Json m = Json::object();
          for (auto& t : e["top_logprobs"]) m[t["token"].get<std::string>()] = t["logprob"];
          tops.push_back(m);
        }
        choice["logprobs"] = {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}};
      }
    }
    choice["finish_reason"] = st->finish_reason;
    Json out = {{"id", id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", created},
                {"model", name_}, {"choices", Json::array({choice})}, {"usage", st->usage.json()}};
    send_json(res, 200, out);
    metrics_.count_request(200);
    return;
  }

  // Streaming: Server-Sent Events, one chunk per piece of text.
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [=, this](size_t, httplib::DataSink& sink) {
    auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
    bool ok = true;
    if (chat) ok = write(chunk("", nullptr, nullptr, true));
    if (!chat && p.echo && ok) ok = write(chunk(p.prompt_text, nullptr, nullptr, false));
    TokenEvent ev;
    while (ok && !st->done) {
      if (!handle->next(ev, 100)) {
        if (!sink.is_writable()) ok = false;
        continue;
      }
      Json lps = Json::array();
      std::string text = advance(ev, p.logprobs ? &lps : nullptr);
      if (!text.empty() || !lps.empty()) ok = write(chunk(sanitize_utf8(text), p.logprobs ? lps : Json(nullptr), nullptr, false));
    }
    if (!ok) {  // the client went away: free its slot
      handle->cancel();
      --active_;
      metrics_.count_request(499);
      return false;
    }
    if (!st->error.empty()) {
      write("data: " + error_body("generation failed: " + st->error, "server_error").dump() + "\n\n");
    } else {
      write(chunk("", nullptr, st->finish_reason, false));
      if (p.include_usage) {
        Json u = {{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                  {"model", name_}, {"choices", Json::array()}, {"usage", st->usage.json()}};
        write("data: " + u.dump() + "\n\n");
      }
    }
    write("data: [DONE]\n\n");
    sink.done();
    --active_;
    metrics_.count_request(st->error.empty() ? 200 : 500);
    return true;
  });
}

int Server::run() {
  // Streams and slow clients each hold an HTTP thread: keep plenty.
  const int n_http = std::max(16, 2 * (opts_.parallel + opts_.max_queue));
  http_.new_task_queue = [n_http] { return new httplib::ThreadPool(static_cast<size_t>(std::min(n_http, 256))); };
  http_.set_payload_max_length(size_t(32) << 20);
  http_.set_read_timeout(60, 0);
  http_.set_write_timeout(60, 0);

  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_) send_json(res, 503, {{"status", "shutting down"}});
    else send_json(res, 200, {{"status", "ok"}});
  });
  http_.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    Json model = {{"id", name_}, {"object", "model"}, {"created", unix_time()}, {"owned_by", "volga"},
                  {"max_model_len", ctx_}};
    send_json(res, 200, {{"object", "list"}, {"data", Json::array({model})}});
  });
  http_.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    SchedulerStats s = scheduler_->stats();
    res.set_content(metrics_.render(s.queued, s.running), "text/plain; version=0.0.4");
  });
  http_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(req, res, true);
  });
  http_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(req, res, false);
  });
  http_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      send_json(res, 404, error_body("no route for " + req.method + " " + req.path +
                                         " (try POST /v1/chat/completions, POST /v1/completions, GET /v1/models)",
                                     "invalid_request_error", "", "not_found"));
    else
      send_json(res, res.status, error_body("HTTP error " + std::to_string(res.status), "invalid_request_error"));
  });
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_json(res, 500, error_body(what, "server_error"));
  });

  if (!http_.bind_to_port(opts_.host, opts_.port))
    throw Error("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) + " (in use, or not allowed)");

  // SIGINT/SIGTERM: stop taking requests, let running ones finish, then stop.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  std::thread signals([this, set] {
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "volga serve: %s received, finishing %d request(s) in flight\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", active_.load());
    draining_ = true;
    while (active_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    http_.stop();
  });
  std::fprintf(stderr, "volga serve: %s on http://%s:%d (%d parallel sequences, context %d tokens%s)\n", name_.c_str(),
               opts_.host.c_str(), opts_.port, opts_.parallel, ctx_,
               opts_.api_keys.empty() ? ", no API key" : ", API key required");
  std::fflush(stderr);
  http_.listen_after_bind();
  if (!draining_) {  // stopped for another reason: release the signal thread
    pthread_kill(signals.native_handle(), SIGTERM);
  }
  signals.join();
  std::fprintf(stderr, "volga serve: stopped\n");
  return 0;
}

}  // namespace

int run_server(const ServerOptions& opts) {
  // Signals go to the dedicated thread only: block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  Server server(opts);
  return server.run();
}

}  // namespace volga::server
