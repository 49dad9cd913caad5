// POST /v1/embeddings (OpenAI's shape) and POST /v1/rerank (the Jina/Cohere
// shape llama-server accepts). Requests are parsed and tokenized here; the
// model work runs on the engine thread through Scheduler::run_on_engine, in
// pieces of a few hundred tokens so that running generations keep going.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "runtime/embed.h"
#include "runtime/rerank.h"
#include "server/handlers.h"

namespace volga::server {

namespace {

// Tokens per engine task: generation steps run between two tasks.
constexpr int64_t kTaskTokens = 512;

std::string base64_floats(const std::vector<float>& v) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(v.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), v.data(), bytes.size());  // little-endian float32, as OpenAI sends them
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t b0 = static_cast<uint8_t>(bytes[i]);
    const uint32_t b1 = i + 1 < bytes.size() ? static_cast<uint8_t>(bytes[i + 1]) : 0;
    const uint32_t b2 = i + 2 < bytes.size() ? static_cast<uint8_t>(bytes[i + 2]) : 0;
    const uint32_t n = (b0 << 16) | (b1 << 8) | b2;
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? table[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? table[n & 63] : '=';
  }
  return out;
}

int32_t token_id(const Json& v, const ServedModel& m, const std::string& param) {
  if (!v.is_number_integer()) throw ApiError(400, "'" + param + "' must hold strings or token ids (integers)", param);
  const int64_t id = v.get<int64_t>();
  if (id < 0 || id >= m.tok->n_vocab())
    throw ApiError(400, "token id " + std::to_string(id) + " is outside the vocabulary (size " +
                            std::to_string(m.tok->n_vocab()) + ")", param);
  return static_cast<int32_t>(id);
}

// `input`: a string, an array of strings, an array of token ids, or an array of such arrays.
std::vector<std::vector<int32_t>> parse_inputs(const Json& input, const ServedModel& m) {
  auto text = [&](const Json& s) {
    const std::string t = s.get<std::string>();
    if (t.empty()) throw ApiError(400, "'input' must not contain empty strings", "input");
    return m.tok->encode(t, true, false);
  };
  auto ids = [&](const Json& a) {
    std::vector<int32_t> out;
    for (const Json& v : a) out.push_back(token_id(v, m, "input"));
    if (out.empty()) throw ApiError(400, "'input' must not contain empty token lists", "input");
    return out;
  };
  std::vector<std::vector<int32_t>> inputs;
  if (input.is_string()) {
    inputs.push_back(text(input));
  } else if (input.is_array()) {
    if (input.empty()) throw ApiError(400, "'input' must not be an empty list", "input");
    if (input[0].is_number()) {
      inputs.push_back(ids(input));
    } else {
      for (const Json& item : input) {
        if (item.is_string()) inputs.push_back(text(item));
        else if (item.is_array()) inputs.push_back(ids(item));
        else throw ApiError(400, "'input' must be a string, a list of strings, or token ids", "input");
      }
    }
  } else {
    throw ApiError(400, input.is_null() ? "'input' is required" : "'input' must be a string, a list of strings, or token ids",
                   "input");
  }
  const int64_t limit = std::min<int64_t>(m.ctx, m.embed.max_tokens);
  for (size_t i = 0; i < inputs.size(); ++i)
    if (static_cast<int64_t>(inputs[i].size()) > limit)
      throw ApiError(400, "input " + std::to_string(i) + " has " + std::to_string(inputs[i].size()) +
                              " tokens, more than the model's context of " + std::to_string(limit), "input");
  return inputs;
}

// Runs fn(model, first, last) on the engine thread over ranges of inputs of
// about kTaskTokens tokens, with `target`'s model.
void run_in_pieces(ServerState& s, const ServedModel& target, const std::vector<std::vector<int32_t>>& inputs,
                   const std::function<void(Model&, size_t, size_t)>& fn) {
  size_t i = 0;
  while (i < inputs.size()) {
    const size_t first = i;
    int64_t tokens = 0;
    while (i < inputs.size() && (i == first || tokens + static_cast<int64_t>(inputs[i].size()) <= kTaskTokens))
      tokens += static_cast<int64_t>(inputs[i++].size());
    try {
      s.scheduler->run_on_engine([&, first, last = i](Model& engine_model) {
        fn(target.model ? *target.model : engine_model, first, last);
      });
    } catch (const QueueFullError& e) {
      throw ApiError(503, e.what(), "", "server_error");
    }
  }
}

