// AgentHub against a fake agent: a unix socket in a temp dir, served by the test, that does the
// Hello handshake honestly (or not) and then sends what each test scripts. The agent is PID 1 of
// an untrusted sandbox, so every attack here must cost only its own connection: alive() turns
// false, every sink registered on it hears on_disconnect, and a second, well-behaved agent on the
// same hub keeps being served. Also: the handshake never hangs, late events are not violations,
// a sandbox that stops reading slows only its own senders, and file_call over the same machinery.
#include "daemon/agent_hub.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <sstream>
#include <thread>

#include "daemon/file_ops.h"
#include "daemon/process.h"

namespace airlock::daemon {
namespace {

namespace proto = protocol::agent;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- Fake agent ---------------------------------------------------------------------------------

bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    struct pollfd p = {fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

// A payload written field by field, for frames the codec would refuse to encode.
struct Payload {
  std::vector<uint8_t> bytes;
  Payload& u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Payload& i32(int32_t v) { return u32(static_cast<uint32_t>(v)); }
  Payload& u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Payload& raw(std::string_view s) {
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  Payload& str(std::string_view s) { return u32(static_cast<uint32_t>(s.size())).raw(s); }
};

// A frame built by hand: header fields as given, payload size as given (default: the payload's).
std::vector<uint8_t> raw_frame(uint8_t type, uint32_t id, const Payload& payload = {}, uint32_t flags = 0,
                               std::optional<uint32_t> size = std::nullopt) {
  Payload f;
  f.bytes = {'A', 'L', proto::kVersion, type};
  f.u32(flags).u32(id).u32(size.value_or(static_cast<uint32_t>(payload.bytes.size())));
  f.bytes.insert(f.bytes.end(), payload.bytes.begin(), payload.bytes.end());
  return f.bytes;
}

std::vector<uint8_t> encoded(const proto::Message& m) {
  auto frame = proto::encode_frame(m);
  EXPECT_TRUE(frame.ok()) << frame.error().message;
  return frame.ok() ? std::move(frame).value() : std::vector<uint8_t>{};
}

proto::Message message(proto::Type type, uint32_t id) {
  proto::Message m{};
  m.type = type;
  m.id = id;
  return m;
}

// What the fake received, copied out of its reader's buffer.
struct Received {
  proto::Type type{};
  uint32_t id = 0, flags = 0;
  uint64_t value = 0;     // Hello max_version, Credit bytes, Signal number
  size_t data_size = 0;   // Stdin bytes
  std::string path;       // file requests
};

enum class Handshake {
  kAnswer,            // HelloAck version 1
  kAnswerThenGarbage, // HelloAck and, in the same write, bytes that are not a frame
  kGarbage,           // an HTTP request instead of a HelloAck
  kCloseAfterHello,   // reads the Hello, then closes
  kSilent,            // accepts, never answers
  kWrongVersion,      // HelloAck version 2
  kPongFirst,         // a Pong instead of a HelloAck
};

class FakeAgent {
 public:
  explicit FakeAgent(Handshake mode = Handshake::kAnswer) : mode_(mode) {
    char tmpl[] = "/tmp/airlock-fake-agent-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    dir_ = tmpl;
    path_ = dir_ + "/agent.sock";
    listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_.get(), 4) != 0) {
      ADD_FAILURE() << "bind/listen " << path_ << ": " << std::strerror(errno);
    }
    thread_ = std::thread([this] { serve_handshake(); });
  }
  ~FakeAgent() {
    join();
    conn_.reset();
    listen_.reset();
    std::filesystem::remove_all(dir_);
  }
  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

  const std::string& path() const { return path_; }
  // The handshake thread is done (call after AgentHub::connect returned); from then on the test
  // thread drives the accepted socket.
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  const std::optional<Received>& hello() const { return hello_; }

  bool send(const std::vector<uint8_t>& bytes, std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(conn_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN && wait_fd(conn_.get(), POLLOUT, deadline)) continue;
      return false;
    }
    return true;
  }
  bool send(const proto::Message& m) { return send(encoded(m)); }

