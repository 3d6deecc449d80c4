#include "engine/agent_client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace airlock {
namespace {

namespace proto = protocol::agent;
using proto::Message;
using proto::Type;

int poll_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
}

Error protocol_error(const std::string& what) { return Error{EPROTO, "agent protocol: " + what}; }

}  // namespace

Error AgentClient::fail(Error e) {
  failed_ = true;
  fd_.reset();
  return e;
}

Result<AgentClient> AgentClient::connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) return plain_error("agent socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return sys_error("agent socket");
  // A unix connect completes at once (into the listener's backlog) or fails.
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return sys_error("connect to agent at " + socket_path);
  AgentClient client(std::move(fd));
  Message hello{};
  hello.type = Type::kHello;
  hello.id = client.next_id_++;
  hello.hello = {proto::kVersion, proto::kVersion};
  TRY_STATUS(client.send_simple(hello));
  auto deadline = Clock::now() + timeout;
  while (!client.handshake_done_) {
    if (Clock::now() >= deadline) return Error{ETIMEDOUT, "agent at " + socket_path + ": no HelloAck"};
    TRY_CTX(client.receive(deadline), "agent at " + socket_path);
  }
  return client;
}

Status AgentClient::send(const std::vector<uint8_t>& frame) {
  if (!connected()) return Error{EPIPE, "agent connection is closed"};
  size_t sent = 0;
  auto deadline = Clock::now() + kIoTimeout;
  while (sent < frame.size()) {
    ssize_t n = ::send(fd_.get(), frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return fail(sys_error("send to agent"));
    // The agent's side is full. Keep taking its frames meanwhile: it may be waiting for room
    // to send before it reads again.
    struct pollfd p = {fd_.get(), POLLOUT | POLLIN, 0};
    int r = ::poll(&p, 1, poll_ms(deadline));
    if (r < 0 && errno != EINTR) return fail(sys_error("poll agent socket"));
    if (r == 0) return fail(Error{ETIMEDOUT, "send to agent: timed out"});
    if (p.revents & POLLIN) TRY_STATUS(receive(Clock::now()));
  }
  return {};
}

Status AgentClient::send_simple(Message m) {
  TRY(auto frame, proto::encode_frame(m));
  return send(frame);
}

Status AgentClient::receive(Clock::time_point deadline) {
  if (!connected()) return Error{EPIPE, "agent connection is closed"};
  struct pollfd p = {fd_.get(), POLLIN, 0};
  int r = ::poll(&p, 1, poll_ms(deadline));
  if (r < 0) return errno == EINTR ? Status{} : fail(sys_error("poll agent socket"));
  if (r == 0) return {};
  auto space = reader_.writable();
  ssize_t n = ::read(fd_.get(), space.data(), space.size());
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return {};
  if (n < 0) return fail(sys_error("read from agent"));
  if (n == 0) return fail(Error{EPIPE, "agent closed the connection"});
  reader_.commit(static_cast<size_t>(n));
  for (;;) {
    Message m;
    auto got = reader_.next(m);
    if (!got.ok()) return fail(std::move(got).error());
    if (!*got) return {};
    if (auto taken = take(m); !taken.ok()) return fail(std::move(taken).error());
  }
}

// Checks one decoded frame against what we asked for, and records it.
Status AgentClient::take(const Message& m) {
  if (!handshake_done_) {
    if (m.type != Type::kHelloAck) return protocol_error("expected HelloAck");
    if (m.hello_ack.version != proto::kVersion) return protocol_error("unsupported agent version");
    agent_version_ = m.hello_ack.version;
    handshake_done_ = true;
    return {};
  }
  auto queue = [this](AgentEvent e) -> Status {
    queued_bytes_ += e.data.size() + sizeof e;
    if (queued_bytes_ > kMaxQueuedBytes) return protocol_error("too many unread events");
    events_.push_back(std::move(e));
    return {};
  };
  bool pending_exec = waiting_exec_ != 0 && m.id == waiting_exec_;
  auto it = processes_.find(m.id);
  switch (m.type) {
    case Type::kStarted:
    case Type::kExecFailed:
      if (!pending_exec || exec_reply_) return protocol_error("unexpected Started/ExecFailed");
      exec_reply_ = StartedProcess{m.id, m.type == Type::kStarted ? m.started.pid : 0,
                                   m.type == Type::kExecFailed ? m.exec_failed.errnum : 0};
      if (m.type == Type::kStarted) processes_[m.id] = Tracked{};
      return {};
    case Type::kOutput: {
      if (it == processes_.end()) return protocol_error("Output for an unknown process");
      if (m.output.data.size > it->second.window) return protocol_error("Output beyond the granted credit");
      it->second.window -= m.output.data.size;
      AgentEvent e;
      e.kind = AgentEvent::Kind::kOutput;
      e.id = m.id;
      e.stream = m.output.stream;
      e.data.assign(reinterpret_cast<const char*>(m.output.data.data), m.output.data.size);
      return queue(std::move(e));
    }
    case Type::kExited: {
      if (it == processes_.end()) return protocol_error("Exited for an unknown process");
      processes_.erase(it);
      AgentEvent e;
      e.kind = AgentEvent::Kind::kExited;
      e.id = m.id;
      e.code = m.exited.code;
      e.signal = m.exited.signal;
      e.timed_out = m.exited.reason == proto::kExitTimeout;
      return queue(std::move(e));
    }
    case Type::kPong:
      if (!waiting_pong_) return protocol_error("unexpected Pong");
      waiting_pong_ = false;
      pong_ = m.pong.processes;
      return {};
    case Type::kError: {
      AgentEvent e;
      e.kind = AgentEvent::Kind::kError;
      e.id = m.id;
      e.errnum = m.error.code;
      e.data = std::string(proto::to_string_view(m.error.message));
      if (pending_exec && !exec_reply_) {
        exec_error_ = std::move(e);
        return {};
      }
      // A process may have exited just before our Stdin/CloseStdin reached the agent: any id we
      // have used is fine.
      if (m.id >= next_id_) return protocol_error("Error about an unknown request");
      return queue(std::move(e));
    }
    default: return protocol_error("unexpected message type");  // file replies: never asked for
  }
}

Result<StartedProcess> AgentClient::exec(const AgentExecRequest& request, std::chrono::milliseconds timeout) {
  if (request.argv.empty()) return plain_error("exec: no command");
  while (processes_.count(next_id_) || next_id_ == 0) ++next_id_;
  uint32_t id = next_id_++;
  TRY(auto frame, proto::encode_exec(id, request));
  waiting_exec_ = id;
  exec_reply_.reset();
  exec_error_.reset();
  struct Reset {
    uint32_t& waiting;
    ~Reset() { waiting = 0; }
  } reset{waiting_exec_};
  TRY_STATUS(send(frame));
  auto deadline = Clock::now() + timeout;
  while (!exec_reply_ && !exec_error_) {
    if (Clock::now() >= deadline) return Error{ETIMEDOUT, "exec " + request.argv[0] + ": no reply from the agent"};
    TRY_STATUS(receive(deadline));
  }
  if (exec_error_) return Error{static_cast<int>(exec_error_->errnum), "exec " + request.argv[0] + ": " + exec_error_->data};
  return *exec_reply_;
}

Result<std::optional<AgentEvent>> AgentClient::next_event(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (events_.empty()) {
    TRY_STATUS(receive(deadline));
    if (events_.empty() && Clock::now() >= deadline) return std::optional<AgentEvent>{};
  }
  AgentEvent e = std::move(events_.front());
  events_.pop_front();
  queued_bytes_ -= e.data.size() + sizeof e;
  return std::optional<AgentEvent>(std::move(e));
}

Status AgentClient::send_stdin(uint32_t id, std::string_view data) {
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), proto::kMaxChunk);
    Message m{};
    m.type = Type::kStdin;
    m.id = id;
    m.input.data = {reinterpret_cast<const uint8_t*>(data.data()), static_cast<uint32_t>(n)};
    TRY_STATUS(send_simple(m));
    data.remove_prefix(n);
  }
  return {};
}

