#include "daemon/key_store.h"

#include "daemon/key_secret.h"

namespace airlock::daemon {
namespace {

constexpr const char* kColumns =
    "seq, key_id, tenant, name, admin, prefix, created_at, last_used_at, revoked_at";

ApiKeyRecord read_record(const Statement& row) {
  ApiKeyRecord r;
  r.seq = row.int_at(0);
  r.key_id = row.text_at(1);
  r.tenant = row.text_at(2);
  r.name = row.text_at(3);
  r.admin = row.int_at(4) != 0;
  r.prefix = row.text_at(5);
  r.created_at = row.int_at(6);
  r.last_used_at = row.optional_int_at(7);
  r.revoked_at = row.optional_int_at(8);
  return r;
}

}  // namespace

bool valid_tenant_name(std::string_view tenant) {
  if (tenant.empty() || tenant.size() > 63) return false;
  for (size_t i = 0; i < tenant.size(); ++i) {
    char c = tenant[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}

bool valid_key_name(std::string_view name) {
  // Well-formed UTF-8 (names also arrive from the command line, not only from parsed JSON), no C0
  // control characters, 1 to 64 characters.
  size_t chars = 0;
  for (size_t i = 0; i < name.size(); ++chars) {
    auto u = static_cast<unsigned char>(name[i]);
    size_t len = u < 0x80 ? 1 : (u >> 5) == 0x6 ? 2 : (u >> 4) == 0xE ? 3 : (u >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > name.size() || (len == 1 && u < 0x20)) return false;
    uint32_t cp = len == 1 ? u : u & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      auto cont = static_cast<unsigned char>(name[i + k]);
      if ((cont & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cont & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and values beyond U+10FFFF are not UTF-8.
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += len;
  }
  return chars >= 1 && chars <= 64;
}

Result<CreatedApiKey> KeyStore::create(const NewApiKey& key) {
  TRY(auto secret, generate_secret());
  return create_with_secret(key, secret);
}

Result<CreatedApiKey> KeyStore::create_with_secret(const NewApiKey& key, const std::string& secret) {
  if (!valid_tenant_name(key.tenant)) return plain_error("create key: invalid tenant name");
  if (!valid_key_name(key.name)) return plain_error("create key: invalid key name");
  if (!looks_like_secret(secret)) return plain_error("create key: malformed secret");
  TRY(auto key_id, generate_key_id());
  KeyHash hash = hash_secret(secret);

  CreatedApiKey created;
  created.record.key_id = key_id;
  created.record.tenant = key.tenant;
  created.record.name = key.name;
  created.record.admin = key.admin;
  created.record.prefix = secret_prefix(secret);
  created.record.created_at = clock_();

  auto guard = db_.lock();
  TRY(auto insert, db_.prepare("INSERT INTO api_keys (key_id, tenant, name, admin, prefix, hash, created_at) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq"));
  insert.bind(1, created.record.key_id)
      .bind(2, created.record.tenant)
      .bind(3, created.record.name)
      .bind(4, int64_t{key.admin ? 1 : 0})
      .bind(5, created.record.prefix)
      .bind_blob(6, hash)
      .bind(7, created.record.created_at);
  TRY(bool row, insert.step());
  if (!row) return plain_error("create key: insert returned no row");
  created.record.seq = insert.int_at(0);
  TRY(bool more, insert.step());
  (void)more;
  created.secret = secret;
  return created;
}

Result<KeyPage> KeyStore::list(const KeyListQuery& query) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare(std::string("SELECT ") + kColumns +
                             " FROM api_keys WHERE (?1 IS NULL OR tenant = ?1) AND (?2 = 1 OR revoked_at IS NULL)"
                             " AND (?3 IS NULL OR seq < ?3) ORDER BY seq DESC LIMIT ?4"));
  if (query.tenant) {
    stmt.bind(1, *query.tenant);
  } else {
    stmt.bind_null(1);
  }
  stmt.bind(2, int64_t{query.include_revoked ? 1 : 0}).bind(3, query.before_seq).bind(4, query.limit + 1);
  KeyPage page;
  while (true) {
    TRY(bool row, stmt.step());
    if (!row) break;
    if (static_cast<int64_t>(page.keys.size()) == query.limit) {
      page.next_before = page.keys.back().seq;  // one more exists
      break;
    }
    page.keys.push_back(read_record(stmt));
  }
  return page;
}

Result<std::optional<ApiKeyRecord>> KeyStore::get_locked(std::string_view key_id) {
  TRY(auto stmt, db_.prepare(std::string("SELECT ") + kColumns + " FROM api_keys WHERE key_id = ?1"));
  stmt.bind(1, key_id);
  TRY(bool row, stmt.step());
  if (!row) return std::optional<ApiKeyRecord>();
  return std::optional<ApiKeyRecord>(read_record(stmt));
}

Result<std::optional<ApiKeyRecord>> KeyStore::get(std::string_view key_id) {
  auto guard = db_.lock();
  return get_locked(key_id);
}

Result<std::optional<ApiKeyRecord>> KeyStore::revoke(std::string_view key_id) {
  auto guard = db_.lock();
  TRY(auto update, db_.prepare("UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL"));
  update.bind(1, key_id).bind(2, clock_());
  TRY(bool row, update.step());
  (void)row;
  return get_locked(key_id);
}

Result<KeyCheck> KeyStore::check(std::string_view secret) {
  KeyCheck result;
  if (!looks_like_secret(secret)) return result;
  KeyHash presented = hash_secret(secret);

  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare(std::string("SELECT ") + kColumns + ", hash FROM api_keys WHERE prefix = ?1"));
  stmt.bind(1, secret_prefix(secret));
  while (true) {
    TRY(bool row, stmt.step());
    if (!row) break;
    std::vector<uint8_t> stored = stmt.blob_at(9);
    KeyHash stored_hash{};
    if (stored.size() != stored_hash.size()) continue;
    std::copy(stored.begin(), stored.end(), stored_hash.begin());
    if (hashes_equal(presented, stored_hash)) {
      result.record = read_record(stmt);
      result.outcome = result.record.revoked_at ? KeyCheck::Outcome::kRevoked : KeyCheck::Outcome::kValid;
    }
  }
  if (result.outcome != KeyCheck::Outcome::kValid) return result;

  UnixMillis now = clock_();
  if (!result.record.last_used_at || now - *result.record.last_used_at >= kLastUsedResolution) {
    TRY(auto touch, db_.prepare("UPDATE api_keys SET last_used_at = ?2 WHERE key_id = ?1"));
    touch.bind(1, result.record.key_id).bind(2, now);
    TRY(bool row, touch.step());
    (void)row;
    result.record.last_used_at = now;
  }
  return result;
}

Result<int64_t> KeyStore::count() {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("SELECT count(*) FROM api_keys"));
  TRY(bool row, stmt.step());
  return row ? stmt.int_at(0) : int64_t{0};
}

Result<int64_t> KeyStore::count_active_admin_keys() {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("SELECT count(*) FROM api_keys WHERE admin = 1 AND revoked_at IS NULL"));
  TRY(bool row, stmt.step());
  return row ? stmt.int_at(0) : int64_t{0};
}

}  // namespace airlock::daemon
