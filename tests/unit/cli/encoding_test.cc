// The small codecs of the CLI: base64 for exact output bytes, percent-encoding of request targets,
// and the units users type for `sandbox create` and `exec --timeout`.
#include <gtest/gtest.h>

#include "cli/api_units.h"
#include "cli/base64.h"
#include "cli/query_string.h"

namespace airlock::cli {
namespace {

TEST(CliBase64, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    auto decoded = base64_decode(base64_encode(bytes));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, bytes);
    bytes.push_back(static_cast<char>(i * 37));
  }
  EXPECT_EQ(base64_encode(std::string("\x00\xff\x01", 3)), "AP8B");
  EXPECT_EQ(base64_encode("hi"), "aGk=");
}

TEST(CliBase64, RejectsMalformed) {
  for (const char* bad : {"a", "abc", "ab=c", "a===", "ab\ncd", "****"}) EXPECT_FALSE(base64_decode(bad).ok()) << bad;
}

TEST(CliQueryString, EscapesEverythingThatCouldChangeTheRoute) {
  EXPECT_EQ(percent_encode("a b/c?d&e=f#g%"), "a%20b%2Fc%3Fd%26e%3Df%23g%25");
  EXPECT_EQ(percent_encode("safe-._~AZaz09"), "safe-._~AZaz09");
  EXPECT_EQ(QueryString().add("path", "/tmp/x y").add("metadata", "k=v").str(), "?path=%2Ftmp%2Fx%20y&metadata=k%3Dv");
  EXPECT_EQ(QueryString().str(), "");
  EXPECT_EQ(sandbox_target("sb-1", "/files/read"), "/v1/sandboxes/sb-1/files/read");
  EXPECT_EQ(sandbox_target("../keys"), "/v1/sandboxes/..%2Fkeys");
  EXPECT_EQ(sandbox_target(".."), "/v1/sandboxes/%2E%2E");
}

TEST(ApiUnits, Mebibytes) {
  EXPECT_EQ(parse_mebibytes("512m").value(), 512u);
  EXPECT_EQ(parse_mebibytes("512M").value(), 512u);
  EXPECT_EQ(parse_mebibytes("512").value(), 512u);
  EXPECT_EQ(parse_mebibytes("1G").value(), 1024u);
  EXPECT_EQ(parse_mebibytes("1.5M").value(), 2u);
  EXPECT_EQ(parse_mebibytes("100k").value(), 1u);
  EXPECT_FALSE(parse_mebibytes("0").ok());
  EXPECT_FALSE(parse_mebibytes("lots").ok());
}

TEST(ApiUnits, Seconds) {
  EXPECT_EQ(parse_whole_seconds("300").value(), 300u);
  EXPECT_EQ(parse_whole_seconds("5m").value(), 300u);
  EXPECT_EQ(parse_whole_seconds("1500ms").value(), 2u);
  EXPECT_FALSE(parse_whole_seconds("0").ok());
  EXPECT_DOUBLE_EQ(parse_seconds("2.5").value(), 2.5);
  EXPECT_DOUBLE_EQ(parse_seconds("500ms").value(), 0.5);
  EXPECT_FALSE(parse_seconds("-1").ok());
}

}  // namespace
}  // namespace airlock::cli
