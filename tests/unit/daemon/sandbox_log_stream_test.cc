// LogStream driven the way the HTTP server drives a BodySource: pull, wait for exactly one delivery,
// pull again. Checks NDJSON and SSE framing, that a following stream holds no thread while parked and
// is delivered by the append that wakes it, keepalives, cancel, bounded batches, and the end after a
// final lifecycle entry.
#include "daemon/sandbox_log_stream.h"

#include <stdlib.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <sstream>
#include <thread>

namespace airlock::daemon {
namespace {

// Records deliveries; fails the test on a second delivery for one pull.
class Puller {
 public:
  explicit Puller(std::shared_ptr<LogStream> stream) : stream_(std::move(stream)) {}

  void pull() {
    {
      std::lock_guard guard(mu_);
      ASSERT_FALSE(pending_) << "pull while a pull is pending";
      pending_ = true;
    }
    auto delivered = std::make_shared<std::atomic<bool>>(false);
    // Not under mu_: a source may deliver from inside pull().
    stream_->pull([this, delivered](std::string data, bool end) {
      EXPECT_FALSE(delivered->exchange(true)) << "two deliveries for one pull";
      std::lock_guard guard(mu_);
      chunks_.push_back(std::move(data));
      ended_ = ended_ || end;
      pending_ = false;
      cv_.notify_all();
    });
  }
  // Waits for the pending pull's delivery; false at the timeout.
  bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return !pending_; });
  }
  bool pending() {
    std::lock_guard guard(mu_);
    return pending_;
  }
  bool ended() {
    std::lock_guard guard(mu_);
    return ended_;
  }
  std::string last() {
    std::lock_guard guard(mu_);
    return chunks_.empty() ? "" : chunks_.back();
  }
  std::vector<std::string> chunks() {
    std::lock_guard guard(mu_);
    return chunks_;
  }
  // Pulls until the end (or `max` deliveries); returns everything delivered.
  std::string drain(int max = 1000) {
    std::string all;
    for (int i = 0; i < max && !ended(); ++i) {
      pull();
      EXPECT_TRUE(wait()) << "no delivery";
      all += last();
    }
    return all;
  }

 private:
  std::shared_ptr<LogStream> stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false, ended_ = false;
  std::vector<std::string> chunks_;
};

std::vector<nlohmann::json> ndjson(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << line;
    out.push_back(j);
  }
  return out;
}

class LogStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-log-stream-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    logs_ = std::make_unique<SandboxLogs>(dir_ + "/logs", log_);
  }
  void TearDown() override {
    logs_.reset();
    std::filesystem::remove_all(dir_);
  }
  void lifecycle(const std::string& event) {
    logs_->append_lifecycle(id_, {event, "sandbox " + event, std::nullopt, SandboxState::kRunning, std::nullopt, std::nullopt});
  }
  std::shared_ptr<LogStream> stream(LogStreamOptions options = {}) { return LogStream::create(*logs_, id_, options); }

  std::string dir_;
  Logger log_{LogLevel::kError};
  std::string id_ = "sb-0123456789abcdef";
  std::unique_ptr<SandboxLogs> logs_;
};

TEST_F(LogStreamTest, WithoutFollowItSendsWhatIsThereAndEnds) {
  lifecycle("created");
  logs_->append_output(id_, 4, OutputStream::kStdout, "hi\n");
  LogStreamOptions options;
  options.follow = false;
  Puller p(stream(options));
  auto events = ndjson(p.drain());
  EXPECT_TRUE(p.ended());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["type"], "lifecycle");
  EXPECT_EQ(events[0]["cursor"], "1");
  EXPECT_EQ(events[1], (nlohmann::json{{"type", "stdout"}, {"cursor", "2"}, {"timestamp", events[1]["timestamp"]},
                                       {"pid", 4}, {"data", "hi\n"}, {"encoding", "utf-8"}}));
}

TEST_F(LogStreamTest, AnEmptyLogWithoutFollowEndsAtOnce) {
  LogStreamOptions options;
  options.follow = false;
  Puller p(stream(options));
  EXPECT_EQ(p.drain(), "");
  EXPECT_TRUE(p.ended());
}

