#include "server/server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "chat/chat_template.h"
#include "format/gguf.h"
#include "model/model.h"
#include "model/arch.h"
#include "runtime/mpi_pipeline.h"
#include "runtime/embed.h"
#include "runtime/kv_budget.h"
#include "runtime/rerank.h"
#include "runtime/scheduler.h"
#include "server/handlers.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "server/retrieval_api.h"
#include "server/webui.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace volga::server {

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

void log_request(const ServerState& s, const std::string& method, const std::string& path, int status,
                 int64_t prompt_tokens, int64_t completion_tokens, double seconds) {
  if (s.quiet) return;
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  std::string line = std::string(stamp) + " " + method + " " + path + " " + std::to_string(status);
  if (prompt_tokens || completion_tokens)
    line += " prompt=" + std::to_string(prompt_tokens) + " completion=" + std::to_string(completion_tokens);
  char t[32];
  std::snprintf(t, sizeof t, " %.3fs", seconds);
  line += t;
  std::fprintf(stderr, "%s\n", line.c_str());
}

RequestScope::RequestScope(ServerState& s, std::string method, std::string path, std::shared_ptr<ResultStream> rs,
                           int64_t prompt_tokens)
    : s_(s), method_(std::move(method)), path_(std::move(path)), rs_(std::move(rs)), prompt_tokens_(prompt_tokens) {
  ++s_.active;
}

RequestScope::~RequestScope() {
  if (finished_) return;
  rs_->cancel();
  finish(499);
}

void RequestScope::finish(int status) {
  if (finished_) return;
  finished_ = true;
  if (status != 200) rs_->cancel();
  --s_.active;
  s_.metrics.count_request(status);
  log_request(s_, method_, path_, status, prompt_tokens_, rs_->completion_tokens(), rs_->seconds());
}

bool parse_body(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res, Json& out) {
  // Copying and printing JSON recurse: a body nested deeper than any real
  // request is refused here, once for every endpoint.
  constexpr int kMaxDepth = 128;
  struct TooDeep {};
  std::string error;
  try {
    out = Json::parse(body, [](int depth, Json::parse_event_t, Json&) {
      if (depth > kMaxDepth) throw TooDeep{};
      return true;
    });
    return true;
  } catch (const nlohmann::json::parse_error& e) {
    error = std::string("the request body is not valid JSON: ") + e.what();
  } catch (const TooDeep&) {
    error = "the request body nests JSON more than " + std::to_string(kMaxDepth) + " levels deep";
  }
  send_json(res, 400, error_body(error, "invalid_request_error"));
  s.metrics.count_request(400);
  log_request(s, req.method, req.path, 400);
  return false;
}

std::shared_ptr<RequestHandle> submit(ServerState& s, PreparedRequest& prep) {
  try {
    return s.scheduler->submit(std::move(prep.gen));
  } catch (const QueueFullError& e) {
    throw ApiError(503, e.what(), "", "server_error");
  }
}

void answer_error(ServerState& s, const httplib::Request& req, httplib::Response& res, const std::exception& e) {
  int status = 400;
  if (auto* api = dynamic_cast<const ApiError*>(&e)) {
    status = api->status;
    send_json(res, status, error_body(api->what(), api->type, api->param, api->code));
  } else {
    send_json(res, 400, error_body(e.what(), "invalid_request_error"));
  }
  s.metrics.count_request(status);
  log_request(s, req.method, req.path, status);
}

