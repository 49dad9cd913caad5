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
#include <optional>
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

// A document as the index knows it.
struct DocumentInfo {
  std::string source;    // absolute path
  int64_t size = 0;      // bytes of the file when it was added
  int64_t mtime = 0;     // its modification time (nanoseconds since the epoch)
  std::string hash;      // content_hash() of its bytes
  int64_t chunks = 0;    // chunks stored for it
};

// One chunk to store: its text, byte range in the extracted text and vector.
struct ChunkRecord {
  std::string text;
  int64_t start = 0, end = 0;
  std::vector<float> vector;  // dim() floats, L2-normalised
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

  // --- Added for `volga index` (index_store.cpp) ---

  // Every document, by path; one document by path (nullopt when absent).
  virtual std::vector<DocumentInfo> documents() const = 0;
  virtual std::optional<DocumentInfo> document(const std::string& source) const = 0;

  // A free-form setting kept in the index (e.g. "model_path"), "" when unset.
  virtual std::string setting(const std::string& key) const = 0;

  // Writes (an index opened read-write): staged in a transaction and written
  // by commit(); an index destroyed without commit() is left as it was.
  // put_document replaces the document's chunks when it exists (doc.chunks is
  // set from `chunks`); remove_document returns false when it was absent.
  virtual void put_document(const DocumentInfo& doc, const std::vector<ChunkRecord>& chunks) = 0;
  virtual bool remove_document(const std::string& source) = 0;
  virtual void set_setting(const std::string& key, const std::string& value) = 0;
  // Makes the staged writes durable: the vectors are written to a new file,
  // synced and renamed into place, then the SQLite transaction that names it
  // commits, then the previous vectors file is deleted. A crash at any point
  // leaves either the old or the new index, never a mix.
  virtual void commit() = 0;
};

// The index's files in `dir`: index.sqlite and the vectors file it names.
inline constexpr const char* kIndexDatabase = "index.sqlite";
inline constexpr int kIndexFormatVersion = 1;

}  // namespace volga::retrieval
