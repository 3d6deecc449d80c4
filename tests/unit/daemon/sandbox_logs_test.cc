// SandboxLogs on a temp dir: cursors, pages and filters; cursors that survive reopening (and a line cut
// short by a crash); rotation that keeps the cap and reports a gap; UTF-8 sequences cut between chunks;
// waiters woken by an append, a deadline or a removal.
#include "daemon/sandbox_logs.h"

#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

namespace airlock::daemon {
namespace {

namespace fs = std::filesystem;

class SandboxLogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-sandbox-logs-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    open();
  }
  void TearDown() override {
    logs_.reset();
    fs::remove_all(dir_);
  }
  void open(SandboxLogOptions options = {}) {
    logs_.reset();
    logs_ = std::make_unique<SandboxLogs>(dir_ + "/logs", log_, options, [this] { return now_++; });
  }
  void lifecycle(const std::string& event, std::optional<int64_t> pid = std::nullopt) {
    logs_->append_lifecycle(id_, {event, event + " happened", pid, SandboxState::kRunning, std::nullopt, std::nullopt});
  }
  LogRead read(std::optional<int64_t> after, LogFilter filter = {}, size_t limit = 1000) {
    LogReadLimits limits;
    limits.entries = limit;
    auto r = logs_->read(id_, after, filter, limits);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
    return r.ok() ? std::move(r).value() : LogRead{};
  }
  uint64_t bytes_on_disk() {
    uint64_t total = 0;
    for (const auto& e : fs::directory_iterator(logs_->dir_of(id_))) total += e.file_size();
    return total;
  }

  std::string dir_;
  Logger log_{LogLevel::kError};
  UnixMillis now_ = 1'700'000'000'000;
  std::string id_ = "sb-0123456789abcdef";
  std::unique_ptr<SandboxLogs> logs_;
};

TEST_F(SandboxLogsTest, EntriesGetIncreasingCursorsAndReadBack) {
  lifecycle("created");
  lifecycle("started");
  logs_->append_output(id_, 7, OutputStream::kStdout, "hello\n");
  logs_->append_output(id_, 7, OutputStream::kStderr, std::string("bin\0ary\xff", 8));
  auto r = read(std::nullopt);
  ASSERT_EQ(r.entries.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r.entries[i].cursor, static_cast<int64_t>(i + 1));
  EXPECT_EQ(r.entries[0].type, LogEntryType::kLifecycle);
  EXPECT_EQ(r.entries[0].event, "created");
  EXPECT_EQ(r.entries[0].state, "running");
  EXPECT_EQ(r.entries[2].type, LogEntryType::kStdout);
  EXPECT_EQ(r.entries[2].pid, 7);
  EXPECT_EQ(r.entries[2].data, "hello\n");
  EXPECT_EQ(r.entries[3].data, std::string("bin\0ary\xff", 8));  // exact bytes
  EXPECT_LT(r.entries[0].timestamp, r.entries[3].timestamp);
  EXPECT_EQ(r.next_cursor, 4);
  EXPECT_FALSE(r.has_more);
  EXPECT_EQ(logs_->last_cursor(id_).value(), 4);

  auto after = read(2);  // after cursor 2
  ASSERT_EQ(after.entries.size(), 2u);
  EXPECT_EQ(after.entries[0].cursor, 3);
  auto none = read(4);
  EXPECT_TRUE(none.entries.empty());
  EXPECT_EQ(none.next_cursor, 4);
}

TEST_F(SandboxLogsTest, AnEmptyLogHasCursorZeroAndACursorBeyondTheEndIsRefused) {
  auto r = read(std::nullopt);
  EXPECT_TRUE(r.entries.empty());
  EXPECT_EQ(r.next_cursor, 0);
  EXPECT_FALSE(fs::exists(logs_->dir_of(id_)));  // reading creates nothing
  lifecycle("created");
  auto beyond = logs_->read(id_, 2, {}, {});
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().errnum, ERANGE);
}

TEST_F(SandboxLogsTest, PagesFollowTheLimit) {
  for (int i = 0; i < 10; ++i) lifecycle("timeout_changed");
  auto first = read(std::nullopt, {}, 4);
  ASSERT_EQ(first.entries.size(), 4u);
  EXPECT_EQ(first.next_cursor, 4);
  EXPECT_TRUE(first.has_more);
  auto second = read(first.next_cursor, {}, 4);
  EXPECT_EQ(second.entries.front().cursor, 5);
  auto last = read(8, {}, 4);
  EXPECT_EQ(last.entries.size(), 2u);
  EXPECT_FALSE(last.has_more);
}

