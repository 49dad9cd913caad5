// DocIndex over SQLite (documents, chunks, metadata) and hnswlib (vectors,
// inner product of L2-normalised vectors = cosine similarity). The vectors
// live in `vectors-<generation>.hnsw` beside index.sqlite, whose metadata
// names the current file with its size and hash; a file that does not match
// is refused as corrupt. Labels in the HNSW graph are chunk row ids
// (AUTOINCREMENT, never reused); removed chunks are marked deleted.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <hnswlib/hnswlib.h>
#include <mutex>

#include "retrieval/extract.h"
#include "retrieval/index.h"
#include "retrieval/sqlite_db.h"
#include "util/error.h"

namespace volga::retrieval {

namespace fs = std::filesystem;

namespace {

constexpr size_t kHnswM = 16, kHnswEfConstruction = 200, kHnswEfSearch = 128;
constexpr int64_t kMaxDim = 1 << 16;

const char* kSchema = R"(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents(id INTEGER PRIMARY KEY, source TEXT UNIQUE NOT NULL, size INTEGER NOT NULL,
                       mtime INTEGER NOT NULL, hash TEXT NOT NULL, chunks INTEGER NOT NULL);
CREATE TABLE chunks(id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id INTEGER NOT NULL, seq INTEGER NOT NULL,
                    start INTEGER NOT NULL, end INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX chunks_by_doc ON chunks(doc_id, seq);
)";

int64_t parse_int(const std::string& v, const std::string& what, const std::string& db) {
  try {
    size_t used = 0;
    const long long n = std::stoll(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw Error("the index database '" + db + "' is corrupt: its " + what + " is '" + v + "'");
}

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw Error("cannot sync '" + p.string() + "': " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error("cannot sync '" + p.string() + "': " + std::strerror(errno));
}

class SqliteHnswIndex : public DocIndex {
 public:
  SqliteHnswIndex(const fs::path& dir, bool read_only, bool create, int64_t dim, const std::string& model_id)
      : dir_(dir), read_only_(read_only) {
    if (!read_only) lock_writer();
    db_ = std::make_unique<Db>((dir / kIndexDatabase).string(), read_only, create);
    if (create) init_schema(dim, model_id);
    // One read transaction: a writer cannot commit (and delete the vectors
    // file named here) until the vectors are in memory.
    db_->exec("BEGIN");
    try {
      load_meta();
      load_vectors();
    } catch (...) {
      try {
        db_->exec("ROLLBACK");
      } catch (const Error&) {
      }
      throw;
    }
    db_->exec("COMMIT");
    if (!read_only) remove_stray_files();
  }

  ~SqliteHnswIndex() override {
    if (in_tx_) {
      try {
        db_->exec("ROLLBACK");
      } catch (const Error&) {
      }
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  int64_t dim() const override { return dim_; }
  std::string model_id() const override { return model_id_; }
  int64_t document_count() const override { return count("SELECT count(*) FROM documents"); }
  int64_t chunk_count() const override { return count("SELECT count(*) FROM chunks"); }

  std::vector<SearchHit> search(const std::vector<float>& query, int64_t k) const override {
    if (static_cast<int64_t>(query.size()) != dim_)
      throw Error("the query vector has " + std::to_string(query.size()) + " floats; the index holds vectors of " +
                  std::to_string(dim_));
    std::vector<SearchHit> hits;
    if (k <= 0 || !hnsw_ || hnsw_->cur_element_count == 0) return hits;
    std::priority_queue<std::pair<float, hnswlib::labeltype>> found;
    try {
      found = hnsw_->searchKnn(query.data(), static_cast<size_t>(k));
    } catch (const std::exception& e) {
      throw Error("the vectors of index '" + dir_.string() + "' are corrupt (" + e.what() + ")");
    }
    std::vector<std::pair<float, hnswlib::labeltype>> best;
    for (; !found.empty(); found.pop()) best.push_back(found.top());
    std::lock_guard<std::mutex> lock(db_mutex_);
    Stmt q(*db_, "SELECT c.seq, c.text, d.source FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?");
    for (auto it = best.rbegin(); it != best.rend(); ++it) {
      q.reset();
      q.bind(1, static_cast<int64_t>(it->second));
      if (!q.step()) continue;  // a vector whose chunk is gone (never written so; skip it)
      hits.push_back({q.text(2), q.integer(0), q.text(1), 1.0 - static_cast<double>(it->first)});
    }
    return hits;
  }

  void set_search_ef(int64_t ef) override {
    if (ef < 1 || ef > 100000) throw Error("the search list size (ef) must be 1 to 100000, not " + std::to_string(ef));
    hnsw_->setEf(static_cast<size_t>(ef));
  }

  std::vector<DocumentInfo> documents() const override {
    std::lock_guard<std::mutex> lock(db_mutex_);
    Stmt q(*db_, "SELECT source, size, mtime, hash, chunks FROM documents ORDER BY source");
    std::vector<DocumentInfo> out;
    while (q.step()) out.push_back({q.text(0), q.integer(1), q.integer(2), q.text(3), q.integer(4)});
    return out;
  }

  std::optional<DocumentInfo> document(const std::string& source) const override {
    std::lock_guard<std::mutex> lock(db_mutex_);
    Stmt q(*db_, "SELECT source, size, mtime, hash, chunks FROM documents WHERE source = ?");
    q.bind(1, source);
    if (!q.step()) return std::nullopt;
    return DocumentInfo{q.text(0), q.integer(1), q.integer(2), q.text(3), q.integer(4)};
  }

  std::string setting(const std::string& key) const override {
    std::lock_guard<std::mutex> lock(db_mutex_);
    return meta_value("setting." + key).value_or("");
  }

  void put_document(const DocumentInfo& doc, const std::vector<ChunkRecord>& chunks) override {
    begin_write();
    for (const ChunkRecord& c : chunks)
      if (static_cast<int64_t>(c.vector.size()) != dim_)
        throw Error("a chunk vector has " + std::to_string(c.vector.size()) + " floats; the index holds " +
                    std::to_string(dim_) + " (model " + model_id_ + ")");
    drop_chunks(doc.source);
    Stmt del(*db_, "DELETE FROM documents WHERE source = ?");
    del.bind(1, doc.source).run();
    Stmt ins(*db_, "INSERT INTO documents(source, size, mtime, hash, chunks) VALUES (?, ?, ?, ?, ?)");
    ins.bind(1, doc.source).bind(2, doc.size).bind(3, doc.mtime).bind(4, doc.hash);
    ins.bind(5, static_cast<int64_t>(chunks.size())).run();
    const int64_t doc_id = db_->last_insert_id();
    Stmt add(*db_, "INSERT INTO chunks(doc_id, seq, start, end, text) VALUES (?, ?, ?, ?, ?)");
    for (size_t i = 0; i < chunks.size(); ++i) {
      add.reset();
      add.bind(1, doc_id).bind(2, static_cast<int64_t>(i)).bind(3, chunks[i].start).bind(4, chunks[i].end);
      add.bind(5, chunks[i].text).run();
      add_vector(chunks[i].vector, db_->last_insert_id());
    }
  }

  bool remove_document(const std::string& source) override {
    begin_write();
    const bool existed = drop_chunks(source);
    Stmt del(*db_, "DELETE FROM documents WHERE source = ?");
    del.bind(1, source).run();
    return existed;
  }

  void set_setting(const std::string& key, const std::string& value) override {
    begin_write();
    set_meta("setting." + key, value);
  }

  void commit() override;

 private:
  void lock_writer();
  void init_schema(int64_t dim, const std::string& model_id);
  void load_meta();
  void load_vectors();
  void remove_stray_files();
  std::pair<int64_t, std::string> size_and_hash(const fs::path& p) const;

  int64_t count(const char* sql) const {
    std::lock_guard<std::mutex> lock(db_mutex_);
    Stmt q(*db_, sql);
    return q.step() ? q.integer(0) : 0;
  }

  std::optional<std::string> meta_value(const std::string& key) const {
    Stmt q(*db_, "SELECT value FROM meta WHERE key = ?");
    q.bind(1, key);
    if (!q.step()) return std::nullopt;
    return q.text(0);
  }

  std::string required_meta(const std::string& key) const {
    auto v = meta_value(key);
    if (!v) throw Error("the index database '" + db_->path() + "' is corrupt: it has no '" + key + "' entry");
    return *v;
  }

  void set_meta(const std::string& key, const std::string& value) {
    Stmt q(*db_, "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    q.bind(1, key).bind(2, value).run();
  }

  void begin_write() {
    if (read_only_) throw Error("the index '" + dir_.string() + "' was opened read-only");
    if (broken_) throw Error("an earlier write to the index failed; open it again");
    if (!in_tx_) {
      db_->exec("BEGIN IMMEDIATE");
      in_tx_ = true;
    }
  }

  // Marks the document's chunk vectors deleted and deletes its chunk rows.
  bool drop_chunks(const std::string& source) {
    Stmt ids(*db_, "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.source = ?");
    ids.bind(1, source);
    while (ids.step()) {
      try {
        hnsw_->markDelete(static_cast<hnswlib::labeltype>(ids.integer(0)));
      } catch (const std::exception&) {
        // A chunk without a vector (or one already deleted): nothing to mark.
      }
    }
    Stmt del(*db_, "DELETE FROM chunks WHERE doc_id IN (SELECT id FROM documents WHERE source = ?)");
    del.bind(1, source).run();
    Stmt doc(*db_, "SELECT 1 FROM documents WHERE source = ?");
    doc.bind(1, source);
    return doc.step();
  }

  void add_vector(const std::vector<float>& v, int64_t label) {
    if (hnsw_->cur_element_count >= hnsw_->max_elements_)
      hnsw_->resizeIndex(std::max<size_t>(1024, hnsw_->max_elements_ * 2));
    hnsw_->addPoint(v.data(), static_cast<hnswlib::labeltype>(label));
  }

  fs::path dir_;
  bool read_only_;
  int lock_fd_ = -1;
  std::unique_ptr<Db> db_;
  mutable std::mutex db_mutex_;
  int64_t dim_ = 0, generation_ = 0;
  std::string model_id_, vectors_file_;
  std::unique_ptr<hnswlib::InnerProductSpace> space_;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw_;
  bool in_tx_ = false, broken_ = false;
};

void SqliteHnswIndex::lock_writer() {
  const fs::path lock_path = dir_ / "index.lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) throw Error("cannot write to the index '" + dir_.string() + "': " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    throw Error("another process is writing to the index '" + dir_.string() + "'; try again when it has finished");
}

void SqliteHnswIndex::init_schema(int64_t dim, const std::string& model_id) {
  db_->exec("BEGIN");
  db_->exec(kSchema);
  set_meta("format_version", std::to_string(kIndexFormatVersion));
  set_meta("dim", std::to_string(dim));
  set_meta("model_id", model_id);
  set_meta("vectors_generation", "0");
  set_meta("vectors_file", "");
  set_meta("vectors_size", "0");
  set_meta("vectors_hash", "");
  db_->exec("COMMIT");
}

void SqliteHnswIndex::load_meta() {
  const std::string& db = db_->path();
  Stmt tables(*db_, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'documents', 'chunks')");
  if (!tables.step() || tables.integer(0) != 3)
    throw Error("'" + db + "' is not a volga index (its tables are missing)");
  const int64_t version = parse_int(required_meta("format_version"), "format version", db);
  if (version != kIndexFormatVersion)
    throw Error("the index '" + dir_.string() + "' has format version " + std::to_string(version) +
                "; this volga reads version " + std::to_string(kIndexFormatVersion));
  dim_ = parse_int(required_meta("dim"), "dimension", db);
  if (dim_ < 1 || dim_ > kMaxDim) throw Error("the index database '" + db + "' is corrupt: dimension " + std::to_string(dim_));
  model_id_ = required_meta("model_id");
  generation_ = parse_int(required_meta("vectors_generation"), "vectors generation", db);
  vectors_file_ = required_meta("vectors_file");
}

std::pair<int64_t, std::string> SqliteHnswIndex::size_and_hash(const fs::path& p) const {
  const std::string bytes = read_file_bytes(p.string());
  return {static_cast<int64_t>(bytes.size()), content_hash(bytes)};
}

void SqliteHnswIndex::load_vectors() {
  space_ = std::make_unique<hnswlib::InnerProductSpace>(static_cast<size_t>(dim_));
  if (vectors_file_.empty()) {
    hnsw_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), 1024, kHnswM, kHnswEfConstruction);
    hnsw_->setEf(kHnswEfSearch);
    if (chunk_count() != 0)
      throw Error("the index '" + dir_.string() + "' is corrupt: it has chunks but no vectors file");
    return;
  }
  const fs::path path = dir_ / vectors_file_;
  if (vectors_file_.find('/') != std::string::npos || vectors_file_.rfind("vectors-", 0) != 0)
    throw Error("the index database '" + db_->path() + "' is corrupt: it names the vectors file '" + vectors_file_ + "'");
  if (!fs::is_regular_file(path))
    throw Error("the index '" + dir_.string() + "' is incomplete: its vectors file " + vectors_file_ + " is missing");
  const auto [size, hash] = size_and_hash(path);
  const int64_t want_size = parse_int(required_meta("vectors_size"), "vectors size", db_->path());
  if (size != want_size || hash != required_meta("vectors_hash"))
    throw Error("the vectors file '" + path.string() + "' is corrupt (its size or checksum is not the one " +
                kIndexDatabase + " recorded); rebuild the index");
  try {
    hnsw_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), path.string());
  } catch (const std::exception& e) {
    throw Error("the vectors file '" + path.string() + "' cannot be read (" + e.what() + "); rebuild the index");
  }
  // The graph must hold vectors of this index's dimension.
  const size_t want = hnsw_->size_links_level0_ + static_cast<size_t>(dim_) * sizeof(float) + sizeof(hnswlib::labeltype);
  if (hnsw_->size_data_per_element_ != want || hnsw_->offsetData_ != hnsw_->size_links_level0_)
    throw Error("the vectors file '" + path.string() + "' does not hold vectors of " + std::to_string(dim_) +
                " floats; rebuild the index");
  hnsw_->setEf(kHnswEfSearch);
}

// Vectors files a crash left behind (a temporary, or a new file whose
// transaction never committed) are not named by the database: delete them.
void SqliteHnswIndex::remove_stray_files() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("vectors-", 0) == 0 && name != vectors_file_) fs::remove(entry.path(), ec);
  }
}

