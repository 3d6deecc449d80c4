#include "daemon/port_tokens.h"

#include <array>

#include "daemon/key_secret.h"

namespace airlock::daemon {
namespace {

Result<std::string> generate_token_id() {
  static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::array<uint8_t, 16> bytes{};
  TRY_STATUS(random_bytes(bytes));
  std::string id = "ptk-";
  for (uint8_t b : bytes) id += kAlphabet[b % 36];
  return id;
}

PortToken token_at(const Statement& stmt) {
  PortToken t;
  t.token_id = stmt.text_at(0);
  t.sandbox_id = stmt.text_at(1);
  t.port = static_cast<uint16_t>(stmt.int_at(2));
  t.name = stmt.text_at(3);
  t.created_at = stmt.int_at(4);
  t.expires_at = stmt.optional_int_at(5);
  return t;
}

}  // namespace

Result<std::optional<NewPortToken>> PortTokenStore::create(const std::string& sandbox_id, uint16_t port,
                                                           std::string name, UnixMillis now,
                                                           std::optional<UnixMillis> expires_at) {
  std::array<uint8_t, kSecretRandomBytes> random{};
  TRY_STATUS(random_bytes(random));
  NewPortToken out;
  out.secret = std::string(kPortTokenScheme) + base64url(random);
  TRY(out.token.token_id, generate_token_id());
  out.token.sandbox_id = sandbox_id;
  out.token.port = port;
  out.token.name = std::move(name);
  out.token.created_at = now;
  out.token.expires_at = expires_at;
  KeyHash hash = hash_secret(out.secret);
  auto lock = db_.lock();
  bool full = false;
  TRY_STATUS(db_.transaction([&]() -> Status {
    TRY(auto count, db_.prepare("SELECT count(*) FROM port_tokens WHERE sandbox_id = ?1 AND port = ?2"));
    count.bind(1, sandbox_id).bind(2, int64_t{port});
    TRY(bool row, count.step());
    if (row && static_cast<size_t>(count.int_at(0)) >= kMaxTokensPerPort) {
      full = true;
      return {};
    }
    TRY(auto insert, db_.prepare("INSERT INTO port_tokens (token_id, sandbox_id, port, name, hash, created_at, expires_at) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    insert.bind(1, out.token.token_id).bind(2, sandbox_id).bind(3, int64_t{port}).bind(4, out.token.name);
    insert.bind_blob(5, hash).bind(6, now).bind(7, expires_at);
    TRY(bool ignored, insert.step());
    (void)ignored;
    return {};
  }));
  if (full) return std::optional<NewPortToken>();
  return std::optional<NewPortToken>(std::move(out));
}

Result<std::vector<PortToken>> PortTokenStore::list(const std::string& sandbox_id, uint16_t port) {
  auto lock = db_.lock();
  TRY(auto stmt, db_.prepare("SELECT token_id, sandbox_id, port, name, created_at, expires_at FROM port_tokens "
                             "WHERE sandbox_id = ?1 AND port = ?2 ORDER BY created_at, token_id"));
  stmt.bind(1, sandbox_id).bind(2, int64_t{port});
  std::vector<PortToken> out;
  while (true) {
    TRY(bool row, stmt.step());
    if (!row) break;
    out.push_back(token_at(stmt));
  }
  return out;
}

Result<bool> PortTokenStore::revoke(const std::string& sandbox_id, uint16_t port, const std::string& token_id) {
  auto lock = db_.lock();
  TRY(auto stmt, db_.prepare("DELETE FROM port_tokens WHERE sandbox_id = ?1 AND port = ?2 AND token_id = ?3 RETURNING token_id"));
  stmt.bind(1, sandbox_id).bind(2, int64_t{port}).bind(3, token_id);
  TRY(bool row, stmt.step());
  if (row) {
    TRY(bool more, stmt.step());
    (void)more;
  }
  return row;
}

Result<bool> PortTokenStore::valid(const std::string& sandbox_id, uint16_t port, std::string_view secret, UnixMillis now) {
  // The shape first: nothing that could not be a token reaches the store (an API key never matches).
  if (secret.size() != kPortTokenScheme.size() + 43 || secret.substr(0, 4) != kPortTokenScheme) return false;
  for (char c : secret.substr(4)) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  KeyHash hash = hash_secret(secret);
  auto lock = db_.lock();
  // Looked up by its hash (an index): the secret is never compared character by character.
  TRY(auto stmt, db_.prepare("SELECT sandbox_id, port, expires_at FROM port_tokens WHERE hash = ?1"));
  stmt.bind_blob(1, hash);
  TRY(bool row, stmt.step());
  if (!row) return false;
  if (stmt.text_at(0) != sandbox_id || stmt.int_at(1) != port) return false;
  auto expires = stmt.optional_int_at(2);
  return !expires || *expires > now;
}

Status PortTokenStore::remove_port(const std::string& sandbox_id, uint16_t port) {
  auto lock = db_.lock();
  TRY(auto stmt, db_.prepare("DELETE FROM port_tokens WHERE sandbox_id = ?1 AND port = ?2"));
  stmt.bind(1, sandbox_id).bind(2, int64_t{port});
  TRY(bool ignored, stmt.step());
  (void)ignored;
  return {};
}

Status PortTokenStore::remove_sandbox(const std::string& sandbox_id) {
  auto lock = db_.lock();
  TRY(auto stmt, db_.prepare("DELETE FROM port_tokens WHERE sandbox_id = ?1"));
  stmt.bind(1, sandbox_id);
  TRY(bool ignored, stmt.step());
  (void)ignored;
  return {};
}

Status PortTokenStore::remove_ended() {
  auto lock = db_.lock();
  return db_.exec("DELETE FROM port_tokens WHERE sandbox_id NOT IN "
                  "(SELECT sandbox_id FROM sandboxes WHERE state IN ('starting', 'running'))");
}

}  // namespace airlock::daemon
