// Process: the bookkeeping of one process started through the API. Most tests feed it agent
// messages directly, as the hub thread would (no connection: credit has nowhere to go); the
// flow-control tests put it on a real AgentHub connection to a fake agent and look at the Credit
// frames the agent receives.
#include "daemon/process.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "daemon/process_stream.h"
#include "daemon/timers.h"

namespace airlock::daemon {
namespace {

namespace proto = protocol::agent;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Verdict = AgentSink::Verdict;

// ---- Messages as the agent sends them ----------------------------------------------------------

proto::Message started(uint32_t id, uint32_t pid) {
  proto::Message m{};
  m.type = proto::Type::kStarted;
  m.id = id;
  m.started = {pid};
  return m;
}

// `data` must outlive the message.
proto::Message output(uint32_t id, std::string_view data, uint32_t stream = proto::kStdout) {
  proto::Message m{};
  m.type = proto::Type::kOutput;
  m.id = id;
  m.output = {stream, {reinterpret_cast<const uint8_t*>(data.data()), static_cast<uint32_t>(data.size())}};
  return m;
}

proto::Message exited(uint32_t id, int32_t code, uint32_t signal = 0, uint32_t reason = proto::kExitNormal) {
  proto::Message m{};
  m.type = proto::Type::kExited;
  m.id = id;
  m.exited = {code, signal, reason};
  return m;
}

proto::Message exec_failed(uint32_t id, uint32_t errnum) {
  proto::Message m{};
  m.type = proto::Type::kExecFailed;
  m.id = id;
  m.exec_failed = {errnum};
  return m;
}

proto::Message error_reply(uint32_t id, uint32_t errnum, std::string_view text) {
  proto::Message m{};
  m.type = proto::Type::kError;
  m.id = id;
  m.error = {errnum, proto::to_str(text)};
  return m;
}

constexpr uint32_t kId = 9;

std::shared_ptr<Process> make_process(ProcessKind kind = ProcessKind::kBackground, size_t ring_bytes = 1 << 20,
                                      std::shared_ptr<AgentConnection> conn = nullptr, uint32_t id = kId) {
  ProcessSpec spec;
  spec.kind = kind;
  spec.argv = {"/bin/sh", "-c", "echo hi"};
  spec.ring_bytes = ring_bytes;
  spec.max_output = 16;
  return std::make_shared<Process>(id, std::move(spec), 1000, std::move(conn));
}

// A started process.
std::shared_ptr<Process> running(ProcessKind kind = ProcessKind::kBackground, size_t ring_bytes = 1 << 20) {
  auto p = make_process(kind, ring_bytes);
  EXPECT_EQ(p->on_message(started(kId, 42)), Verdict::kMore);
  return p;
}

std::string joined(const Process::Read& r) {
  std::string all;
  for (const auto& c : r.chunks) all += c.data;
  return all;
}

// ---- Ring and read() ----------------------------------------------------------------------------

TEST(ProcessRing, OutputIsKeptWithItsOffsetsAndStreams) {
  auto p = running();
  EXPECT_EQ(p->on_message(output(kId, "hello ")), Verdict::kMore);
  EXPECT_EQ(p->on_message(output(kId, "oops", proto::kStderr)), Verdict::kMore);
  auto r = p->read(0, 1 << 20);
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[0].offset, 0u);
  EXPECT_EQ(r.chunks[0].stream, 1);
  EXPECT_EQ(r.chunks[0].data, "hello ");
  EXPECT_EQ(r.chunks[1].offset, 6u);
  EXPECT_EQ(r.chunks[1].stream, 2);
  EXPECT_EQ(r.chunks[1].data, "oops");
  EXPECT_EQ(r.gap_length, 0u);
  EXPECT_EQ(r.next, 10u);
  EXPECT_FALSE(r.ended);
  EXPECT_EQ(p->buffer().start, 0u);
  EXPECT_EQ(p->buffer().end, 10u);
}

TEST(ProcessRing, OverflowDropsTheOldestBytesAndReadReportsTheGap) {
  auto p = running(ProcessKind::kBackground, 10);
  p->on_message(output(kId, "abcdef"));
  p->on_message(output(kId, "ghijkl", proto::kStderr));
  // 12 bytes into a ring of 10: the first chunk is cut at its front.
  EXPECT_EQ(p->buffer().start, 2u);
  EXPECT_EQ(p->buffer().end, 12u);
  auto r = p->read(0, 1 << 20);
  EXPECT_EQ(r.gap_offset, 0u);
  EXPECT_EQ(r.gap_length, 2u);
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[0].offset, 2u);
  EXPECT_EQ(r.chunks[0].data, "cdef");
  EXPECT_EQ(r.chunks[0].stream, 1);
  EXPECT_EQ(r.chunks[1].offset, 6u);
  EXPECT_EQ(r.chunks[1].data, "ghijkl");
  EXPECT_EQ(r.chunks[1].stream, 2);
  EXPECT_EQ(r.next, 12u);

