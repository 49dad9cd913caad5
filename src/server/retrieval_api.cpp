// Retrieval-augmented chat (volga serve --index DIR): a chat completion that
// carries "volga_retrieval" has its last user message embedded with the
// index's embedding model, the index searched, the hits optionally reranked,
// and the best chunks given to the model as numbered excerpts in the system
// message (through the model's own chat template); the response carries
// them as "volga_sources" for citations. docs/API.md describes the field.
#include <algorithm>
#include <filesystem>
#include <numeric>

#include "retrieval/index.h"
#include "retrieval/model_embedder.h"
#include "server/handlers.h"
#include "server/retrieval_api.h"
#include "util/utf8.h"

namespace volga::server {

struct RetrievalState {
  std::unique_ptr<retrieval::DocIndex> index;
  std::string dir;
  size_t embedder = 0;  // ServerState::models index of the model the index was built with
};

namespace {

constexpr const char* kParam = "volga_retrieval";
constexpr int64_t kMaxTopK = 32, kMaxCandidates = 200;

struct RetrievalRequest {
  int64_t top_k = 4;
  bool rerank = false;
  int64_t candidates = 0;  // searched before reranking; 0: max(4 * top_k, 20)
  std::string query;       // "": the last user message
};

int64_t int_field(const Json& o, const char* name, int64_t dflt, int64_t lo, int64_t hi) {
  const auto f = o.find(name);
  if (f == o.end() || f->is_null()) return dflt;
  if (!f->is_number_integer() || f->get<int64_t>() < lo || f->get<int64_t>() > hi)
    throw ApiError(400, std::string("'") + kParam + "." + name + "' must be an integer from " + std::to_string(lo) +
                            " to " + std::to_string(hi), kParam);
  return f->get<int64_t>();
}

RetrievalRequest parse_request(const Json& v) {
  RetrievalRequest r;
  if (v.is_boolean()) return r;  // true: the defaults (false is handled by the caller)
  if (!v.is_object())
    throw ApiError(400, std::string("'") + kParam + "' must be true or an object {top_k, rerank, candidates, query}", kParam);
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it.key() != "top_k" && it.key() != "rerank" && it.key() != "candidates" && it.key() != "query")
      throw ApiError(400, std::string("'") + kParam + "' has an unknown field '" + it.key() +
                              "' (known: top_k, rerank, candidates, query)", kParam);
  r.top_k = int_field(v, "top_k", 4, 1, kMaxTopK);
  r.candidates = int_field(v, "candidates", 0, 1, kMaxCandidates);
  if (auto f = v.find("rerank"); f != v.end() && !f->is_null()) {
    if (!f->is_boolean()) throw ApiError(400, std::string("'") + kParam + ".rerank' must be a boolean", kParam);
    r.rerank = f->get<bool>();
  }
  if (auto f = v.find("query"); f != v.end() && !f->is_null()) {
    if (!f->is_string() || f->get<std::string>().empty())
      throw ApiError(400, std::string("'") + kParam + ".query' must be a non-empty string", kParam);
    r.query = f->get<std::string>();
  }
  return r;
}

// The text of a message's content: a string, or the text parts of a list.
std::string content_text(const Json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string text;
  if (content.is_array())
    for (const Json& part : content)
      if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string())
        text += (text.empty() ? "" : "\n") + part["text"].get<std::string>();
  return text;
}

std::string last_user_text(const Json& messages) {
  if (messages.is_array())
    for (auto it = messages.rbegin(); it != messages.rend(); ++it)
      if (it->is_object() && it->value("role", "") == "user" && it->contains("content")) {
        std::string text = content_text((*it)["content"]);
        if (!text.empty()) return text;
      }
  throw ApiError(400, std::string("'") + kParam + "' needs a user message with text to search for (or '" + kParam +
                          ".query')", kParam);
}

// The excerpts as the model sees them, numbered as volga_sources are.
std::string context_text(const std::vector<retrieval::SearchHit>& hits) {
  std::string t =
      "Answer using the following excerpts from the documents when they are relevant, and cite them by their "
      "number in brackets, e.g. [1]. If they do not contain the answer, say so.";
  for (size_t i = 0; i < hits.size(); ++i)
    t += "\n\n[" + std::to_string(i + 1) + "] " + std::filesystem::path(hits[i].source).filename().string() + ":\n" +
         hits[i].text;
  return t;
}

// Adds the excerpts to the system message (the first message when it is a
// system or developer one; else a new system message first, where every
// template accepts one).
void insert_context(Json& messages, const std::string& context) {
  if (!messages.empty() && messages[0].is_object()) {
    Json& first = messages[0];
    const std::string role = first.value("role", "");
    if (role == "system" || role == "developer") {
      Json& c = first["content"];
      if (c.is_array()) c.push_back({{"type", "text"}, {"text", context}});
      else c = (c.is_string() && !c.get<std::string>().empty() ? c.get<std::string>() + "\n\n" : "") + context;
      return;
    }
  }
  messages.insert(messages.begin(), Json{{"role", "system"}, {"content", context}});
}

