// Idempotency-Key (idempotency.h) against a real SQLite file, through the handler wrapper the routes
// use: replay of the first 2xx response, 422 for another request under the same key, 409 while the
// first is in flight (a handler held on a latch), failures not stored, expiry (24 h, or the scope's
// life), per-tenant eviction, tenants kept apart, and entries surviving a reopen of the database.
#include "daemon/idempotency.h"

#include <stdlib.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <set>
#include <thread>

namespace airlock::daemon {
namespace {

constexpr UnixMillis kHour = 60 * 60 * 1000;

class IdempotencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-idempotency-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    open();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  void open(IdempotencyLimits limits = {}) {
    store_.reset();
    db_.reset();
    auto db = Database::open(dir_ + "/airlock.db");
    ASSERT_TRUE(db.ok()) << db.error().describe();
    db_ = std::move(db).value();
    store_ = std::make_unique<IdempotencyStore>(
        *db_, log_, limits,
        [this](const std::string& tenant, const std::string& scope) { return live_.count(tenant + "/" + scope) > 0; },
        [this] { return now_; });
  }

  // The wrapped handler: 201 with a fresh id and a Location, or `next_status_` when set.
  Handler handler(const IdempotentOperation& op) {
    return with_idempotency(*store_, op, [this](const RequestContext&) -> ApiResult<HttpResponse> {
      ++runs_;
      if (next_status_ != 201) return api_error(ErrorCode::kLimitExceeded, "refused");
      std::string id = "sb-" + std::to_string(runs_);
      HttpResponse r = json_response(201, {{"sandbox_id", id}});
      r.with_header("Location", "/v1/sandboxes/" + id);
      return r;
    });
  }

  struct Call {
    std::string tenant = "team-a";
    std::string method = "POST";
    std::string target = "/v1/sandboxes";
    std::string body = "{}";
    std::vector<HttpHeader> headers;
    PathParams params;
  };
  static ApiResult<HttpResponse> call(const Handler& h, const Call& c) {
    HttpRequest req;
    req.method = c.method;
    req.target = c.target;
    req.headers = c.headers;
    req.body = c.body;
    RequestContext ctx{req, c.params, QueryParams{}, Principal{"key-1", c.tenant, false}};
    return h(ctx);
  }
  static Call keyed(std::string key, std::string body = "{}") {
    Call c;
    c.headers.push_back({"Idempotency-Key", std::move(key)});
    c.body = std::move(body);
    return c;
  }
  static Call process_call(const std::string& sandbox, std::string key, std::string body = R"({"cmd":"sleep 9"})") {
    Call c = keyed(std::move(key), std::move(body));
    c.target = "/v1/sandboxes/" + sandbox + "/processes";
    c.params.values.emplace_back("sandbox_id", sandbox);
    return c;
  }
  static std::optional<std::string> header(const HttpResponse& r, std::string_view name) {
    for (const auto& h : r.headers) {
      if (ascii_iequals(h.name, name)) return h.value;
    }
    return std::nullopt;
  }
  static std::string code(const ApiResult<HttpResponse>& r) {
    return r.ok() ? "ok" : std::string(error_code_name(r.error().code));
  }

