// OutputTail (the bounded stdout/stderr of commands/run) and base64 (its `encoding: base64`).
#include "daemon/command_runner.h"

#include <gtest/gtest.h>

#include <string>

#include "daemon/base64.h"

namespace airlock::daemon {
namespace {

TEST(OutputTail, KeepsEverythingUnderTheLimit) {
  OutputTail tail(10);
  tail.append("abc");
  tail.append("def");
  EXPECT_EQ(tail.total(), 6u);
  EXPECT_FALSE(tail.truncated());
  EXPECT_EQ(tail.take(), "abcdef");
}

TEST(OutputTail, KeepsTheLastBytesAcrossChunks) {
  OutputTail tail(5);
  std::string all;
  for (int i = 0; i < 50; ++i) {
    std::string chunk = std::to_string(i) + ",";
    all += chunk;
    tail.append(chunk);
  }
  EXPECT_TRUE(tail.truncated());
  EXPECT_EQ(tail.total(), all.size());
  EXPECT_EQ(tail.take(), all.substr(all.size() - 5));
}

TEST(OutputTail, ChunkLargerThanTheLimit) {
  OutputTail tail(4);
  tail.append("ab");
  tail.append("0123456789");
  EXPECT_EQ(tail.take(), "6789");
}

TEST(OutputTail, ZeroLimitCountsOnly) {
  OutputTail tail(0);
  tail.append("hello");
  EXPECT_EQ(tail.total(), 5u);
  EXPECT_TRUE(tail.truncated());
  EXPECT_EQ(tail.take(), "");
}

TEST(Base64, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    auto encoded = base64_encode(bytes);
    EXPECT_EQ(encoded.size() % 4, 0u);
    auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(*decoded, bytes);
    bytes.push_back(static_cast<char>(i * 37));
  }
  EXPECT_EQ(base64_encode("hi"), "aGk=");
}

TEST(Base64, RejectsNonCanonicalText) {
  EXPECT_FALSE(base64_decode("abc").has_value());
  EXPECT_FALSE(base64_decode("ab!=").has_value());
  EXPECT_FALSE(base64_decode("a=bc").has_value());
  EXPECT_FALSE(base64_decode("aGk=aGk=").has_value());
}

}  // namespace
}  // namespace airlock::daemon
