// KeyStore against a real SQLite file in a temp dir: create, verify, list (pages, filters), revoke,
// persistence across reopening, and the first admin key.
#include "daemon/key_store.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "daemon/admin_key.h"
#include "daemon/database.h"
#include "daemon/key_secret.h"

namespace airlock::daemon {
namespace {

namespace fs = std::filesystem;

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-key-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    reopen();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void reopen() {
    store_.reset();
    db_.reset();
    auto db = Database::open(dir_ + "/airlock.db");
    ASSERT_TRUE(db.ok()) << db.error().describe();
    db_ = std::move(db).value();
    store_ = std::make_unique<KeyStore>(*db_, [this] { return now_; });
  }
  CreatedApiKey create(const std::string& tenant, const std::string& name, bool admin = false) {
    auto created = store_->create({tenant, name, admin});
    EXPECT_TRUE(created.ok()) << created.error().describe();
    now_ += 1000;
    return created.value();
  }

  std::string dir_;
  UnixMillis now_ = 1'700'000'000'000;
  std::unique_ptr<Database> db_;
  std::unique_ptr<KeyStore> store_;
};

TEST_F(KeyStoreTest, DatabaseIsPrivateAndInWalMode) {
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/airlock.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto guard = db_->lock();
  auto stmt = db_->prepare("PRAGMA journal_mode");
  ASSERT_TRUE(stmt.ok());
  ASSERT_TRUE(stmt->step().value());
  EXPECT_EQ(stmt->text_at(0), "wal");
  EXPECT_EQ(db_->schema_version(), 6);  // 1: api_keys, 2: sandboxes, 3: quotas, 4: processes, 5: idempotency_keys, 6: port_tokens
}

TEST_F(KeyStoreTest, CreateThenCheck) {
  auto key = create("team-a", "ci");
  EXPECT_TRUE(looks_like_secret(key.secret));
  EXPECT_EQ(key.record.prefix, key.secret.substr(0, 10));
  EXPECT_EQ(key.record.tenant, "team-a");
  EXPECT_FALSE(key.record.admin);
  EXPECT_EQ(key.record.created_at, 1'700'000'000'000);

  auto check = store_->check(key.secret);
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(check->outcome, KeyCheck::Outcome::kValid);
  EXPECT_EQ(check->record.key_id, key.record.key_id);
  EXPECT_EQ(check->record.last_used_at, now_);
}

TEST_F(KeyStoreTest, SecretIsNotStored) {
  auto key = create("team-a", "ci");
  db_.reset();
  store_.reset();
  for (const char* file : {"/airlock.db", "/airlock.db-wal"}) {
    std::ifstream in(dir_ + file, std::ios::binary);
    std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(contents.find(key.secret), std::string::npos) << file;
    EXPECT_EQ(contents.find(key.secret.substr(10)), std::string::npos) << file;
  }
  reopen();
}

TEST_F(KeyStoreTest, UnknownAndNearMissSecretsAreRejected) {
  auto key = create("team-a", "ci");
  std::string near = key.secret;
  near.back() = near.back() == 'A' ? 'B' : 'A';  // same prefix, different secret
  EXPECT_EQ(store_->check(near)->outcome, KeyCheck::Outcome::kUnknown);
  EXPECT_EQ(store_->check("alk_" + std::string(43, 'x'))->outcome, KeyCheck::Outcome::kUnknown);
  EXPECT_EQ(store_->check("garbage")->outcome, KeyCheck::Outcome::kUnknown);
  EXPECT_EQ(store_->check("")->outcome, KeyCheck::Outcome::kUnknown);
}

TEST_F(KeyStoreTest, LastUsedIsWrittenAtMostOncePerResolution) {
  auto key = create("t", "k");
  UnixMillis first = now_;
  ASSERT_EQ(store_->check(key.secret)->record.last_used_at, first);
  now_ += KeyStore::kLastUsedResolution - 1;
  EXPECT_EQ(store_->check(key.secret)->record.last_used_at, first);
  now_ += 1;
  EXPECT_EQ(store_->check(key.secret)->record.last_used_at, now_);
}

TEST_F(KeyStoreTest, RevokeIsIdempotentAndTakesEffect) {
  auto key = create("team-a", "ci");
  UnixMillis revoked_at = now_;
  auto revoked = store_->revoke(key.record.key_id);
  ASSERT_TRUE(revoked.ok());
  ASSERT_TRUE(revoked->has_value());
  EXPECT_EQ((*revoked)->revoked_at, revoked_at);
  now_ += 5000;
  auto again = store_->revoke(key.record.key_id);
  EXPECT_EQ((*again)->revoked_at, revoked_at);  // the first revocation time stays
  EXPECT_EQ(store_->check(key.secret)->outcome, KeyCheck::Outcome::kRevoked);
  EXPECT_FALSE(store_->revoke("key-doesnotexist00")->has_value());
}

TEST_F(KeyStoreTest, ListsNewestFirstWithPagesAndFilters) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(create(i % 2 ? "odd" : "even", "k" + std::to_string(i)).record.key_id);
  ASSERT_TRUE(store_->revoke(ids[4]).ok());