  // A chunk larger than the ring: everything older goes, and it keeps only its own tail.
  p->on_message(output(kId, "mnopqrstuvwxyz"));
  EXPECT_EQ(p->buffer().start, 16u);
  EXPECT_EQ(p->buffer().end, 26u);
  r = p->read(5, 1 << 20);
  EXPECT_EQ(r.gap_offset, 5u);
  EXPECT_EQ(r.gap_length, 11u);
  ASSERT_EQ(r.chunks.size(), 1u);
  EXPECT_EQ(r.chunks[0].offset, 16u);
  EXPECT_EQ(r.chunks[0].data, "qrstuvwxyz");
  // Reading from the start of what is kept: no gap.
  r = p->read(16, 1 << 20);
  EXPECT_EQ(r.gap_length, 0u);
  EXPECT_EQ(joined(r), "qrstuvwxyz");
}

TEST(ProcessRing, ReadStartsInsideAChunkAndStopsAtMaxBytes) {
  auto p = running();
  p->on_message(output(kId, "abcdef"));
  p->on_message(output(kId, "ghijkl", proto::kStderr));
  auto r = p->read(3, 5);
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[0].offset, 3u);
  EXPECT_EQ(r.chunks[0].data, "def");
  EXPECT_EQ(r.chunks[1].offset, 6u);
  EXPECT_EQ(r.chunks[1].data, "gh");
  EXPECT_EQ(r.chunks[1].stream, 2);
  EXPECT_EQ(r.next, 8u);
  // Continuing from `next` gives the rest, once.
  r = p->read(r.next, 100);
  ASSERT_EQ(r.chunks.size(), 1u);
  EXPECT_EQ(r.chunks[0].offset, 8u);
  EXPECT_EQ(r.chunks[0].data, "ijkl");
  EXPECT_EQ(r.next, 12u);
  // At or past the end: nothing, no gap, `next` at the end.
  r = p->read(12, 100);
  EXPECT_TRUE(r.chunks.empty());
  EXPECT_EQ(r.next, 12u);
  r = p->read(1000, 100);
  EXPECT_TRUE(r.chunks.empty());
  EXPECT_EQ(r.gap_length, 0u);
  EXPECT_EQ(r.next, 12u);
  // max_bytes 0: nothing taken.
  r = p->read(0, 0);
  EXPECT_TRUE(r.chunks.empty());
  EXPECT_EQ(r.next, 0u);
}

TEST(ProcessRing, EndedOnlyOnceEverythingWasRead) {
  auto p = running();
  p->on_message(output(kId, "abc"));
  p->on_message(exited(kId, 0));
  auto r = p->read(0, 2);
  EXPECT_EQ(joined(r), "ab");
  EXPECT_FALSE(r.ended);
  r = p->read(r.next, 100);
  EXPECT_EQ(joined(r), "c");
  EXPECT_TRUE(r.ended);
}

