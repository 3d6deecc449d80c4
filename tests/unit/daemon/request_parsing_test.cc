// Request targets, percent-decoding, query parameters, bearer headers and --listen addresses.
#include <gtest/gtest.h>

#include "daemon/auth.h"
#include "daemon/listen_address.h"
#include "daemon/query.h"
#include "daemon/url.h"

namespace airlock::daemon {
namespace {

TEST(UrlTest, SplitsTargets) {
  auto t = split_target("/v1/keys?limit=2&x");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/v1/keys");
  EXPECT_EQ(t->query, "limit=2&x");
  t = split_target("http://localhost:7070/healthz?a=1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/healthz");
  EXPECT_EQ(t->query, "a=1");
  t = split_target("http://localhost:7070");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/");
  EXPECT_EQ(split_target("/a#frag")->path, "/a");
  // Fuzz finding: the absolute form's query lost its fragment cut.
  EXPECT_EQ(split_target("http://h?a=1#frag")->query, "a=1");
  EXPECT_EQ(split_target("http://h/p?a=1#frag")->query, "a=1");
  EXPECT_FALSE(split_target("*"));
  EXPECT_FALSE(split_target(""));
  EXPECT_FALSE(split_target("localhost:7070"));
  EXPECT_FALSE(split_target("://x/"));
}

TEST(UrlTest, PercentDecoding) {
  EXPECT_EQ(percent_decode("a%20b%2Fc", false), "a b/c");
  EXPECT_EQ(percent_decode("a+b", false), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("%00", false), std::string(1, '\0'));
  EXPECT_FALSE(percent_decode("%", false));
  EXPECT_FALSE(percent_decode("%2", false));
  EXPECT_FALSE(percent_decode("%zz", false));
}

TEST(QueryTest, ParsesAndTypes) {
  auto q = QueryParams::parse("limit=5&include_revoked=true&tenant=team-a&&empty=");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->integer("limit", 1, 1000).value(), 5);
  EXPECT_EQ(q->boolean("include_revoked").value(), true);
  EXPECT_EQ(q->get("empty"), "");
  EXPECT_EQ(q->integer("missing", 1, 10).value(), std::nullopt);
  EXPECT_FALSE(q->check_names({"limit", "include_revoked", "tenant", "empty"}).has_value());
  auto unknown = q->check_names({"limit"});
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->code, ErrorCode::kInvalidParameter);
  EXPECT_EQ(unknown->field, "include_revoked");
  // Fuzz finding: an empty parameter name still gets a visible field.
  auto empty_name = QueryParams::parse("=1");
  ASSERT_TRUE(empty_name.ok());
  auto err = empty_name->check_names({"limit"});
  ASSERT_TRUE(err);
  EXPECT_EQ(err->field, "\"\"");
}

TEST(QueryTest, RejectsMalformedValues) {
  for (const char* text : {"limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=", "limit=1.5", "limit=99999999999999999999"}) {
    auto q = QueryParams::parse(text);
    ASSERT_TRUE(q.ok());
    auto v = q->integer("limit", 1, 1000);
    ASSERT_FALSE(v.ok()) << text;
    EXPECT_EQ(v.error().field, "limit");
  }
  auto b = QueryParams::parse("x=yes");
  EXPECT_FALSE(b->boolean("x").ok());
  auto dup = QueryParams::parse("limit=1&limit=2");
  EXPECT_TRUE(dup->check_names({"limit"}).has_value());
  EXPECT_FALSE(dup->check_names({"limit"}, {"limit"}).has_value());
  auto bad = QueryParams::parse("a=%zz");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidParameter);
}

TEST(AuthTest, BearerHeaderParsing) {
  std::string key = "alk_" + std::string(43, 'a');
  EXPECT_EQ(bearer_token("Bearer " + key), key);
  EXPECT_EQ(bearer_token("bearer   " + key + " "), key);
  EXPECT_FALSE(bearer_token("Bearer"));
  EXPECT_FALSE(bearer_token("Bearer "));
  EXPECT_FALSE(bearer_token("Bearerx " + key));
  EXPECT_FALSE(bearer_token("Basic dXNlcjpwYXNz"));
  EXPECT_FALSE(bearer_token("Bearer a b"));
  EXPECT_FALSE(bearer_token(""));
}

TEST(ListenAddressTest, Parses) {
  auto a = parse_listen_address("127.0.0.1:7070");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7070);
  a = parse_listen_address("[::1]:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  EXPECT_TRUE(parse_listen_address("localhost:80").ok());
  for (const char* bad : {"", "7070", ":7070", "host:", "host:65536", "host:-1", "::1:7070", "host:7x"}) {
    EXPECT_FALSE(parse_listen_address(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace airlock::daemon