  // The next frame from the daemon; nullopt at the timeout or the end of the connection.
  std::optional<Received> receive(std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      proto::Message m;
      auto got = reader_.next(m);
      if (!got.ok()) {
        ADD_FAILURE() << "the daemon sent a frame its own codec refuses: " << got.error().message;
        return std::nullopt;
      }
      if (*got) return copy(m);
      if (!wait_fd(conn_.get(), POLLIN, deadline)) return std::nullopt;
      auto space = reader_.writable();
      ssize_t n = ::recv(conn_.get(), space.data(), space.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        eof_ = true;
        return std::nullopt;
      }
      reader_.commit(static_cast<size_t>(n));
    }
  }
  // The next frame of `type`, skipping others.
  std::optional<Received> receive(proto::Type type, std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto r = receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
      if (!r) return std::nullopt;
      if (r->type == type) return r;
    }
    return std::nullopt;
  }
  // Reads (and discards) until the daemon's end of the socket is closed or shut down.
  bool sees_eof(std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    while (!eof_ && Clock::now() < deadline) {
      receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    }
    return eof_;
  }
  void close() { conn_.reset(); }

 private:
  static Received copy(const proto::Message& m) {
    Received r{m.type, m.id, m.flags};
    switch (m.type) {
      case proto::Type::kHello: r.value = m.hello.max_version; break;
      case proto::Type::kCredit: r.value = m.credit.bytes; break;
      case proto::Type::kSignal: r.value = m.signal.number; break;
      case proto::Type::kStdin: r.data_size = m.input.data.size; break;
      case proto::Type::kFileStat: r.path = proto::to_string_view(m.file_stat.path); break;
      case proto::Type::kFileList: r.path = proto::to_string_view(m.file_list.path); break;
      case proto::Type::kFileRead: r.path = proto::to_string_view(m.file_read.path); break;
      default: break;
    }
    return r;
  }

  void serve_handshake() {
    if (!wait_fd(listen_.get(), POLLIN, Clock::now() + 10s)) return;
    conn_.reset(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn_ || mode_ == Handshake::kSilent) return;
    hello_ = receive();
    if (!hello_ || hello_->type != proto::Type::kHello) return;
    auto ack = [&](uint32_t version) {
      proto::Message m = message(proto::Type::kHelloAck, hello_->id);
      m.hello_ack = {version, proto::kCapExec | proto::kCapFiles};
      return encoded(m);
    };
    switch (mode_) {
      case Handshake::kAnswer: send(ack(1)); break;
      case Handshake::kAnswerThenGarbage: {
        auto bytes = ack(1);
        for (char c : std::string_view("XXXXXXXXXXXXXXXXXXXXXXXX")) bytes.push_back(static_cast<uint8_t>(c));
        send(bytes);
        break;
      }
      case Handshake::kGarbage: {
        std::string_view http = "GET / HTTP/1.1\r\nHost: airlock\r\n\r\n";
        send(std::vector<uint8_t>(http.begin(), http.end()));
        break;
      }
      case Handshake::kCloseAfterHello: conn_.reset(); break;
      case Handshake::kWrongVersion: send(ack(2)); break;
      case Handshake::kPongFirst: {
        proto::Message pong = message(proto::Type::kPong, hello_->id);
        pong.pong = {0};
        send(pong);
        break;
      }
      case Handshake::kSilent: break;
    }
  }

  Handshake mode_;
  std::string dir_, path_;
  UniqueFd listen_, conn_;
  std::thread thread_;
  std::optional<Received> hello_;
  proto::FrameReader reader_{proto::Direction::kToAgent};
  bool eof_ = false;
};

// ---- Sinks and helpers --------------------------------------------------------------------------

class RecordingSink : public AgentSink {
 public:
  explicit RecordingSink(Verdict verdict = Verdict::kMore) : verdict_(verdict) {}

  Verdict on_message(const proto::Message& m) override {
    std::lock_guard guard(mu_);
    types_.push_back(m.type);
    cv_.notify_all();
    return verdict_;
  }
  void on_disconnect(const Error& why) override {
    std::lock_guard guard(mu_);
    ++disconnects_;
    error_ = why;
    cv_.notify_all();
  }
  bool wait_messages(size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return types_.size() >= n; });
  }
  bool wait_disconnect(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return disconnects_ > 0; });
  }
  std::vector<proto::Type> types() {
    std::lock_guard guard(mu_);
    return types_;
  }
  int disconnects() {
    std::lock_guard guard(mu_);
    return disconnects_;
  }
  Error error() {
    std::lock_guard guard(mu_);
    return error_;
  }

 private:
  const Verdict verdict_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<proto::Type> types_;
  int disconnects_ = 0;
  Error error_;
};

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
  auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// ---- Handshake ----------------------------------------------------------------------------------

class AgentHubHandshake : public ::testing::Test {
 protected:
  // Connects to a fake in `mode`; returns the result and how long connect took.
  std::pair<Result<std::shared_ptr<AgentConnection>>, Clock::duration> connect(Handshake mode,
                                                                               std::chrono::milliseconds timeout) {
    FakeAgent fake(mode);
    auto start = Clock::now();
    auto result = hub_.connect(fake.path(), "sb-test", 2, timeout);
    auto took = Clock::now() - start;
    fake.join();
    if (mode != Handshake::kSilent) {
      EXPECT_TRUE(fake.hello().has_value()) << "the daemon sent no Hello";
      if (fake.hello()) {
        EXPECT_EQ(fake.hello()->value, proto::kVersion);
      }
    }
    return {std::move(result), took};
  }

  Logger log_{LogLevel::kError};
  AgentHub hub_{log_};
};

TEST_F(AgentHubHandshake, AnHonestAgentIsServed) {
  FakeAgent fake;
  auto conn = hub_.connect(fake.path(), "sb-test", 7, 5s);
  fake.join();
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  ASSERT_TRUE(fake.hello().has_value());
  EXPECT_EQ(fake.hello()->type, proto::Type::kHello);
  EXPECT_TRUE((*conn)->alive());
  EXPECT_EQ((*conn)->name(), "sb-test");
  EXPECT_EQ((*conn)->peek_next_id(), 7u);
  EXPECT_EQ((*conn)->next_id(), 7u);
  EXPECT_EQ((*conn)->next_id(), 8u);
  EXPECT_EQ(hub_.connections(), 1u);
}

TEST_F(AgentHubHandshake, GarbageInsteadOfHelloAckFailsWithAProtocolError) {
  auto [conn, took] = connect(Handshake::kGarbage, 5s);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().errnum, EPROTO);
  EXPECT_NE(conn.error().message.find("bad magic"), std::string::npos) << conn.error().message;
  EXPECT_LT(took, 5s);
  EXPECT_EQ(hub_.connections(), 0u);
}

TEST_F(AgentHubHandshake, AnAgentThatClosesFailsWithConnectionReset) {
  auto [conn, took] = connect(Handshake::kCloseAfterHello, 5s);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().errnum, ECONNRESET) << conn.error().message;
  EXPECT_LT(took, 5s);
  EXPECT_EQ(hub_.connections(), 0u);
}

TEST_F(AgentHubHandshake, ASilentAgentTimesOutInsteadOfHanging) {
  auto [conn, took] = connect(Handshake::kSilent, 300ms);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().errnum, ETIMEDOUT) << conn.error().message;
  EXPECT_NE(conn.error().message.find("HelloAck"), std::string::npos) << conn.error().message;
  EXPECT_GE(took, 250ms);          // it did wait for the agent...
  EXPECT_LT(took, 300ms + 5s);     // ...and gave up at its timeout
  EXPECT_EQ(hub_.connections(), 0u);
}