const ServedModel* reranker(const ServerState& s) {
  for (const ServedModel& m : s.models)
    if (m.role == "rerank" && m.embed.rerank) return &m;
  return s.models.front().embed.rerank ? &s.models.front() : nullptr;
}

// Reranks `hits` by the reranker's score (kept as each hit's score) and keeps top_k.
void rerank_hits(ServerState& s, const ServedModel& r, const std::string& query,
                 std::vector<retrieval::SearchHit>& hits, int64_t top_k) {
  std::vector<std::string> texts;
  for (const auto& h : hits) texts.push_back(h.text);
  const std::vector<float> scores = rerank_texts(s, r, query, texts);
  std::vector<size_t> order(hits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::vector<retrieval::SearchHit> out;
  for (size_t i = 0; i < order.size() && static_cast<int64_t>(i) < top_k; ++i) {
    out.push_back(std::move(hits[order[i]]));
    out.back().score = scores[order[i]];
  }
  hits = std::move(out);
}

}  // namespace

std::string remembered_embed_model(const std::string& dir) {
  const std::string path = retrieval::DocIndex::open(dir, true)->setting("model_path");
  return !path.empty() && std::filesystem::is_regular_file(path) ? path : "";
}

std::shared_ptr<RetrievalState> open_retrieval(ServerState& s, const std::string& dir) {
  auto r = std::make_shared<RetrievalState>();
  r->dir = dir;
  r->index = retrieval::DocIndex::open(dir, true);
  const std::string want = r->index->model_id();
  std::string have;
  for (size_t i = 0; i < s.models.size(); ++i) {
    const ServedModel& m = s.models[i];
    if (!m.embed.embeddings) continue;
    const std::string id = retrieval::model_id_for(m.path, m.embed.n_embd);
    if (id == want) {
      r->embedder = i;
      std::fprintf(stderr, "volga serve: index %s: %lld documents, %lld chunks, embedded with '%s'\n", dir.c_str(),
                   static_cast<long long>(r->index->document_count()), static_cast<long long>(r->index->chunk_count()),
                   m.name.c_str());
      return r;
    }
    if (have.empty()) have = id;
  }
  const std::string remembered = r->index->setting("model_path");
  throw Error("--index " + dir + " was built with the embedding model '" + want + "', but " +
              (have.empty() ? std::string("no embedding model is loaded")
                            : "the embedding model loaded is '" + have + "'") +
              ": serve with --embed-model " + (remembered.empty() ? std::string("FILE (that model)") : remembered));
}

Json apply_retrieval(ServerState& s, Json& body, bool chat) {
  const auto f = body.find(kParam);
  if (f == body.end()) return Json();
  const Json spec = *f;
  body.erase(kParam);
  if (spec.is_null() || (spec.is_boolean() && !spec.get<bool>())) return Json();
  if (!chat) throw ApiError(400, std::string("'") + kParam + "' is for POST /v1/chat/completions", kParam);
  if (!s.retrieval)
    throw ApiError(400, std::string("'") + kParam + "' needs a document index: start volga serve with --index DIR "
                        "(built with volga index add)", kParam);
  const RetrievalRequest r = parse_request(spec);
  const ServedModel* ranker = r.rerank ? reranker(s) : nullptr;
  if (r.rerank && !ranker)
    throw ApiError(400, std::string("'") + kParam + ".rerank' needs a reranker: start volga serve with --rerank-model",
                   kParam);
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array())
    throw ApiError(400, "'messages' must be a list of messages", "messages");
  const std::string query = r.query.empty() ? last_user_text(*messages) : r.query;
  const ServedModel& embedder = s.models[s.retrieval->embedder];
  const std::vector<float> q = embed_texts(s, embedder, {query}).front();
  const int64_t k = r.rerank ? std::max(r.top_k, r.candidates ? r.candidates : std::max<int64_t>(4 * r.top_k, 20))
                             : r.top_k;
  std::vector<retrieval::SearchHit> hits = s.retrieval->index->search(q, k);
  if (ranker && !hits.empty()) rerank_hits(s, *ranker, query, hits, r.top_k);
  if (!hits.empty()) insert_context(*messages, context_text(hits));
  Json sources = Json::array();
  for (size_t i = 0; i < hits.size(); ++i)
    sources.push_back({{"index", i + 1}, {"source", hits[i].source}, {"chunk", hits[i].chunk},
                       {"score", hits[i].score}, {"text", sanitize_utf8(hits[i].text)}});
  return sources;
}

}  // namespace volga::server
