// A process's output as an event stream: UTF-8 reassembly across chunk boundaries, U+FFFD for
// what is not UTF-8, and ProcessEventSource driven the way the HTTP server drives a BodySource
// (pull, wait for exactly one delivery, pull again) over a Process fed as the hub thread would.
#include "daemon/process_stream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <sstream>
#include <thread>

namespace airlock::daemon {
namespace {

namespace proto = protocol::agent;
using namespace std::chrono_literals;

// ---- take_complete_utf8 -------------------------------------------------------------------------

// Complete UTF-8 (no sequence cut at the end; validity otherwise is not its business).
bool ends_complete(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (i + n > s.size()) return false;
    i += n;
  }
  return true;
}

const std::string kMixed = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z\xF0\x9F\x8D\x95\xE6\x97\xA5";  // aé€😀z🍕日

TEST(ProcessStreamUtf8, EverySplitPointReassemblesExactly) {
  for (size_t i = 0; i <= kMixed.size(); ++i) {
    std::string held;
    std::string first = take_complete_utf8(held, std::string_view(kMixed).substr(0, i));
    EXPECT_TRUE(ends_complete(first)) << "split at " << i;
    EXPECT_LE(held.size(), 3u);
    std::string second = take_complete_utf8(held, std::string_view(kMixed).substr(i));
    EXPECT_EQ(first + second, kMixed) << "split at " << i;
    EXPECT_TRUE(held.empty()) << "split at " << i;
  }
}

TEST(ProcessStreamUtf8, EveryPairOfSplitPointsReassemblesExactly) {
  for (size_t i = 0; i <= kMixed.size(); ++i) {
    for (size_t j = i; j <= kMixed.size(); ++j) {
      std::string held, all;
      for (auto part : {std::string_view(kMixed).substr(0, i), std::string_view(kMixed).substr(i, j - i),
                        std::string_view(kMixed).substr(j)}) {
        std::string out = take_complete_utf8(held, part);
        EXPECT_TRUE(ends_complete(out)) << i << "/" << j;
        all += out;
      }
      EXPECT_EQ(all, kMixed) << i << "/" << j;
      EXPECT_TRUE(held.empty()) << i << "/" << j;
    }
  }
}

TEST(ProcessStreamUtf8, ByteByByteReassemblesExactly) {
  std::string held, all;
  for (char c : kMixed) all += take_complete_utf8(held, std::string_view(&c, 1));
  EXPECT_EQ(all, kMixed);
  EXPECT_TRUE(held.empty());
}

TEST(ProcessStreamUtf8, InvalidBytesAreNotHeldBack) {
  std::string held;
  EXPECT_EQ(take_complete_utf8(held, "a\xFF"), "a\xFF");
  EXPECT_TRUE(held.empty());
  EXPECT_EQ(take_complete_utf8(held, "\x80\x80\x80\x80"), "\x80\x80\x80\x80");
  EXPECT_TRUE(held.empty());
  // A lead byte followed by something that does not continue it: given out at once.
  EXPECT_EQ(take_complete_utf8(held, "\xE2"), "");
  EXPECT_EQ(held, "\xE2");
  EXPECT_EQ(take_complete_utf8(held, "A"), "\xE2" "A");
  EXPECT_TRUE(held.empty());
}

TEST(ProcessStreamUtf8, FormatEventReplacesInvalidBytesWithU_FFFD) {
  nlohmann::json event = {{"type", "stdout"}, {"data", std::string("a\xFF" "b\xE2\x82")}};
  std::string line = format_event(event, {});
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["data"], "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  // Valid text passes through unescaped.
  auto clean = nlohmann::json::parse(format_event({{"type", "stdout"}, {"data", kMixed}}, {}));
  EXPECT_EQ(clean["data"], kMixed);
}

TEST(ProcessStreamUtf8, SseFraming) {
  EventFormat sse{true, false};
  EXPECT_EQ(format_event({{"type", "stdout"}}, sse, "12"), "event: stdout\nid: 12\ndata: {\"type\":\"stdout\"}\n\n");
  EXPECT_EQ(format_event({{"type", "keepalive"}}, sse), "event: keepalive\ndata: {\"type\":\"keepalive\"}\n\n");
}

TEST(ProcessStreamSignals, NamesTheContractsSignals) {
  EXPECT_EQ(signal_number("SIGKILL"), SIGKILL);
  EXPECT_EQ(signal_number("SIGTERM"), SIGTERM);
  EXPECT_EQ(signal_number("KILL"), 0);
  EXPECT_EQ(signal_number("SIGSYS"), 0);
}

// ---- ProcessEventSource --------------------------------------------------------------------------

// Records deliveries; fails the test on a second delivery for one pull.
class Puller {
 public:
  explicit Puller(std::shared_ptr<ProcessEventSource> source) : source_(std::move(source)) {}