TEST_F(AgentHubHandshake, AnUnsupportedVersionIsRefused) {
  auto [conn, took] = connect(Handshake::kWrongVersion, 5s);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().errnum, EPROTO);
  EXPECT_NE(conn.error().message.find("version"), std::string::npos) << conn.error().message;
}

TEST_F(AgentHubHandshake, AnythingButHelloAckFirstIsRefused) {
  auto [conn, took] = connect(Handshake::kPongFirst, 5s);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().errnum, EPROTO);
  EXPECT_NE(conn.error().message.find("expected HelloAck"), std::string::npos) << conn.error().message;
}

TEST_F(AgentHubHandshake, NoAgentListeningFailsAtOnce) {
  auto conn = hub_.connect("/tmp/airlock-no-such-dir/agent.sock", "sb-test", 2, 5s);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().errnum, ENOENT) << conn.error().message;
}

// Bytes that arrived in the same read as the HelloAck are judged like any others.
TEST_F(AgentHubHandshake, GarbageRightBehindTheHelloAckDropsTheConnection) {
  FakeAgent fake(Handshake::kAnswerThenGarbage);
  auto conn = hub_.connect(fake.path(), "sb-test", 2, 5s);
  fake.join();
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  auto sink = std::make_shared<RecordingSink>();
  (*conn)->expect((*conn)->next_id(), sink);
  // Nothing more arrives on the socket: only the buffered bytes can make the hub act.
  EXPECT_TRUE(eventually([&] { return !(*conn)->alive(); }));
  EXPECT_TRUE(sink->wait_disconnect());
  // The hub thread may still be between marking the connection dead and unregistering it.
  EXPECT_TRUE(eventually([&] { return hub_.connections() == 0u; }));
}

// ---- Hostile frames after the handshake ---------------------------------------------------------

// Two agents on one hub: `bad` attacks, `good` must not notice.
class AgentHubHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    good_conn_ = connect(good_);
    bad_conn_ = connect(bad_);
    ASSERT_TRUE(good_conn_ && bad_conn_);
    ASSERT_EQ(hub_.connections(), 2u);
    // Two sinks waiting on the hostile connection: both must hear that it is gone.
    for (auto& s : bad_sinks_) {
      s = std::make_shared<RecordingSink>();
      bad_conn_->expect(bad_conn_->next_id(), s);
    }
  }

  std::shared_ptr<AgentConnection> connect(FakeAgent& fake) {
    auto conn = hub_.connect(fake.path(), &fake == &good_ ? "sb-good" : "sb-bad", 2, 5s);
    fake.join();
    if (!conn.ok()) {
      ADD_FAILURE() << conn.error().message;
      return nullptr;
    }
    return std::move(conn).value();
  }

  // The hostile connection is gone, and only it.
  void expect_dropped(const std::string& why) {
    EXPECT_TRUE(eventually([&] { return !bad_conn_->alive(); })) << "the connection survived";
    for (auto& s : bad_sinks_) {
      ASSERT_TRUE(s->wait_disconnect()) << "a sink was not told";
      EXPECT_EQ(s->disconnects(), 1);
      EXPECT_EQ(s->error().errnum, EPROTO) << s->error().message;
      EXPECT_NE(s->error().message.find(why), std::string::npos) << s->error().message;
    }
    EXPECT_TRUE(eventually([&] { return hub_.connections() == 1; }));
    // The agent is told too: its end of the socket sees EOF (no further frames are read).
    EXPECT_TRUE(bad_.sees_eof()) << "the dropped connection's socket is still open";
    // Once dropped, sending and registering fail cleanly.
    auto sent = bad_conn_->send(message(proto::Type::kPing, bad_conn_->next_id()));
    ASSERT_FALSE(sent.ok());
    EXPECT_EQ(sent.error().errnum, EPIPE);
    auto late = std::make_shared<RecordingSink>();
    bad_conn_->expect(bad_conn_->next_id(), late);
    EXPECT_EQ(late->disconnects(), 1);
    expect_good_agent_served();
  }

  // A Ping on the good connection is answered and its Pong delivered.
  void expect_good_agent_served() {
    ASSERT_TRUE(good_conn_->alive());
    uint32_t id = good_conn_->next_id();
    auto sink = std::make_shared<RecordingSink>(AgentSink::Verdict::kDone);
    good_conn_->expect(id, sink);
    ASSERT_TRUE(good_conn_->send(message(proto::Type::kPing, id)).ok());
    auto ping = good_.receive(proto::Type::kPing);
    ASSERT_TRUE(ping.has_value()) << "the good agent got no Ping";
    EXPECT_EQ(ping->id, id);
    proto::Message pong = message(proto::Type::kPong, id);
    pong.pong = {1};
    ASSERT_TRUE(good_.send(pong));
    ASSERT_TRUE(sink->wait_messages(1)) << "the good agent's Pong was not delivered";
    EXPECT_EQ(sink->types(), std::vector<proto::Type>{proto::Type::kPong});
    EXPECT_TRUE(good_conn_->alive());
  }

  uint32_t sink_id() const { return 2; }  // the first sink's id (ids start at 2)

  Logger log_{LogLevel::kError};
  AgentHub hub_{log_};
  FakeAgent good_, bad_;
  std::shared_ptr<AgentConnection> good_conn_, bad_conn_;
  std::shared_ptr<RecordingSink> bad_sinks_[2];
};

TEST_F(AgentHubHostile, TheGoodAgentIsServedBeforeAnyAttack) { expect_good_agent_served(); }