void SqliteHnswIndex::commit() {
  if (!in_tx_) return;
  // No vectors at all: no file (hnswlib cannot load an empty one).
  const bool empty = hnsw_->cur_element_count == 0;
  const std::string name = empty ? "" : "vectors-" + std::to_string(generation_ + 1) + ".hnsw";
  const fs::path final_path = dir_ / (empty ? "vectors-none" : name), tmp_path = dir_ / (name + ".tmp");
  try {
    if (empty) {
      set_meta("vectors_file", "");
      set_meta("vectors_size", "0");
      set_meta("vectors_hash", "");
      db_->exec("COMMIT");
      in_tx_ = false;
      if (!vectors_file_.empty()) fs::remove(dir_ / vectors_file_);
      vectors_file_.clear();
      return;
    }
    hnsw_->saveIndex(tmp_path.string());
    fsync_path(tmp_path, false);
    const auto [size, hash] = size_and_hash(tmp_path);
    fs::rename(tmp_path, final_path);
    fsync_path(dir_, true);
    set_meta("vectors_generation", std::to_string(generation_ + 1));
    set_meta("vectors_file", name);
    set_meta("vectors_size", std::to_string(size));
    set_meta("vectors_hash", hash);
    db_->exec("COMMIT");
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(tmp_path, ec);
    fs::remove(final_path, ec);
    try {
      db_->exec("ROLLBACK");
    } catch (const Error&) {
    }
    in_tx_ = false;
    broken_ = true;
    throw Error(std::string("could not write the index '") + dir_.string() + "': " + e.what() +
                " (the index is unchanged)");
  }
  in_tx_ = false;
  const std::string old = vectors_file_;
  ++generation_;
  vectors_file_ = name;
  std::error_code ec;
  if (!old.empty()) fs::remove(dir_ / old, ec);
}

}  // namespace

