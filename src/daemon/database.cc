#include "daemon/database.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>

#include "common/unique_fd.h"

namespace airlock::daemon {
namespace {

// The schema, one step per version, applied in order inside a transaction. Never edit a step that has
// shipped: append a new one. Each store's tables live here so the version covers the whole file.
constexpr std::array<const char*, 6> kMigrations = {
    // 1: API keys. `hash` is SHA-256 of the secret; the secret itself is never stored.
    R"sql(
      CREATE TABLE api_keys (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order, for keyset pagination
        key_id       TEXT NOT NULL UNIQUE,
        tenant       TEXT NOT NULL,
        name         TEXT NOT NULL,
        admin        INTEGER NOT NULL CHECK (admin IN (0, 1)),
        prefix       TEXT NOT NULL,
        hash         BLOB NOT NULL CHECK (length(hash) = 32),
        created_at   INTEGER NOT NULL,                   -- ms since the epoch
        last_used_at INTEGER,
        revoked_at   INTEGER
      );
      CREATE INDEX api_keys_prefix ON api_keys (prefix);
      CREATE INDEX api_keys_tenant ON api_keys (tenant, seq);
    )sql",
    // 2: sandboxes. `spec` is the create request as JSON (env included: the file is 0600); the engine
    // columns (engine_name, id_index, init_pid, agent_socket) are what a restarted daemon needs to
    // re-take the id-range lock and reconnect to the agent.
    R"sql(
      CREATE TABLE sandboxes (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order, for keyset pagination
        sandbox_id       TEXT NOT NULL UNIQUE,
        tenant           TEXT NOT NULL,
        state            TEXT NOT NULL CHECK (state IN ('starting', 'running', 'stopped', 'terminated')),
        stop_reason      TEXT,
        stop_message     TEXT,
        spec             TEXT NOT NULL,
        engine_name      TEXT NOT NULL DEFAULT '',
        id_index         INTEGER,
        init_pid         INTEGER,
        agent_socket     TEXT NOT NULL DEFAULT '',
        process_ids      INTEGER NOT NULL DEFAULT 0,         -- agent process ids reserved so far
        created_at       INTEGER NOT NULL,                   -- ms since the epoch
        started_at       INTEGER,
        ended_at         INTEGER,
        expires_at       INTEGER,
        last_activity_at INTEGER NOT NULL
      );
      CREATE INDEX sandboxes_tenant ON sandboxes (tenant, seq);
      CREATE INDEX sandboxes_state ON sandboxes (state);
    )sql",
    // [obs] 3: tenant quotas (quota_store.h). A tenant without a row gets the daemon's defaults;
    // NULL in a limit column is unlimited.
    R"sql(
      CREATE TABLE quotas (
        tenant        TEXT PRIMARY KEY,
        max_sandboxes INTEGER,
        max_memory_mb INTEGER,
        updated_at    INTEGER NOT NULL                     -- ms since the epoch
      );
    )sql",
    // 4: background processes, so that they are still listed and reachable after a restart.
    R"sql(
      CREATE TABLE processes (
        sandbox_seq INTEGER NOT NULL,
        id          INTEGER NOT NULL,                     -- the agent protocol's process id
        pid         INTEGER NOT NULL,
        running     INTEGER NOT NULL,
        doc         TEXT NOT NULL,                        -- JSON: what was asked and how it ended
        PRIMARY KEY (sandbox_seq, id)
      );
    )sql",
    // 5: Idempotency-Key replays (idempotency.h): the first 2xx response of createSandbox and
    // startProcess per (tenant, operation, scope, key). `scope` is the sandbox id for startProcess and
    // '' for createSandbox; `expires_at` NULL: kept while the scope (sandbox) is live.
    R"sql(
      CREATE TABLE idempotency_keys (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: the oldest are evicted first
        tenant       TEXT NOT NULL,
        operation    TEXT NOT NULL,
        scope        TEXT NOT NULL,
        idem_key     TEXT NOT NULL,
        request_hash BLOB NOT NULL CHECK (length(request_hash) = 32),  -- SHA-256 of method, path, body
        status       INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        headers      TEXT NOT NULL,                      -- JSON [[name, value], ...]
        body         BLOB NOT NULL,
        bytes        INTEGER NOT NULL,                   -- counted against the tenant's bound
        created_at   INTEGER NOT NULL,                   -- ms since the epoch
        expires_at   INTEGER,
        UNIQUE (tenant, operation, scope, idem_key)
      );
      CREATE INDEX idempotency_keys_tenant ON idempotency_keys (tenant, seq);
      CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at) WHERE expires_at IS NOT NULL;
    )sql",
    // 6: access tokens of exposed ports (port_tokens.h). `hash` is SHA-256 of the secret; rows go with
    // their port (unexposed) and their sandbox (when it ends).
    R"sql(
      CREATE TABLE port_tokens (
        token_id   TEXT PRIMARY KEY,
        sandbox_id TEXT NOT NULL,
        port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
        name       TEXT NOT NULL,
        hash       BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
        created_at INTEGER NOT NULL,                   -- ms since the epoch
        expires_at INTEGER                             -- NULL: until revoked
      );
      CREATE INDEX port_tokens_port ON port_tokens (sandbox_id, port);
    )sql",
};