namespace {

// GET /health: liveness plus the engine's slots and prefix-cache counters.
Json health_json(const SchedulerStats& e) {
  return {{"status", "ok"},
          {"slots", {{"total", e.slots}, {"busy", e.running}, {"queued", e.queued}}},
          {"kv_cache", {{"block_tokens", KvCache::kBlockTokens}, {"block_bytes", e.block_bytes},
                        {"blocks_total", e.blocks_total}, {"blocks_used", e.blocks_used},
                        {"blocks_cached", e.blocks_cached},
                        {"blocks_free", e.blocks_total - e.blocks_used - e.blocks_cached},
                        {"preemptions", e.preemptions}, {"evictions", e.evictions}}},
          {"prefix_cache", {{"cached_tokens", e.cached_tokens}, {"lookups", e.prefix_lookups},
                            {"hit_tokens", e.prefix_hit_tokens}, {"prompt_tokens", e.prompt_tokens}}}};
}

// What a model serves besides generation, from its architecture and file
// and the --embeddings / --pooling / --reranker options.
EmbedSupport embed_support(const ModelSpec& spec, const Tokenizer& tok, bool embeddings, const std::string& pooling,
                           bool as_reranker) {
  EmbedSupport e;
  e.generation = !spec.traits().encoder;
  e.n_embd = spec.n_embd;
  e.max_tokens = max_input_tokens(spec);
  const Pooling requested = pooling.empty() ? Pooling::Unspecified : parse_pooling(pooling);
  e.rerank_format = rerank_format(spec, tok, as_reranker);
  e.rerank = e.rerank_format.kind != RerankFormat::Kind::None;
  if (e.rerank) {
    e.why_not = "this model is a reranker (pooling rank): use POST /v1/rerank";
    return e;
  }
  if (!e.generation || spec.pooling != Pooling::Unspecified || embeddings) {
    e.pooling = embedding_pooling(spec, requested);
    e.embeddings = e.pooling != Pooling::None;
    if (!e.embeddings)
      e.why_not = "pooling 'none' gives one vector per token, which the embeddings API cannot return; "
                  "start volga serve with --pooling mean, cls or last";
    return e;
  }
  e.why_not = "this is a generative model without a pooling type: start volga serve with --embeddings "
              "(and --pooling, default last) to serve embeddings from it, or load an embedding model with --embed-model";
  return e;
}

// A model loaded beside the main one (--embed-model, --rerank-model).
struct AuxModel {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<Model> model;
};

class Server {
 public:
  explicit Server(const ServerOptions& o) : opts_(o), pool_(o.threads > 0 ? o.threads : 0) {
    file_ = GgufFile::open(o.model_path);
    tok_ = Tokenizer::from_gguf(*file_);
    tmpl_ = std::make_unique<ChatTemplate>(ChatTemplate::for_tokenizer(*tok_, o.chat_template_file));
    model_ = o.mpi ? o.mpi->load(*file_, pool_) : load_model(*file_, pool_);
    ModelContext& m = state_.model;
    m.tok = tok_.get();
    m.tmpl = tmpl_.get();
    m.format = detect_chat_format(tmpl_->source());
    m.trie = std::make_shared<TokenTrie>(*tok_);
    m.ctx = static_cast<int>(std::min<int64_t>(o.ctx_size, model_->spec().n_ctx_train));
    m.metrics = &state_.metrics;
    for (int32_t id = 0; id < tok_->n_vocab(); ++id)
      if (tok_->is_end_of_generation(id)) m.stop_ids.push_back(id);
    m.embed = embed_support(model_->spec(), *tok_, o.embeddings, o.pooling, o.reranker);
    served_main();
    // --index without --embed-model: the embedding model the index remembers.
    const bool index_model = o.embed_model_path.empty() && !o.index_dir.empty() && !m.embed.embeddings;
    load_aux(index_model ? remembered_embed_model(o.index_dir) : o.embed_model_path, "embedding");
    load_aux(o.rerank_model_path, "rerank");
    if (!o.index_dir.empty()) state_.retrieval = open_retrieval(state_, o.index_dir);
    if (!m.embed.generation) {
      // An encoder never uses the KV cache: the scheduler only runs its embedding tasks.
      SchedulerOptions so;
      so.n_slots = 1;
      so.n_ctx = std::max(m.ctx, 8);
      so.kv_blocks = (so.n_ctx + KvCache::kBlockTokens - 1) / KvCache::kBlockTokens;
      so.max_queue = o.max_queue;
      so.type_k = so.type_v = DType::F32;
      scheduler_ = std::make_unique<Scheduler>(*model_, so);
      state_.scheduler = scheduler_.get();
      state_.name = o.model_name;
      state_.quiet = o.quiet;
      std::fprintf(stderr, "volga serve: %s model (%s pooling), inputs up to %d tokens\n",
                   m.embed.rerank ? "reranking" : "embedding", pooling_name(m.embed.rerank ? Pooling::Rank : m.embed.pooling),
                   m.ctx);
      return;
    }
    const KvBudget kv = plan_kv_budget(model_->spec(), o.cache_type_k, o.cache_type_v, o.parallel, m.ctx,
                                       o.kv_memory, static_cast<int64_t>(file_->file_size()));
    std::fprintf(stderr, "volga serve: %s\n", describe_kv_budget(kv, o.cache_type_k, o.cache_type_v, m.ctx).c_str());
    if (kv.positions() < m.ctx) {  // a request must fit the pool alone
      m.ctx_note = " (The context is limited by the KV cache budget: " + format_size(kv.bytes()) + " holds " +
                   std::to_string(kv.positions()) + " positions; raise --kv-memory.)";
      m.ctx = static_cast<int>(kv.positions());
    }
    SchedulerOptions so;
    so.n_slots = o.parallel;
    so.n_ctx = m.ctx;
    so.kv_blocks = kv.n_blocks;
    so.type_k = o.cache_type_k;
    so.type_v = o.cache_type_v;
    so.n_snapshots = kv.n_snapshots;
    so.max_queue = o.max_queue;
    so.step_tokens = std::max(256, o.parallel);
    scheduler_ = std::make_unique<Scheduler>(*model_, so);
    state_.scheduler = scheduler_.get();
    state_.name = o.model_name;
    state_.quiet = o.quiet;
  }