  KeyListQuery q;
  q.limit = 2;
  auto page = store_->list(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->keys.size(), 2u);
  EXPECT_EQ(page->keys[0].key_id, ids[3]);  // ids[4] is revoked
  EXPECT_EQ(page->keys[1].key_id, ids[2]);
  ASSERT_TRUE(page->next_before);
  q.before_seq = page->next_before;
  page = store_->list(q);
  ASSERT_EQ(page->keys.size(), 2u);
  EXPECT_EQ(page->keys[0].key_id, ids[1]);
  EXPECT_EQ(page->keys[1].key_id, ids[0]);
  EXPECT_FALSE(page->next_before);

  KeyListQuery all;
  all.include_revoked = true;
  EXPECT_EQ(store_->list(all)->keys.size(), 5u);
  KeyListQuery even;
  even.tenant = "even";
  even.include_revoked = true;
  auto evens = store_->list(even);
  ASSERT_EQ(evens->keys.size(), 3u);
  for (const auto& k : evens->keys) EXPECT_EQ(k.tenant, "even");
}

TEST_F(KeyStoreTest, KeysSurviveReopening) {
  auto key = create("team-a", "ci", true);
  reopen();
  auto check = store_->check(key.secret);
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(check->outcome, KeyCheck::Outcome::kValid);
  EXPECT_TRUE(check->record.admin);
  EXPECT_EQ(store_->count().value(), 1);
}

TEST_F(KeyStoreTest, RefusesInvalidInput) {
  EXPECT_FALSE(store_->create({"Team", "n", false}).ok());
  EXPECT_FALSE(store_->create({"-team", "n", false}).ok());
  EXPECT_FALSE(store_->create({std::string(64, 'a'), "n", false}).ok());
  EXPECT_FALSE(store_->create({"t", "", false}).ok());
  EXPECT_FALSE(store_->create({"t", "tab\there", false}).ok());
  EXPECT_FALSE(store_->create({"t", "bad \xff utf8", false}).ok());
  EXPECT_FALSE(store_->create({"t", std::string(65, 'n'), false}).ok());
  EXPECT_TRUE(store_->create({"t", std::string(64, 'n'), false}).ok());
  EXPECT_TRUE(store_->create({"t", "caf\xc3\xa9", false}).ok());
}

TEST(NamesTest, TenantNames) {
  EXPECT_TRUE(valid_tenant_name("a"));
  EXPECT_TRUE(valid_tenant_name("team-a_1"));
  EXPECT_TRUE(valid_tenant_name("0"));
  EXPECT_TRUE(valid_tenant_name(std::string(63, 'a')));
  EXPECT_FALSE(valid_tenant_name(""));
  EXPECT_FALSE(valid_tenant_name("_a"));
  EXPECT_FALSE(valid_tenant_name("A"));
  EXPECT_FALSE(valid_tenant_name("a b"));
  EXPECT_FALSE(valid_tenant_name("a/b"));
  EXPECT_FALSE(valid_tenant_name(std::string(64, 'a')));
}

TEST_F(KeyStoreTest, BootstrapWritesAPrivateAdminKeyOnce) {
  std::string file = dir_ + "/admin-key";
  auto first = bootstrap_admin_key(*store_, file);
  ASSERT_TRUE(first.ok()) << first.error().describe();
  ASSERT_TRUE(first->has_value());
  struct stat st;
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream in(file);
  std::string secret;
  in >> secret;
  auto check = store_->check(secret);
  EXPECT_EQ(check->outcome, KeyCheck::Outcome::kValid);
  EXPECT_TRUE(check->record.admin);
  EXPECT_EQ(check->record.key_id, **first);

  auto second = bootstrap_admin_key(*store_, file);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->has_value());

  // With every admin key revoked, the next start makes a new one (recovery without the CLI).
  ASSERT_TRUE(store_->revoke(**first).ok());
  auto third = bootstrap_admin_key(*store_, file);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->has_value());
}

}  // namespace
}  // namespace airlock::daemon
