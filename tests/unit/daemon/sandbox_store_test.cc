// SandboxStore against a real SQLite file: insert/update/get scoped by tenant, list order, filters and
// pages, live records for recovery, the quota usage, and ids.
#include "daemon/sandbox_store.h"

#include <stdlib.h>

#include <gtest/gtest.h>

#include <filesystem>

namespace airlock::daemon {
namespace {

class SandboxStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-sandbox-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto db = Database::open(dir_ + "/airlock.db");
    ASSERT_TRUE(db.ok()) << db.error().describe();
    db_ = std::move(db).value();
    store_ = std::make_unique<SandboxStore>(*db_);
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  SandboxRecord add(const std::string& tenant, SandboxState state, StringPairs metadata = {}) {
    SandboxRecord r;
    r.sandbox_id = new_sandbox_id();
    r.tenant = tenant;
    r.state = state;
    r.settings.metadata = std::move(metadata);
    r.settings.env = {{"SECRET", "x"}};
    r.created_at = r.last_activity_at = 1000;
    r.expires_at = 5000;
    EXPECT_TRUE(store_->insert(r).ok());
    return r;
  }
  std::string dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<SandboxStore> store_;
};

TEST_F(SandboxStoreTest, RoundTripAndTenantScope) {
  auto r = add("a", SandboxState::kRunning, {{"k", "v"}});
  r.id_index = 7;
  r.init_pid = 1234;
  r.engine_name = "airlock-7";
  r.stop_message = "m";
  ASSERT_TRUE(store_->update(r).ok());
  auto got = store_->get("a", r.sandbox_id);
  ASSERT_TRUE(got.ok() && got.value().has_value());
  EXPECT_EQ((*got.value()).id_index, 7);
  EXPECT_EQ((*got.value()).init_pid, 1234);
  EXPECT_EQ((*got.value()).engine_name, "airlock-7");
  EXPECT_EQ((*got.value()).stop_message, "m");
  EXPECT_FALSE((*got.value()).stop_reason.has_value());
  EXPECT_EQ((*got.value()).settings.env, (StringPairs{{"SECRET", "x"}}));
  EXPECT_EQ((*got.value()).settings.metadata, (StringPairs{{"k", "v"}}));
  auto other = store_->get("b", r.sandbox_id);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other.value().has_value());
}

TEST_F(SandboxStoreTest, ListFiltersAndPages) {
  auto a1 = add("a", SandboxState::kRunning, {{"x", "1"}});
  auto a2 = add("a", SandboxState::kTerminated, {{"x", "1"}});
  auto a3 = add("a", SandboxState::kStopped, {{"x", "2"}});
  add("b", SandboxState::kRunning);

  SandboxListQuery q;
  q.tenant = "a";
  auto page = store_->list(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->sandboxes.size(), 2u);  // not the terminated one
  EXPECT_EQ(page->sandboxes[0].sandbox_id, a3.sandbox_id);
  EXPECT_EQ(page->sandboxes[1].sandbox_id, a1.sandbox_id);

  q.metadata = {{"x", "1"}};
  q.states = {SandboxState::kRunning, SandboxState::kTerminated};
  q.limit = 1;
  page = store_->list(q);
  ASSERT_EQ(page->sandboxes.size(), 1u);
  EXPECT_EQ(page->sandboxes[0].sandbox_id, a2.sandbox_id);
  ASSERT_TRUE(page->next_before.has_value());
  q.before_seq = page->next_before;
  page = store_->list(q);
  ASSERT_EQ(page->sandboxes.size(), 1u);
  EXPECT_EQ(page->sandboxes[0].sandbox_id, a1.sandbox_id);
  EXPECT_FALSE(page->next_before.has_value());
}

TEST_F(SandboxStoreTest, LiveRecordsAndUsage) {
  add("a", SandboxState::kRunning);
  add("a", SandboxState::kStarting);
  add("a", SandboxState::kStopped);
  add("b", SandboxState::kRunning);
  auto live = store_->list_live();
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(live->size(), 3u);
  auto usage = store_->live_usage("a");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->first, 2);
  EXPECT_EQ(usage->second, 1024);  // 2 x the default 512 MiB
}

TEST(SandboxId, Shape) {
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(valid_sandbox_id(new_sandbox_id()));
  EXPECT_NE(new_sandbox_id(), new_sandbox_id());
  EXPECT_FALSE(valid_sandbox_id("sb-ABCDEFGHIJKLMNOP"));
  EXPECT_FALSE(valid_sandbox_id("sb-123"));
  EXPECT_FALSE(valid_sandbox_id("xx-0123456789abcdef"));
}

}  // namespace
}  // namespace airlock::daemon