// The attack: announce a 1 GiB payload and send nothing else, hoping the daemon allocates it (or
// waits for it forever). The header alone decides.
TEST_F(AgentHubHostile, OneGibPayloadHeaderIsRefusedWithoutAllocating) {
  long before = rss_kib();
  ASSERT_GT(before, 0);
  Payload none;
  ASSERT_TRUE(bad_.send(raw_frame(static_cast<uint8_t>(proto::Type::kOutput), sink_id(), none, 0, 1u << 30)));
  expect_dropped("frame too large");
  long after = rss_kib();
  EXPECT_LT(after - before, 64 * 1024) << "RSS grew from " << before << " KiB to " << after << " KiB";
}

TEST_F(AgentHubHostile, OutputBeyondTheCreditWindowDropsTheConnection) {
  ProcessSpec spec;
  spec.kind = ProcessKind::kStream;  // credit only as consumed: none comes here
  spec.argv = {"yes"};
  uint32_t id = bad_conn_->next_id();
  auto process = std::make_shared<Process>(id, spec, 0, bad_conn_);
  bad_conn_->expect(id, process);
  proto::Message started = message(proto::Type::kStarted, id);
  started.started = {42};
  ASSERT_TRUE(bad_.send(started));
  std::string chunk(60 * 1024, 'y');
  size_t sent = 0;
  while (sent < 300 * 1024) {  // 256 KiB window, 300 KiB sent, no Credit waited for
    proto::Message out = message(proto::Type::kOutput, id);
    out.output = {proto::kStdout, {reinterpret_cast<const uint8_t*>(chunk.data()), static_cast<uint32_t>(chunk.size())}};
    if (!bad_.send(out)) break;  // the daemon may have dropped it already
    sent += chunk.size();
  }
  expect_dropped("unexpected frame type");
  // What was taken stayed within the window.
  EXPECT_LE(process->buffer().end, proto::kInitialWindow);
  EXPECT_EQ(process->buffer().end, 4u * chunk.size());
  EXPECT_TRUE(process->started());
  EXPECT_FALSE(process->exited());  // the process itself may still run; a reconnect adopts it
}

TEST_F(AgentHubHostile, OutputBeforeStartedDropsTheConnection) {
  ProcessSpec spec;
  spec.argv = {"true"};
  uint32_t id = bad_conn_->next_id();
  auto process = std::make_shared<Process>(id, spec, 0, bad_conn_);
  bad_conn_->expect(id, process);
  proto::Message out = message(proto::Type::kOutput, id);
  std::string data = "early";
  out.output = {proto::kStdout, {reinterpret_cast<const uint8_t*>(data.data()), static_cast<uint32_t>(data.size())}};
  ASSERT_TRUE(bad_.send(out));
  expect_dropped("unexpected frame type");
  EXPECT_EQ(process->buffer().end, 0u);
  // It never started, and now never will on this connection.
  ASSERT_TRUE(process->end().has_value());
  EXPECT_EQ(process->end()->reason, "failed_to_start");
}

TEST_F(AgentHubHostile, ASecondStartedDropsTheConnection) {
  ProcessSpec spec;
  spec.argv = {"true"};
  uint32_t id = bad_conn_->next_id();
  auto process = std::make_shared<Process>(id, spec, 0, bad_conn_);
  bad_conn_->expect(id, process);
  proto::Message started = message(proto::Type::kStarted, id);
  started.started = {42};
  ASSERT_TRUE(bad_.send(started));
  started.started = {43};
  ASSERT_TRUE(bad_.send(started));
  expect_dropped("unexpected frame type");
  EXPECT_EQ(process->pid(), 42u);
}

TEST_F(AgentHubHostile, ASinkVerdictOfViolationDropsTheConnection) {
  auto strict = std::make_shared<RecordingSink>(AgentSink::Verdict::kViolation);
  uint32_t id = bad_conn_->next_id();
  bad_conn_->expect(id, strict);
  proto::Message done = message(proto::Type::kDone, id);
  done.done = {0};
  ASSERT_TRUE(bad_.send(done));
  expect_dropped("unexpected frame type");
}

// One hostile frame each; the codec or the id check refuses it and the connection goes.
struct HostileFrame {
  const char* name;
  std::function<std::vector<uint8_t>(uint32_t id_in_use, uint32_t id_never_used)> frame;
  const char* error;  // in the message every sink hears
};

std::vector<uint8_t> done_frame(uint32_t id) {
  proto::Message m = message(proto::Type::kDone, id);
  m.done = {1};
  return encoded(m);
}

std::vector<uint8_t> exited_frame(uint32_t id, int32_t code, uint32_t signal, uint32_t reason) {
  return raw_frame(static_cast<uint8_t>(proto::Type::kExited), id, Payload().i32(code).u32(signal).u32(reason));
}

// A FileEntry as the codec writes it, then with `path` put in place of a placeholder of its
// length (so the FileInfo fields stay whatever the codec says they are).
std::vector<uint8_t> file_entry_frame(uint32_t id, std::string_view path) {
  std::string placeholder(path.size(), 'p');
  proto::Message m = message(proto::Type::kFileEntry, id);
  m.file_entry.info.kind = proto::kKindFile;
  m.file_entry.info.mode = 0644;
  m.file_entry.path = proto::to_str(placeholder);
  auto f = encoded(m);
  std::copy(path.begin(), path.end(), f.end() - static_cast<long>(path.size()));
  return f;
}