  void pull() {
    {
      std::lock_guard guard(mu_);
      ASSERT_FALSE(pending_) << "pull while a pull is pending";
      ASSERT_FALSE(ended_) << "pull after the end";
      pending_ = true;
    }
    auto delivered = std::make_shared<std::atomic<bool>>(false);
    source_->pull([this, delivered](std::string data, bool end) {
      EXPECT_FALSE(delivered->exchange(true)) << "two deliveries for one pull";
      std::lock_guard guard(mu_);
      chunks_.push_back(std::move(data));
      ended_ = ended_ || end;
      pending_ = false;
      cv_.notify_all();
    });
  }
  bool wait(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return !pending_; });
  }
  // Pulls and waits; the delivery.
  std::string next(std::chrono::milliseconds timeout = 5s) {
    pull();
    EXPECT_TRUE(wait(timeout)) << "no delivery";
    return last();
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
  // Pulls until the end; everything delivered.
  std::string drain(int max = 100) {
    std::string all;
    for (int i = 0; i < max && !ended(); ++i) all += next();
    return all;
  }

 private:
  std::shared_ptr<ProcessEventSource> source_;
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

constexpr uint32_t kId = 5;

class ProcessEventSourceTest : public ::testing::Test {
 protected:
  void SetUp() override { make(1 << 20); }
  void make(size_t ring_bytes, ProcessKind kind = ProcessKind::kBackground) {
    ProcessSpec spec;
    spec.kind = kind;
    spec.argv = {"/bin/echo", "hi"};
    spec.ring_bytes = ring_bytes;
    process_ = std::make_shared<Process>(kId, spec, unix_millis_now(), nullptr);
  }
  void started(uint32_t pid = 42) {
    proto::Message m{};
    m.type = proto::Type::kStarted;
    m.id = kId;
    m.started = {pid};
    ASSERT_EQ(process_->on_message(m), AgentSink::Verdict::kMore);
  }
  void output(std::string_view data, uint32_t stream = proto::kStdout) {
    proto::Message m{};
    m.type = proto::Type::kOutput;
    m.id = kId;
    m.output = {stream, {reinterpret_cast<const uint8_t*>(data.data()), static_cast<uint32_t>(data.size())}};
    ASSERT_EQ(process_->on_message(m), AgentSink::Verdict::kMore);
  }
  void exited(int32_t code, uint32_t signal = 0) {
    proto::Message m{};
    m.type = proto::Type::kExited;
    m.id = kId;
    m.exited = {code, signal, 0};
    ASSERT_EQ(process_->on_message(m), AgentSink::Verdict::kDone);
  }
  std::shared_ptr<ProcessEventSource> source(ProcessEventSource::Options options = {}) {
    return std::make_shared<ProcessEventSource>(process_, options, timers_);
  }

  Timers timers_;  // outlives every source
  std::shared_ptr<Process> process_;
};

TEST_F(ProcessEventSourceTest, StartOutputExit) {
  started(42);
  ProcessEventSource::Options options;
  options.emit_start = true;
  Puller p(source(options));
  auto start = ndjson(p.next());
  ASSERT_EQ(start.size(), 1u);
  EXPECT_EQ(start[0]["type"], "start");
  EXPECT_EQ(start[0]["pid"], 42);
  EXPECT_TRUE(start[0].contains("started_at"));

  output("hello ");
  output("oops", proto::kStderr);
  output("world");
  auto events = ndjson(p.next());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], (nlohmann::json{{"type", "stdout"}, {"offset", 0}, {"data", "hello "}, {"encoding", "utf-8"}}));
  EXPECT_EQ(events[1], (nlohmann::json{{"type", "stderr"}, {"offset", 6}, {"data", "oops"}, {"encoding", "utf-8"}}));
  EXPECT_EQ(events[2], (nlohmann::json{{"type", "stdout"}, {"offset", 10}, {"data", "world"}, {"encoding", "utf-8"}}));
  EXPECT_FALSE(p.ended());

  exited(3);
  auto end = ndjson(p.next());
  EXPECT_TRUE(p.ended());
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(end[0]["type"], "exit");
  EXPECT_EQ(end[0]["exit_code"], 3);
  EXPECT_EQ(end[0]["reason"], "exited");
  EXPECT_EQ(end[0]["pid"], 42);
}

