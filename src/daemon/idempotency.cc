#include "daemon/idempotency.h"

#include <openssl/evp.h>

#include <memory>
#include <utility>

#include <nlohmann/json.hpp>

namespace airlock::daemon {
namespace {

constexpr std::string_view kHeader = "Idempotency-Key";
constexpr UnixMillis kDay = 24 * 60 * 60 * 1000;

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string headers_to_json(const std::vector<HttpHeader>& headers) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& h : headers) list.push_back({h.name, h.value});
  return list.dump();
}

std::vector<HttpHeader> headers_from_json(const std::string& text) {
  std::vector<HttpHeader> headers;
  auto list = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return headers;
  for (const auto& h : list) {
    if (h.is_array() && h.size() == 2 && h[0].is_string() && h[1].is_string()) {
      headers.push_back({h[0].get<std::string>(), h[1].get<std::string>()});
    }
  }
  return headers;
}

HttpResponse replay_response(StoredResponse stored) {
  HttpResponse response;
  response.status = stored.status;
  response.content_type = std::move(stored.content_type);
  response.headers = std::move(stored.headers);
  response.body = std::move(stored.body);
  response.with_header("Idempotent-Replayed", "true");
  return response;
}

}  // namespace

RequestHash idempotency_request_hash(std::string_view method, std::string_view path, std::string_view body) {
  RequestHash out{};
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  // Each part is preceded by its length, so that no two different requests share a byte stream.
  auto update = [&](std::string_view part) {
    uint64_t n = part.size();
    return EVP_DigestUpdate(ctx.get(), &n, sizeof n) == 1 && EVP_DigestUpdate(ctx.get(), part.data(), part.size()) == 1;
  };
  unsigned int len = 0;
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1 && update(method) && update(path) &&
            update(body) && EVP_DigestFinal_ex(ctx.get(), out.data(), &len) == 1;
  // SHA-256 fails only without memory; an all-zero hash then makes a retry 422, never a wrong replay.
  if (!ok) out.fill(0);
  return out;
}

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (char c : key) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

IdempotentOperation create_sandbox_operation() { return {"createSandbox", kDay, ""}; }
IdempotentOperation start_process_operation() { return {"startProcess", std::nullopt, "sandbox_id"}; }

IdempotencyStore::IdempotencyStore(Database& db, const Logger& log, IdempotencyLimits limits, ScopeLive scope_live,
                                   WallClock clock)
    : db_(db), log_(log), limits_(limits), scope_live_(std::move(scope_live)), clock_(std::move(clock)) {}

IdempotencyStore::Claim::Claim(Claim&& other) noexcept
    : store_(std::exchange(other.store_, nullptr)), request_(std::move(other.request_)) {}

IdempotencyStore::Claim::~Claim() {
  if (store_) store_->finish(request_, nullptr);
}

void IdempotencyStore::Claim::complete(const HttpResponse& response) {
  if (auto* store = std::exchange(store_, nullptr)) store->finish(request_, &response);
}

std::string IdempotencyStore::inflight_key(const IdempotencyRequest& r) {
  std::string k;
  for (const std::string* part : {&r.tenant, &r.operation, &r.scope, &r.key}) {
    k += *part;
    k += '\0';
  }
  return k;
}

