// add_files, remove_paths, search_text: see indexer.h.
#include "retrieval/indexer.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "retrieval/extract.h"
#include "util/error.h"

namespace volga::retrieval {

namespace fs = std::filesystem;

namespace {

struct FileStat {
  int64_t size = 0, mtime = 0;
};

FileStat stat_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error("cannot read '" + path + "'");
  return {static_cast<int64_t>(st.st_size), static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.size() > 1 && name[0] == '.' && name != "..";
}

void walk_directory(const fs::path& dir, std::set<std::string>& out) {
  std::error_code ec;
  auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw Error("cannot read the directory '" + dir.string() + "': " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw Error("cannot read the directory '" + dir.string() + "': " + ec.message());
    if (hidden(it->path())) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && kind_of_path(it->path().string()) != DocKind::Unknown)
      out.insert(absolute_source(it->path().string()));
  }
}

// Chunks of the document's text, embedded in batches (progress after each).
std::vector<ChunkRecord> embed_chunks(Embedder& embedder, const std::vector<Chunk>& chunks, const AddOptions& opts,
                                      AddProgress& state, int64_t doc_bytes,
                                      const std::function<void(const AddProgress&)>& progress) {
  std::vector<ChunkRecord> out;
  out.reserve(chunks.size());
  const int64_t bytes_before = state.bytes_done;
  state.chunks_total = static_cast<int64_t>(chunks.size());
  const size_t batch = static_cast<size_t>(std::max<int64_t>(1, opts.batch_chunks));
  for (size_t i = 0; i < chunks.size(); i += batch) {
    const size_t n = std::min(batch, chunks.size() - i);
    std::vector<std::string> texts;
    for (size_t j = i; j < i + n; ++j) texts.push_back(chunks[j].text);
    std::vector<std::vector<float>> vectors = embedder.embed(texts);
    if (vectors.size() != n) throw Error("the embedder returned " + std::to_string(vectors.size()) + " vectors for " + std::to_string(n) + " texts");
    for (size_t j = 0; j < n; ++j)
      out.push_back({chunks[i + j].text, chunks[i + j].start, chunks[i + j].end, std::move(vectors[j])});
    state.chunks_done = static_cast<int64_t>(i + n);
    state.bytes_done = bytes_before + doc_bytes * state.chunks_done / std::max<int64_t>(1, state.chunks_total);
    if (progress) progress(state);
  }
  return out;
}

}  // namespace

std::string absolute_source(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  if (ec) p = fs::absolute(path).lexically_normal();
  return p.string();
}

std::vector<std::string> collect_files(const std::vector<std::string>& paths) {
  std::set<std::string> files;
  for (const std::string& p : paths) {
    std::error_code ec;
    const fs::file_status st = fs::status(p, ec);
    if (ec || !fs::exists(st)) throw Error("'" + p + "' does not exist");
    if (fs::is_directory(st)) walk_directory(p, files);
    else if (fs::is_regular_file(st)) files.insert(absolute_source(p));
    else throw Error("'" + p + "' is neither a file nor a directory");
  }
  return {files.begin(), files.end()};
}

void check_same_model(const DocIndex& index, const Embedder& embedder) {
  if (embedder.model_id() != index.model_id() || embedder.dim() != index.dim())
    throw Error("the index was built with the embedding model " + index.model_id() + ", not " + embedder.model_id() +
                "; use that model (--model) or build a new index");
}

AddSummary add_files(DocIndex& index, Embedder& embedder, const std::vector<std::string>& files,
                     const AddOptions& opts, const std::function<void(const AddProgress&)>& progress,
                     const std::function<void(const FileEvent&)>& on_file) {
  check_same_model(index, embedder);
  ChunkOptions chunking = opts.chunk;
  if (chunking.max_tokens <= 0) chunking.max_tokens = std::min<int64_t>(256, embedder.max_tokens());
  if (chunking.max_tokens > embedder.max_tokens())
    throw Error("chunks of " + std::to_string(chunking.max_tokens) + " tokens are longer than the model's limit of " +
                std::to_string(embedder.max_tokens()));
  AddSummary summary;
  AddProgress state;
  std::vector<FileStat> stats(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    try {
      stats[i] = stat_file(files[i]);
    } catch (const Error&) {
    }
    state.bytes_total += stats[i].size;
  }
  int64_t staged = 0;
  auto report = [&](FileEvent e) {
    if (on_file) on_file(e);
  };
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& path = files[i];
    state.source = path;
    state.chunks_done = state.chunks_total = 0;
    const int64_t bytes_after = state.bytes_done + stats[i].size;
    const std::optional<DocumentInfo> old = index.document(path);
    try {
      const FileStat st = stat_file(path);
      if (old && old->size == st.size && old->mtime == st.mtime) {
        ++summary.unchanged;
        report({FileEvent::Unchanged, path, old->chunks, ""});
        state.bytes_done = bytes_after;
        continue;
      }
      const std::string hash = content_hash(read_file_bytes(path));
      if (old && old->hash == hash) {
        ++summary.unchanged;
        report({FileEvent::Unchanged, path, old->chunks, ""});
        state.bytes_done = bytes_after;
        continue;
      }
      DocKind kind = kind_of_path(path);
      if (kind == DocKind::Unknown) kind = DocKind::Text;
      const std::string text = extract_text(path, kind);
      const std::vector<Chunk> chunks =
          chunk_text(text, chunking, [&](const std::string& t) { return embedder.count_tokens(t); });
      const std::vector<ChunkRecord> records = embed_chunks(embedder, chunks, opts, state, st.size, progress);
      index.put_document({path, st.size, st.mtime, hash, 0}, records);
      ++(old ? summary.updated : summary.added);
      summary.chunks += static_cast<int64_t>(records.size());
      staged += static_cast<int64_t>(records.size());
      report({old ? FileEvent::Updated : FileEvent::Added, path, static_cast<int64_t>(records.size()), ""});
    } catch (const Error& e) {
      ++summary.skipped;
      report({FileEvent::Skipped, path, 0, e.what()});
    }
    state.bytes_done = bytes_after;
    if (progress) progress(state);
    if (staged >= opts.commit_chunks) {
      index.commit();
      staged = 0;
    }
  }
  index.commit();
  return summary;
}

std::vector<std::string> remove_paths(DocIndex& index, const std::vector<std::string>& paths) {
  std::vector<std::string> removed;
  const std::vector<DocumentInfo> docs = index.documents();
  for (const std::string& p : paths) {
    const std::string abs = absolute_source(p);
    const std::string prefix = abs + (abs.empty() || abs.back() == '/' ? "" : "/");
    for (const DocumentInfo& d : docs)
      if ((d.source == abs || d.source.rfind(prefix, 0) == 0) && index.remove_document(d.source))
        removed.push_back(d.source);
  }
  index.commit();
  return removed;
}

std::vector<SearchHit> search_text(const DocIndex& index, Embedder& embedder, const std::string& query, int64_t k) {
  check_same_model(index, embedder);
  if (query.find_first_not_of(" \t\r\n") == std::string::npos) throw Error("the query is empty");
  const std::vector<std::vector<float>> v = embedder.embed({query});
  return index.search(v.at(0), k);
}

}  // namespace volga::retrieval
