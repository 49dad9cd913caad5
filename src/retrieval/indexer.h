// What `volga index add|remove|search` do with files and texts, on top of
// DocIndex and an Embedder: finding the files (directories recursively),
// skipping unchanged ones, extracting, chunking, embedding in batches and
// storing, with progress reports. Not thread-safe (one writer).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "retrieval/chunker.h"
#include "retrieval/index.h"

namespace volga::retrieval {

struct AddOptions {
  ChunkOptions chunk;          // max_tokens 0: min(256, the embedder's max_tokens())
  int64_t batch_chunks = 16;   // chunks embedded per call
  int64_t commit_chunks = 20000;  // commit after this many staged chunks (and at the end)
};

// What happened to one file.
struct FileEvent {
  enum Kind { Added, Updated, Unchanged, Skipped } kind = Added;
  std::string source;
  int64_t chunks = 0;
  std::string reason;  // why it was skipped
};

struct AddSummary {
  int64_t added = 0, updated = 0, unchanged = 0, skipped = 0, chunks = 0;
};

// The files that `paths` name: files as given, directories walked
// recursively for the kinds extract.h knows (hidden entries skipped), each
// as an absolute path, sorted, without duplicates. Throws volga::Error for a
// path that does not exist.
std::vector<std::string> collect_files(const std::vector<std::string>& paths);

// Adds (or, when changed since, replaces) every file; a file that cannot be
// read or extracted (a damaged PDF, binary data) is skipped and reported.
// Throws volga::Error when the embedder's model is not the index's.
AddSummary add_files(DocIndex& index, Embedder& embedder, const std::vector<std::string>& files,
                     const AddOptions& opts, const std::function<void(const AddProgress&)>& progress,
                     const std::function<void(const FileEvent&)>& on_file);

// Removes the documents that `paths` name (a directory: every document
// under it) and commits; returns the sources removed. Paths need not exist.
std::vector<std::string> remove_paths(DocIndex& index, const std::vector<std::string>& paths);

// Embeds the query with `embedder` (refused when it is not the index's
// model) and returns the k best chunks.
std::vector<SearchHit> search_text(const DocIndex& index, Embedder& embedder, const std::string& query, int64_t k);

// Refuses (volga::Error) an embedder whose model_id() differs from the index's.
void check_same_model(const DocIndex& index, const Embedder& embedder);

// An absolute, normalised form of a path (the key documents are stored under).
std::string absolute_source(const std::string& path);

}  // namespace volga::retrieval