TEST_F(SandboxLogsTest, FiltersByTypeAndPid) {
  lifecycle("started");
  lifecycle("process_started", 1);
  logs_->append_output(id_, 1, OutputStream::kStdout, "one");
  lifecycle("process_started", 2);
  logs_->append_output(id_, 2, OutputStream::kStdout, "two");
  logs_->append_output(id_, 2, OutputStream::kStderr, "two-err");
  lifecycle("process_exited", 2);

  LogFilter only_stdout;
  only_stdout.lifecycle = only_stdout.stderr_output = false;
  auto out = read(std::nullopt, only_stdout);
  ASSERT_EQ(out.entries.size(), 2u);
  EXPECT_EQ(out.entries[0].data, "one");
  EXPECT_EQ(out.next_cursor, 7);  // examined to the end, so a next page starts after everything

  LogFilter pid2;
  pid2.pid = 2;
  auto p = read(std::nullopt, pid2);
  std::vector<int64_t> cursors;
  for (const auto& e : p.entries) cursors.push_back(e.cursor);
  // started (about the sandbox), process_started 2, its output, process_exited 2; nothing of pid 1.
  EXPECT_EQ(cursors, (std::vector<int64_t>{1, 4, 5, 6, 7}));

  LogFilter lifecycle_of_2;
  lifecycle_of_2.stdout_output = lifecycle_of_2.stderr_output = false;
  lifecycle_of_2.pid = 2;
  EXPECT_EQ(read(std::nullopt, lifecycle_of_2).entries.size(), 3u);
}

TEST_F(SandboxLogsTest, CursorsSurviveReopening) {
  lifecycle("created");
  logs_->append_output(id_, 3, OutputStream::kStdout, "before restart");
  open();  // a new daemon on the same data dir
  EXPECT_EQ(logs_->last_cursor(id_).value(), 2);
  lifecycle("reattached");
  auto r = read(std::nullopt);
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries[1].data, "before restart");
  EXPECT_EQ(r.entries[2].cursor, 3);
  EXPECT_EQ(r.entries[2].event, "reattached");
}

TEST_F(SandboxLogsTest, ALineCutShortByACrashIsTrimmedOnOpen) {
  lifecycle("created");
  lifecycle("started");
  logs_.reset();
  std::string segment;
  for (const auto& e : fs::directory_iterator(dir_ + "/logs/" + id_)) segment = e.path();
  {
    std::ofstream f(segment, std::ios::app);
    f << "{\"cursor\":3,\"ts\":1,\"type\":\"lifec";  // the daemon died mid-write
  }
  open();
  EXPECT_EQ(logs_->last_cursor(id_).value(), 2);
  lifecycle("reattached");
  auto r = read(std::nullopt);
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries[2].cursor, 3);
  EXPECT_EQ(r.entries[2].event, "reattached");
}

TEST_F(SandboxLogsTest, RotationKeepsTheCapAndReportsAGap) {
  SandboxLogOptions options;
  options.max_bytes = 64 << 10;
  open(options);
  std::string chunk(700, 'x');
  for (int i = 0; i < 1000; ++i) {
    logs_->append_output(id_, 1, OutputStream::kStdout, chunk);
    ASSERT_LE(bytes_on_disk(), options.max_bytes) << "after entry " << i + 1;
  }
  EXPECT_GT(bytes_on_disk(), options.max_bytes / 2);  // it keeps most of what it may
  EXPECT_EQ(logs_->last_cursor(id_).value(), 1000);

  auto from_oldest = read(std::nullopt, {}, 1000);
  ASSERT_FALSE(from_oldest.entries.empty());
  int64_t first_kept = from_oldest.entries.front().cursor;
  EXPECT_GT(first_kept, 1);
  EXPECT_EQ(from_oldest.entries.front().type, LogEntryType::kStdout);  // no gap without a cursor
  EXPECT_EQ(from_oldest.entries.back().cursor, 1000);
  for (size_t i = 1; i < from_oldest.entries.size(); ++i) {
    EXPECT_EQ(from_oldest.entries[i].cursor, from_oldest.entries[i - 1].cursor + 1);
  }

  auto stale = read(3, {}, 5);  // a reader that last saw cursor 3
  ASSERT_EQ(stale.entries.size(), 5u);
  EXPECT_EQ(stale.entries[0].type, LogEntryType::kGap);
  EXPECT_EQ(stale.entries[0].cursor, first_kept - 1);
  EXPECT_EQ(stale.entries[1].cursor, first_kept);
  auto resumed = read(first_kept - 1, {}, 1);  // the gap's cursor resumes without another gap
  EXPECT_EQ(resumed.entries[0].cursor, first_kept);

  open(options);  // and after a restart the cap and the cursors still hold
  logs_->append_output(id_, 1, OutputStream::kStdout, chunk);
  EXPECT_LE(bytes_on_disk(), options.max_bytes);
  EXPECT_EQ(logs_->last_cursor(id_).value(), 1001);
}

TEST_F(SandboxLogsTest, LongOutputIsSplitBetweenUtf8Sequences) {
  SandboxLogOptions options;
  options.max_chunk = 1000;
  open(options);
  std::string text;
  while (text.size() < 5000) text += "é€";  // 2- and 3-byte sequences
  logs_->append_output(id_, 1, OutputStream::kStdout, text);
  auto r = read(std::nullopt);
  ASSERT_GE(r.entries.size(), 5u);
  std::string joined;
  for (const auto& e : r.entries) {
    EXPECT_LE(e.data.size(), 1000u);
    EXPECT_NE(static_cast<unsigned char>(e.data[0]) & 0xC0, 0x80) << "a chunk starts mid-sequence";
    joined += e.data;
  }
  EXPECT_EQ(joined, text);
}

