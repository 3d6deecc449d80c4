// QuotaStore against a real SQLite file: defaults for tenants without a row, set (null = unlimited),
// usage counting only the tenant's starting and running sandboxes, the 429 details, and admit() under
// concurrency: many threads racing for the last slots never get more than the limit.
#include "daemon/quota_store.h"

#include <stdlib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

namespace airlock::daemon {
namespace {

class QuotaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-quota-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto db = Database::open(dir_ + "/airlock.db");
    ASSERT_TRUE(db.ok()) << db.error().describe();
    db_ = std::move(db).value();
    sandboxes_ = std::make_unique<SandboxStore>(*db_);
    quotas_ = std::make_unique<QuotaStore>(*db_, *sandboxes_, QuotaLimits{10, 4096});
  }
  void TearDown() override {
    quotas_.reset();
    sandboxes_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  static SandboxRecord record(const std::string& tenant, int64_t memory_mb) {
    SandboxRecord r;
    r.sandbox_id = new_sandbox_id();
    r.tenant = tenant;
    r.settings.memory_mb = memory_mb;
    r.created_at = r.last_activity_at = 1000;
    return r;
  }
  void add(const std::string& tenant, SandboxState state, int64_t memory_mb) {
    auto r = record(tenant, memory_mb);
    r.state = state;
    ASSERT_TRUE(sandboxes_->insert(r).ok());
  }
  std::string dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<SandboxStore> sandboxes_;
  std::unique_ptr<QuotaStore> quotas_;
};

TEST_F(QuotaStoreTest, TenantsWithoutARowGetTheDefaults) {
  auto limits = quotas_->limits("team-a");
  ASSERT_TRUE(limits.ok());
  EXPECT_EQ(limits.value(), (QuotaLimits{10, 4096}));
}

TEST_F(QuotaStoreTest, SetReplacesBothLimitsAndNullIsUnlimited) {
  ASSERT_TRUE(quotas_->set("team-a", {3, std::nullopt}).ok());
  EXPECT_EQ(quotas_->limits("team-a").value(), (QuotaLimits{3, std::nullopt}));
  ASSERT_TRUE(quotas_->set("team-a", {std::nullopt, 512}).ok());
  EXPECT_EQ(quotas_->limits("team-a").value(), (QuotaLimits{std::nullopt, 512}));
  EXPECT_EQ(quotas_->limits("team-b").value(), (QuotaLimits{10, 4096}));  // others keep the defaults
}

TEST_F(QuotaStoreTest, QuotasSurviveReopening) {
  ASSERT_TRUE(quotas_->set("team-a", {0, 1}).ok());
  quotas_.reset();
  sandboxes_.reset();
  db_.reset();
  db_ = std::move(Database::open(dir_ + "/airlock.db")).value();
  sandboxes_ = std::make_unique<SandboxStore>(*db_);
  quotas_ = std::make_unique<QuotaStore>(*db_, *sandboxes_, QuotaLimits{});
  EXPECT_EQ(quotas_->limits("team-a").value(), (QuotaLimits{0, 1}));
}

TEST_F(QuotaStoreTest, UsageCountsOnlyTheTenantsLiveSandboxes) {
  add("team-a", SandboxState::kRunning, 512);
  add("team-a", SandboxState::kStarting, 256);
  add("team-a", SandboxState::kStopped, 1024);
  add("team-a", SandboxState::kTerminated, 1024);
  add("team-b", SandboxState::kRunning, 2048);
  auto a = quotas_->usage("team-a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->sandboxes, 2);
  EXPECT_EQ(a->memory_mb, 768);
  EXPECT_EQ(quotas_->usage("team-b")->sandboxes, 1);
  EXPECT_EQ(quotas_->usage("team-c")->sandboxes, 0);

  auto states = quotas_->sandboxes_by_state();
  ASSERT_TRUE(states.ok());
  std::vector<std::pair<std::string, int64_t>> want = {{"starting", 1}, {"running", 2}, {"stopped", 1}, {"terminated", 1}};
  EXPECT_EQ(states.value(), want);
}

TEST_F(QuotaStoreTest, ViolationNamesTheQuotaWithLimitUsedAndRequested) {
  EXPECT_FALSE(quota_violation("t", {2, 1024}, {1, 512}, 512));
  EXPECT_FALSE(quota_violation("t", {std::nullopt, std::nullopt}, {1000, 1 << 30}, 1 << 20));
  auto count = quota_violation("t", {2, 1024}, {2, 0}, 1);
  ASSERT_TRUE(count);
  EXPECT_EQ(count->code, ErrorCode::kQuotaExceeded);
  EXPECT_EQ(http_status(count->code), 429);
  EXPECT_EQ(count->details, (nlohmann::json{{"quota", "max_sandboxes"}, {"limit", 2}, {"used", 2}, {"requested", 1}}));
  auto memory = quota_violation("t", {5, 1024}, {1, 1000}, 25);
  ASSERT_TRUE(memory);
  EXPECT_EQ(memory->details, (nlohmann::json{{"quota", "max_memory_mb"}, {"limit", 1024}, {"used", 1000}, {"requested", 25}}));
  auto zero = quota_violation("t", {0, std::nullopt}, {0, 0}, 4);  // 0 refuses everything
  ASSERT_TRUE(zero);
}

TEST_F(QuotaStoreTest, AdmitInsertsWithinTheQuotaAndRefusesBeyondIt) {
  ASSERT_TRUE(quotas_->set("team-a", {2, std::nullopt}).ok());
  auto r1 = record("team-a", 512), r2 = record("team-a", 512), r3 = record("team-a", 512);
  EXPECT_FALSE(quotas_->admit(r1));
  EXPECT_GT(r1.seq, 0);
  EXPECT_FALSE(quotas_->admit(r2));
  auto refused = quotas_->admit(r3);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, ErrorCode::kQuotaExceeded);
  EXPECT_FALSE(sandboxes_->get("team-a", r3.sandbox_id).value().has_value());  // not inserted
  // A stopped sandbox frees its slot.
  r1.state = SandboxState::kStopped;
  ASSERT_TRUE(sandboxes_->update(r1).ok());
  EXPECT_FALSE(quotas_->admit(r3));
}

// Two (here: sixteen) creates racing for the last slots: the check and the insert are one step.
TEST_F(QuotaStoreTest, ConcurrentAdmitsNeverPassTheLimit) {
  constexpr int kLimit = 5, kThreads = 16;
  ASSERT_TRUE(quotas_->set("team-a", {kLimit, std::nullopt}).ok());
  add("team-a", SandboxState::kRunning, 1);  // one slot already taken
  std::atomic<int> admitted{0}, refused{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (!go) std::this_thread::yield();
      auto r = record("team-a", 1);
      auto error = quotas_->admit(r);
      if (!error) {
        admitted++;
      } else {
        EXPECT_EQ(error->code, ErrorCode::kQuotaExceeded);
        refused++;
      }
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), kLimit - 1);
  EXPECT_EQ(refused.load(), kThreads - (kLimit - 1));
  EXPECT_EQ(quotas_->usage("team-a")->sandboxes, kLimit);
}

TEST_F(QuotaStoreTest, TwoThreadsRacingForTheLastMemory) {
  ASSERT_TRUE(quotas_->set("team-a", {std::nullopt, 1000}).ok());
  for (int round = 0; round < 50; ++round) {
    add("team-a", SandboxState::kRunning, 600);  // 400 MiB left: room for one of the two
    std::atomic<int> admitted{0};
    std::vector<SandboxRecord> made(2);
    std::thread a([&] { made[0] = record("team-a", 400); if (!quotas_->admit(made[0])) admitted++; });
    std::thread b([&] { made[1] = record("team-a", 400); if (!quotas_->admit(made[1])) admitted++; });
    a.join();
    b.join();
    ASSERT_EQ(admitted.load(), 1) << "round " << round;
    // Free everything for the next round.
    auto live = sandboxes_->list_live().value();
    for (auto& r : live) {
      r.state = SandboxState::kStopped;
      ASSERT_TRUE(sandboxes_->update(r).ok());
    }
  }
}

}  // namespace
}  // namespace airlock::daemon