const HostileFrame kHostileFrames[] = {
    {"bad_magic",
     [](uint32_t id, uint32_t) {
       auto f = done_frame(id);
       f[0] = 'X';
       return f;
     },
     "bad magic"},
    {"bad_version",
     [](uint32_t id, uint32_t) {
       auto f = done_frame(id);
       f[2] = 9;
       return f;
     },
     "unsupported version"},
    {"unknown_type", [](uint32_t id, uint32_t) { return raw_frame(0x60, id); }, "unknown message type"},
    {"unknown_type_0x7e", [](uint32_t id, uint32_t) { return raw_frame(0x7e, id, Payload().u32(1)); },
     "unknown message type"},
    {"host_to_agent_type",
     [](uint32_t id, uint32_t) { return raw_frame(static_cast<uint8_t>(proto::Type::kCredit), id, Payload().u32(1)); },
     "not accepted in this direction"},
    {"id_never_handed_out", [](uint32_t, uint32_t unused) { return done_frame(unused); }, "id never used"},
    {"id_far_beyond_the_counter", [](uint32_t, uint32_t) { return done_frame(0xfffffff0); }, "id never used"},
    {"id_zero_outside_error",
     [](uint32_t, uint32_t) { return raw_frame(static_cast<uint8_t>(proto::Type::kDone), 0, Payload().u64(1)); },
     "bad id"},
    {"flag_on_done",
     [](uint32_t id, uint32_t) { return raw_frame(static_cast<uint8_t>(proto::Type::kDone), id, Payload().u64(1), 1); },
     "bad flags"},
    {"exited_code_with_signal", [](uint32_t id, uint32_t) { return exited_frame(id, 0, 9, 0); }, "field out of range"},
    {"exited_minus_one_without_signal", [](uint32_t id, uint32_t) { return exited_frame(id, -1, 0, 0); },
     "field out of range"},
    {"exited_code_256", [](uint32_t id, uint32_t) { return exited_frame(id, 256, 0, 0); }, "field out of range"},
    {"exited_signal_65", [](uint32_t id, uint32_t) { return exited_frame(id, -1, 65, 0); }, "field out of range"},
    {"exited_unknown_reason", [](uint32_t id, uint32_t) { return exited_frame(id, 0, 0, 2); }, "field out of range"},
    {"started_pid_zero",
     [](uint32_t id, uint32_t) { return raw_frame(static_cast<uint8_t>(proto::Type::kStarted), id, Payload().u32(0)); },
     "field out of range"},
    {"output_stream_3",
     [](uint32_t id, uint32_t) {
       return raw_frame(static_cast<uint8_t>(proto::Type::kOutput), id, Payload().u32(3).raw("x"));
     },
     "field out of range"},
    {"file_entry_dotdot", [](uint32_t id, uint32_t) { return file_entry_frame(id, "../x"); }, "bad string"},
    {"file_entry_inner_dotdot", [](uint32_t id, uint32_t) { return file_entry_frame(id, "a/../../.bashrc"); },
     "bad string"},
    {"file_entry_absolute", [](uint32_t id, uint32_t) { return file_entry_frame(id, "/etc/passwd"); }, "bad string"},
    {"file_entry_nul", [](uint32_t id, uint32_t) { return file_entry_frame(id, std::string_view("a\0b", 3)); },
     "bad string"},
    {"file_entry_path_past_the_payload",
     [](uint32_t id, uint32_t) {
       auto f = file_entry_frame(id, "short");
       size_t length_at = f.size() - 5 - 4;  // the path's u32 length, now 1000
       f[length_at] = 1000 & 0xff;
       f[length_at + 1] = 1000 >> 8;
       return f;
     },
     "field runs past the payload"},
    {"watch_event_dotdot",
     [](uint32_t id, uint32_t) {
       return raw_frame(static_cast<uint8_t>(proto::Type::kWatchEvent), id,
                        Payload().u32(proto::kWatchCreated).str(".."));
     },
     "bad string"},
    {"trailing_bytes",
     [](uint32_t id, uint32_t) {
       return raw_frame(static_cast<uint8_t>(proto::Type::kDone), id, Payload().u64(1).raw("!"));
     },
     "trailing bytes"},
    {"error_errno_zero",
     [](uint32_t id, uint32_t) {
       return raw_frame(static_cast<uint8_t>(proto::Type::kError), id, Payload().u32(0).str("x"));
     },
     "field out of range"},
};

void PrintTo(const HostileFrame& f, std::ostream* os) { *os << f.name; }

class AgentHubHostileFrame : public AgentHubHostile, public ::testing::WithParamInterface<HostileFrame> {};

TEST_P(AgentHubHostileFrame, DropsOnlyItsOwnConnection) {
  const HostileFrame& attack = GetParam();
  ASSERT_TRUE(bad_.send(attack.frame(sink_id(), bad_conn_->peek_next_id())));
  expect_dropped(attack.error);
  // The frame reached no sink.
  for (auto& s : bad_sinks_) EXPECT_TRUE(s->types().empty());
}

