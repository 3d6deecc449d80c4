// Router: literal and parameter segments, specificity, 404 vs 405 with the allowed methods.
#include "daemon/router.h"

#include <gtest/gtest.h>

namespace airlock::daemon {
namespace {

Handler named(std::string name) {
  return [name](const RequestContext&) -> ApiResult<HttpResponse> {
    HttpResponse r;
    r.body = name;
    return r;
  };
}

std::string run(const Router::Match& match) {
  auto* found = std::get_if<Router::Found>(&match);
  if (!found) return "<none>";
  HttpRequest req;
  RequestContext ctx{req, found->params, {}, {}};
  return found->route->handler(ctx).value().body;
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.add({"GET", "/healthz", Access::kPublic, BodyKind::kNone, kDefaultBodyLimit, named("health")});
    router_.add({"GET", "/v1/keys", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit, named("list")});
    router_.add({"POST", "/v1/keys", Access::kAdmin, BodyKind::kJson, kDefaultBodyLimit, named("create")});
    router_.add({"DELETE", "/v1/keys/{key_id}", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit, named("revoke")});
    router_.add({"GET", "/v1/keys/stats", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit, named("stats")});
    router_.add({"GET", "/v1/sandboxes/{sandbox_id}/processes/{pid}", Access::kTenant, BodyKind::kNone,
                 kDefaultBodyLimit, named("process")});
  }
  Router router_;
};

TEST_F(RouterTest, MatchesLiteralPaths) {
  EXPECT_EQ(run(router_.match("GET", "/healthz")), "health");
  EXPECT_EQ(run(router_.match("GET", "/v1/keys")), "list");
  EXPECT_EQ(run(router_.match("POST", "/v1/keys")), "create");
}

TEST_F(RouterTest, CapturesAndDecodesParameters) {
  auto match = router_.match("GET", "/v1/sandboxes/sb-1/processes/42");
  auto* found = std::get_if<Router::Found>(&match);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->params.get("sandbox_id"), "sb-1");
  EXPECT_EQ(found->params.get("pid"), "42");

  match = router_.match("DELETE", "/v1/keys/key%2Dabc%2F");
  found = std::get_if<Router::Found>(&match);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->params.get("key_id"), "key-abc/");
}

TEST_F(RouterTest, LiteralSegmentsBeatParameters) {
  EXPECT_EQ(run(router_.match("GET", "/v1/keys/stats")), "stats");
  // Another method on the same path still reaches the parameter route.
  EXPECT_EQ(run(router_.match("DELETE", "/v1/keys/stats")), "revoke");
}

TEST_F(RouterTest, UnknownPathsAreNotFound) {
  for (const char* path : {"/", "", "healthz", "/healthz/", "/v1", "/v1/keys/", "/v1/keys/a/b", "//healthz",
                           "/v1/keys//", "/V1/keys", "/v1/%6beys", "/v1/keys/%zz"}) {
    EXPECT_TRUE(std::holds_alternative<Router::NotFound>(router_.match("DELETE", path))) << path;
  }
}

TEST_F(RouterTest, WrongMethodListsAllowedMethods) {
  auto match = router_.match("PUT", "/v1/keys");
  auto* wrong = std::get_if<Router::MethodNotAllowed>(&match);
  ASSERT_NE(wrong, nullptr);
  EXPECT_EQ(wrong->allow, (std::vector<std::string>{"GET", "POST"}));

  match = router_.match("GET", "/v1/keys/key-1");
  wrong = std::get_if<Router::MethodNotAllowed>(&match);
  ASSERT_NE(wrong, nullptr);
  EXPECT_EQ(wrong->allow, (std::vector<std::string>{"DELETE"}));

  // Methods are case-sensitive (RFC 9110).
  EXPECT_TRUE(std::holds_alternative<Router::MethodNotAllowed>(router_.match("get", "/healthz")));
}

TEST(RouterDeathTest, DuplicateRoutesAreABug) {
  Router router;
  router.add({"GET", "/x", Access::kPublic, BodyKind::kNone, kDefaultBodyLimit, named("a")});
  EXPECT_DEATH(router.add({"GET", "/x", Access::kPublic, BodyKind::kNone, kDefaultBodyLimit, named("b")}),
               "registered twice");
  EXPECT_DEATH(router.add({"GET", "/y/{unclosed", Access::kPublic, BodyKind::kNone, kDefaultBodyLimit, named("c")}),
               "malformed pattern");
}

}  // namespace
}  // namespace airlock::daemon