TEST(ProcessRing, OnOutputSeesEveryChunk) {
  auto p = running();
  std::vector<std::tuple<uint32_t, int, std::string>> seen;
  p->on_output([&](uint32_t pid, int stream, std::string_view data) { seen.emplace_back(pid, stream, data); });
  p->on_message(output(kId, "out"));
  p->on_message(output(kId, "err", proto::kStderr));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_tuple(42u, 1, std::string("out")));
  EXPECT_EQ(seen[1], std::make_tuple(42u, 2, std::string("err")));
}

TEST(ProcessRing, RunKeepsTheTailOfEachStream) {
  auto p = running(ProcessKind::kRun);
  p->on_message(output(kId, "0123456789"));
  p->on_message(output(kId, "abcdefghij"));  // max_output is 16 per stream
  p->on_message(output(kId, "E", proto::kStderr));
  p->on_message(exited(kId, 3));
  auto o = p->outcome();
  EXPECT_EQ(o.process_id, kId);
  EXPECT_EQ(o.pid, 42u);
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_EQ(o.stdout_tail, "456789abcdefghij");
  EXPECT_EQ(o.stdout_bytes, 20u);
  EXPECT_TRUE(o.stdout_truncated);
  EXPECT_EQ(o.stderr_tail, "E");
  EXPECT_FALSE(o.stderr_truncated);
}

// ---- How it ends --------------------------------------------------------------------------------

TEST(ProcessExit, ACodeMeansExited) {
  auto p = running();
  EXPECT_EQ(p->on_message(exited(kId, 3)), Verdict::kDone);
  auto e = p->end();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->reason, "exited");
  EXPECT_EQ(e->exit_code, 3);
  EXPECT_EQ(e->signal, 0);
  EXPECT_GT(e->ended_at, 0);
  EXPECT_TRUE(p->exited());
  EXPECT_FALSE(p->stdin_open());
}

TEST(ProcessExit, ASignalMeansSignaledWith128PlusN) {
  auto p = running();
  EXPECT_EQ(p->on_message(exited(kId, -1, SIGKILL)), Verdict::kDone);
  ASSERT_TRUE(p->end().has_value());
  EXPECT_EQ(p->end()->reason, "signaled");
  EXPECT_EQ(p->end()->exit_code, 128 + SIGKILL);
  EXPECT_EQ(p->end()->signal, SIGKILL);

  auto q = running();
  q->on_message(exited(kId, -1, 64));
  EXPECT_EQ(q->end()->exit_code, 192);
  EXPECT_EQ(q->end()->signal, 64);
}

TEST(ProcessExit, ReasonTimeoutMeans124) {
  auto p = running();
  EXPECT_EQ(p->on_message(exited(kId, -1, SIGKILL, proto::kExitTimeout)), Verdict::kDone);
  ASSERT_TRUE(p->end().has_value());
  EXPECT_EQ(p->end()->reason, "timeout");
  EXPECT_EQ(p->end()->exit_code, 124);
  EXPECT_TRUE(p->outcome().timed_out);
}

TEST(ProcessExit, ExecFailedEnoentIs127FailedToStart) {
  auto p = make_process();
  EXPECT_EQ(p->on_message(exec_failed(kId, ENOENT)), Verdict::kDone);
  EXPECT_TRUE(p->started());
  ASSERT_TRUE(p->end().has_value());
  EXPECT_EQ(p->end()->reason, "failed_to_start");
  EXPECT_EQ(p->end()->exit_code, 127);
  ASSERT_TRUE(p->end()->error.has_value());
  EXPECT_NE(p->end()->error->find("/bin/sh"), std::string::npos) << *p->end()->error;
  EXPECT_NE(p->end()->error->find("ENOENT"), std::string::npos) << *p->end()->error;
  EXPECT_EQ(p->pid(), 0u);
}

TEST(ProcessExit, ExecFailedOtherwiseIs126) {
  auto p = make_process();
  p->on_message(exec_failed(kId, EACCES));
  ASSERT_TRUE(p->end().has_value());
  EXPECT_EQ(p->end()->reason, "failed_to_start");
  EXPECT_EQ(p->end()->exit_code, 126);
}