INSTANTIATE_TEST_SUITE_P(AgentHub, AgentHubHostileFrame, ::testing::ValuesIn(kHostileFrames),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- Ids ----------------------------------------------------------------------------------------

class AgentHubIds : public AgentHubHostile {};

// Events for ids handed out earlier whose sinks are gone (the caller left; the process ran under
// a daemon before this one) are dropped, not treated as attacks.
TEST_F(AgentHubIds, LateEventsForForgottenIdsAreDropped) {
  uint32_t forgotten = bad_conn_->next_id();
  auto sink = std::make_shared<RecordingSink>();
  bad_conn_->expect(forgotten, sink);
  bad_conn_->forget(forgotten);
  proto::Message exited = message(proto::Type::kExited, forgotten);
  exited.exited = {0, 0, 0};
  ASSERT_TRUE(bad_.send(exited));
  // A frame for the sink of the first id still arrives after it: the late one was passed over.
  ASSERT_TRUE(bad_.send(done_frame(sink_id())));
  ASSERT_TRUE(bad_sinks_[0]->wait_messages(1));
  EXPECT_TRUE(sink->types().empty());
  EXPECT_EQ(sink->disconnects(), 0);
  EXPECT_TRUE(bad_conn_->alive());
}

TEST_F(AgentHubIds, EventsForIdsBelowTheFirstIdAreDropped) {
  FakeAgent fake;
  auto conn = hub_.connect(fake.path(), "sb-restarted", 1000, 5s);
  fake.join();
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  uint32_t id = (*conn)->next_id();
  ASSERT_EQ(id, 1000u);
  auto sink = std::make_shared<RecordingSink>();
  (*conn)->expect(id, sink);
  proto::Message exited = message(proto::Type::kExited, 500);  // a process of an earlier daemon
  exited.exited = {-1, 9, 0};
  ASSERT_TRUE(fake.send(exited));
  ASSERT_TRUE(fake.send(done_frame(id)));
  ASSERT_TRUE(sink->wait_messages(1));
  EXPECT_TRUE((*conn)->alive());
  // The boundary: the next id to be handed out is not yet anyone's.
  ASSERT_TRUE(fake.send(done_frame((*conn)->peek_next_id())));
  EXPECT_TRUE(eventually([&] { return !(*conn)->alive(); }));
  EXPECT_TRUE(sink->wait_disconnect());
}

TEST_F(AgentHubIds, ADoneVerdictForgetsTheIdAndLaterFramesAreDropped) {
  uint32_t id = bad_conn_->next_id();
  auto once = std::make_shared<RecordingSink>(AgentSink::Verdict::kDone);
  bad_conn_->expect(id, once);
  ASSERT_TRUE(bad_.send(done_frame(id)));
  ASSERT_TRUE(bad_.send(done_frame(id)));
  ASSERT_TRUE(bad_.send(done_frame(sink_id())));
  ASSERT_TRUE(bad_sinks_[0]->wait_messages(1));
  EXPECT_EQ(once->types().size(), 1u);
  EXPECT_EQ(once->disconnects(), 0);  // a sink that finished is not told of later endings
  EXPECT_TRUE(bad_conn_->alive());
  bad_.close();
  EXPECT_TRUE(bad_sinks_[0]->wait_disconnect());
  EXPECT_EQ(bad_sinks_[0]->error().errnum, ECONNRESET);
  EXPECT_EQ(once->disconnects(), 0);
}

TEST_F(AgentHubIds, AConnectionErrorIsLoggedNotDelivered) {
  ASSERT_TRUE(bad_.send(raw_frame(static_cast<uint8_t>(proto::Type::kError), 0,
                                  Payload().u32(EIO).str("the agent is unwell"))));
  ASSERT_TRUE(bad_.send(done_frame(sink_id())));
  ASSERT_TRUE(bad_sinks_[0]->wait_messages(1));
  EXPECT_EQ(bad_sinks_[0]->types(), std::vector<proto::Type>{proto::Type::kDone});
  EXPECT_TRUE(bad_conn_->alive());
}

TEST_F(AgentHubIds, FramesSplitIntoSingleBytesAreReassembled) {
  auto f = done_frame(sink_id());
  for (uint8_t b : f) {
    ASSERT_TRUE(bad_.send(std::vector<uint8_t>{b}));
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(bad_sinks_[0]->wait_messages(1));
  EXPECT_TRUE(bad_conn_->alive());
}

// ---- Backpressure -------------------------------------------------------------------------------

// The attack: a sandbox that never reads its socket, so that the daemon queues without bound or
// its request threads block forever.
TEST(AgentHubBackpressure, AnAgentThatNeverReadsBoundsTheQueueAndTimesOutSenders) {
  Logger log(LogLevel::kError);
  AgentHub hub(log);
  FakeAgent fake;
  auto conn_result = hub.connect(fake.path(), "sb-deaf", 2, 5s);
  fake.join();
  ASSERT_TRUE(conn_result.ok()) << conn_result.error().message;
  auto conn = std::move(conn_result).value();
  uint32_t id = conn->next_id();

  std::string chunk(proto::kMaxChunk, 's');
  proto::Message stdin_frame = message(proto::Type::kStdin, id);
  stdin_frame.input = {reinterpret_cast<const uint8_t*>(chunk.data()), static_cast<uint32_t>(chunk.size())};
  const size_t frame_size = encoded(stdin_frame).size();
  size_t accepted = 0;
  std::optional<Status> failure;
  Clock::duration failed_after{};
  for (int i = 0; i < 1000 && !failure; ++i) {  // bounded: 1000 frames is over 50 MiB
    auto start = Clock::now();
    Status s = conn->send(stdin_frame, 300ms);
    if (s.ok()) {
      accepted += frame_size;
    } else {
      failure = s;
      failed_after = Clock::now() - start;
    }
  }
  ASSERT_TRUE(failure.has_value()) << "every send was accepted: " << accepted << " bytes";
  EXPECT_EQ(failure->error().errnum, ETIMEDOUT) << failure->error().message;
  EXPECT_GE(failed_after, 250ms);       // it waited for room...
  EXPECT_LT(failed_after, 300ms + 5s);  // ...no longer than its timeout
  // The queue holds 1 MiB beyond what the socket took, no more.
  EXPECT_GE(accepted + frame_size, AgentConnection::kMaxQueued);
  EXPECT_LT(accepted, AgentConnection::kMaxQueued + 16 * 1024 * 1024);
  EXPECT_TRUE(conn->alive()) << "a slow agent is not a hostile one";

  // Credit from the hub thread never waits, even with the queue full.
  proto::Message credit = message(proto::Type::kCredit, id);
  credit.credit = {4096};
  auto credit_frame = encoded(credit);
  auto controls = std::async(std::launch::async, [&] {
    for (int i = 0; i < 16; ++i) conn->send_control(credit_frame);
  });
  ASSERT_EQ(controls.wait_for(5s), std::future_status::ready) << "send_control blocked";

  // When the agent reads again, everything queued arrives, in order, and sending works again.
  size_t stdin_bytes = 0;
  int credits = 0;
  while (stdin_bytes < accepted / frame_size * chunk.size() || credits < 16) {
    auto r = fake.receive();
    ASSERT_TRUE(r.has_value()) << "queued frames were lost: " << stdin_bytes << " stdin bytes, " << credits
                               << " credits";
    if (r->type == proto::Type::kStdin) {
      EXPECT_EQ(credits, 0) << "a Credit overtook queued Stdin";
      stdin_bytes += r->data_size;
    } else {
      EXPECT_EQ(r->type, proto::Type::kCredit);
      EXPECT_EQ(r->value, 4096u);
      ++credits;
    }
  }
  EXPECT_TRUE(conn->send(stdin_frame, 5s).ok());
  auto after = fake.receive();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->type, proto::Type::kStdin);
}

TEST(AgentHubBackpressure, ASenderWaitingForRoomIsReleasedWhenTheAgentGoes) {
  Logger log(LogLevel::kError);
  AgentHub hub(log);
  FakeAgent fake;
  auto conn_result = hub.connect(fake.path(), "sb-deaf", 2, 5s);
  fake.join();
  ASSERT_TRUE(conn_result.ok()) << conn_result.error().message;
  auto conn = std::move(conn_result).value();
  std::string chunk(proto::kMaxChunk, 's');
  proto::Message stdin_frame = message(proto::Type::kStdin, conn->next_id());
  stdin_frame.input = {reinterpret_cast<const uint8_t*>(chunk.data()), static_cast<uint32_t>(chunk.size())};
  // Fill the queue: sends with no wait fail once it is full.
  for (int i = 0; i < 1000 && conn->send(stdin_frame, 0ms).ok(); ++i) {
  }
  auto blocked = std::async(std::launch::async, [&] { return conn->send(stdin_frame, 60s); });
  EXPECT_EQ(blocked.wait_for(100ms), std::future_status::timeout) << "the sender did not wait for room";
  fake.close();
  ASSERT_EQ(blocked.wait_for(10s), std::future_status::ready) << "the sender was left waiting";
  Status s = blocked.get();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().errnum, EPIPE) << s.error().message;
  EXPECT_FALSE(conn->alive());
}

