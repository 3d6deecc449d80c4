// PortTokenStore against a real SQLite file: a token opens its own port only, expires, is revoked,
// goes with its port and its sandbox, and is stored only as a hash.
#include "daemon/port_tokens.h"

#include <stdlib.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace airlock::daemon {
namespace {

class PortTokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-port-tokens-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto db = Database::open(dir_ + "/airlock.db");
    ASSERT_TRUE(db.ok()) << db.error().describe();
    db_ = std::move(db).value();
    store_ = std::make_unique<PortTokenStore>(*db_);
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  NewPortToken make(const std::string& sandbox, uint16_t port, std::optional<UnixMillis> expires = std::nullopt) {
    auto t = store_->create(sandbox, port, "n", 1000, expires);
    EXPECT_TRUE(t.ok() && t.value());
    return **t;
  }
  bool valid(const std::string& sandbox, uint16_t port, const std::string& secret, UnixMillis now = 2000) {
    auto v = store_->valid(sandbox, port, secret, now);
    EXPECT_TRUE(v.ok());
    return v.ok() && *v;
  }
  std::string dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<PortTokenStore> store_;
};

TEST_F(PortTokensTest, OpensItsOwnPortOnly) {
  auto t = make("sb-a", 80);
  EXPECT_EQ(t.secret.size(), 47u);
  EXPECT_EQ(t.secret.substr(0, 4), "apt_");
  EXPECT_EQ(t.token.token_id.substr(0, 4), "ptk-");
  EXPECT_TRUE(valid("sb-a", 80, t.secret));
  EXPECT_FALSE(valid("sb-a", 81, t.secret));
  EXPECT_FALSE(valid("sb-b", 80, t.secret));
  std::string flipped = t.secret;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(valid("sb-a", 80, flipped));
  for (std::string hostile : {std::string(), std::string("apt_"), t.secret + "x", std::string("alk_") + t.secret.substr(4),
                              std::string(100000, 'a'), t.secret.substr(0, 46) + "\n", t.secret.substr(0, 46) + "'"}) {
    EXPECT_FALSE(valid("sb-a", 80, hostile)) << hostile.substr(0, 60);
  }
}

TEST_F(PortTokensTest, ExpiresAndIsRevoked) {
  auto t = make("sb-a", 80, 5000);
  EXPECT_TRUE(valid("sb-a", 80, t.secret, 4999));
  EXPECT_FALSE(valid("sb-a", 80, t.secret, 5000));
  auto u = make("sb-a", 80);
  EXPECT_EQ(store_->list("sb-a", 80).value().size(), 2u);
  EXPECT_FALSE(store_->revoke("sb-a", 81, u.token.token_id).value());  // not that port's
  EXPECT_TRUE(store_->revoke("sb-a", 80, u.token.token_id).value());
  EXPECT_FALSE(store_->revoke("sb-a", 80, u.token.token_id).value());
  EXPECT_FALSE(valid("sb-a", 80, u.secret));
}

TEST_F(PortTokensTest, GoWithPortAndSandbox) {
  auto a = make("sb-a", 80);
  auto b = make("sb-a", 81);
  auto c = make("sb-c", 80);
  ASSERT_TRUE(store_->remove_port("sb-a", 80).ok());
  EXPECT_FALSE(valid("sb-a", 80, a.secret));
  EXPECT_TRUE(valid("sb-a", 81, b.secret));
  ASSERT_TRUE(store_->remove_sandbox("sb-a").ok());
  EXPECT_FALSE(valid("sb-a", 81, b.secret));
  EXPECT_TRUE(valid("sb-c", 80, c.secret));
  ASSERT_TRUE(store_->remove_ended().ok());  // no sandbox row is live here
  EXPECT_FALSE(valid("sb-c", 80, c.secret));
}

TEST_F(PortTokensTest, BoundedPerPortAndNeverStoredInClear) {
  std::vector<std::string> secrets;
  for (size_t i = 0; i < kMaxTokensPerPort; ++i) secrets.push_back(make("sb-a", 80).secret);
  auto over = store_->create("sb-a", 80, "", 1000, std::nullopt);
  ASSERT_TRUE(over.ok());
  EXPECT_FALSE(over.value());
  store_.reset();
  db_.reset();
  std::ifstream f(dir_ + "/airlock.db", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::ifstream wal(dir_ + "/airlock.db-wal", std::ios::binary);
  bytes.append(std::istreambuf_iterator<char>(wal), std::istreambuf_iterator<char>());
  for (const auto& s : secrets) EXPECT_EQ(bytes.find(s.substr(4)), std::string::npos);
}

}  // namespace
}  // namespace airlock::daemon