TEST(ProcessExit, AnErrorForTheExecIsAFailureToStart) {
  auto p = make_process();
  EXPECT_EQ(p->on_message(error_reply(kId, ENOTDIR, "cwd is not a directory")), Verdict::kDone);
  ASSERT_TRUE(p->end().has_value());
  EXPECT_EQ(p->end()->reason, "failed_to_start");
  EXPECT_EQ(p->end()->exit_code, 126);
  EXPECT_NE(p->end()->error->find("cwd is not a directory"), std::string::npos);
}

TEST(ProcessExit, ESrchForAProbedProcessMeansItsExitWasLost) {
  auto p = running();
  EXPECT_EQ(p->on_message(error_reply(kId, ESRCH, "no such process")), Verdict::kDone);
  ASSERT_TRUE(p->end().has_value());
  EXPECT_EQ(p->end()->reason, "exited");
  EXPECT_EQ(p->end()->exit_code, 255);
}

TEST(ProcessExit, OtherErrorsAboutARunningProcessChangeNothing) {
  auto p = running();
  EXPECT_EQ(p->on_message(error_reply(kId, EPIPE, "stdin is closed")), Verdict::kMore);
  EXPECT_FALSE(p->exited());
}

TEST(ProcessExit, ALostConnectionBeforeStartedIsAFailureToStart) {
  auto p = make_process();
  p->on_disconnect(Error{ECONNRESET, "the agent closed the connection"});
  EXPECT_TRUE(p->started());
  ASSERT_TRUE(p->end().has_value());
  EXPECT_EQ(p->end()->reason, "failed_to_start");
  EXPECT_TRUE(p->wait_started(0ms));
  EXPECT_TRUE(p->wait_exit(0ms));
}

TEST(ProcessExit, ALostConnectionAfterStartedLeavesItRunning) {
  auto p = running();
  p->on_disconnect(Error{ECONNRESET, "the agent closed the connection"});
  EXPECT_FALSE(p->exited());
  EXPECT_FALSE(p->wait_exit(10ms));
}

TEST(ProcessExit, SandboxStoppedOverridesWhatever) {
  auto p = running();
  p->mark_sandbox_stopped(5000);
  ASSERT_TRUE(p->end().has_value());
  EXPECT_EQ(p->end()->reason, "sandbox_stopped");
  EXPECT_EQ(p->end()->exit_code, 137);
  EXPECT_EQ(p->end()->ended_at, 5000);
  // An Exited that comes after is a protocol violation for this sink (it ended).
  EXPECT_EQ(p->on_message(exited(kId, 0)), Verdict::kViolation);
  EXPECT_EQ(p->end()->reason, "sandbox_stopped");
}

// ---- What the agent may not do (each answer drops the connection) -------------------------------

TEST(ProcessViolations, OutputBeforeStarted) {
  auto p = make_process();
  EXPECT_EQ(p->on_message(output(kId, "x")), Verdict::kViolation);
  EXPECT_EQ(p->buffer().end, 0u);
}

TEST(ProcessViolations, ExitedBeforeStarted) {
  auto p = make_process();
  EXPECT_EQ(p->on_message(exited(kId, 0)), Verdict::kViolation);
  EXPECT_FALSE(p->exited());
}

TEST(ProcessViolations, ASecondStartedOrExecFailed) {
  auto p = running();
  EXPECT_EQ(p->on_message(started(kId, 43)), Verdict::kViolation);
  EXPECT_EQ(p->on_message(exec_failed(kId, ENOENT)), Verdict::kViolation);
  EXPECT_EQ(p->pid(), 42u);
  EXPECT_FALSE(p->exited());
}

TEST(ProcessViolations, OutputOrExitedAfterExited) {
  auto p = running();
  p->on_message(exited(kId, 0));
  EXPECT_EQ(p->on_message(output(kId, "late")), Verdict::kViolation);
  EXPECT_EQ(p->on_message(exited(kId, 1)), Verdict::kViolation);
  EXPECT_EQ(p->end()->exit_code, 0);
}

