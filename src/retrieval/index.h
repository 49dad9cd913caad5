// A local document index: documents are split into overlapping chunks, each
// chunk is embedded by an embedding model, and chunks, metadata and vectors
// are stored in one directory (SQLite for documents and chunks, an
// approximate-nearest-neighbour index from a Debian library for vectors).
//
// Used by `volga index add|search|remove|list` and by `volga serve --index`
// (retrieval-augmented chat).
//
// Thread-safety: a DocIndex opened read-only may be searched from several
// threads at once; add/remove need exclusive access (one writer, no readers).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace volga::retrieval {

// Turns texts into vectors. The index calls it with batches of chunk texts
// (and, when searching from a query string, with the query alone). An
// implementation owns its model and is not shared across threads.
class Embedder {
 public:
  virtual ~Embedder() = default;
  // One L2-normalised vector of dim() floats per text.
  virtual std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) = 0;
  virtual int64_t dim() const = 0;
  // Identifies the model (file name and dimension), stored in the index so
  // that searching with another model is refused with a clear message.
  virtual std::string model_id() const = 0;
  // The most tokens one text may have; longer chunks are split further.
  virtual int64_t max_tokens() const = 0;
  // Token count of a text under the model's tokenizer (used by the chunker).
  virtual int64_t count_tokens(const std::string& text) const = 0;
};

struct SearchHit {
  std::string source;    // the document as it was added (absolute path)
  int64_t chunk = 0;     // the chunk's number within its document, from 0
  std::string text;      // the chunk's text
  double score = 0;      // cosine similarity to the query (higher is closer)
};

struct AddProgress {
  std::string source;    // the document being indexed
  int64_t chunks_done = 0, chunks_total = 0;
  int64_t bytes_done = 0, bytes_total = 0;  // over the whole add() call
};

class DocIndex {
 public:
  // Opens an existing index directory. Throws volga::Error when it does not
  // exist or is corrupt (the files are never overwritten by a failed open).
  static std::unique_ptr<DocIndex> open(const std::string& dir, bool read_only);
  // Creates a new index directory for vectors of `dim` floats from `model_id`;
  // throws when one already exists there.
  static std::unique_ptr<DocIndex> create(const std::string& dir, int64_t dim, const std::string& model_id);

  virtual ~DocIndex() = default;

  virtual int64_t dim() const = 0;
  virtual std::string model_id() const = 0;
  virtual int64_t document_count() const = 0;
  virtual int64_t chunk_count() const = 0;

  // The k chunks closest to `query` (dim() floats, L2-normalised), best first.
  virtual std::vector<SearchHit> search(const std::vector<float>& query, int64_t k) const = 0;
};

}  // namespace volga::retrieval
