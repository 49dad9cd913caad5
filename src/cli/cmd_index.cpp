// volga index add|search|remove|list|bench: the local document index
// (src/retrieval). The index remembers the embedding model it was built with
// (its path), so only `add` on a new index needs --model.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "retrieval/index.h"
#include "retrieval/indexer.h"
#include "retrieval/model_embedder.h"
#include "util/error.h"

namespace volga::cli {

namespace {

namespace fs = std::filesystem;
using namespace volga::retrieval;

struct IndexOpt {
  std::string index, model, query;
  std::vector<std::string> paths;
  int threads = 0;
  int64_t k = 5, chunk_tokens = 0, overlap = 32;
  bool json = false, quiet = false;
  int64_t bench_chunks = 100000, bench_dim = 384, bench_queries = 1000;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The model to embed with: --model, else the one the index remembers.
std::string model_for(const IndexOpt& o, const DocIndex* index) {
  if (!o.model.empty()) return o.model;
  const std::string remembered = index ? index->setting("model_path") : "";
  if (remembered.empty())
    throw Error(index ? "the index does not name its embedding model; give --model EMBED.gguf"
                      : "a new index needs an embedding model: --model EMBED.gguf");
  if (!fs::exists(remembered))
    throw Error("the index's embedding model '" + remembered + "' is gone; give --model EMBED.gguf (the same model)");
  return remembered;
}

std::string one_line(const std::string& s, size_t most) {
  std::string out;
  for (char c : s) out += (c == '\n' || c == '\t' || c == '\r') ? ' ' : c;
  if (out.size() <= most) return out;
  size_t cut = most;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8 characters
  return out.substr(0, cut) + "...";
}

class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled), t0_(std::chrono::steady_clock::now()) {}
  void update(const AddProgress& p) {
    if (!enabled_) return;
    const double frac = p.bytes_total > 0 ? static_cast<double>(p.bytes_done) / p.bytes_total : 1.0;
    const int filled = static_cast<int>(frac * 30);
    const double mb = p.bytes_done / 1e6, secs = seconds_since(t0_);
    std::fprintf(stderr, "\r\033[K[%s%s] %3d%% %.1f/%.1f MB %.1f MB/min  %s", std::string(filled, '#').c_str(),
                 std::string(30 - filled, '.').c_str(), static_cast<int>(frac * 100), mb, p.bytes_total / 1e6,
                 secs > 0 ? mb * 60 / secs : 0.0, one_line(fs::path(p.source).filename().string(), 40).c_str());
    std::fflush(stderr);
    shown_ = true;
  }
  void clear() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
    shown_ = false;
  }

 private:
  bool enabled_, shown_ = false;
  std::chrono::steady_clock::time_point t0_;
};

int run_add(const IndexOpt& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<std::string> files = collect_files(o.paths);
  std::unique_ptr<DocIndex> index;
  std::unique_ptr<ModelEmbedder> embedder;
  const bool exists = fs::exists(fs::path(o.index) / kIndexDatabase);
  if (exists) {
    index = DocIndex::open(o.index, false);
    embedder = std::make_unique<ModelEmbedder>(model_for(o, index.get()), resolve_threads(o.threads));
  } else {
    embedder = std::make_unique<ModelEmbedder>(model_for(o, nullptr), resolve_threads(o.threads));
    index = DocIndex::create(o.index, embedder->dim(), embedder->model_id());
  }
  check_same_model(*index, *embedder);
  if (!o.model.empty()) index->set_setting("model_path", absolute_source(o.model));
  AddOptions opts;
  opts.chunk.max_tokens = o.chunk_tokens;
  opts.chunk.overlap_tokens = o.overlap;
  ProgressBar bar(isatty(2) && !o.quiet);
  const bool per_line = !isatty(2) && !o.quiet;
  const auto on_file = [&](const FileEvent& e) {
    if (e.kind == FileEvent::Skipped) {
      bar.clear();
      std::fprintf(stderr, "volga: warning: skipped %s: %s\n", e.source.c_str(), e.reason.c_str());
      return;
    }
    if (!per_line) return;
    const char* what = e.kind == FileEvent::Added ? "added" : e.kind == FileEvent::Updated ? "updated" : "unchanged";
    std::printf("%-9s %s (%lld chunks)\n", what, e.source.c_str(), static_cast<long long>(e.chunks));
    std::fflush(stdout);
  };
  const AddSummary s = add_files(*index, *embedder, files, opts, [&](const AddProgress& p) { bar.update(p); }, on_file);
  bar.clear();
  std::printf("%zu files: %lld added, %lld updated, %lld unchanged, %lld skipped; %lld new chunks in %.1f s; "
              "the index holds %lld documents, %lld chunks\n",
              files.size(), static_cast<long long>(s.added), static_cast<long long>(s.updated),
              static_cast<long long>(s.unchanged), static_cast<long long>(s.skipped), static_cast<long long>(s.chunks),
              seconds_since(t0), static_cast<long long>(index->document_count()),
              static_cast<long long>(index->chunk_count()));
  return 0;
}