ApiResult<IdempotencyStore::Outcome> IdempotencyStore::begin(const IdempotencyRequest& request) {
  UnixMillis now = clock_();
  UnixMillis due = next_sweep_.load();
  if (now >= due && next_sweep_.compare_exchange_strong(due, now + kSweepInterval)) {
    if (auto swept = sweep(); !swept.ok()) log_.warn("idempotency keys: sweep: " + swept.error().describe());
  }
  // A scoped entry lives as long as its sandbox: once it has ended, the request runs again (and is
  // refused by the handler, 404 or 409) rather than replaying a process of a sandbox that is gone.
  if (!request.scope.empty() && !scope_live_(request.tenant, request.scope)) {
    if (auto dropped = drop_scope(request.tenant, request.scope); !dropped.ok()) return internal_error(dropped.error());
  }

  std::lock_guard inflight_lock(inflight_mu_);
  std::string name = inflight_key(request);
  auto reused = [&] {
    return api_error(ErrorCode::kIdempotencyKeyReused,
                     "Idempotency-Key " + request.key + " was already used with a different request")
        .with_field(std::string(kHeader));
  };
  if (auto it = inflight_.find(name); it != inflight_.end()) {
    if (it->second != request.hash) return reused();
    return api_error(ErrorCode::kIdempotencyKeyInUse,
                     "a request with Idempotency-Key " + request.key + " is still being processed")
        .with_field(std::string(kHeader));
  }
  {
    auto db_lock = db_.lock();
    auto stmt = db_.prepare(
        "SELECT request_hash, status, content_type, headers, body FROM idempotency_keys "
        "WHERE tenant = ?1 AND operation = ?2 AND scope = ?3 AND idem_key = ?4 "
        "AND (expires_at IS NULL OR expires_at > ?5)");
    if (!stmt.ok()) return internal_error(stmt.error());
    stmt->bind(1, request.tenant).bind(2, request.operation).bind(3, request.scope).bind(4, request.key).bind(5, now);
    auto row = stmt->step();
    if (!row.ok()) return internal_error(row.error());
    if (row.value()) {
      auto hash = stmt->blob_at(0);
      if (hash.size() != request.hash.size() || !std::equal(hash.begin(), hash.end(), request.hash.begin())) {
        return reused();
      }
      StoredResponse stored;
      stored.status = static_cast<int>(stmt->int_at(1));
      stored.content_type = stmt->text_at(2);
      stored.headers = headers_from_json(stmt->text_at(3));
      auto body = stmt->blob_at(4);
      stored.body.assign(body.begin(), body.end());
      return Outcome(std::move(stored));
    }
  }
  inflight_.emplace(std::move(name), request.hash);
  return Outcome(Claim(this, request));
}

void IdempotencyStore::finish(const IdempotencyRequest& request, const HttpResponse* response) {
  std::lock_guard inflight_lock(inflight_mu_);
  // Stored before the in-flight mark goes, under the same lock: a retry sees one or the other.
  bool storable = response && response->status >= 200 && response->status < 300 && !response->stream &&
                  !response->websocket && !response->deferred;
  if (storable && response->body.size() > limits_.max_response_bytes) {
    log_.warn("idempotency key " + request.key + " (" + request.operation + "): response of " +
              std::to_string(response->body.size()) + " bytes is too large to store; a retry will run again");
    storable = false;
  }
  if (storable) {
    if (auto stored = store(request, *response, clock_()); !stored.ok()) {
      log_.error("idempotency key " + request.key + " (" + request.operation + "): " + stored.error().describe());
    }
  }
  inflight_.erase(inflight_key(request));
}

Status IdempotencyStore::store(const IdempotencyRequest& request, const HttpResponse& response, UnixMillis now) {
  std::string headers = headers_to_json(response.headers);
  int64_t bytes = static_cast<int64_t>(response.body.size() + headers.size() + request.key.size() +
                                       response.content_type.size() + request.scope.size());
  auto db_lock = db_.lock();
  return db_.transaction([&]() -> Status {
    {
      // REPLACE: an expired entry that the sweep has not removed yet gives way.
      TRY(auto stmt, db_.prepare("INSERT OR REPLACE INTO idempotency_keys (tenant, operation, scope, idem_key, "
                                 "request_hash, status, content_type, headers, body, bytes, created_at, expires_at) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"));
      stmt.bind(1, request.tenant).bind(2, request.operation).bind(3, request.scope).bind(4, request.key);
      stmt.bind_blob(5, request.hash).bind(6, int64_t{response.status}).bind(7, response.content_type);
      stmt.bind(8, headers).bind_blob(9, bytes_of(response.body)).bind(10, bytes).bind(11, now);
      stmt.bind(12, request.ttl ? std::optional<int64_t>(now + *request.ttl) : std::nullopt);
      TRY(bool row, stmt.step());
      (void)row;
    }
    // The tenant's newest entries within both bounds stay; everything older goes.
    std::optional<int64_t> cutoff;
    {
      TRY(auto stmt, db_.prepare("SELECT seq, bytes FROM idempotency_keys WHERE tenant = ?1 ORDER BY seq DESC"));
      stmt.bind(1, request.tenant);
      int64_t entries = 0, total = 0;
      while (true) {
        TRY(bool row, stmt.step());
        if (!row) break;
        ++entries;
        total += stmt.int_at(1);
        if (entries > limits_.max_entries_per_tenant || total > limits_.max_bytes_per_tenant) {
          cutoff = stmt.int_at(0);
          break;
        }
      }
    }
    if (cutoff) {
      TRY(auto stmt, db_.prepare("DELETE FROM idempotency_keys WHERE tenant = ?1 AND seq <= ?2"));
      stmt.bind(1, request.tenant).bind(2, *cutoff);
      TRY(bool row, stmt.step());
      (void)row;
    }
    return {};
  });
}