TEST(AgentHubLifetime, StoppingTheHubTellsEverySink) {
  Logger log(LogLevel::kError);
  FakeAgent fake;
  auto sink = std::make_shared<RecordingSink>();
  std::shared_ptr<AgentConnection> conn;
  {
    AgentHub hub(log);
    auto c = hub.connect(fake.path(), "sb-test", 2, 5s);
    fake.join();
    ASSERT_TRUE(c.ok()) << c.error().message;
    conn = std::move(c).value();
    conn->expect(conn->next_id(), sink);
  }
  EXPECT_EQ(sink->disconnects(), 1);
  EXPECT_EQ(sink->error().errnum, ECANCELED);
  EXPECT_FALSE(conn->alive());
  EXPECT_FALSE(conn->send(message(proto::Type::kPing, conn->next_id())).ok());
}

// ---- file_call ----------------------------------------------------------------------------------

class FileOpsCall : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = hub_.connect(fake_.path(), "sb-files", 2, 5s);
    fake_.join();
    ASSERT_TRUE(c.ok()) << c.error().message;
    conn_ = std::move(c).value();
  }
  std::future<ApiResult<FileReply>> call(proto::Message request, std::chrono::milliseconds timeout = 10s) {
    return std::async(std::launch::async, [this, request, timeout] { return file_call(*conn_, request, timeout); });
  }

  Logger log_{LogLevel::kError};
  AgentHub hub_{log_};
  FakeAgent fake_;
  std::shared_ptr<AgentConnection> conn_;
  std::string path_ = "/home/user/notes.txt";
};

TEST_F(FileOpsCall, StatIsAnsweredWithFileInfo) {
  proto::Message stat = message(proto::Type::kFileStat, 0);
  stat.file_stat = {proto::to_str(path_)};
  auto reply = call(stat);
  auto req = fake_.receive();
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->type, proto::Type::kFileStat);
  EXPECT_EQ(req->path, path_);
  proto::Message info = message(proto::Type::kFileInfo, req->id);
  info.file_info = {proto::kKindFile, 0640, 12, 1000000};
  ASSERT_TRUE(fake_.send(info));
  auto result = reply.get();
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_TRUE(result->info.has_value());
  EXPECT_EQ(result->info->mode, 0640u);
  EXPECT_EQ(result->info->size, 12u);
  EXPECT_EQ(result->errnum, 0u);
}

TEST_F(FileOpsCall, ReadCollectsChunksUntilTheEndFlag) {
  proto::Message read = message(proto::Type::kFileRead, 0);
  read.file_read = {proto::to_str(path_), 0, 0};
  auto reply = call(read);
  auto req = fake_.receive();
  ASSERT_TRUE(req.has_value());
  std::string parts[] = {"hello ", "world"};
  uint64_t offset = 0;
  for (int i = 0; i < 2; ++i) {
    proto::Message data = message(proto::Type::kFileData, req->id);
    data.flags = i == 1 ? proto::kFlagEnd : 0;
    data.file_data = {offset, {reinterpret_cast<const uint8_t*>(parts[i].data()), static_cast<uint32_t>(parts[i].size())}};
    offset += parts[i].size();
    ASSERT_TRUE(fake_.send(data));
  }
  auto result = reply.get();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->data, "hello world");
}

// FileData is flow-controlled like Output; file_call grants no Credit, so the read's initial
// window is all the agent may send. The attack: stream a large file at a single call.
TEST_F(FileOpsCall, FileDataBeyondTheReadWindowDropsTheConnection) {
  proto::Message read = message(proto::Type::kFileRead, 0);
  read.file_read = {proto::to_str(path_), 0, proto::kInitialWindow};
  auto reply = call(read);
  auto req = fake_.receive();
  ASSERT_TRUE(req.has_value());
  std::string chunk(proto::kMaxChunk, 'd');
  uint64_t offset = 0;
  while (offset < 300 * 1024) {
    proto::Message data = message(proto::Type::kFileData, req->id);
    data.file_data = {offset, {reinterpret_cast<const uint8_t*>(chunk.data()), static_cast<uint32_t>(chunk.size())}};
    if (!fake_.send(data)) break;
    offset += chunk.size();
  }
  ASSERT_EQ(reply.wait_for(10s), std::future_status::ready);
  auto result = reply.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::kAgentError);
  EXPECT_FALSE(conn_->alive());
}

