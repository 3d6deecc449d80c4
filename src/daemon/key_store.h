// API keys in the daemon's database. Only SHA-256 hashes of secrets are stored; a secret exists in
// memory just long enough to be returned once (or written to DATA_DIR/admin-key) and is never logged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "daemon/database.h"
#include "daemon/timestamp.h"

namespace airlock::daemon {

// ^[a-z0-9][a-z0-9_-]{0,62}$ (TenantName in the contract).
bool valid_tenant_name(std::string_view tenant);
// 1 to 64 characters, no control characters (CreateApiKeyRequest.name).
bool valid_key_name(std::string_view name);

struct ApiKeyRecord {
  int64_t seq = 0;  // creation order
  std::string key_id;
  std::string tenant;
  std::string name;
  bool admin = false;
  std::string prefix;
  UnixMillis created_at = 0;
  std::optional<UnixMillis> last_used_at;
  std::optional<UnixMillis> revoked_at;
};

struct NewApiKey {
  std::string tenant;
  std::string name;
  bool admin = false;
};

struct CreatedApiKey {
  ApiKeyRecord record;
  std::string secret;  // shown once, never stored
};

struct KeyListQuery {
  std::optional<std::string> tenant;  // nullopt: every tenant
  bool include_revoked = false;
  int64_t limit = 100;
  std::optional<int64_t> before_seq;  // keyset position: keys older than this
};

struct KeyPage {
  std::vector<ApiKeyRecord> keys;       // newest first
  std::optional<int64_t> next_before;  // set when more keys may follow
};

struct KeyCheck {
  enum class Outcome { kUnknown, kRevoked, kValid };
  Outcome outcome = Outcome::kUnknown;
  ApiKeyRecord record;  // meaningful unless kUnknown
};

class KeyStore {
 public:
  // last_used_at is written at most once per this interval per key, so that authenticating a request
  // does not cost a database write each time.
  static constexpr UnixMillis kLastUsedResolution = 60'000;

  explicit KeyStore(Database& db, WallClock clock = unix_millis_now) : db_(db), clock_(std::move(clock)) {}

  Result<CreatedApiKey> create(const NewApiKey& key);
  // Stores a key for a secret made by the caller (the first admin key, whose file is written first).
  Result<CreatedApiKey> create_with_secret(const NewApiKey& key, const std::string& secret);
  Result<KeyPage> list(const KeyListQuery& query);
  Result<std::optional<ApiKeyRecord>> get(std::string_view key_id);
  // Sets revoked_at unless it is already set (idempotent); nullopt when there is no such key.
  Result<std::optional<ApiKeyRecord>> revoke(std::string_view key_id);
  // Which key, if any, this secret belongs to; records the use of a valid key.
  Result<KeyCheck> check(std::string_view secret);
  // Keys ever created, revoked included.
  Result<int64_t> count();
  // Admin keys that are not revoked.
  Result<int64_t> count_active_admin_keys();

 private:
  Result<std::optional<ApiKeyRecord>> get_locked(std::string_view key_id);

  Database& db_;
  WallClock clock_;
};

}  // namespace airlock::daemon