Status AgentClient::close_stdin(uint32_t id) {
  Message m{};
  m.type = Type::kCloseStdin;
  m.id = id;
  return send_simple(m);
}

Status AgentClient::signal(uint32_t id, int sig) {
  Message m{};
  m.type = Type::kSignal;
  m.id = id;
  m.signal.number = static_cast<uint32_t>(sig);
  return send_simple(m);
}

Status AgentClient::resize(uint32_t id, uint16_t rows, uint16_t cols) {
  Message m{};
  m.type = Type::kResize;
  m.id = id;
  m.resize = {rows, cols};
  return send_simple(m);
}

Status AgentClient::credit(uint32_t id, uint32_t bytes) {
  if (bytes == 0) return {};
  auto it = processes_.find(id);
  if (it == processes_.end()) return {};  // exited: nothing more will come
  Message m{};
  m.type = Type::kCredit;
  m.id = id;
  m.credit.bytes = bytes;
  TRY_STATUS(send_simple(m));
  it->second.window += bytes;
  return {};
}

Result<uint32_t> AgentClient::ping(std::chrono::milliseconds timeout) {
  Message m{};
  m.type = Type::kPing;
  while (processes_.count(next_id_) || next_id_ == 0) ++next_id_;
  m.id = next_id_++;
  pong_.reset();
  waiting_pong_ = true;
  TRY_STATUS(send_simple(m));
  auto deadline = Clock::now() + timeout;
  while (!pong_) {
    if (Clock::now() >= deadline) return Error{ETIMEDOUT, "ping: no Pong from the agent"};
    TRY_STATUS(receive(deadline));
  }
  return *pong_;
}