Status IdempotencyStore::drop_scope(const std::string& tenant, const std::string& scope) {
  auto db_lock = db_.lock();
  TRY(auto stmt, db_.prepare("DELETE FROM idempotency_keys WHERE tenant = ?1 AND scope = ?2"));
  stmt.bind(1, tenant).bind(2, scope);
  TRY(bool row, stmt.step());
  (void)row;
  return {};
}

Status IdempotencyStore::sweep() {
  std::vector<std::pair<std::string, std::string>> scopes;
  {
    auto db_lock = db_.lock();
    TRY(auto expired, db_.prepare("DELETE FROM idempotency_keys WHERE expires_at IS NOT NULL AND expires_at <= ?1"));
    expired.bind(1, clock_());
    TRY(bool done, expired.step());
    (void)done;
    TRY(auto stmt, db_.prepare("SELECT DISTINCT tenant, scope FROM idempotency_keys WHERE scope != ''"));
    while (true) {
      TRY(bool row, stmt.step());
      if (!row) break;
      scopes.emplace_back(stmt.text_at(0), stmt.text_at(1));
    }
  }
  // ScopeLive may use the database itself: it is asked without the lock.
  for (const auto& [tenant, scope] : scopes) {
    if (!scope_live_(tenant, scope)) TRY_STATUS(drop_scope(tenant, scope));
  }
  return {};
}

Result<int64_t> IdempotencyStore::count(const std::string& tenant) {
  auto db_lock = db_.lock();
  TRY(auto stmt, db_.prepare("SELECT COUNT(*) FROM idempotency_keys WHERE tenant = ?1"));
  stmt.bind(1, tenant);
  TRY(bool row, stmt.step());
  return row ? stmt.int_at(0) : int64_t{0};
}

Handler with_idempotency(IdempotencyStore& store, IdempotentOperation operation, Handler inner) {
  return [&store, operation = std::move(operation), inner = std::move(inner)](
             const RequestContext& ctx) -> ApiResult<HttpResponse> {
    auto key = ctx.request.header(kHeader);
    if (!key) return inner(ctx);
    if (ctx.request.header_count(kHeader) > 1) {
      return api_error(ErrorCode::kInvalidParameter, "Idempotency-Key is given more than once")
          .with_field(std::string(kHeader));
    }
    if (!valid_idempotency_key(*key)) {
      return api_error(ErrorCode::kInvalidParameter, "Idempotency-Key must be 1 to 255 printable ASCII characters")
          .with_field(std::string(kHeader));
    }
    std::string_view target = ctx.request.target;
    std::string_view path = target.substr(0, target.find('?'));
    IdempotencyRequest request{ctx.principal.tenant,
                               operation.name,
                               operation.scope_param.empty() ? std::string() : std::string(ctx.params.get(operation.scope_param)),
                               std::string(*key),
                               idempotency_request_hash(ctx.request.method, path, ctx.request.body),
                               operation.ttl};
    API_TRY(auto outcome, store.begin(request));
    if (auto* stored = std::get_if<StoredResponse>(&outcome)) return replay_response(std::move(*stored));
    auto& claim = std::get<IdempotencyStore::Claim>(outcome);
    auto result = inner(ctx);
    if (result.ok()) claim.complete(result.value());
    return result;  // a failure ends the claim unstored when `outcome` goes
  };
}

}  // namespace airlock::daemon