  std::string dir_;
  Logger log_{LogLevel::kError};
  std::unique_ptr<Database> db_;
  std::unique_ptr<IdempotencyStore> store_;
  std::set<std::string> live_;  // "tenant/scope" pairs that ScopeLive reports as live
  UnixMillis now_ = 1'000'000;
  int runs_ = 0;
  int next_status_ = 201;
};

TEST_F(IdempotencyTest, SameKeyAndRequestReplaysTheFirstResponse) {
  Handler h = handler(create_sandbox_operation());
  auto first = call(h, keyed("k-1"));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(header(first.value(), "Idempotent-Replayed"));
  auto again = call(h, keyed("k-1"));
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(runs_, 1);
  EXPECT_EQ(again->status, 201);
  EXPECT_EQ(again->body, first->body);
  EXPECT_EQ(again->content_type, "application/json");
  EXPECT_EQ(header(again.value(), "Location"), "/v1/sandboxes/sb-1");
  EXPECT_EQ(header(again.value(), "Idempotent-Replayed"), "true");
  // Another key acts again.
  auto other = call(h, keyed("k-2"));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(runs_, 2);
  EXPECT_EQ(header(other.value(), "Location"), "/v1/sandboxes/sb-2");
}

TEST_F(IdempotencyTest, WithoutTheHeaderEveryRequestRuns) {
  Handler h = handler(create_sandbox_operation());
  ASSERT_TRUE(call(h, Call{}).ok());
  ASSERT_TRUE(call(h, Call{}).ok());
  EXPECT_EQ(runs_, 2);
  EXPECT_EQ(store_->count("team-a").value(), 0);
}

TEST_F(IdempotencyTest, MalformedOrRepeatedKeysAre400) {
  Handler h = handler(create_sandbox_operation());
  for (std::string bad : {std::string(), std::string("has space"), std::string(256, 'k'), std::string("caf\xc3\xa9")}) {
    auto r = call(h, keyed(bad));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(code(r), "invalid_parameter");
    EXPECT_EQ(r.error().field, "Idempotency-Key");
  }
  Call twice = keyed("k-1");
  twice.headers.push_back({"idempotency-key", "k-2"});
  EXPECT_EQ(code(call(h, twice)), "invalid_parameter");
  EXPECT_EQ(runs_, 0);
  EXPECT_TRUE(call(h, keyed(std::string(255, '~'))).ok());
}

TEST_F(IdempotencyTest, SameKeyWithAnotherRequestIsReused422) {
  Handler h = handler(create_sandbox_operation());
  ASSERT_TRUE(call(h, keyed("k-1", R"({"cpu":1})")).ok());
  auto other_body = call(h, keyed("k-1", R"({"cpu":2})"));
  ASSERT_FALSE(other_body.ok());
  EXPECT_EQ(code(other_body), "idempotency_key_reused");
  EXPECT_EQ(http_status(other_body.error().code), 422);
  Call other_path = keyed("k-1", R"({"cpu":1})");
  other_path.target = "/v1/sandboxes/elsewhere";
  EXPECT_EQ(code(call(h, other_path)), "idempotency_key_reused");
  EXPECT_EQ(runs_, 1);
  EXPECT_TRUE(call(h, keyed("k-1", R"({"cpu":1})")).ok());  // the first request still replays
  EXPECT_EQ(runs_, 1);
}

TEST_F(IdempotencyTest, DuplicateWhileTheFirstIsInFlightIs409) {
  std::promise<void> entered, release;
  auto released = release.get_future().share();
  Handler h = with_idempotency(*store_, create_sandbox_operation(), [&](const RequestContext&) -> ApiResult<HttpResponse> {
    ++runs_;
    entered.set_value();
    released.wait();
    HttpResponse r = json_response(201, {{"sandbox_id", "sb-slow"}});
    r.with_header("Location", "/v1/sandboxes/sb-slow");
    return r;
  });
  auto first = std::async(std::launch::async, [&] { return call(h, keyed("k-1")); });
  entered.get_future().wait();
  auto duplicate = call(h, keyed("k-1"));
  ASSERT_FALSE(duplicate.ok());
  EXPECT_EQ(code(duplicate), "idempotency_key_in_use");
  EXPECT_EQ(http_status(duplicate.error().code), 409);
  EXPECT_EQ(code(call(h, keyed("k-1", R"({"cpu":2})"))), "idempotency_key_reused");
  release.set_value();
  auto result = first.get();
  ASSERT_TRUE(result.ok());
  auto replay = call(h, keyed("k-1"));
  ASSERT_TRUE(replay.ok());
  EXPECT_EQ(header(replay.value(), "Idempotent-Replayed"), "true");
  EXPECT_EQ(replay->body, result->body);
  EXPECT_EQ(runs_, 1);
}

TEST_F(IdempotencyTest, FailedRequestsAreNotStoredAndTheRetryRuns) {
  Handler h = handler(create_sandbox_operation());
  next_status_ = 422;
  EXPECT_EQ(code(call(h, keyed("k-1"))), "limit_exceeded");
  EXPECT_EQ(store_->count("team-a").value(), 0);
  next_status_ = 201;
  auto retry = call(h, keyed("k-1"));
  ASSERT_TRUE(retry.ok());
  EXPECT_FALSE(header(retry.value(), "Idempotent-Replayed"));
  EXPECT_EQ(runs_, 2);
  // Nothing is left in flight by the failure: the key replays now.
  EXPECT_EQ(header(call(h, keyed("k-1")).value(), "Idempotent-Replayed"), "true");
}

TEST_F(IdempotencyTest, AThrowingHandlerLeavesNothingInFlight) {
  bool throw_now = true;
  Handler h = with_idempotency(*store_, create_sandbox_operation(), [&](const RequestContext&) -> ApiResult<HttpResponse> {
    if (throw_now) throw std::runtime_error("bug");
    return json_response(201, {{"sandbox_id", "sb-1"}});
  });
  EXPECT_THROW((void)call(h, keyed("k-1")), std::runtime_error);
  throw_now = false;
  EXPECT_TRUE(call(h, keyed("k-1")).ok());
}

TEST_F(IdempotencyTest, TenantsDoNotShareKeys) {
  Handler h = handler(create_sandbox_operation());
  ASSERT_TRUE(call(h, keyed("k-1")).ok());
  Call b = keyed("k-1", R"({"cpu":2})");  // even another body is no conflict for another tenant
  b.tenant = "team-b";
  auto rb = call(h, b);
  ASSERT_TRUE(rb.ok());
  EXPECT_FALSE(header(rb.value(), "Idempotent-Replayed"));
  EXPECT_EQ(runs_, 2);
}

TEST_F(IdempotencyTest, SandboxEntriesReplayFor24Hours) {
  Handler h = handler(create_sandbox_operation());
  ASSERT_TRUE(call(h, keyed("k-1")).ok());
  now_ += 24 * kHour - 1;
  EXPECT_EQ(header(call(h, keyed("k-1")).value(), "Idempotent-Replayed"), "true");
  now_ += 1;
  auto after = call(h, keyed("k-1", R"({"cpu":2})"));  // expired: not even a conflict
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(header(after.value(), "Idempotent-Replayed"));
  EXPECT_EQ(runs_, 2);
  // The new entry replaced the expired one and replays for its own 24 h.
  EXPECT_EQ(header(call(h, keyed("k-1", R"({"cpu":2})")).value(), "Idempotent-Replayed"), "true");
  EXPECT_EQ(store_->count("team-a").value(), 1);
}

TEST_F(IdempotencyTest, TheSweepRemovesExpiredEntries) {
  Handler h = handler(create_sandbox_operation());
  ASSERT_TRUE(call(h, keyed("k-1")).ok());
  now_ += 12 * kHour;
  ASSERT_TRUE(call(h, keyed("k-2")).ok());
  ASSERT_TRUE(store_->sweep().ok());
  EXPECT_EQ(store_->count("team-a").value(), 2);
  now_ += 12 * kHour;
  ASSERT_TRUE(store_->sweep().ok());
  EXPECT_EQ(store_->count("team-a").value(), 1);  // k-1 is gone, k-2 has 12 h left
}

TEST_F(IdempotencyTest, ProcessEntriesLastWhileTheirSandboxIsLive) {
  live_ = {"team-a/sb-x", "team-a/sb-y"};
  Handler h = handler(start_process_operation());
  ASSERT_TRUE(call(h, process_call("sb-x", "k-1")).ok());
  now_ += 30 * 24 * kHour;  // no time limit of their own
  EXPECT_EQ(header(call(h, process_call("sb-x", "k-1")).value(), "Idempotent-Replayed"), "true");
  // The key is scoped to the sandbox: the same key in another sandbox is another process.
  auto elsewhere = call(h, process_call("sb-y", "k-1"));
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_FALSE(header(elsewhere.value(), "Idempotent-Replayed"));
  EXPECT_EQ(runs_, 2);
  // sb-x ends: its keys go, and a retry runs (the real handler then says 409 sandbox_not_running).
  live_.erase("team-a/sb-x");
  auto after = call(h, process_call("sb-x", "k-1"));
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(header(after.value(), "Idempotent-Replayed"));
  EXPECT_EQ(runs_, 3);
  // The sweep drops the entries of ended sandboxes without a request for them.
  live_.clear();
  EXPECT_EQ(store_->count("team-a").value(), 2);
  ASSERT_TRUE(store_->sweep().ok());
  EXPECT_EQ(store_->count("team-a").value(), 0);
}

TEST_F(IdempotencyTest, EachTenantKeepsItsNewestEntriesUpToTheBound) {
  open(IdempotencyLimits{3, int64_t{1} << 20, size_t{1} << 20});
  Handler h = handler(create_sandbox_operation());
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(call(h, keyed("k-" + std::to_string(i))).ok());
  Call other = keyed("k-1");
  other.tenant = "team-b";
  ASSERT_TRUE(call(h, other).ok());
  EXPECT_EQ(store_->count("team-a").value(), 3);
  EXPECT_EQ(store_->count("team-b").value(), 1);  // another tenant's entries do not push these out
  EXPECT_EQ(runs_, 5);
  EXPECT_EQ(header(call(h, keyed("k-4")).value(), "Idempotent-Replayed"), "true");
  EXPECT_EQ(header(call(h, keyed("k-2")).value(), "Idempotent-Replayed"), "true");
  EXPECT_EQ(runs_, 5);
  auto evicted = call(h, keyed("k-1"));  // the oldest went: it runs again
  ASSERT_TRUE(evicted.ok());
  EXPECT_FALSE(header(evicted.value(), "Idempotent-Replayed"));
  EXPECT_EQ(runs_, 6);
}

TEST_F(IdempotencyTest, StoredBytesAreBoundedToo) {
  // Each entry of this handler counts about 130 bytes (body, key, headers, type); 300 leave room for two.
  open(IdempotencyLimits{1000, 300, 1000});
  Handler big = with_idempotency(*store_, create_sandbox_operation(), [&](const RequestContext&) -> ApiResult<HttpResponse> {
    ++runs_;
    return json_response(201, {{"pad", std::string(100, 'x')}});
  });
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(call(big, keyed("k-" + std::to_string(i))).ok());
  EXPECT_EQ(store_->count("team-a").value(), 2);
  // A response above max_response_bytes is not stored at all (the retry runs again).
  Handler huge = with_idempotency(*store_, create_sandbox_operation(), [&](const RequestContext&) -> ApiResult<HttpResponse> {
    ++runs_;
    return json_response(201, {{"pad", std::string(2000, 'x')}});
  });
  ASSERT_TRUE(call(huge, keyed("k-huge")).ok());
  ASSERT_TRUE(call(huge, keyed("k-huge")).ok());
  EXPECT_EQ(runs_, 5);
  EXPECT_EQ(store_->count("team-a").value(), 2);
}

TEST_F(IdempotencyTest, EntriesSurviveAReopenOfTheDatabase) {
  live_ = {"team-a/sb-x"};
  std::string body;
  {
    Handler h = handler(create_sandbox_operation());
    auto first = call(h, keyed("k-1"));
    ASSERT_TRUE(first.ok());
    body = first->body;
    ASSERT_TRUE(call(handler(start_process_operation()), process_call("sb-x", "k-p")).ok());
  }
  open();  // a restarted daemon: new connection, new store, nothing in flight
  Handler h = handler(create_sandbox_operation());
  auto replay = call(h, keyed("k-1"));
  ASSERT_TRUE(replay.ok());
  EXPECT_EQ(replay->body, body);
  EXPECT_EQ(header(replay.value(), "Location"), "/v1/sandboxes/sb-1");
  EXPECT_EQ(header(replay.value(), "Idempotent-Replayed"), "true");
  EXPECT_EQ(code(call(h, keyed("k-1", R"({"cpu":2})"))), "idempotency_key_reused");
  auto process = call(handler(start_process_operation()), process_call("sb-x", "k-p"));
  EXPECT_EQ(header(process.value(), "Idempotent-Replayed"), "true");
  EXPECT_EQ(runs_, 2);
}

TEST(IdempotencyHash, CoversMethodPathAndBody) {
  auto base = idempotency_request_hash("POST", "/v1/sandboxes", "{}");
  EXPECT_EQ(base, idempotency_request_hash("POST", "/v1/sandboxes", "{}"));
  EXPECT_NE(base, idempotency_request_hash("PUT", "/v1/sandboxes", "{}"));
  EXPECT_NE(base, idempotency_request_hash("POST", "/v1/sandboxes/", "{}"));
  EXPECT_NE(base, idempotency_request_hash("POST", "/v1/sandboxes", "{ }"));
  // Parts are length-prefixed: moving a byte from the path to the body changes the hash.
  EXPECT_NE(idempotency_request_hash("POST", "/a", "b"), idempotency_request_hash("POST", "/", "ab"));
}

}  // namespace
}  // namespace airlock::daemon