TEST_F(LogStreamTest, AFollowerParksWithoutAThreadAndTheAppendDeliversIt) {
  lifecycle("created");
  Puller p(stream());
  p.pull();
  ASSERT_TRUE(p.wait());
  EXPECT_EQ(ndjson(p.last()).size(), 1u);
  EXPECT_FALSE(p.ended());

  p.pull();  // caught up: parked
  EXPECT_FALSE(p.wait(std::chrono::milliseconds(100)));
  EXPECT_TRUE(p.pending());

  std::thread appender([&] { logs_->append_output(id_, 9, OutputStream::kStderr, "late\n"); });
  appender.join();
  ASSERT_TRUE(p.wait());
  auto events = ndjson(p.last());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "stderr");
  EXPECT_EQ(events[0]["data"], "late\n");
  EXPECT_FALSE(p.ended());

  p.pull();
  EXPECT_FALSE(p.wait(std::chrono::milliseconds(50)));
  lifecycle("stopped");  // the final entry ends the stream
  ASSERT_TRUE(p.wait());
  EXPECT_TRUE(p.ended());
  EXPECT_EQ(ndjson(p.last()).at(0)["event"], "stopped");
}

TEST_F(LogStreamTest, TheFinalEntryEndsTheStreamEvenWhenFilteredOut) {
  logs_->append_output(id_, 1, OutputStream::kStdout, "a");
  lifecycle("terminated");
  LogStreamOptions options;
  options.filter.lifecycle = false;
  Puller p(stream(options));
  auto events = ndjson(p.drain(5));
  EXPECT_TRUE(p.ended());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "stdout");
}

TEST_F(LogStreamTest, KeepaliveAfterSilence) {
  LogStreamOptions options;
  options.keepalive = std::chrono::milliseconds(50);
  Puller p(stream(options));
  p.pull();
  ASSERT_TRUE(p.wait());
  EXPECT_EQ(p.last(), "{\"type\":\"keepalive\"}\n");
  EXPECT_FALSE(p.ended());
  p.pull();  // and again: each silence gets one
  ASSERT_TRUE(p.wait());
  EXPECT_EQ(p.last(), "{\"type\":\"keepalive\"}\n");
}

TEST_F(LogStreamTest, CancelledStreamsAreNeverDelivered) {
  auto s = stream();
  Puller p(s);
  p.pull();
  EXPECT_FALSE(p.wait(std::chrono::milliseconds(50)));
  s->cancel();
  lifecycle("created");
  EXPECT_FALSE(p.wait(std::chrono::milliseconds(100)));
}

TEST_F(LogStreamTest, SseFramesCarryTheCursorAsId) {
  lifecycle("created");
  logs_->append_output(id_, 2, OutputStream::kStdout, "x");
  LogStreamOptions options;
  options.sse = true;
  options.follow = false;
  options.base64 = true;
  Puller p(stream(options));
  std::string text = p.drain();
  EXPECT_NE(text.find("id: 1\nevent: lifecycle\ndata: {"), std::string::npos) << text;
  EXPECT_NE(text.find("id: 2\nevent: stdout\ndata: {"), std::string::npos) << text;
  EXPECT_NE(text.find("\"data\":\"eA==\",\"encoding\":\"base64\""), std::string::npos) << text;
  EXPECT_TRUE(text.ends_with("\n\n"));
}

TEST_F(LogStreamTest, ResumesAfterACursorAndBatchesAreBounded) {
  for (int i = 0; i < 200; ++i) logs_->append_output(id_, 1, OutputStream::kStdout, std::string(4096, 'a' + i % 26));
  LogStreamOptions options;
  options.after = 50;
  options.follow = false;
  options.batch_bytes = 16 << 10;
  Puller p(stream(options));
  std::string all = p.drain();
  for (const auto& chunk : p.chunks()) EXPECT_LE(chunk.size(), 2 * (16u << 10)) << "a batch beyond its bound";
  auto events = ndjson(all);
  ASSERT_EQ(events.size(), 150u);
  EXPECT_EQ(events.front()["cursor"], "51");
  EXPECT_EQ(events.back()["cursor"], "200");
}

TEST_F(LogStreamTest, InvalidUtf8IsReplacedInUtf8Encoding) {
  logs_->append_output(id_, 1, OutputStream::kStdout, "ok\xff\xfe");
  LogStreamOptions options;
  options.follow = false;
  Puller p(stream(options));
  auto events = ndjson(p.drain());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["data"], "ok\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_F(LogStreamTest, ARemovedLogEndsAFollowerWithAnErrorEvent) {
  Puller p(stream());
  p.pull();
  EXPECT_FALSE(p.wait(std::chrono::milliseconds(50)));
  logs_->remove(id_);
  ASSERT_TRUE(p.wait());
  EXPECT_TRUE(p.ended());
  auto events = ndjson(p.last());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "error");
  EXPECT_EQ(events[0]["error"]["code"], "sandbox_not_found");
}

}  // namespace
}  // namespace airlock::daemon
