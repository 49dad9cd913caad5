// A thin RAII layer over SQLite 3 for the document index: a connection and
// prepared statements whose failures throw volga::Error naming the database.
// Not thread-safe: one thread per Db at a time (the index serialises).
#pragma once

#include <cstdint>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace volga::retrieval {

class Db {
 public:
  // Opens an existing database (create = false) or creates one; throws
  // volga::Error when it cannot, or when the file is not a sound SQLite
  // database (PRAGMA quick_check).
  Db(const std::string& path, bool read_only, bool create);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql);
  int64_t last_insert_id() const;
  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }
  [[noreturn]] void fail(const std::string& what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Stmt {
 public:
  Stmt(const Db& db, const char* sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, const std::string& v);
  // True while there is a row; throws on error.
  bool step();
  void run() {  // a statement without rows
    while (step()) {
    }
  }
  void reset();
  int64_t integer(int col) const;
  std::string text(int col) const;

 private:
  const Db& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace volga::retrieval
