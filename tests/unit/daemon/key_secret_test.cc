// Key secrets: shape, randomness, hashing (SHA-256 test vector) and constant-time comparison.
#include "daemon/key_secret.h"

#include <gtest/gtest.h>

#include <set>

namespace airlock::daemon {
namespace {

std::string hex(const KeyHash& h) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : h) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

TEST(KeySecretTest, SecretsHaveTheContractShape) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto secret = generate_secret();
    ASSERT_TRUE(secret.ok()) << secret.error().describe();
    EXPECT_EQ(secret->size(), kSecretLength);
    EXPECT_EQ(secret->substr(0, 4), "alk_");
    EXPECT_TRUE(looks_like_secret(*secret)) << *secret;
    EXPECT_TRUE(seen.insert(*secret).second) << "duplicate secret";
  }
}

TEST(KeySecretTest, KeyIdsHaveTheContractShape) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto id = generate_key_id();
    ASSERT_TRUE(id.ok());
    ASSERT_EQ(id->size(), 20u);
    EXPECT_EQ(id->substr(0, 4), "key-");
    for (char c : id->substr(4)) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) << *id;
    EXPECT_TRUE(seen.insert(*id).second);
  }
}

TEST(KeySecretTest, RejectsMalformedSecrets) {
  std::string good = "alk_" + std::string(43, 'A');
  EXPECT_TRUE(looks_like_secret(good));
  EXPECT_FALSE(looks_like_secret(""));
  EXPECT_FALSE(looks_like_secret("alk_"));
  EXPECT_FALSE(looks_like_secret("alk_" + std::string(42, 'A')));
  EXPECT_FALSE(looks_like_secret("alk_" + std::string(44, 'A')));
  EXPECT_FALSE(looks_like_secret("xlk_" + std::string(43, 'A')));
  EXPECT_FALSE(looks_like_secret("alk_" + std::string(42, 'A') + "+"));  // base64, not base64url
  EXPECT_FALSE(looks_like_secret("alk_" + std::string(42, 'A') + "="));
  EXPECT_FALSE(looks_like_secret(std::string("alk_") + std::string(42, 'A') + '\0'));
}

TEST(KeySecretTest, PrefixIsTheFirstTenCharacters) {
  EXPECT_EQ(secret_prefix("alk_Zq3xT1mP0vLr8sYb2NwQe5KcHd7JfGa9UiOo4XtRzAy"), "alk_Zq3xT1");
}

TEST(KeySecretTest, HashIsSha256) {
  // FIPS 180-2 test vector.
  EXPECT_EQ(hex(hash_secret("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(hash_secret("alk_a"), hash_secret("alk_b"));
}

TEST(KeySecretTest, HashComparison) {
  KeyHash a = hash_secret("one"), b = hash_secret("one"), c = hash_secret("two");
  EXPECT_TRUE(hashes_equal(a, b));
  EXPECT_FALSE(hashes_equal(a, c));
  KeyHash d = a;
  d[31] ^= 1;  // differs only in the last byte
  EXPECT_FALSE(hashes_equal(a, d));
}

TEST(KeySecretTest, Base64UrlWithoutPadding) {
  auto enc = [](std::string_view s) {
    return base64url(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg");
  EXPECT_EQ(enc("fo"), "Zm8");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("\xfb\xff"), "-_8");
}

}  // namespace
}  // namespace airlock::daemon