TEST_F(ProcessEventSourceTest, AParkedPullIsDeliveredByTheOutputThatWakesIt) {
  started();
  Puller p(source());
  p.pull();
  EXPECT_FALSE(p.wait(50ms)) << "delivered with nothing to say";
  std::thread hub([&] { output("late"); });
  ASSERT_TRUE(p.wait());
  hub.join();
  auto events = ndjson(p.last());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["data"], "late");
  EXPECT_EQ(events[0]["offset"], 0);
}

TEST_F(ProcessEventSourceTest, AParkedPullIsDeliveredByTheExit) {
  started();
  Puller p(source());
  p.pull();
  EXPECT_FALSE(p.wait(50ms));
  exited(-1, SIGKILL);
  ASSERT_TRUE(p.wait());
  EXPECT_TRUE(p.ended());
  auto events = ndjson(p.last());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "exit");
  EXPECT_EQ(events[0]["exit_code"], 128 + SIGKILL);
  EXPECT_EQ(events[0]["signal"], "SIGKILL");
  EXPECT_EQ(events[0]["reason"], "signaled");
}

TEST_F(ProcessEventSourceTest, OutputEndsWithTheExitInOneBatch) {
  started();
  output("a");
  output("b", proto::kStderr);
  exited(0);
  Puller p(source());
  auto events = ndjson(p.drain());
  EXPECT_TRUE(p.ended());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["type"], "stdout");
  EXPECT_EQ(events[1]["type"], "stderr");
  EXPECT_EQ(events[2]["type"], "exit");
}

TEST_F(ProcessEventSourceTest, LargeOutputComesInOrderedBoundedBatches) {
  started();
  std::string expected;
  for (int i = 0; i < 10; ++i) {
    std::string chunk(50 * 1024, static_cast<char>('a' + i));
    output(chunk);
    expected += chunk;
  }
  exited(0);
  Puller p(source());
  std::string got;
  uint64_t next_offset = 0;
  int deliveries = 0;
  while (!p.ended() && deliveries < 100) {
    ++deliveries;
    for (auto& e : ndjson(p.next())) {
      if (e["type"] == "exit") continue;
      ASSERT_EQ(e["type"], "stdout");
      EXPECT_EQ(e["offset"], next_offset);
      std::string data = e["data"];
      got += data;
      next_offset += data.size();
    }
  }
  EXPECT_EQ(got, expected);
  EXPECT_GE(deliveries, 8);  // 500 KiB in batches of at most 64 KiB
}