std::unique_ptr<DocIndex> DocIndex::open(const std::string& dir, bool read_only) {
  const fs::path d(dir);
  if (!fs::is_regular_file(d / kIndexDatabase))
    throw Error("'" + dir + "' is not a volga index (no " + kIndexDatabase + " in it); create one with 'volga index add'");
  return std::make_unique<SqliteHnswIndex>(d, read_only, false, 0, "");
}

std::unique_ptr<DocIndex> DocIndex::create(const std::string& dir, int64_t dim, const std::string& model_id) {
  const fs::path d(dir);
  if (dim < 1 || dim > kMaxDim) throw Error("an index needs vectors of 1 to 65536 floats, not " + std::to_string(dim));
  std::error_code ec;
  if (fs::exists(d / kIndexDatabase, ec)) throw Error("an index already exists in '" + dir + "'");
  if (fs::exists(d, ec) && !fs::is_directory(d, ec)) throw Error("'" + dir + "' exists and is not a directory");
  if (fs::is_directory(d, ec) && !fs::is_empty(d, ec))
    throw Error("'" + dir + "' is a directory with files in it but no index; give a new or empty directory for the index");
  fs::create_directories(d, ec);
  if (ec) throw Error("cannot create the index directory '" + dir + "': " + ec.message());
  return std::make_unique<SqliteHnswIndex>(d, false, true, dim, model_id);
}

}  // namespace volga::retrieval