void AgentClient::adopt(uint32_t id) {
  if (id == 0) return;
  processes_[id] = Tracked{};
  if (next_id_ <= id) next_id_ = id + 1;
}

Result<AgentRunResult> AgentClient::run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                        std::string_view stdin_data, std::chrono::milliseconds timeout,
                                        size_t max_output) {
  AgentExecRequest request;
  request.argv = argv;
  request.env = env;
  auto deadline = Clock::now() + timeout;
  TRY(auto started, exec(request, timeout));
  AgentRunResult result;
  if (started.exec_errno) {
    result.exec_errno = started.exec_errno;
    result.exit_code = started.exec_errno == ENOENT ? 127 : 126;
    return result;
  }
  // The whole stdin goes first: the agent buffers a chunk per process and the pipe holds more;
  // a command that needs its output read before it takes more stdin has to use the event API.
  if (!stdin_data.empty()) TRY_STATUS(send_stdin(started.id, stdin_data));
  TRY_STATUS(close_stdin(started.id));
  std::vector<AgentEvent> others;  // events of other processes go back to the queue afterwards
  auto give_back = [&] {
    for (auto it = others.rbegin(); it != others.rend(); ++it) {
      queued_bytes_ += it->data.size() + sizeof *it;
      events_.push_front(std::move(*it));
    }
  };
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      (void)signal(started.id, SIGKILL);
      give_back();
      return Error{ETIMEDOUT, "run " + argv[0] + ": timed out"};
    }
    auto event = next_event(left);
    if (!event.ok()) {
      give_back();
      return std::move(event).error();
    }
    if (!*event) continue;
    AgentEvent& e = **event;
    if (e.id != started.id) {
      others.push_back(std::move(e));
      continue;
    }
    if (e.kind == AgentEvent::Kind::kOutput) {
      std::string& out = e.stream == proto::kStdout ? result.stdout_data : result.stderr_data;
      if (out.size() + e.data.size() > max_output) {
        (void)signal(started.id, SIGKILL);
        give_back();
        return Error{EFBIG, "run " + argv[0] + ": output over " + std::to_string(max_output) + " bytes"};
      }
      out += e.data;
      TRY_STATUS(credit(started.id, static_cast<uint32_t>(e.data.size())));
    } else if (e.kind == AgentEvent::Kind::kExited) {
      result.exit_code = e.code;
      result.signal = static_cast<int>(e.signal);
      result.timed_out = e.timed_out;
      give_back();
      return result;
    } else if (e.errnum != EPIPE && e.errnum != ESRCH) {  // those: stdin the process no longer wanted
      give_back();
      return Error{static_cast<int>(e.errnum), "run " + argv[0] + ": " + e.data};
    }
  }
}

}  // namespace airlock