int64_t count_tokens(const std::vector<std::vector<int32_t>>& inputs) {
  int64_t n = 0;
  for (const auto& v : inputs) n += static_cast<int64_t>(v.size());
  return n;
}

std::vector<std::vector<float>> embed_tokens(ServerState& s, const ServedModel& m,
                                             const std::vector<std::vector<int32_t>>& inputs) {
  std::vector<std::vector<float>> vectors(inputs.size());
  EmbedOptions eo;
  eo.pooling = m.embed.pooling;
  run_in_pieces(s, m, inputs, [&](Model& model, size_t first, size_t last) {
    std::vector<std::vector<int32_t>> part(inputs.begin() + static_cast<std::ptrdiff_t>(first),
                                           inputs.begin() + static_cast<std::ptrdiff_t>(last));
    auto out = embed_inputs(model, part, eo);
    for (size_t i = first; i < last; ++i) vectors[i] = std::move(out[i - first]);
  });
  return vectors;
}

void require_embeddings(const ServedModel& m) {
  if (!m.embed.embeddings)
    throw ApiError(400, "model '" + m.name + "': " + m.embed.why_not, "model", "invalid_request_error",
                   "model_not_supported");
}

void require_rerank(const ServedModel& m) {
  if (!m.embed.rerank)
    throw ApiError(400, "model '" + m.name + "' is not a reranker (neither a classification head with pooling rank "
                        "nor a decoder reranker: serve one with --rerank-model, or a decoder with --reranker)",
                   "model", "invalid_request_error", "model_not_supported");
}

// The (query, document) inputs of a rerank request, checked against the context.
std::vector<std::vector<int32_t>> rerank_tokens(const ServedModel& m, const std::string& query,
                                                const std::vector<std::string>& texts) {
  std::vector<std::vector<int32_t>> inputs;
  const int64_t limit = std::min<int64_t>(m.ctx, m.embed.max_tokens);
  for (size_t i = 0; i < texts.size(); ++i) {
    inputs.push_back(rerank_input(*m.tok, m.embed.rerank_format, query, texts[i]));
    if (static_cast<int64_t>(inputs.back().size()) > limit)
      throw ApiError(400, "query and documents[" + std::to_string(i) + "] together have " +
                              std::to_string(inputs.back().size()) + " tokens, more than the model's context of " +
                              std::to_string(limit), "documents");
  }
  return inputs;
}

std::vector<float> score_tokens(ServerState& s, const ServedModel& m, const std::vector<std::vector<int32_t>>& inputs) {
  std::vector<float> scores(inputs.size());
  run_in_pieces(s, m, inputs, [&](Model& model, size_t first, size_t last) {
    std::vector<std::vector<int32_t>> part(inputs.begin() + static_cast<std::ptrdiff_t>(first),
                                           inputs.begin() + static_cast<std::ptrdiff_t>(last));
    auto out = rerank_inputs(model, m.embed.rerank_format, part);
    std::copy(out.begin(), out.end(), scores.begin() + static_cast<std::ptrdiff_t>(first));
  });
  return scores;
}

// Parses the request, embeds, and builds the response body.
Json embeddings(ServerState& s, const Json& body) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  const ServedModel& m = route_model(s, body, false);
  require_embeddings(m);
  bool base64 = false;
  if (auto f = body.find("encoding_format"); f != body.end() && !f->is_null()) {
    if (!f->is_string() || (*f != "float" && *f != "base64"))
      throw ApiError(400, "'encoding_format' must be \"float\" or \"base64\"", "encoding_format");
    base64 = *f == "base64";
  }
  int64_t dims = 0;
  if (auto d = body.find("dimensions"); d != body.end() && !d->is_null()) {
    if (!d->is_number_integer() || d->get<int64_t>() < 1 || d->get<int64_t>() > m.embed.n_embd)
      throw ApiError(400, "'dimensions' must be an integer from 1 to " + std::to_string(m.embed.n_embd), "dimensions");
    dims = d->get<int64_t>();
  }
  const auto in = body.find("input");
  const std::vector<std::vector<int32_t>> inputs = parse_inputs(in == body.end() ? Json() : *in, m);
  std::vector<std::vector<float>> vectors = embed_tokens(s, m, inputs);
  Json data = Json::array();
  for (size_t i = 0; i < vectors.size(); ++i) {
    std::vector<float>& v = vectors[i];
    if (dims > 0 && dims < static_cast<int64_t>(v.size())) {  // Matryoshka truncation, then unit length again
      v.resize(static_cast<size_t>(dims));
      l2_normalize(v.data(), dims);
    }
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", base64 ? Json(base64_floats(v)) : Json(v)}});
  }
  const int64_t n = count_tokens(inputs);
  return {{"object", "list"}, {"data", std::move(data)}, {"model", m.name},
          {"usage", {{"prompt_tokens", n}, {"total_tokens", n}}}};
}