int run_search(const IndexOpt& o) {
  if (o.k < 1) throw Error("-k must be at least 1");
  auto index = DocIndex::open(o.index, true);
  ModelEmbedder embedder(model_for(o, index.get()), resolve_threads(o.threads));
  const std::vector<SearchHit> hits = search_text(*index, embedder, o.query, o.k);
  if (o.json) {
    nlohmann::ordered_json out;
    out["query"] = o.query;
    out["model"] = index->model_id();
    out["hits"] = nlohmann::ordered_json::array();
    for (const SearchHit& h : hits)
      out["hits"].push_back({{"score", h.score}, {"source", h.source}, {"chunk", h.chunk}, {"text", h.text}});
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  if (hits.empty()) std::printf("no results (the index is empty)\n");
  for (size_t i = 0; i < hits.size(); ++i)
    std::printf("%zu. %.4f  %s #%lld\n   %s\n", i + 1, hits[i].score, hits[i].source.c_str(),
                static_cast<long long>(hits[i].chunk), one_line(hits[i].text, 300).c_str());
  return 0;
}

int run_remove(const IndexOpt& o) {
  auto index = DocIndex::open(o.index, false);
  const std::vector<std::string> removed = remove_paths(*index, o.paths);
  for (const std::string& r : removed) std::printf("removed %s\n", r.c_str());
  if (removed.empty()) {
    std::fprintf(stderr, "volga: warning: no document of the index is under the paths given\n");
    return 1;
  }
  return 0;
}

int run_list(const IndexOpt& o) {
  auto index = DocIndex::open(o.index, true);
  const std::vector<DocumentInfo> docs = index->documents();
  if (o.json) {
    nlohmann::ordered_json out;
    out["model"] = index->model_id();
    out["model_path"] = index->setting("model_path");
    out["dim"] = index->dim();
    out["documents"] = nlohmann::ordered_json::array();
    for (const DocumentInfo& d : docs)
      out["documents"].push_back({{"source", d.source}, {"size", d.size}, {"chunks", d.chunks}, {"hash", d.hash}});
    out["chunks"] = index->chunk_count();
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("model: %s (%s)\n", index->model_id().c_str(), index->setting("model_path").c_str());
  std::printf("documents: %zu, chunks: %lld\n", docs.size(), static_cast<long long>(index->chunk_count()));
  for (const DocumentInfo& d : docs)
    std::printf("%8lld chunks %10lld bytes  %s\n", static_cast<long long>(d.chunks), static_cast<long long>(d.size),
                d.source.c_str());
  return 0;
}

}  // namespace

int run_index_bench(int64_t chunks, int64_t dim, int64_t queries, int64_t k);

Command add_index(CLI::App& app) {
  auto o = std::make_shared<IndexOpt>();
  CLI::App* cmd = app.add_subcommand("index", "A local document index: add files, search them by meaning");
  cmd->description(
      "A local document index (a directory: SQLite for documents and chunks, hnswlib for vectors).\n"
      "Text, Markdown, HTML and PDF (with poppler-utils' pdftotext) files are split into overlapping\n"
      "chunks, embedded with an embedding model (GGUF) and searched by cosine similarity.\n"
      "  volga index add INDEX docs/ --model bge-small-en-v1.5-f16.gguf\n"
      "  volga index search INDEX \"how do I renew a contract?\" -k 5");
  cmd->require_subcommand(1);
  CLI::App* add = cmd->add_subcommand("add", "Add files and directories (recursively); changed files are re-indexed, unchanged ones skipped");
  add->add_option("index", o->index, "Index directory (created when it does not exist)")->required();
  add->add_option("paths", o->paths, "Files and directories to add (.txt .md .html .pdf ...)")->required();
  add->add_option("-m,--model", o->model, "Embedding model (GGUF); required for a new index, later it is remembered")
      ->check(CLI::ExistingFile);
  add->add_option("--chunk-tokens", o->chunk_tokens, "Tokens per chunk (default: 256, or the model's limit if lower)");
  add->add_option("--overlap", o->overlap, "Tokens shared by consecutive chunks (default 32)");
  add->add_flag("-q,--quiet", o->quiet, "No progress bar or per-file lines, only warnings and the summary");
  add_threads_option(add, o->threads);
  CLI::App* search = cmd->add_subcommand("search", "The chunks closest in meaning to a query, with scores and sources");
  search->add_option("index", o->index, "Index directory")->required();
  search->add_option("query", o->query, "The query text")->required();
  search->add_option("-k", o->k, "Number of chunks to show (default 5)");
  search->add_option("-m,--model", o->model, "Embedding model (default: the one the index was built with)")
      ->check(CLI::ExistingFile);
  search->add_flag("--json", o->json, "Print JSON: query, model, hits (score, source, chunk, text)");
  add_threads_option(search, o->threads);
  CLI::App* remove = cmd->add_subcommand("remove", "Remove documents (a directory removes every document under it)");
  remove->add_option("index", o->index, "Index directory")->required();
  remove->add_option("paths", o->paths, "Files or directories as they were added (they need not exist any more)")->required();
  CLI::App* list = cmd->add_subcommand("list", "The index's model, documents and chunk counts");
  list->add_option("index", o->index, "Index directory")->required();
  list->add_flag("--json", o->json, "Print JSON");
  CLI::App* bench = cmd->add_subcommand("bench", "Search latency on random normalised vectors (a temporary index)");
  bench->add_option("--chunks", o->bench_chunks, "Vectors in the index (default 100000)");
  bench->add_option("--dim", o->bench_dim, "Vector size (default 384, bge-small)");
  bench->add_option("--queries", o->bench_queries, "Queries to time (default 1000)");
  bench->add_option("-k", o->k, "Results per query (default 5)");
  return [o, add, search, remove, list, bench]() -> int {
    if (add->parsed()) return run_add(*o);
    if (search->parsed()) return run_search(*o);
    if (remove->parsed()) return run_remove(*o);
    if (list->parsed()) return run_list(*o);
    if (bench->parsed()) return run_index_bench(o->bench_chunks, o->bench_dim, o->bench_queries, o->k);
    return 1;
  };
}

}  // namespace volga::cli
