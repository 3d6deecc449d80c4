// The daemon's embedded SQLite database (DATA_DIR/airlock.db, WAL): one connection, schema migrations
// keyed by PRAGMA user_version, and small RAII wrappers so no sqlite3_stmt outlives its scope.
//
// Thread safety: one connection shared by the daemon's threads; callers hold lock() around each use
// (statements are cheap to prepare, and SQLite work here is microseconds). Other processes (the
// `airlockd keys` subcommands) open their own connection; WAL plus a busy timeout lets them coexist.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace airlock::daemon {

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite. A failed bind is reported by the next step().
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bind_blob(int index, std::span<const uint8_t> data);
  Statement& bind_null(int index);
  Statement& bind(int index, const std::optional<int64_t>& value);

  // true: a row is available; false: done.
  Result<bool> step();

  int64_t int_at(int column) const;
  std::optional<int64_t> optional_int_at(int column) const;
  std::string text_at(int column) const;
  std::vector<uint8_t> blob_at(int column) const;

 private:
  void check_bind(int rc, int index);

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::optional<Error> bind_error_;
};

class Database {
 public:
  // Creates the file (mode 0600) and the schema if needed, switches to WAL and migrates.
  static Result<std::unique_ptr<Database>> open(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  [[nodiscard]] std::unique_lock<std::mutex> lock() { return std::unique_lock(connection_mu_); }

  // The callers below must hold lock().
  Result<Statement> prepare(std::string_view sql);
  Status exec(const std::string& sql);
  // BEGIN IMMEDIATE; fn; COMMIT, or ROLLBACK when fn fails.
  Status transaction(const std::function<Status()>& fn);
  int64_t schema_version();

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  Status migrate();

  std::mutex connection_mu_;  // guards db_ and every statement prepared from it
  sqlite3* db_;
};

}  // namespace airlock::daemon
