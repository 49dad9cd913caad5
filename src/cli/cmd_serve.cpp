// volga serve MODEL: the OpenAI-compatible HTTP server.
#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <tuple>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "server/server.h"
#include "util/error.h"

namespace volga::cli {

Command add_serve(CLI::App& app) {
  auto o = std::make_shared<server::ServerOptions>();
  auto key = std::make_shared<std::string>();
  auto key_file = std::make_shared<std::string>();
  auto kv = std::make_shared<KvFlags>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a model over the OpenAI API (/v1/chat/completions, /v1/completions, /v1/responses, /v1/models, /health, /metrics)");
  cmd->add_option("model", o->model_path, kModelHelp)->check(CLI::ExistingFile);
  cmd->add_option("--host", o->host, "Address to listen on (0.0.0.0 for every interface)")->default_val("127.0.0.1");
  cmd->add_option("--port", o->port, "TCP port")->default_val(8080)->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", *key, "Require 'Authorization: Bearer KEY' (prefer --api-key-file: arguments are visible to other users)");
  cmd->add_option("--api-key-file", *key_file, "File with one accepted API key per line")->check(CLI::ExistingFile);
  cmd->add_option("--parallel", o->parallel, "Sequences generated at once (continuous batching)")->default_val(4)->check(CLI::Range(1, 256));
  add_ctx_size_option(cmd, o->ctx_size,
                  "Most tokens of one request, prompt and reply (capped at the model's and at the KV cache budget)")->default_val(4096)->check(CLI::Range(16, 1 << 24));
  add_threads_option(cmd, o->threads);
  add_kv_options(cmd, *kv, true);
  cmd->add_option("--max-queue", o->max_queue, "Requests that may wait for a slot; beyond it the server answers 503")->default_val(64)->check(CLI::Range(0, 100000));
  cmd->add_option("--alias", o->model_name, "Model name reported by the API (default: the file name)");
  cmd->add_flag("-q,--quiet", o->quiet, "Do not log one line per request on stderr");
  cmd->add_flag("--embeddings", o->embeddings, "Serve POST /v1/embeddings from a generative model too (embedding and reranking models always do)");
  cmd->add_option("--pooling", o->pooling, "Embedding pooling: none, mean, cls, last (default: the model's pooling_type; last for decoders)");
  cmd->add_flag("--reranker", o->reranker, "Serve the model as a decoder reranker (Qwen3-Reranker): POST /v1/rerank scores by its yes/no logits");
  cmd->add_option("--embed-model", o->embed_model_path, "Also load this embedding model: POST /v1/embeddings goes to it (with --index, default: the model the index was built with)")->check(CLI::ExistingFile);
  cmd->add_option("--rerank-model", o->rerank_model_path, "Also load this reranker (cross-encoder, or a decoder such as Qwen3-Reranker): POST /v1/rerank goes to it")->check(CLI::ExistingFile);
  cmd->add_option("--index", o->index_dir, "Document index (volga index add) for retrieval-augmented chat: requests opt in with \"volga_retrieval\" (docs/API.md)")->check(CLI::ExistingDirectory);
  cmd->add_option("--chat-template-file", o->chat_template_file, "Use this Jinja2 template instead of the model's")->check(CLI::ExistingFile);
  auto mpi_flags = std::make_shared<MpiFlags>();
  add_mpi_options(cmd, *mpi_flags);
  return [o, key, key_file, kv, mpi_flags]() -> int {
    // SIGINT/SIGTERM go to the server's signal thread (run_server); block them
    // before MPI starts its own threads, which would otherwise take them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (MpiComm::launched() || mpi_flags->forced) pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    MpiLaunch mpi(*mpi_flags);
    if (mpi.is_worker()) {
      pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);  // the main thread takes them: a stage just ends
      return run_pipeline_stage(mpi, o->model_path, o->threads);
    }
    o->mpi = &mpi;
    std::tie(o->cache_type_k, o->cache_type_v) = kv_types(*kv);
    o->kv_memory = kv_memory_bytes(*kv);
    if (!key->empty()) o->api_keys.push_back(*key);
    if (!key_file->empty()) {
      std::ifstream in(*key_file);
      std::string line;
      while (std::getline(in, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty() && line[0] != '#') o->api_keys.push_back(line);
      }
      if (o->api_keys.empty()) throw Error("--api-key-file '" + *key_file + "' holds no key");
    }
    o->model_path = resolve_model(o->model_path);
    if (o->model_name.empty()) o->model_name = std::filesystem::path(o->model_path).stem().string();
    const int rc = server::run_server(*o);
    o->mpi = nullptr;
    return rc;
  };
}

}  // namespace volga::cli
