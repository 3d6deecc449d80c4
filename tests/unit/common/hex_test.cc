#include "common/hex.h"

#include <gtest/gtest.h>

namespace airlock {
namespace {

TEST(Hex, RoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  std::string text = hex_encode(all);
  EXPECT_EQ(text.size(), 512u);
  EXPECT_EQ(text.substr(0, 6), "000102");
  EXPECT_EQ(hex_decode(text), all);
}

TEST(Hex, DecodeRejectsWhatEncodeNeverMakes) {
  for (const char* bad : {"0", "abc", "0g", "AB", " 0", "0x"}) EXPECT_FALSE(hex_decode(bad)) << bad;
  EXPECT_EQ(hex_decode(""), std::string());
}

}  // namespace
}  // namespace airlock
