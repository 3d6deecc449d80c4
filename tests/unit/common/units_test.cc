// The units users type on the command line: every accepted spelling maps to exact bytes,
// milliseconds or millicores, and everything else is an error (never a silent zero).
#include "common/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace airlock {
namespace {

using std::chrono::milliseconds;

constexpr uint64_t kKiB = 1ULL << 10;
constexpr uint64_t kMiB = 1ULL << 20;
constexpr uint64_t kGiB = 1ULL << 30;
constexpr uint64_t kTiB = 1ULL << 40;

// Parses or fails the test with the error, so a wrong rejection shows its message.
uint64_t size_of(const std::string& text) {
  auto r = parse_size(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.error().message;
  return r.ok() ? *r : 0;
}

int64_t ms_of(const std::string& text) {
  auto r = parse_duration(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.error().message;
  return r.ok() ? r->count() : -1;
}

uint64_t millicores_of(const std::string& text) {
  auto r = parse_cpus(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.error().message;
  return r.ok() ? *r : 0;
}

// --- parse_size -----------------------------------------------------------------------------------

TEST(ParseSize, BareNumberIsBytes) {
  EXPECT_EQ(size_of("512"), 512u);
  EXPECT_EQ(size_of("0"), 0u);
  EXPECT_EQ(size_of("1"), 1u);
}

TEST(ParseSize, SuffixesAreBinaryMultiples) {
  EXPECT_EQ(size_of("64k"), 64 * kKiB);
  EXPECT_EQ(size_of("64K"), 64 * kKiB);
  EXPECT_EQ(size_of("256M"), 256 * kMiB);
  EXPECT_EQ(size_of("256m"), 256 * kMiB);
  EXPECT_EQ(size_of("1G"), kGiB);
  EXPECT_EQ(size_of("2T"), 2 * kTiB);
}

TEST(ParseSize, FractionsAreExactWhenTheResultIsWhole) {
  // Accumulating "0.1" steps in floating point must not round 1.5G down to 1610612735.
  EXPECT_EQ(size_of("1.5G"), 3 * kGiB / 2);
  EXPECT_EQ(size_of("0.5K"), 512u);
  EXPECT_EQ(size_of("0.375K"), 384u);
  EXPECT_EQ(size_of("0.0625K"), 64u);
  EXPECT_EQ(size_of("2.25M"), 9 * kMiB / 4);
  EXPECT_EQ(size_of("1.875G"), 15 * kGiB / 8);
  EXPECT_EQ(size_of("0.25T"), kTiB / 4);
}

TEST(ParseSize, FractionalBytesRoundDown) {
  EXPECT_EQ(size_of("0.1K"), 102u);  // 102.4
  EXPECT_EQ(size_of("1.2G"), 1288490188u);  // 1288490188.8
}

TEST(ParseSize, AcceptsTrailingBAndIB) {
  EXPECT_EQ(size_of("1MiB"), kMiB);
  EXPECT_EQ(size_of("1MB"), kMiB);  // binary, like the rest: "MB" is not 10^6 here
  EXPECT_EQ(size_of("1mb"), kMiB);
  EXPECT_EQ(size_of("2GiB"), 2 * kGiB);
  EXPECT_EQ(size_of("4KB"), 4 * kKiB);
  EXPECT_EQ(size_of("100B"), 100u);
}

TEST(ParseSize, RejectsUnknownUnits) {
  for (const char* text : {"12Q", "1KK", "1GBB", "1 G", "1G ", "1kiB2", "5X"}) {
    auto r = parse_size(text);
    EXPECT_FALSE(r.ok()) << text << " parsed as " << (r.ok() ? *r : 0);
  }
  auto r = parse_size("12Q");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("\"12Q\""), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("unknown unit"), std::string::npos) << r.error().message;
}

TEST(ParseSize, RejectsThingsThatAreNotNumbers) {
  for (const char* text : {"", "-1", "M", "1.2.3", "+1", " 1", "G1", ".", "abc"}) {
    auto r = parse_size(text);
    EXPECT_FALSE(r.ok()) << "\"" << text << "\" parsed as " << (r.ok() ? *r : 0);
  }
  auto r = parse_size("");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("invalid size"), std::string::npos) << r.error().message;
}

TEST(ParseSize, RejectsOverflowInsteadOfWrapping) {
  auto r = parse_size("99999999999T");
  ASSERT_FALSE(r.ok()) << "parsed as " << *r;
  EXPECT_NE(r.error().message.find("too large"), std::string::npos) << r.error().message;
  // 2^64 bytes exactly does not fit; one GiB less does.
  EXPECT_FALSE(parse_size("17179869184G").ok());
  EXPECT_EQ(size_of("17179869183G"), UINT64_MAX - kGiB + 1);
  EXPECT_FALSE(parse_size("18446744073709551616").ok());
}

// --- parse_duration -------------------------------------------------------------------------------

TEST(ParseDuration, EachUnit) {
  EXPECT_EQ(ms_of("500ms"), 500);
  EXPECT_EQ(ms_of("30s"), 30'000);
  EXPECT_EQ(ms_of("5m"), 300'000);
  EXPECT_EQ(ms_of("1h"), 3'600'000);
}

TEST(ParseDuration, CombinedUnitsAdd) {
  EXPECT_EQ(ms_of("1m30s"), 90'000);
  EXPECT_EQ(ms_of("1h1m1s"), 3'661'000);
  EXPECT_EQ(ms_of("1s500ms"), 1'500);
}

TEST(ParseDuration, BareNumberIsSeconds) {
  EXPECT_EQ(ms_of("2.5"), 2'500);
  EXPECT_EQ(ms_of("10"), 10'000);
}

TEST(ParseDuration, FractionsOfAUnit) {
  EXPECT_EQ(ms_of("1.5s"), 1'500);
  EXPECT_EQ(ms_of("0.5m"), 30'000);
  EXPECT_EQ(ms_of("0.001s"), 1);
}

TEST(ParseDuration, Rejects) {
  for (const char* text : {"5x", "", "ms", "-1s", "1h30", "5M", "s5", "1.2.3s", "1 s", "1sec"}) {
    auto r = parse_duration(text);
    EXPECT_FALSE(r.ok()) << "\"" << text << "\" parsed as " << (r.ok() ? r->count() : 0) << "ms";
  }
  auto r = parse_duration("5x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("\"5x\""), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("unknown unit \"x\""), std::string::npos) << r.error().message;
}

TEST(ParseDuration, RejectsOverflow) {
  auto r = parse_duration("99999999999999999999h");
  ASSERT_FALSE(r.ok()) << "parsed as " << r->count() << "ms";
  EXPECT_NE(r.error().message.find("too large"), std::string::npos) << r.error().message;
}

// --- parse_cpus -----------------------------------------------------------------------------------

TEST(ParseCpus, ThousandthsOfACpu) {
  EXPECT_EQ(millicores_of("0.5"), 500u);
  EXPECT_EQ(millicores_of("2"), 2000u);
  EXPECT_EQ(millicores_of("1.25"), 1250u);
  EXPECT_EQ(millicores_of("0.01"), 10u);
  EXPECT_EQ(millicores_of("0.001"), 1u);
  EXPECT_EQ(millicores_of("16"), 16000u);
}

TEST(ParseCpus, Rejects) {
  for (const char* text : {"abc", "", "1,5", "-1", "1.5.2", "2x", " 1", "1e3"}) {
    auto r = parse_cpus(text);
    EXPECT_FALSE(r.ok()) << "\"" << text << "\" parsed as " << (r.ok() ? *r : 0);
  }
  auto r = parse_cpus("1,5");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("invalid CPU count \"1,5\""), std::string::npos) << r.error().message;
  EXPECT_FALSE(parse_cpus("99999999").ok());
}

// --- parse_uint -----------------------------------------------------------------------------------

TEST(ParseUint, Decimal) {
  auto zero = parse_uint("0");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(*zero, 0u);
  auto n = parse_uint("65535");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 65535u);
  auto max = parse_uint("18446744073709551615");
  ASSERT_TRUE(max.ok()) << max.error().message;
  EXPECT_EQ(*max, UINT64_MAX);
}

TEST(ParseUint, RejectsOverflow) {
  for (const char* text : {"18446744073709551616", "99999999999999999999", "184467440737095516150"}) {
    auto r = parse_uint(text);
    EXPECT_FALSE(r.ok()) << text << " parsed as " << (r.ok() ? *r : 0);
  }
  auto r = parse_uint("18446744073709551616");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("too large"), std::string::npos) << r.error().message;
}

TEST(ParseUint, RejectsNonDigits) {
  for (const char* text : {"", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1k", "abc"}) {
    auto r = parse_uint(text);
    EXPECT_FALSE(r.ok()) << "\"" << text << "\" parsed as " << (r.ok() ? *r : 0);
  }
}

// --- format_size / format_duration ----------------------------------------------------------------

TEST(FormatSize, PicksTheLargestWholeOrOneDecimalUnit) {
  EXPECT_EQ(format_size(0), "0B");
  EXPECT_EQ(format_size(100), "100B");
  EXPECT_EQ(format_size(1023), "1023B");
  EXPECT_EQ(format_size(1024), "1K");
  EXPECT_EQ(format_size(1536), "1.5K");
  EXPECT_EQ(format_size(256 * kMiB), "256M");
  EXPECT_EQ(format_size(3 * kGiB / 2), "1.5G");
  EXPECT_EQ(format_size(kTiB), "1T");
  EXPECT_EQ(format_size(1024 * kTiB), "1024T");  // T is the largest unit
}

TEST(FormatSize, RoundTripsThroughParseSize) {
  for (uint64_t bytes : {uint64_t{0}, uint64_t{1}, uint64_t{100}, uint64_t{1023}, kKiB, 3 * kKiB / 2, 4 * kMiB,
                         256 * kMiB, 512 * kMiB, kGiB, 3 * kGiB / 2, 5 * kGiB / 2, 2 * kTiB, 3 * kTiB / 2}) {
    std::string text = format_size(bytes);
    auto back = parse_size(text);
    ASSERT_TRUE(back.ok()) << text << ": " << back.error().message;
    EXPECT_EQ(*back, bytes) << "via \"" << text << "\"";
  }
}

TEST(FormatDuration, Shapes) {
  EXPECT_EQ(format_duration(milliseconds(0)), "0ms");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(format_duration(milliseconds(999)), "999ms");
  EXPECT_EQ(format_duration(milliseconds(1000)), "1s");
  EXPECT_EQ(format_duration(milliseconds(1500)), "1.5s");
  EXPECT_EQ(format_duration(milliseconds(2000)), "2s");
  EXPECT_EQ(format_duration(milliseconds(60'000)), "1m");
  EXPECT_EQ(format_duration(milliseconds(90'000)), "1m30s");
  EXPECT_EQ(format_duration(milliseconds(3'600'000)), "60m");
}

TEST(FormatDuration, RoundTripsThroughParseDuration) {
  for (int64_t ms : {0, 1, 250, 999, 1000, 1500, 2000, 2500, 30'000, 59'500, 60'000, 90'000, 300'000,
                     3'600'000, 3'661'000}) {
    std::string text = format_duration(milliseconds(ms));
    auto back = parse_duration(text);
    ASSERT_TRUE(back.ok()) << text << ": " << back.error().message;
    EXPECT_EQ(back->count(), ms) << "via \"" << text << "\"";
  }
}

}  // namespace
}  // namespace airlock