TEST(ProcessViolations, AFileReplyForAProcessId) {
  auto p = running();
  proto::Message m{};
  m.type = proto::Type::kDone;
  m.id = kId;
  m.done = {0};
  EXPECT_EQ(p->on_message(m), Verdict::kViolation);
}

TEST(ProcessViolations, OutputBeyondTheWindowWithoutCredit) {
  auto p = running(ProcessKind::kStream);
  std::string chunk(60 * 1024, 'y');
  for (int i = 0; i < 4; ++i) EXPECT_EQ(p->on_message(output(kId, chunk)), Verdict::kMore);  // 240 KiB
  std::string rest(proto::kInitialWindow - 4 * chunk.size(), 'z');
  EXPECT_EQ(p->on_message(output(kId, rest)), Verdict::kMore);  // exactly the window
  EXPECT_EQ(p->on_message(output(kId, "!")), Verdict::kViolation);
  EXPECT_EQ(p->buffer().end, proto::kInitialWindow);
}

// ---- notify() and on_end() ----------------------------------------------------------------------

TEST(ProcessNotify, FiresAtOnceWhenTheReaderIsBehind) {
  auto p = running();
  p->on_message(output(kId, "abc"));
  int calls = 0;
  EXPECT_EQ(p->notify(2, [&] { ++calls; }), 0u);
  EXPECT_EQ(calls, 1);
}

TEST(ProcessNotify, FiresOnceOnTheNextOutput) {
  auto p = running();
  p->on_message(output(kId, "abc"));
  int calls = 0;
  EXPECT_NE(p->notify(3, [&] { ++calls; }), 0u);
  EXPECT_EQ(calls, 0);
  p->on_message(output(kId, "d"));
  EXPECT_EQ(calls, 1);
  p->on_message(output(kId, "e"));
  p->on_message(exited(kId, 0));
  EXPECT_EQ(calls, 1);
}

TEST(ProcessNotify, FiresOnExitAndAtOnceAfterIt) {
  auto p = running();
  int calls = 0;
  p->notify(0, [&] { ++calls; });
  p->on_message(exited(kId, 0));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(p->notify(0, [&] { ++calls; }), 0u);
  EXPECT_EQ(calls, 2);
}

TEST(ProcessNotify, ACancelledWaiterIsNotCalled) {
  auto p = running();
  int calls = 0;
  uint64_t token = p->notify(0, [&] { ++calls; });
  ASSERT_NE(token, 0u);
  p->cancel_notify(token);
  p->on_message(output(kId, "x"));
  p->on_message(exited(kId, 0));
  EXPECT_EQ(calls, 0);
}

TEST(ProcessNotify, WaitersAreCalledWithoutTheProcessLock) {
  auto p = running();
  bool read_inside = false;
  p->notify(0, [&] {
    read_inside = p->read(0, 10).next == 1;  // would deadlock under the lock
  });
  p->on_message(output(kId, "x"));
  EXPECT_TRUE(read_inside);
}

TEST(ProcessOnEnd, CalledOnceWithTheEnd) {
  auto p = running();
  int calls = 0;
  std::string reason;
  p->on_end([&](Process& proc) {
    ++calls;
    reason = proc.end()->reason;  // without the lock: it may look at the process
  });
  p->on_message(output(kId, "x"));
  EXPECT_EQ(calls, 0);
  p->on_message(exited(kId, -1, SIGTERM));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(reason, "signaled");
  p->mark_sandbox_stopped(1);
  p->on_disconnect(Error{ECONNRESET, "gone"});
  EXPECT_EQ(calls, 1);
}

TEST(ProcessOnEnd, CalledForAFailureToStart) {
  auto p = make_process();
  int calls = 0;
  p->on_end([&](Process&) { ++calls; });
  p->on_message(exec_failed(kId, ENOENT));
  p->on_disconnect(Error{ECONNRESET, "gone"});
  EXPECT_EQ(calls, 1);
}

TEST(ProcessOnEnd, CalledWhenTheSandboxStops) {
  auto p = running();
  int calls = 0;
  p->on_end([&](Process&) { ++calls; });
  p->mark_sandbox_stopped(1);
  p->mark_sandbox_stopped(2);
  EXPECT_EQ(calls, 1);
}

