// NDJSON splitting: lines cut anywhere by the transport come out whole, and nothing grows without bound.
#include "cli/ndjson.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace airlock::cli {
namespace {

std::vector<std::string> drain(NdjsonSplitter& s) {
  std::vector<std::string> out;
  while (auto line = s.next()) out.push_back(*line);
  return out;
}

TEST(Ndjson, WholeLines) {
  NdjsonSplitter s;
  ASSERT_TRUE(s.feed("{\"a\":1}\n{\"b\":2}\n").ok());
  EXPECT_EQ(drain(s), (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_TRUE(s.rest().empty());
}

TEST(Ndjson, EveryByteSeparately) {
  const std::string text = "{\"type\":\"stdout\",\"data\":\"h\\u00e9\"}\r\n\n{\"type\":\"exit\"}\n{\"partial";
  NdjsonSplitter s;
  std::vector<std::string> lines;
  for (char c : text) {
    ASSERT_TRUE(s.feed(std::string(1, c)).ok());
    for (auto& l : drain(s)) lines.push_back(l);
  }
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"type\":\"stdout\",\"data\":\"h\\u00e9\"}", "{\"type\":\"exit\"}"}));
  EXPECT_EQ(s.rest(), "{\"partial");
}

TEST(Ndjson, SplitInsideMultibyteCharacter) {
  NdjsonSplitter s;
  std::string line = "{\"data\":\"\xc3\xa9\"}";
  ASSERT_TRUE(s.feed(line.substr(0, 10)).ok());
  EXPECT_FALSE(s.next());
  ASSERT_TRUE(s.feed(line.substr(10) + "\n").ok());
  EXPECT_EQ(s.next(), line);
}

TEST(Ndjson, ManyLinesKeepMemoryBounded) {
  NdjsonSplitter s(64);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(s.feed("{\"i\":" + std::to_string(i) + "}\n").ok());
    ASSERT_EQ(s.next(), "{\"i\":" + std::to_string(i) + "}");
  }
}

TEST(Ndjson, OverlongLineIsAnError) {
  NdjsonSplitter s(16);
  ASSERT_TRUE(s.feed("0123456789").ok());
  EXPECT_FALSE(s.feed("0123456789").ok());
}

}  // namespace
}  // namespace airlock::cli