TEST_F(FileOpsCall, AWholeWindowOfFileDataIsAccepted) {
  proto::Message read = message(proto::Type::kFileRead, 0);
  read.file_read = {proto::to_str(path_), 0, proto::kInitialWindow};
  auto reply = call(read);
  auto req = fake_.receive();
  ASSERT_TRUE(req.has_value());
  std::string window(proto::kInitialWindow, 'd');
  uint64_t offset = 0;
  while (offset < window.size()) {
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(proto::kMaxChunk, window.size() - offset));
    proto::Message data = message(proto::Type::kFileData, req->id);
    data.flags = offset + n == window.size() ? proto::kFlagEnd : 0;
    data.file_data = {offset, {reinterpret_cast<const uint8_t*>(window.data() + offset), n}};
    ASSERT_TRUE(fake_.send(data));
    offset += n;
  }
  auto result = reply.get();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->data, window);
  EXPECT_TRUE(conn_->alive());
}

TEST_F(FileOpsCall, AnErrorReplyIsReturnedAsItsErrno) {
  proto::Message stat = message(proto::Type::kFileStat, 0);
  stat.file_stat = {proto::to_str(path_)};
  auto reply = call(stat);
  auto req = fake_.receive();
  ASSERT_TRUE(req.has_value());
  ASSERT_TRUE(fake_.send(raw_frame(static_cast<uint8_t>(proto::Type::kError), req->id,
                                   Payload().u32(ENOENT).str("no such file"))));
  auto result = reply.get();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->errnum, static_cast<uint32_t>(ENOENT));
  EXPECT_EQ(result->message, "no such file");
  EXPECT_EQ(file_error(result->errnum, path_, result->message).code, ErrorCode::kPathNotFound);
}

TEST_F(FileOpsCall, AListingWithAnEscapingPathDropsTheConnectionAndFailsTheCall) {
  proto::Message list = message(proto::Type::kFileList, 0);
  list.file_list = {proto::to_str("/home/user"), 1};
  auto reply = call(list);
  auto req = fake_.receive();
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->type, proto::Type::kFileList);
  ASSERT_TRUE(fake_.send(file_entry_frame(req->id, "notes.txt")));
  ASSERT_TRUE(fake_.send(file_entry_frame(req->id, "../x")));
  ASSERT_EQ(reply.wait_for(10s), std::future_status::ready);
  auto result = reply.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::kAgentError);
  EXPECT_NE(result.error().message.find("connection was lost"), std::string::npos) << result.error().message;
  EXPECT_FALSE(conn_->alive());
}

TEST_F(FileOpsCall, AReplyOfTheWrongKindIsAViolation) {
  proto::Message stat = message(proto::Type::kFileStat, 0);
  stat.file_stat = {proto::to_str(path_)};
  auto reply = call(stat);
  auto req = fake_.receive();
  ASSERT_TRUE(req.has_value());
  ASSERT_TRUE(fake_.send(file_entry_frame(req->id, "notes.txt")));  // a listing's reply to a stat
  auto result = reply.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::kAgentError);
  EXPECT_FALSE(conn_->alive());
}

TEST_F(FileOpsCall, ATimedOutCallForgetsItsIdAndTheLateReplyIsDropped) {
  proto::Message stat = message(proto::Type::kFileStat, 0);
  stat.file_stat = {proto::to_str(path_)};
  auto reply = call(stat, 200ms);
  auto req = fake_.receive();
  ASSERT_TRUE(req.has_value());
  auto result = reply.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::kAgentError);
  EXPECT_NE(result.error().message.find("in time"), std::string::npos) << result.error().message;
  // The answer comes after all: dropped, not a violation; the next call works.
  proto::Message info = message(proto::Type::kFileInfo, req->id);
  info.file_info = {proto::kKindFile, 0640, 12, 0};
  ASSERT_TRUE(fake_.send(info));
  auto again = call(stat);
  auto req2 = fake_.receive();
  ASSERT_TRUE(req2.has_value());
  EXPECT_GT(req2->id, req->id);
  ASSERT_TRUE(fake_.send(raw_frame(static_cast<uint8_t>(proto::Type::kError), req2->id,
                                   Payload().u32(EACCES).str(""))));
  auto second = again.get();
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->errnum, static_cast<uint32_t>(EACCES));
  EXPECT_TRUE(conn_->alive());
}

TEST_F(FileOpsCall, ListingEntriesBeyondTheCapAreCountedNotKept) {
  proto::Message list = message(proto::Type::kFileList, 0);
  list.file_list = {proto::to_str("/home/user"), 1};
  auto reply = std::async(std::launch::async, [&] { return file_call(*conn_, list, 10s, 2); });
  auto req = fake_.receive();
  ASSERT_TRUE(req.has_value());
  for (const char* name : {"a", "b", "c", "d"}) ASSERT_TRUE(fake_.send(file_entry_frame(req->id, name)));
  proto::Message done = message(proto::Type::kDone, req->id);
  done.done = {4};
  ASSERT_TRUE(fake_.send(done));
  auto result = reply.get();
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->entries.size(), 2u);
  EXPECT_EQ(result->entries[0].path, "a");
  EXPECT_EQ(result->entries[1].path, "b");
  EXPECT_EQ(result->done_value, 4u);
}

}  // namespace
}  // namespace airlock::daemon