TEST_F(ProcessEventSourceTest, MultiByteCharactersCutByChunksAreReassembled) {
  started();
  output("h\xC3");             // é cut after its lead byte
  output("\xA9" "llo \xF0\x9F");  // then an emoji cut in half
  output("\x98\x80!");
  exited(0);
  Puller p(source());
  std::string text;
  std::vector<uint64_t> offsets;
  for (auto& e : ndjson(p.drain())) {
    if (e["type"] != "stdout") continue;
    offsets.push_back(e["offset"]);
    text += e["data"].get<std::string>();
  }
  EXPECT_EQ(text, "h\xC3\xA9llo \xF0\x9F\x98\x80!");
  // Each event starts where its first byte was: "h" at 0, "éllo " at 1 (its lead byte), "😀!" at 7.
  EXPECT_EQ(offsets, (std::vector<uint64_t>{0, 1, 7}));
}

TEST_F(ProcessEventSourceTest, InvalidBytesBecomeReplacementCharacters) {
  started();
  output("ok \xFF\xFE end");
  output("tail \xE2\x82");  // cut short and never completed: flushed at the exit
  exited(0);
  Puller p(source());
  std::string text;
  for (auto& e : ndjson(p.drain()))
    if (e["type"] == "stdout") text += e["data"].get<std::string>();
  EXPECT_EQ(text, "ok \xEF\xBF\xBD\xEF\xBF\xBD end" "tail \xEF\xBF\xBD");
}

TEST_F(ProcessEventSourceTest, Base64CarriesBytesAsTheyAre) {
  started();
  output(std::string_view("\xFF\x00\x01", 3), proto::kStderr);
  exited(0);
  ProcessEventSource::Options options;
  options.format.base64 = true;
  Puller p(source(options));
  auto events = ndjson(p.drain());
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0], (nlohmann::json{{"type", "stderr"}, {"offset", 0}, {"data", "/wAB"}, {"encoding", "base64"}}));
}

TEST_F(ProcessEventSourceTest, SseEventsCarryTheResumeOffsetAsTheirId) {
  started();
  output("abc");
  ProcessEventSource::Options options;
  options.format.sse = true;
  Puller p(source(options));
  EXPECT_EQ(p.next(),
            "event: stdout\nid: 3\ndata: {\"data\":\"abc\",\"encoding\":\"utf-8\",\"offset\":0,\"type\":\"stdout\"}\n\n");
}

TEST_F(ProcessEventSourceTest, AnOffsetOutOfTheRingGivesAGapFirst) {
  make(8);
  started();
  output("01234567");
  output("89ABCDEF");  // the ring keeps 8..16
  ProcessEventSource::Options options;
  options.offset = 2;
  Puller p(source(options));
  auto events = ndjson(p.next());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], (nlohmann::json{{"type", "gap"}, {"offset", 2}, {"length", 6}}));
  EXPECT_EQ(events[1]["offset"], 8);
  EXPECT_EQ(events[1]["data"], "89ABCDEF");
}

TEST_F(ProcessEventSourceTest, AReaderOvertakenByTheRingGetsAGapAndOffsetsStayOrdered) {
  make(16);
  started();
  output("ab\xE2\x82");  // the source holds back the cut € at offset 2
  Puller p(source());
  auto first = ndjson(p.next());
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0]["data"], "ab");
  // The reader falls behind: more than the ring comes before its next pull.
  output("\xAC" "0123456789");
  output("ABCDEFGHIJKLMNOP");
  auto events = ndjson(p.next());
  ASSERT_FALSE(events.empty());
  // Whatever is said about the bytes before the gap comes before it, and every event starts at or
  // after where the previous one ended.
  uint64_t at = 0;
  bool gap_seen = false;
  for (auto& e : events) {
    uint64_t offset = e["offset"];
    EXPECT_GE(offset, at) << e.dump();
    if (e["type"] == "gap") {
      gap_seen = true;
      EXPECT_EQ(offset + e["length"].get<uint64_t>(), 15u);  // the ring keeps 15..31
      at = offset + e["length"].get<uint64_t>();
    } else {
      at = offset + 1;
    }
  }
  EXPECT_TRUE(gap_seen);
  EXPECT_EQ(events.back()["data"], "ABCDEFGHIJKLMNOP");
  EXPECT_EQ(events.back()["offset"], 15 + 0) << "events: " << nlohmann::json(events).dump();
}

