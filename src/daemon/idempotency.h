// `Idempotency-Key` (api/openapi.yaml, parameter IdempotencyKey): a retry of createSandbox or
// startProcess with the key of an earlier request gets that request's response again instead of
// acting twice.
//
// An entry is scoped to (tenant, operation, scope, key); the scope is the sandbox id for startProcess
// and empty for createSandbox, so one tenant's keys never answer another's. Each entry holds a SHA-256
// of the request (method, path, body): the same key with another request is 422
// `idempotency_key_reused`; while the first request runs, a second one is 409
// `idempotency_key_in_use` (in-flight markers live in memory only: after a restart nothing is in
// flight). Only 2xx responses are stored, in the daemon's database so that they survive a restart;
// a failed request (4xx, 5xx) leaves nothing and its retry runs again, as with Stripe's keys: a
// validation error or a full quota should not be pinned to the key.
//
// Retention: an operation's `ttl` (24 h for sandboxes), or, for a scoped operation, as long as its
// scope (the sandbox) is live; ScopeLive answers that. Both are checked on every lookup, so expiry is
// exact; a sweep (at most every kSweepInterval, from begin()) removes what has expired from disk.
// Bounded: at most `max_entries_per_tenant` entries and `max_bytes_per_tenant` stored bytes per
// tenant (the oldest go first), and a response larger than `max_response_bytes` is not stored.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "daemon/database.h"
#include "daemon/errors.h"
#include "daemon/http_message.h"
#include "daemon/log.h"
#include "daemon/router.h"
#include "daemon/timestamp.h"

namespace airlock::daemon {

using RequestHash = std::array<uint8_t, 32>;

// SHA-256 of the canonical request: method, path (without the query) and body bytes.
RequestHash idempotency_request_hash(std::string_view method, std::string_view path, std::string_view body);

// The header's syntax per the contract: 1 to 255 printable ASCII characters, no space.
bool valid_idempotency_key(std::string_view key);

struct IdempotentOperation {
  std::string name;                // the operationId: "createSandbox"
  std::optional<UnixMillis> ttl;   // how long an entry replays; nullopt: while its scope is live
  std::string scope_param;         // the path parameter that scopes keys ("sandbox_id"); empty: none
};

// POST /v1/sandboxes: 24 h. POST /v1/sandboxes/{sandbox_id}/processes: the sandbox's life.
IdempotentOperation create_sandbox_operation();
IdempotentOperation start_process_operation();

struct IdempotencyLimits {
  int64_t max_entries_per_tenant = 10'000;
  int64_t max_bytes_per_tenant = int64_t{64} << 20;
  // A startProcess response echoes argv (up to the 1 MiB request limit, more once JSON-escaped).
  size_t max_response_bytes = size_t{2} << 20;
};

// What a replay sends: the first response's status, Content-Type, headers (Location) and body.
struct StoredResponse {
  int status = 0;
  std::string content_type;
  std::vector<HttpHeader> headers;
  std::string body;
};

struct IdempotencyRequest {
  std::string tenant;
  std::string operation;
  std::string scope;
  std::string key;
  RequestHash hash{};
  std::optional<UnixMillis> ttl;
};

class IdempotencyStore {
 public:
  // Whether a scope (a sandbox of this tenant) is still live. Called without any of the store's locks.
  using ScopeLive = std::function<bool(const std::string& tenant, const std::string& scope)>;
  static constexpr UnixMillis kSweepInterval = 10 * 60 * 1000;

  IdempotencyStore(Database& db, const Logger& log, IdempotencyLimits limits, ScopeLive scope_live,
                   WallClock clock = unix_millis_now);
  IdempotencyStore(const IdempotencyStore&) = delete;
  IdempotencyStore& operator=(const IdempotencyStore&) = delete;

  // The right to run a request, marked in flight until complete() or destruction (a failure).
  class Claim {
   public:
    Claim(Claim&& other) noexcept;
    Claim& operator=(Claim&&) = delete;
    Claim(const Claim&) = delete;
    ~Claim();
    // Stores a 2xx response (anything else is dropped) and ends the in-flight mark.
    void complete(const HttpResponse& response);

   private:
    friend class IdempotencyStore;
    Claim(IdempotencyStore* store, IdempotencyRequest request) : store_(store), request_(std::move(request)) {}
    IdempotencyStore* store_;
    IdempotencyRequest request_;
  };

  // The stored response (a replay), a Claim to run the request, or 409 / 422 / 500.
  using Outcome = std::variant<StoredResponse, Claim>;
  ApiResult<Outcome> begin(const IdempotencyRequest& request);

  // Removes expired entries and those of scopes that are no longer live. begin() calls it now and then.
  Status sweep();
  // Entries stored for a tenant (tests, metrics).
  Result<int64_t> count(const std::string& tenant);

 private:
  static std::string inflight_key(const IdempotencyRequest& r);
  void finish(const IdempotencyRequest& request, const HttpResponse* response);
  Status store(const IdempotencyRequest& request, const HttpResponse& response, UnixMillis now);
  Status drop_scope(const std::string& tenant, const std::string& scope);

  Database& db_;
  const Logger& log_;
  const IdempotencyLimits limits_;
  const ScopeLive scope_live_;
  const WallClock clock_;
  std::atomic<UnixMillis> next_sweep_{0};

  std::mutex inflight_mu_;  // guards inflight_; held around the lookup and the store (before the db lock)
  std::map<std::string, RequestHash> inflight_;
};

// Wraps a route's handler: without the header it runs `inner` as is; with it, the request is
// replayed, refused (400 malformed key, 409, 422) or run once and its 2xx response stored.
Handler with_idempotency(IdempotencyStore& store, IdempotentOperation operation, Handler inner);

}  // namespace airlock::daemon