std::string document_text(const Json& d, size_t i) {
  if (d.is_string()) return d.get<std::string>();
  if (d.is_object() && d.contains("text") && d["text"].is_string()) return d["text"].get<std::string>();
  throw ApiError(400, "documents[" + std::to_string(i) + "] must be a string (or an object with a 'text' string)",
                 "documents");
}

Json rerank(ServerState& s, const Json& body) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  const ServedModel& m = route_model(s, body, true);
  require_rerank(m);
  const auto q = body.find("query");
  if (q == body.end() || !q->is_string() || q->get<std::string>().empty())
    throw ApiError(400, "'query' must be a non-empty string", "query");
  const auto docs = body.find("documents");
  if (docs == body.end() || !docs->is_array() || docs->empty())
    throw ApiError(400, "'documents' must be a non-empty list of strings", "documents");
  int64_t top_n = static_cast<int64_t>(docs->size());
  if (auto t = body.find("top_n"); t != body.end() && !t->is_null()) {
    if (!t->is_number_integer() || t->get<int64_t>() < 1) throw ApiError(400, "'top_n' must be a positive integer", "top_n");
    top_n = std::min(top_n, t->get<int64_t>());
  }
  bool return_documents = false;
  if (auto r = body.find("return_documents"); r != body.end() && !r->is_null()) {
    if (!r->is_boolean()) throw ApiError(400, "'return_documents' must be a boolean", "return_documents");
    return_documents = r->get<bool>();
  }
  std::vector<std::string> texts;
  for (size_t i = 0; i < docs->size(); ++i) texts.push_back(document_text((*docs)[i], i));
  const std::vector<std::vector<int32_t>> inputs = rerank_tokens(m, q->get<std::string>(), texts);
  const std::vector<float> scores = score_tokens(s, m, inputs);
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  Json results = Json::array();
  for (int64_t r = 0; r < top_n; ++r) {
    const size_t i = order[static_cast<size_t>(r)];
    Json item = {{"index", i}, {"relevance_score", scores[i]}};
    if (return_documents) item["document"] = {{"text", texts[i]}};
    results.push_back(std::move(item));
  }
  const int64_t n = count_tokens(inputs);
  return {{"object", "list"}, {"model", m.name}, {"results", std::move(results)},
          {"usage", {{"prompt_tokens", n}, {"total_tokens", n}}}};
}

void respond(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res,
             Json (*fn)(ServerState&, const Json&)) {
  Json j;
  if (!parse_body(s, req, body, res, j)) return;
  const auto start = std::chrono::steady_clock::now();
  try {
    Json out = fn(s, j);
    const int64_t tokens = out["usage"]["prompt_tokens"].get<int64_t>();
    send_json(res, 200, out);
    s.metrics.count_request(200);
    log_request(s, req.method, req.path, 200, tokens, 0,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  } catch (const std::exception& e) {
    answer_error(s, req, res, e);
  }
}

}  // namespace

const ServedModel& route_model(const ServerState& s, const Json& body, bool rerank) {
  if (auto m = body.find("model"); m != body.end() && m->is_string())
    for (const ServedModel& t : s.models)
      if (t.name == m->get<std::string>()) return t;
  const char* role = rerank ? "rerank" : "embedding";
  for (const ServedModel& t : s.models)
    if (t.role == role) return t;
  return s.models.front();
}

std::vector<std::vector<float>> embed_texts(ServerState& s, const ServedModel& target,
                                            const std::vector<std::string>& texts) {
  require_embeddings(target);
  Json input = Json::array();
  for (const std::string& t : texts) input.push_back(t);
  return embed_tokens(s, target, parse_inputs(input, target));
}

std::vector<float> rerank_texts(ServerState& s, const ServedModel& target, const std::string& query,
                                const std::vector<std::string>& documents) {
  require_rerank(target);
  return score_tokens(s, target, rerank_tokens(target, query, documents));
}

void handle_embeddings(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res) {
  ++s.active;
  respond(s, req, body, res, embeddings);
  --s.active;
}

void handle_rerank(ServerState& s, const httplib::Request& req, const std::string& body, httplib::Response& res) {
  ++s.active;
  respond(s, req, body, res, rerank);
  --s.active;
}

}  // namespace volga::server