TEST_F(ProcessEventSourceTest, WithoutFollowItEndsWhenCaughtUp) {
  started();
  output("abc");
  ProcessEventSource::Options options;
  options.follow = false;
  Puller p(source(options));
  auto events = ndjson(p.drain());
  EXPECT_TRUE(p.ended());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["data"], "abc");
  EXPECT_FALSE(process_->exited());
}

TEST_F(ProcessEventSourceTest, ResumesFromAnOffsetInsideAChunk) {
  started();
  output("abcdef");
  ProcessEventSource::Options options;
  options.offset = 4;
  Puller p(source(options));
  auto events = ndjson(p.next());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], (nlohmann::json{{"type", "stdout"}, {"offset", 4}, {"data", "ef"}, {"encoding", "utf-8"}}));
}

TEST_F(ProcessEventSourceTest, ACancelledSourceDeliversNothingMore) {
  started();
  auto s = source();
  Puller p(s);
  p.pull();
  EXPECT_FALSE(p.wait(20ms));
  s->cancel();
  output("after");
  exited(0);
  EXPECT_FALSE(p.wait(50ms)) << "delivered after cancel";
}

TEST_F(ProcessEventSourceTest, ADroppedSourceIsNotCalledBack) {
  started();
  {
    auto s = source();
    Puller p(s);
    p.pull();
    EXPECT_FALSE(p.wait(20ms));
    s->cancel();
  }
  output("after");  // the process's waiter refers to a source that is gone
  exited(0);
  SUCCEED();
}

// Silence is broken by a keepalive (every 15 s, a constant of the source) without ending the
// stream; a pull after it parks again and output still wakes it.
TEST_F(ProcessEventSourceTest, KeepaliveAfterSilence) {
  started();
  Puller p(source());
  p.pull();
  ASSERT_TRUE(p.wait(30s)) << "no keepalive";
  EXPECT_EQ(p.last(), "{\"type\":\"keepalive\"}\n");
  EXPECT_FALSE(p.ended());
  p.pull();
  EXPECT_FALSE(p.wait(20ms));
  output("x");
  ASSERT_TRUE(p.wait());
  auto events = ndjson(p.last());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["data"], "x");
}

TEST(ProcessStreamJson, ProcessAndExitEventsFollowTheContract) {
  ProcessSpec spec;
  spec.kind = ProcessKind::kBackground;
  spec.argv = {"sleep", "10"};
  spec.cwd = "/home/user";
  spec.user = "1000:1000";
  spec.timeout_ms = 1500;
  auto p = std::make_shared<Process>(kId, spec, unix_millis_now(), nullptr);
  auto j = process_json(*p);
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["pid"], 1);  // not started yet: never 0
  EXPECT_EQ(j["kind"], "background");
  EXPECT_EQ(j["timeout"], 1.5);
  EXPECT_TRUE(j["exit_code"].is_null());
  proto::Message m{};
  m.type = proto::Type::kStarted;
  m.id = kId;
  m.started = {77};
  p->on_message(m);
  m.type = proto::Type::kExited;
  m.exited = {-1, SIGTERM, 0};
  p->on_message(m);
  j = process_json(*p);
  EXPECT_EQ(j["state"], "exited");
  EXPECT_EQ(j["pid"], 77);
  EXPECT_EQ(j["exit_code"], 128 + SIGTERM);
  EXPECT_EQ(j["signal"], "SIGTERM");
  EXPECT_EQ(j["reason"], "signaled");
  auto x = exit_event_json(*p);
  EXPECT_EQ(x["type"], "exit");
  EXPECT_EQ(x["exit_code"], 128 + SIGTERM);
  EXPECT_GE(x["duration_ms"].get<double>(), 0.0);
}

}  // namespace
}  // namespace airlock::daemon
