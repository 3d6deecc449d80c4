// errors.h: every code has its contract status, and every error leaves as the one JSON shape.
#include "daemon/errors.h"

#include <gtest/gtest.h>

#include <set>

namespace airlock::daemon {
namespace {

nlohmann::json parse(const HttpResponse& r) { return nlohmann::json::parse(r.body); }

TEST(ErrorsTest, EveryCodeHasANameAndAnErrorStatus) {
  std::set<std::string_view> names;
  for (ErrorCode code : all_error_codes()) {
    auto name = error_code_name(code);
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_GE(http_status(code), 400);
    EXPECT_LT(http_status(code), 600);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(ErrorCode::kDiskFull) + 1);
}

TEST(ErrorsTest, StatusesFollowTheContract) {
  EXPECT_EQ(http_status(ErrorCode::kInvalidJson), 400);
  EXPECT_EQ(http_status(ErrorCode::kInvalidField), 400);
  EXPECT_EQ(http_status(ErrorCode::kUnauthenticated), 401);
  EXPECT_EQ(http_status(ErrorCode::kForbidden), 403);
  EXPECT_EQ(http_status(ErrorCode::kRouteNotFound), 404);
  EXPECT_EQ(http_status(ErrorCode::kKeyNotFound), 404);
  EXPECT_EQ(http_status(ErrorCode::kMethodNotAllowed), 405);
  EXPECT_EQ(http_status(ErrorCode::kPayloadTooLarge), 413);
  EXPECT_EQ(http_status(ErrorCode::kUnsupportedMediaType), 415);
  EXPECT_EQ(http_status(ErrorCode::kHeadersTooLarge), 431);
  EXPECT_EQ(http_status(ErrorCode::kInternal), 500);
  EXPECT_EQ(http_status(ErrorCode::kUnavailable), 503);
}

TEST(ErrorsTest, ResponseHasTheOneShape) {
  auto r = error_response(api_error(ErrorCode::kInvalidField, "name is required").with_field("name"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/json");
  auto body = parse(r);
  EXPECT_EQ(body, nlohmann::json::parse(R"({"error":{"code":"invalid_field","message":"name is required","field":"name"}})"));
}

TEST(ErrorsTest, DetailsAndHeadersAreCarried) {
  auto r = error_response(api_error(ErrorCode::kPayloadTooLarge, "too big")
                              .with_details({{"limit_bytes", 1048576}})
                              .with_header("Retry-After", "5"));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(parse(r)["error"]["details"]["limit_bytes"], 1048576);
  bool found = false;
  for (const auto& h : r.headers) found = found || (h.name == "Retry-After" && h.value == "5");
  EXPECT_TRUE(found);
}

TEST(ErrorsTest, UnauthenticatedNamesTheScheme) {
  auto r = error_response(api_error(ErrorCode::kUnauthenticated, "missing key"));
  bool found = false;
  for (const auto& h : r.headers) found = found || (h.name == "WWW-Authenticate" && h.value.rfind("Bearer", 0) == 0);
  EXPECT_TRUE(found);
}

TEST(ErrorsTest, InternalErrorsHideTheirCause) {
  ApiError e = internal_error(plain_error("sqlite step: disk I/O error at /var/lib/airlock/airlock.db"));
  EXPECT_EQ(e.code, ErrorCode::kInternal);
  EXPECT_NE(e.log_cause.find("disk I/O"), std::string::npos);
  auto body = parse(error_response(e));
  EXPECT_EQ(body["error"]["code"], "internal");
  EXPECT_EQ(body["error"]["message"].get<std::string>().find("/var/lib"), std::string::npos);
}

TEST(ErrorsTest, ClientBytesCannotBreakSerialisation) {
  // Invalid UTF-8 and control characters from a request end up as U+FFFD / escapes, not a throw.
  std::string hostile = "no route for GET /\xff\xfe\x01\"\\";
  auto r = error_response(api_error(ErrorCode::kRouteNotFound, hostile).with_field(std::string(1000, 'f')));
  auto body = parse(r);
  EXPECT_NE(body["error"]["message"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_LE(body["error"]["field"].get<std::string>().size(), 256u);
  auto long_message = error_response(api_error(ErrorCode::kRouteNotFound, std::string(100000, 'x')));
  EXPECT_LE(parse(long_message)["error"]["message"].get<std::string>().size(), 4096u);
}

TEST(ErrorsTest, ApiTryPropagatesErrors) {
  auto inner = [](bool fail) -> ApiResult<int> {
    if (fail) return api_error(ErrorCode::kKeyNotFound, "no such key");
    return 7;
  };
  auto outer = [&](bool fail) -> ApiResult<std::string> {
    API_TRY(int v, inner(fail));
    return std::to_string(v);
  };
  EXPECT_EQ(outer(false).value(), "7");
  EXPECT_EQ(outer(true).error().code, ErrorCode::kKeyNotFound);
  EXPECT_EQ(or_internal(Result<int>(plain_error("boom"))).error().code, ErrorCode::kInternal);
}

}  // namespace
}  // namespace airlock::daemon