TEST_F(SandboxLogsTest, ASequenceCutBetweenChunksIsHeldBack) {
  logs_->append_output(id_, 1, OutputStream::kStdout, "caf\xC3");
  logs_->append_output(id_, 1, OutputStream::kStdout, "\xA9!");
  logs_->append_output(id_, 1, OutputStream::kStderr, "\xE2\x82");  // cut, then the process exits
  logs_->append_lifecycle(id_, {"process_exited", "exited", 1, std::nullopt, std::nullopt, 0});
  auto r = read(std::nullopt);
  ASSERT_EQ(r.entries.size(), 4u);
  EXPECT_EQ(r.entries[0].data, "caf");
  EXPECT_EQ(r.entries[1].data, "\xC3\xA9!");
  EXPECT_EQ(r.entries[2].type, LogEntryType::kStderr);  // flushed before the exit entry
  EXPECT_EQ(r.entries[2].data, "\xE2\x82");
  EXPECT_EQ(r.entries[3].event, "process_exited");
}

TEST_F(SandboxLogsTest, AWaiterIsWokenByAnAppendFromAnotherThread) {
  lifecycle("created");
  std::promise<std::pair<LogWake, std::thread::id>> woke;
  auto id = logs_->wait(id_, 1, std::chrono::steady_clock::now() + std::chrono::minutes(1),
                        [&](LogWake why) { woke.set_value({why, std::this_thread::get_id()}); });
  ASSERT_TRUE(id);
  std::thread::id appender;
  std::thread t([&] {
    appender = std::this_thread::get_id();
    logs_->append_output(id_, 1, OutputStream::kStdout, "x");
  });
  t.join();
  auto future = woke.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto [why, thread] = future.get();
  EXPECT_EQ(why, LogWake::kAppended);
  EXPECT_EQ(thread, appender);
  EXPECT_FALSE(logs_->cancel_wait(*id));  // it has run
}

TEST_F(SandboxLogsTest, AWaiterBehindTheLogIsNotRegistered) {
  lifecycle("created");
  lifecycle("started");
  bool ran = false;
  EXPECT_FALSE(logs_->wait(id_, 1, std::chrono::steady_clock::now() + std::chrono::minutes(1), [&](LogWake) { ran = true; }));
  EXPECT_FALSE(ran);
}

TEST_F(SandboxLogsTest, AWaiterIsWokenAtItsDeadlineAndCancelledOnesNever) {
  std::promise<LogWake> woke;
  std::atomic<int> cancelled_ran{0};
  auto cancelled = logs_->wait(id_, 0, std::chrono::steady_clock::now() + std::chrono::milliseconds(20),
                               [&](LogWake) { cancelled_ran++; });
  ASSERT_TRUE(cancelled);
  EXPECT_TRUE(logs_->cancel_wait(*cancelled));
  auto id = logs_->wait(id_, 0, std::chrono::steady_clock::now() + std::chrono::milliseconds(50),
                        [&](LogWake why) { woke.set_value(why); });
  ASSERT_TRUE(id);
  auto future = woke.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(future.get(), LogWake::kDeadline);
  lifecycle("created");  // appends after that wake nobody
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(cancelled_ran.load(), 0);
}

TEST_F(SandboxLogsTest, RemoveDeletesTheFilesAndWakesWaiters) {
  lifecycle("created");
  LogWake got = LogWake::kAppended;
  ASSERT_TRUE(logs_->wait(id_, 1, std::chrono::steady_clock::now() + std::chrono::minutes(1), [&](LogWake why) { got = why; }));
  logs_->remove(id_);
  EXPECT_EQ(got, LogWake::kRemoved);
  EXPECT_FALSE(fs::exists(logs_->dir_of(id_)));
  EXPECT_EQ(logs_->last_cursor(id_).value(), 0);
}

TEST_F(SandboxLogsTest, InvalidSandboxIdsWriteNothing) {
  logs_->append_output("../../etc", 1, OutputStream::kStdout, "x");
  logs_->append_lifecycle("sb-../x", {"created", "m"});
  EXPECT_FALSE(fs::exists(dir_ + "/logs"));
}

TEST_F(SandboxLogsTest, ConcurrentAppendersGetDistinctCursors) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) logs_->append_output(id_, t + 1, OutputStream::kStdout, "line\n");
    });
  }
  for (auto& t : threads) t.join();
  auto r = read(std::nullopt, {}, 1000);
  ASSERT_EQ(r.entries.size(), 800u);
  for (size_t i = 0; i < r.entries.size(); ++i) EXPECT_EQ(r.entries[i].cursor, static_cast<int64_t>(i + 1));
}

}  // namespace
}  // namespace airlock::daemon
