// JSON bodies: media types, syntax/UTF-8/depth errors, and field reading (types, ranges, unknowns).
#include "daemon/json_body.h"

#include <gtest/gtest.h>

#include "daemon/key_store.h"

namespace airlock::daemon {
namespace {

TEST(JsonBodyTest, MediaTypes) {
  EXPECT_TRUE(is_json_media_type("application/json"));
  EXPECT_TRUE(is_json_media_type("Application/JSON"));
  EXPECT_TRUE(is_json_media_type("application/json; charset=utf-8"));
  EXPECT_TRUE(is_json_media_type("application/json;charset=\"UTF-8\""));
  EXPECT_FALSE(is_json_media_type("application/json; charset=latin1"));
  EXPECT_FALSE(is_json_media_type("text/plain"));
  EXPECT_FALSE(is_json_media_type("application/jsonx"));
  EXPECT_FALSE(is_json_media_type(""));
  EXPECT_FALSE(is_json_media_type("application/json; garbage"));
}

TEST(JsonBodyTest, ContentTypeCheck) {
  HttpRequest req;
  EXPECT_EQ(check_json_content_type(req)->code, ErrorCode::kUnsupportedMediaType);
  req.headers.push_back({"content-type", "application/json"});
  EXPECT_FALSE(check_json_content_type(req).has_value());
  req.headers.push_back({"Content-Type", "text/plain"});  // two of them: ambiguous
  EXPECT_TRUE(check_json_content_type(req).has_value());
}

TEST(JsonBodyTest, ParseErrorsAreInvalidJson) {
  for (std::string body : {"", "{", "[]", "42", "\"s\"", "null", "{\"a\":}", "{\"a\":1,}", "{'a':1}",
                           "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "\xef\xbb\xbf", "{} {}"}) {
    auto r = parse_json_object(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidJson) << body;
    EXPECT_FALSE(r.error().message.empty());
  }
  EXPECT_TRUE(parse_json_object("{}").ok());
  EXPECT_TRUE(parse_json_object(" {\"a\": [1, {\"b\": null}]}\n").ok());
}

TEST(JsonBodyTest, DepthIsBounded) {
  std::string deep(kMaxJsonDepth + 1, '[');
  EXPECT_TRUE(json_nesting_exceeds(deep, kMaxJsonDepth));
  std::string ok = "{\"a\":" + std::string(kMaxJsonDepth - 1, '[') + std::string(kMaxJsonDepth - 1, ']') + "}";
  EXPECT_FALSE(json_nesting_exceeds(ok, kMaxJsonDepth));
  EXPECT_TRUE(parse_json_object(ok).ok());
  // Brackets inside strings (escaped quotes included) do not count.
  EXPECT_FALSE(json_nesting_exceeds("{\"a\":\"\\\"" + std::string(1000, '[') + "\"}", kMaxJsonDepth));
  auto r = parse_json_object("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidJson);
}

TEST(JsonBodyTest, FieldsAreTypedAndBounded) {
  auto body = nlohmann::json::parse(R"({"name": "ci", "admin": true})");
  JsonFields f(body);
  EXPECT_EQ(f.string("name", {1, 64, valid_key_name, "x"}, true), "ci");
  EXPECT_EQ(f.boolean("admin"), true);
  EXPECT_EQ(f.string("tenant", {1, 63, valid_tenant_name, "x"}), std::nullopt);
  EXPECT_FALSE(f.finish().has_value());
}

ApiError first_error(const std::string& json) {
  auto body = nlohmann::json::parse(json);
  JsonFields f(body, "key.");
  f.string("name", {1, 4, nullptr, ""}, true);
  f.boolean("admin");
  auto e = f.finish();
  EXPECT_TRUE(e.has_value()) << json;
  return e.value_or(ApiError{});
}

TEST(JsonBodyTest, FieldErrorsNameTheField) {
  struct Case {
    const char* json;
    const char* field;
  } cases[] = {
      {R"({})", "key.name"},
      {R"({"name": 5})", "key.name"},
      {R"({"name": null})", "key.name"},
      {R"({"name": ""})", "key.name"},
      {R"({"name": "12345"})", "key.name"},
      {R"({"name": "ab", "admin": "yes"})", "key.admin"},
      {R"({"name": "ab", "admin": null})", "key.admin"},
      {R"({"name": "ab", "bogus": 1})", "key.bogus"},
      {R"({"name": "ab", "": 1})", "key.\"\""},  // fuzz finding: an empty name still names a field
  };
  for (const auto& c : cases) {
    ApiError e = first_error(c.json);
    EXPECT_EQ(e.code, ErrorCode::kInvalidField) << c.json;
    EXPECT_EQ(e.field, c.field) << c.json;
  }
}

TEST(JsonBodyTest, LengthsCountCharacters) {
  EXPECT_EQ(utf8_length("caf\xc3\xa9"), 4u);
  auto body = nlohmann::json::parse("{\"name\": \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}");  // 4 chars, 8 bytes
  JsonFields f(body);
  EXPECT_TRUE(f.string("name", {1, 4, nullptr, ""}, true).has_value());
  EXPECT_FALSE(f.finish().has_value());
}

}  // namespace
}  // namespace airlock::daemon