TEST(ProcessOnEnd, WaitExitWakesAcrossThreads) {
  auto p = running();
  std::thread hub([&] {
    std::this_thread::sleep_for(20ms);
    p->on_message(exited(kId, 0));
  });
  EXPECT_TRUE(p->wait_exit(10s));
  hub.join();
}

// ---- Flow control, observed by a fake agent ------------------------------------------------------

bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    struct pollfd p = {fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

struct Received {
  proto::Type type{};
  uint32_t id = 0, flags = 0;
  uint64_t value = 0;  // Credit bytes, Signal number
  size_t data_size = 0;
};

// Answers the Hello, then does what the test says on the accepted socket.
class FakeAgent {
 public:
  FakeAgent() {
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
    thread_ = std::thread([this] {
      if (!wait_fd(listen_.get(), POLLIN, Clock::now() + 10s)) return;
      conn_.reset(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      auto hello = receive();
      if (!hello || hello->type != proto::Type::kHello) return;
      proto::Message ack{};
      ack.type = proto::Type::kHelloAck;
      ack.id = hello->id;
      ack.hello_ack = {1, proto::kCapExec};
      send(ack);
    });
  }
  ~FakeAgent() {
    if (thread_.joinable()) thread_.join();
    conn_.reset();
    listen_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::shared_ptr<AgentConnection> connect(AgentHub& hub) {
    auto conn = hub.connect(path_, "sb-proc", 2, 5s);
    thread_.join();
    if (!conn.ok()) {
      ADD_FAILURE() << conn.error().message;
      return nullptr;
    }
    return std::move(conn).value();
  }

  bool send(const proto::Message& m) {
    auto frame = proto::encode_frame(m);
    if (!frame.ok()) {
      ADD_FAILURE() << frame.error().message;
      return false;
    }
    auto deadline = Clock::now() + 5s;
    size_t sent = 0;
    while (sent < frame->size()) {
      ssize_t n = ::send(conn_.get(), frame->data() + sent, frame->size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
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

  std::optional<Received> receive(std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      proto::Message m;
      auto got = reader_.next(m);
      if (!got.ok()) {
        ADD_FAILURE() << got.error().message;
        return std::nullopt;
      }
      if (*got) {
        Received r{m.type, m.id, m.flags};
        if (m.type == proto::Type::kCredit) r.value = m.credit.bytes;
        if (m.type == proto::Type::kSignal) r.value = m.signal.number;
        if (m.type == proto::Type::kStdin) r.data_size = m.input.data.size;
        return r;
      }
      if (!wait_fd(conn_.get(), POLLIN, deadline)) return std::nullopt;
      auto space = reader_.writable();
      ssize_t n = ::recv(conn_.get(), space.data(), space.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return std::nullopt;
      reader_.commit(static_cast<size_t>(n));
    }
  }

  // Sends `total` bytes of Output on `id` the way an honest agent does: never beyond the id's
  // window, reading Credit to widen it. False if it waited more than `stall` for credit.
  bool send_output(uint32_t id, size_t total, std::chrono::milliseconds stall = 5s) {
    std::string chunk(60 * 1024, 'o');
    size_t sent = 0;
    while (sent < total) {
      size_t n = std::min(chunk.size(), total - sent);
      while (streams_[id].sent + n > streams_[id].window) {
        auto r = receive(stall);
        if (!r) return false;
        take_credit(*r);
      }
      if (!send(output(id, std::string_view(chunk).substr(0, n)))) return false;
      sent += n;
      streams_[id].sent += n;
    }
    return true;
  }
  // The window of `id` after reading what the daemon sends for `timeout`.
  uint64_t collect_credit(uint32_t id, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto r = receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
      if (!r) break;
      take_credit(*r);
    }
    return streams_[id].window;
  }
  const std::vector<uint64_t>& credits(uint32_t id) { return streams_[id].credits; }

 private:
  void take_credit(const Received& r) {
    if (r.type != proto::Type::kCredit) return;
    streams_[r.id].window += r.value;
    streams_[r.id].credits.push_back(r.value);
  }

  std::string dir_, path_;
  UniqueFd listen_, conn_;
  std::thread thread_;
  proto::FrameReader reader_{proto::Direction::kToAgent};
  struct Stream {
    uint64_t window = proto::kInitialWindow, sent = 0;
    std::vector<uint64_t> credits;
  };
  std::map<uint32_t, Stream> streams_;
};

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
  auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

class ProcessCredit : public ::testing::Test {
 protected:
  void SetUp() override {
    conn_ = fake_.connect(hub_);
    ASSERT_TRUE(conn_);
  }
  std::shared_ptr<Process> start(ProcessKind kind) {
    uint32_t id = conn_->next_id();
    auto p = make_process(kind, 1 << 20, conn_, id);
    conn_->expect(id, p);
    EXPECT_TRUE(fake_.send(started(id, 42)));
    EXPECT_TRUE(p->wait_started(5s));
    return p;
  }

  Logger log_{LogLevel::kError};
  AgentHub hub_{log_};
  FakeAgent fake_;
  std::shared_ptr<AgentConnection> conn_;
};

TEST_F(ProcessCredit, StreamGrantsCreditOnlyAsTheConsumerTakesOutput) {
  auto p = start(ProcessKind::kStream);
  ASSERT_TRUE(fake_.send_output(p->id(), 240 * 1024));
  ASSERT_TRUE(eventually([&] { return p->buffer().end == 240 * 1024; }));
  // Received but not consumed: no credit.
  EXPECT_EQ(fake_.collect_credit(p->id(), 200ms), proto::kInitialWindow);
  EXPECT_TRUE(fake_.credits(p->id()).empty());
  // The consumer took 100 KiB: the window slides by exactly that.
  p->consumed(100 * 1024);
  EXPECT_EQ(fake_.collect_credit(p->id(), 500ms), proto::kInitialWindow + 100 * 1024);
  // Less than a quarter window more: held back (credit goes in steps).
  p->consumed(120 * 1024);
  EXPECT_EQ(fake_.collect_credit(p->id(), 200ms), proto::kInitialWindow + 100 * 1024);
  p->consumed(240 * 1024);
  EXPECT_EQ(fake_.collect_credit(p->id(), 500ms), proto::kInitialWindow + 240 * 1024);
  // An offset beyond what was received grants nothing beyond it.
  p->consumed(10u << 20);
  EXPECT_EQ(fake_.collect_credit(p->id(), 200ms), proto::kInitialWindow + 240 * 1024);
  // With that credit the agent may send another window's worth; the connection holds.
  ASSERT_TRUE(fake_.send_output(p->id(), proto::kInitialWindow));
  ASSERT_TRUE(eventually([&] { return p->buffer().end == 240 * 1024 + proto::kInitialWindow; }));
  EXPECT_TRUE(conn_->alive());
}

TEST_F(ProcessCredit, BackgroundAndRunGrantCreditOnReceipt) {
  for (ProcessKind kind : {ProcessKind::kBackground, ProcessKind::kRun}) {
    auto p = start(kind);
    // Four windows' worth: an honest agent that waits for credit is never stalled.
    ASSERT_TRUE(fake_.send_output(p->id(), 4 * proto::kInitialWindow)) << kind_name(kind) << ": stalled";
    ASSERT_TRUE(eventually([&] { return p->buffer().end == 4 * proto::kInitialWindow; }));
    EXPECT_TRUE(conn_->alive());
    for (uint64_t c : fake_.credits(p->id())) EXPECT_GE(c, proto::kInitialWindow / 4) << "credit in small steps";
    // consumed() is for streams only.
    auto before = fake_.collect_credit(p->id(), 100ms);
    p->consumed(p->buffer().end);
    EXPECT_EQ(fake_.collect_credit(p->id(), 200ms), before);
    p->on_message(exited(p->id(), 0));
  }
}

TEST_F(ProcessCredit, ReleaseGrantsWhatWasHeldAndThenCreditFollowsReceipt) {
  auto p = start(ProcessKind::kStream);
  ASSERT_TRUE(fake_.send_output(p->id(), 200 * 1024));
  ASSERT_TRUE(eventually([&] { return p->buffer().end == 200 * 1024; }));
  EXPECT_EQ(fake_.collect_credit(p->id(), 200ms), proto::kInitialWindow);
  p->release();  // the consumer left
  EXPECT_EQ(fake_.collect_credit(p->id(), 500ms), proto::kInitialWindow + 200 * 1024);
  p->release();  // once
  EXPECT_EQ(fake_.collect_credit(p->id(), 200ms), proto::kInitialWindow + 200 * 1024);
  // From now on it drains like a background process.
  ASSERT_TRUE(fake_.send_output(p->id(), 3 * proto::kInitialWindow)) << "stalled after release";
  EXPECT_TRUE(conn_->alive());
}

TEST_F(ProcessCredit, ControlFramesReachTheAgent) {
  auto p = start(ProcessKind::kBackground);
  ASSERT_TRUE(p->send_stdin("hello", false).ok());
  auto r = fake_.receive();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->type, proto::Type::kStdin);
  EXPECT_EQ(r->data_size, 5u);
  ASSERT_TRUE(p->signal(SIGTERM).ok());
  r = fake_.receive();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->type, proto::Type::kSignal);
  EXPECT_EQ(r->value, static_cast<uint64_t>(SIGTERM));
  EXPECT_EQ(r->flags, proto::kFlagGroup);
  ASSERT_TRUE(p->close_stdin().ok());
  r = fake_.receive();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->type, proto::Type::kCloseStdin);
  EXPECT_FALSE(p->stdin_open());
  auto again = p->send_stdin("more", false);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().errnum, EPIPE);
}

// A streaming response's client goes away: the command is killed (kill_on_cancel) and its output
// is released so that it can drain and end.
TEST_F(ProcessCredit, ACancelledStreamKillsAndReleases) {
  Timers timers;
  auto p = start(ProcessKind::kStream);
  ASSERT_TRUE(fake_.send_output(p->id(), 200 * 1024));
  ASSERT_TRUE(eventually([&] { return p->buffer().end == 200 * 1024; }));
  ProcessEventSource::Options options;
  options.kill_on_cancel = true;
  auto source = std::make_shared<ProcessEventSource>(p, options, timers);
  source->cancel();
  bool killed = false;
  uint64_t credit = 0;
  while (auto r = fake_.receive(1s)) {
    if (r->type == proto::Type::kSignal) killed = r->value == SIGKILL;
    if (r->type == proto::Type::kCredit) credit += r->value;
  }
  EXPECT_TRUE(killed);
  EXPECT_EQ(credit, 200u * 1024);
}

// A stream's consumer is the event source: credit follows what it delivered.
TEST_F(ProcessCredit, AStreamSourceGrantsCreditAsItDelivers) {
  Timers timers;
  auto p = start(ProcessKind::kStream);
  ASSERT_TRUE(fake_.send_output(p->id(), 240 * 1024));
  ASSERT_TRUE(eventually([&] { return p->buffer().end == 240 * 1024; }));
  auto source = std::make_shared<ProcessEventSource>(p, ProcessEventSource::Options{}, timers);
  size_t delivered = 0;
  std::atomic<int> pulls{0};
  for (int i = 0; i < 4; ++i) {
    source->pull([&](std::string data, bool) {
      delivered += data.size();
      ++pulls;
    });
  }
  EXPECT_EQ(pulls.load(), 4);
  EXPECT_GT(delivered, 240u * 1024);
  // Three batches of 64 KiB slid the window; the last 48 KiB waits for a full step.
  EXPECT_EQ(fake_.collect_credit(p->id(), 500ms), proto::kInitialWindow + 3 * 64 * 1024);
  source->cancel();
}

}  // namespace
}  // namespace airlock::daemon
