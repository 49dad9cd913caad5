// volga serve: the OpenAI-compatible HTTP server (cpp-httplib).
//
// HTTP threads parse and validate JSON, render the chat template, tokenize,
// submit to the Scheduler, then turn its token events into text (stop
// sequences, streaming SSE chunks). One engine thread owns the model (see
// runtime/scheduler.h). Bad requests get OpenAI-style JSON errors; no request
// can take the server down.
#pragma once

#include <string>

#include "tensor/dtype.h"
#include <vector>

namespace volga {
class MpiLaunch;
}

namespace volga::server {

struct ServerOptions {
  std::string model_path;
  std::string model_name;         // reported in responses and /v1/models
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<std::string> api_keys;  // empty: no authentication
  int parallel = 4;               // sequences generated at once
  int ctx_size = 4096;            // most tokens of one request
  int64_t kv_memory = 0;          // KV cache budget in bytes; 0: derived from free memory
  DType cache_type_k = DType::F16;
  DType cache_type_v = DType::F16;
  int threads = 0;
  int max_queue = 64;             // requests waiting beyond the running ones
  std::string chat_template_file;
  bool quiet = false;             // no per-request log lines
  // /v1/embeddings for a generative model whose file declares no pooling
  // (embedding and reranking models answer it without this).
  bool embeddings = false;
  std::string pooling;            // none|mean|cls|last: overrides the model's pooling_type
  bool reranker = false;          // a decoder (Qwen3-Reranker) answers /v1/rerank with yes/no scores
  // Models served beside the main one, on the same engine thread and thread
  // pool: /v1/embeddings and /v1/rerank go to them (or by their `model` field).
  std::string embed_model_path;
  std::string rerank_model_path;
  // Retrieval-augmented chat (docs/API.md, "volga_retrieval"): the document
  // index directory, searched with the embedding model it was built with.
  std::string index_dir;
  // Rank 0 of an MPI job: loads the model as a pipeline over the ranks
  // (runtime/mpi_pipeline.h); null: load_model().
  MpiLaunch* mpi = nullptr;
};

// Runs until SIGINT/SIGTERM, then finishes in-flight requests and returns 0.
// Rank 0 of an MPI job whose launcher sends the signal (a rank has died)
// answers in-flight and new requests with 503 instead and exits with status 1
// (docs/MULTINODE.md, "Failures").
// Throws volga::Error when the model cannot be loaded or the port bound.
int run_server(const ServerOptions& opts);

}  // namespace volga::server