Error sqlite_error(sqlite3* db, std::string_view what) {
  return plain_error(std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

}  // namespace

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), bind_error_(std::move(other.bind_error_)) {}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

void Statement::check_bind(int rc, int index) {
  if (rc != SQLITE_OK && !bind_error_) bind_error_ = sqlite_error(db_, "sqlite bind " + std::to_string(index));
}

Statement& Statement::bind(int index, int64_t value) {
  check_bind(sqlite3_bind_int64(stmt_, index, value), index);
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  check_bind(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT), index);
  return *this;
}

Statement& Statement::bind_blob(int index, std::span<const uint8_t> data) {
  check_bind(sqlite3_bind_blob(stmt_, index, data.data(), static_cast<int>(data.size()), SQLITE_TRANSIENT), index);
  return *this;
}

Statement& Statement::bind_null(int index) {
  check_bind(sqlite3_bind_null(stmt_, index), index);
  return *this;
}

Statement& Statement::bind(int index, const std::optional<int64_t>& value) {
  return value ? bind(index, *value) : bind_null(index);
}

Result<bool> Statement::step() {
  if (bind_error_) return *bind_error_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sqlite_error(db_, "sqlite step");
}

int64_t Statement::int_at(int column) const { return sqlite3_column_int64(stmt_, column); }

std::optional<int64_t> Statement::optional_int_at(int column) const {
  if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(stmt_, column);
}

std::string Statement::text_at(int column) const {
  const auto* p = sqlite3_column_text(stmt_, column);
  int n = sqlite3_column_bytes(stmt_, column);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

std::vector<uint8_t> Statement::blob_at(int column) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, column));
  int n = sqlite3_column_bytes(stmt_, column);
  return p ? std::vector<uint8_t>(p, p + n) : std::vector<uint8_t>();
}

Result<std::unique_ptr<Database>> Database::open(const std::string& path) {
  // Create it 0600 ourselves: it holds key hashes, and SQLite gives the -wal/-shm files the same mode.
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return sys_error("open " + path);
  fd.reset();

  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  std::unique_ptr<Database> db(new Database(raw));
  if (rc != SQLITE_OK) return sqlite_error(raw, "open " + path).with_context("database");
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 5000);  // the keys subcommands may write while the daemon runs

  auto guard = db->lock();
  {
    TRY(auto stmt, db->prepare("PRAGMA journal_mode=WAL"));
    TRY(bool row, stmt.step());
    if (!row || stmt.text_at(0) != "wal") return plain_error("database " + path + ": cannot switch to WAL mode");
  }
  // NORMAL in WAL mode: a committed transaction survives the daemon being killed (SIGKILL); only an
  // OS crash or power loss can lose the last few, which is the usual WAL trade-off.
  TRY_CTX(db->exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"), "database " + path);
  TRY_CTX(db->migrate(), "database " + path);
  guard.unlock();
  return db;
}

Database::~Database() {
  if (db_) sqlite3_close_v2(db_);
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(db_, "sqlite prepare");
  return Statement(db_, stmt);
}

Status Database::exec(const std::string& sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    return plain_error("sqlite exec: " + text);
  }
  return {};
}

Status Database::transaction(const std::function<Status()>& fn) {
  TRY_STATUS(exec("BEGIN IMMEDIATE"));
  Status status = fn();
  if (!status.ok()) {
    (void)exec("ROLLBACK");
    return status;
  }
  Status commit = exec("COMMIT");
  if (!commit.ok()) (void)exec("ROLLBACK");
  return commit;
}

int64_t Database::schema_version() {
  auto stmt = prepare("PRAGMA user_version");
  if (!stmt.ok()) return -1;
  auto row = stmt->step();
  return row.ok() && row.value() ? stmt->int_at(0) : -1;
}

Status Database::migrate() {
  return transaction([&]() -> Status {
    int64_t version = schema_version();
    if (version < 0) return plain_error("read schema version");
    if (version > static_cast<int64_t>(kMigrations.size())) {
      return plain_error("schema version " + std::to_string(version) + " is newer than this airlockd (" +
                         std::to_string(kMigrations.size()) + ")");
    }
    for (size_t v = static_cast<size_t>(version); v < kMigrations.size(); ++v) {
      TRY_CTX(exec(kMigrations[v]), "migrate to schema " + std::to_string(v + 1));
    }
    return exec("PRAGMA user_version=" + std::to_string(kMigrations.size()));
  });
}

}  // namespace airlock::daemon
