// The endpoints that generate: chat completions, completions (chat_api.cpp)
// and the Responses API (responses_api.cpp), over the state every HTTP
// thread shares. server.cpp owns routing, authentication and start-up.
#pragma once

#include <httplib.h>

#include <atomic>
#include <list>
#include <map>
#include <mutex>
#include <string>

#include "server/generation.h"
#include "server/metrics.h"

namespace volga::server {

// Responses kept for `previous_response_id`: the conversation that led to
// each (input items + output items), bounded in count and age.
class ResponseStore {
 public:
  void put(const std::string& id, Json items);
  // Throws ApiError (404-style 400) when the id is unknown or expired.
  Json get(const std::string& id);

 private:
  struct Entry {
    Json items;
    std::chrono::steady_clock::time_point at;
    size_t bytes = 0;
  };
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  std::list<std::string> order_;
  size_t bytes_ = 0;
};

// A model that /v1/embeddings and /v1/rerank can be routed to (by their
// `model` field): the generating model, or one loaded beside it with
// --embed-model / --rerank-model. All run on the one engine thread, between
// generation steps, on the shared thread pool.
struct ServedModel {
  std::string name;
  std::string path;            // the GGUF file
  std::string role;            // "generation", "embedding" or "rerank" (what it was loaded for)
  const Tokenizer* tok = nullptr;
  EmbedSupport embed;
  int ctx = 0;                 // longest input
  Model* model = nullptr;      // nullptr: the engine's own model
};

struct RetrievalState;  // retrieval_api.cpp: the document index of --index

struct ServerState {
  ModelContext model;
  std::vector<ServedModel> models;  // [0]: the generating (main) model, then --embed-model, --rerank-model
  std::shared_ptr<RetrievalState> retrieval;  // null without --index
  Scheduler* scheduler = nullptr;
  std::string name;
  Metrics metrics;
  std::atomic<int> active{0};
  std::atomic<bool> draining{false};
  bool quiet = false;
  ResponseStore responses;
};

// One generating request in flight: counted active from construction; ended
// once, by finish() or — when its response is dropped before that (a client
// gone before the stream started, an exception) — by the destructor, which
// cancels the engine's work and counts it as abandoned (499). Streams hold
// it in their content provider, so no path leaks a slot or the count that
// shutdown waits for.
class RequestScope {
 public:
  RequestScope(ServerState& s, std::string method, std::string path, std::shared_ptr<ResultStream> rs,
               int64_t prompt_tokens);
  ~RequestScope();
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;
  void finish(int status);

 private:
  ServerState& s_;
  std::string method_, path_;
  std::shared_ptr<ResultStream> rs_;
  int64_t prompt_tokens_;
  bool finished_ = false;
};

// One line on stderr per request (unless --quiet): method, route, status,
// tokens in and out, seconds.
void log_request(const ServerState& s, const std::string& method, const std::string& path, int status,
                 int64_t prompt_tokens = 0, int64_t completion_tokens = 0, double seconds = 0);

void send_json(httplib::Response& res, int status, const Json& body);
std::string random_id(const char* prefix);
int64_t unix_time();

// `body` is the request body (read whatever its content type).
void handle_completion(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res,
                       bool chat);
void handle_responses(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res);
// POST /v1/embeddings and POST /v1/rerank (embeddings_api.cpp).
void handle_embeddings(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res);
void handle_rerank(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res);

// The model serving an embeddings (rerank false) or rerank request: the one
// its `model` field names, else the first loaded for that role, else the main model.
const ServedModel& route_model(const ServerState& s, const Json& body, bool rerank);
// Embeds texts with `target` on the engine thread (in pieces between
// generation steps); ApiError 400 for inputs too long or empty.
std::vector<std::vector<float>> embed_texts(ServerState& s, const ServedModel& target,
                                            const std::vector<std::string>& texts);
// Scores documents for a query with the reranker `target` (same as /v1/rerank).
std::vector<float> rerank_texts(ServerState& s, const ServedModel& target, const std::string& query,
                                const std::vector<std::string>& documents);

// Parses the body, or answers 400 and returns false.
bool parse_body(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res, Json& out);
// Submits a prepared request; ApiError (503) when the queue is full.
std::shared_ptr<RequestHandle> submit(ServerState& s, PreparedRequest& prep);
// Answers an ApiError (or another volga::Error as 400) and logs it.
void answer_error(ServerState& s, const httplib::Request& req, httplib::Response& res, const std::exception& e);

}  // namespace volga::server