  int run();

 private:
  void served_main();
  void load_aux(const std::string& path, const char* role);
  bool authorized(const httplib::Request& req, httplib::Response& res);
  // Answers 400 to a generation request for a model that cannot generate.
  bool generation_refused(const httplib::Request& req, httplib::Response& res);
  // POST routes read their body themselves, whatever its content type (curl
  // -d sends JSON as a form), up to the payload limit.
  void post(const std::string& path, std::function<void(const httplib::Request&, const std::string&, httplib::Response&)> fn);
  void watch_signals(sigset_t set);
  void end_mpi_job();  // the signal thread: the MPI job is ending under us

  ServerOptions opts_;
  ThreadPool pool_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ChatTemplate> tmpl_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<AuxModel> aux_;
  ServerState state_;
  httplib::Server http_;
  std::atomic<bool> stopped_{false};  // listen_after_bind() has returned
  std::atomic<bool> mpi_ended_{false};  // end_mpi_job() ran
};

void Server::served_main() {
  const ModelContext& m = state_.model;
  ServedModel main;
  main.name = opts_.model_name;
  main.path = opts_.model_path;
  main.role = m.embed.generation ? "generation" : m.embed.rerank ? "rerank" : "embedding";
  main.tok = tok_.get();
  main.embed = m.embed;
  main.ctx = m.ctx;
  state_.models.push_back(std::move(main));
}

void Server::load_aux(const std::string& path, const char* role) {
  if (path.empty()) return;
  const bool rerank = std::string(role) == "rerank";
  const std::string option = rerank ? "--rerank-model" : "--embed-model";
  AuxModel a;
  a.file = GgufFile::open(path);
  a.tok = Tokenizer::from_gguf(*a.file);
  a.model = load_model(*a.file, pool_);
  ServedModel t;
  t.name = std::filesystem::path(path).stem().string();
  for (const ServedModel& other : state_.models)
    if (other.name == t.name) t.name += std::string("-") + (rerank ? "rerank" : "embed");
  t.role = role;
  t.path = path;
  t.tok = a.tok.get();
  t.embed = embed_support(a.model->spec(), *a.tok, !rerank, "", rerank);
  t.ctx = static_cast<int>(std::min<int64_t>(opts_.ctx_size, a.model->spec().n_ctx_train));
  t.model = a.model.get();
  if (rerank ? !t.embed.rerank : !t.embed.embeddings)
    throw Error(option + " " + path + ": " + (rerank ? "this model cannot rerank" : t.embed.why_not));
  std::fprintf(stderr, "volga serve: %s model '%s' (%s, %s), inputs up to %d tokens\n", role, t.name.c_str(),
               a.model->spec().arch_name(),
               t.embed.rerank ? (t.embed.rerank_format.kind == RerankFormat::Kind::Decoder ? "yes/no decoder reranker"
                                                                                          : "cross-encoder")
                              : pooling_name(t.embed.pooling),
               t.ctx);
  state_.models.push_back(std::move(t));
  aux_.push_back(std::move(a));
}

namespace {

// Whether a signal came from the MPI launcher (mpirun, or its daemon on this
// host): it ends the job's processes that way when a rank has died or the
// job is cancelled.
bool from_mpi_launcher(const siginfo_t& info) {
  if (info.si_code != SI_USER || info.si_pid <= 0) return false;
  if (info.si_pid == getppid()) return true;
  std::ifstream in("/proc/" + std::to_string(info.si_pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name == "mpirun" || name == "mpiexec" || name == "orterun" || name == "orted" || name == "prterun" ||
         name == "prted";
}

}  // namespace

// The signal thread. SIGINT/SIGTERM: stop taking requests, let running ones
// finish, then stop. In an MPI job the same signals from the launcher mean
// that the other ranks are gone or going (it ends every rank so when one has
// died, and SIGKILLs what is left a moment later: odls_base_sigkill_timeout):
// in-flight and new requests get 503 at once, then the server stops.
void Server::watch_signals(sigset_t set) {
  siginfo_t info{};
  while (sigwaitinfo(&set, &info) < 0) {
  }
  if (info.si_pid == getpid() && !state_.draining && stopped_) return;  // released by run()
  const bool pipeline = opts_.mpi && opts_.mpi->pipelined();
  if (pipeline && from_mpi_launcher(info)) return end_mpi_job();
  std::fprintf(stderr, "volga serve: %s received, finishing %d request(s) in flight\n",
               info.si_signo == SIGINT ? "SIGINT" : "SIGTERM", state_.active.load());
  state_.draining = true;
  const timespec tick = {0, 20 * 1000 * 1000};
  while (state_.active.load() > 0) {
    if (sigtimedwait(&set, &info, &tick) > 0 && pipeline && from_mpi_launcher(info)) return end_mpi_job();
  }
  http_.stop();
}

void Server::end_mpi_job() {
  std::fprintf(stderr,
               "volga serve: the MPI launcher is ending the job (a rank has stopped, or mpirun was stopped; mpirun "
               "names the rank): answering the %d request(s) in flight and new ones with 503, then exiting\n",
               state_.active.load());
  std::fflush(stderr);
  state_.draining = true;
  mpi_ended_ = true;
  opts_.mpi->end_job();
  scheduler_->fail_everything("the MPI job is ending: a rank has stopped");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);  // a client too slow to read
  while (state_.active.load() > 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  http_.stop();
}

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
  state_.metrics.count_request(401);
  log_request(state_, req.method, req.path, 401);
  return false;
}

bool Server::generation_refused(const httplib::Request& req, httplib::Response& res) {
  if (state_.model.embed.generation) return false;
  send_json(res, 400, error_body(std::string("this is an ") + (state_.model.embed.rerank ? "reranking" : "embedding") +
                                     " model ('" + model_->spec().arch_name() +
                                     "', no language-model head): it cannot generate text; use POST " +
                                     (state_.model.embed.rerank ? "/v1/rerank" : "/v1/embeddings"),
                                 "invalid_request_error", "model", "model_not_supported"));
  state_.metrics.count_request(400);
  log_request(state_, req.method, req.path, 400);
  return true;
}

void Server::post(const std::string& path,
                  std::function<void(const httplib::Request&, const std::string&, httplib::Response&)> fn) {
  http_.Post(path, [this, fn](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    std::string body;
    reader([&](const char* data, size_t n) {
      body.append(data, n);
      return true;
    });
    if (!authorized(req, res)) return;
    if (state_.draining) {
      send_json(res, 503, error_body("the server is shutting down", "server_error"));
      state_.metrics.count_request(503);
      log_request(state_, req.method, req.path, 503);
      return;
    }
    fn(req, body, res);
  });
}

int Server::run() {
  // Streams and slow clients each hold an HTTP thread: keep plenty.
  const int n_http = std::max(16, 2 * (opts_.parallel + opts_.max_queue));
  http_.new_task_queue = [n_http] { return new httplib::ThreadPool(static_cast<size_t>(std::min(n_http, 256))); };
  http_.set_payload_max_length(size_t(32) << 20);
  http_.set_read_timeout(60, 0);
  http_.set_write_timeout(60, 0);

  add_web_ui_routes(http_);  // the chat UI's files need no API key; its API calls do
  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (state_.draining) send_json(res, 503, {{"status", "shutting down"}});
    else send_json(res, 200, health_json(scheduler_->stats()));
  });
  http_.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    Json data = Json::array();
    for (const ServedModel& m : state_.models)
      data.push_back({{"id", m.name}, {"object", "model"}, {"created", unix_time()}, {"owned_by", "volga"},
                      {"max_model_len", &m == &state_.models.front() ? state_.model.ctx : m.ctx},
                      {"volga_role", m.role}});
    send_json(res, 200, {{"object", "list"}, {"data", std::move(data)}});
  });
  http_.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    res.set_content(state_.metrics.render(scheduler_->stats()), "text/plain; version=0.0.4");
  });
  post("/v1/chat/completions", [this](const httplib::Request& req, const std::string& body, httplib::Response& res) {
    if (!generation_refused(req, res)) handle_completion(state_, req, body, res, true);
  });
  post("/v1/completions", [this](const httplib::Request& req, const std::string& body, httplib::Response& res) {
    if (!generation_refused(req, res)) handle_completion(state_, req, body, res, false);
  });
  post("/v1/responses", [this](const httplib::Request& req, const std::string& body, httplib::Response& res) {
    if (!generation_refused(req, res)) handle_responses(state_, req, body, res);
  });
  for (const char* path : {"/v1/embeddings", "/embeddings"})
    post(path, [this](const httplib::Request& req, const std::string& body, httplib::Response& res) {
      handle_embeddings(state_, req, body, res);
    });
  for (const char* path : {"/v1/rerank", "/rerank", "/v1/reranking"})
    post(path, [this](const httplib::Request& req, const std::string& body, httplib::Response& res) {
      handle_rerank(state_, req, body, res);
    });
  // Routes that log themselves (the generating ones, when they finish) are skipped here.
  http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    static const std::set<std::string> self_logging = {"/v1/chat/completions", "/v1/completions", "/v1/responses",
                                                       "/v1/embeddings", "/embeddings", "/v1/rerank", "/rerank",
                                                       "/v1/reranking"};
    if (req.method == "POST" && self_logging.count(req.path) && res.status != 404 && res.status != 413) return;
    log_request(state_, req.method, req.path, res.status);
  });
  http_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      send_json(res, 404, error_body("no route for " + req.method + " " + req.path +
                                         " (try GET / for the web UI, POST /v1/chat/completions, POST /v1/completions, "
                                         "POST /v1/responses, POST /v1/embeddings, POST /v1/rerank, GET /v1/models)",
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

  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which lets a
  // second server bind the same port and silently share its requests.
  http_.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
  });
  if (!http_.bind_to_port(opts_.host, opts_.port))
    throw Error("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) + ": " +
                (errno == EADDRINUSE ? "the port is already in use (another volga serve?); choose one with --port"
                                     : std::string(std::strerror(errno))));

  // SIGINT/SIGTERM: stop taking requests, let running ones finish, then stop.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  std::thread signals([this, set] { watch_signals(set); });
  std::fprintf(stderr, "volga serve: %s on http://%s:%d (%d parallel sequences, context %d tokens%s)\n", state_.name.c_str(),
               opts_.host.c_str(), opts_.port, opts_.parallel, state_.model.ctx,
               opts_.api_keys.empty() ? ", no API key" : ", API key required");
  std::fflush(stderr);
  http_.listen_after_bind();
  stopped_ = true;
  if (!state_.draining) {  // stopped for another reason: release the signal thread
    pthread_kill(signals.native_handle(), SIGTERM);
  }
  signals.join();
  if (mpi_ended_) {
    // The engine thread may be waiting on a rank that is gone: leave without
    // joining it (the launcher would SIGKILL this process a moment later).
    std::fprintf(stderr, "volga serve: stopped: the MPI job ended\n");
    std::fflush(stderr);
    std::_Exit(1);
  }
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
