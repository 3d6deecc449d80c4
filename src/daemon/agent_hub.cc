#include "daemon/agent_hub.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

namespace airlock::daemon {

namespace proto = protocol::agent;
using Clock = std::chrono::steady_clock;

namespace {

Error protocol_error(const std::string& what) { return Error{EPROTO, "agent protocol: " + what}; }

int poll_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60000));
}

// The handshake, blocking (bounded): Hello out, HelloAck back, nothing else accepted before it.
Status handshake(int fd, proto::FrameReader& reader, Clock::time_point deadline) {
  proto::Message hello{};
  hello.type = proto::Type::kHello;
  hello.id = 1;  // an id of its own; answered by HelloAck and never used again
  hello.hello = {proto::kVersion, proto::kVersion};
  TRY(auto frame, proto::encode_frame(hello));
  size_t sent = 0;
  while (sent < frame.size()) {
    ssize_t n = ::send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return sys_error("send Hello");
    struct pollfd p = {fd, POLLOUT, 0};
    if (::poll(&p, 1, poll_ms(deadline)) == 0) return Error{ETIMEDOUT, "send Hello: timed out"};
  }
  for (;;) {
    proto::Message m;
    TRY(bool got, reader.next(m));
    if (got) {
      if (m.type != proto::Type::kHelloAck) return protocol_error("expected HelloAck");
      if (m.hello_ack.version != proto::kVersion) return protocol_error("unsupported agent version");
      return {};
    }
    struct pollfd p = {fd, POLLIN, 0};
    int r = ::poll(&p, 1, poll_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Error{ETIMEDOUT, "no HelloAck"};
    auto space = reader.writable();
    ssize_t n = ::recv(fd, space.data(), space.size(), MSG_DONTWAIT);
    if (n == 0) return Error{ECONNRESET, "the agent closed the connection"};
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return sys_error("recv");
    }
    reader.commit(static_cast<size_t>(n));
  }
}

}  // namespace

// --- AgentConnection ---------------------------------------------------------------------------------

AgentConnection::AgentConnection(AgentHub& hub, UniqueFd fd, std::string name, uint32_t first_id)
    : hub_(hub), fd_(std::move(fd)), name_(std::move(name)), next_id_(std::max<uint32_t>(first_id, 2)) {}

void AgentConnection::expect(uint32_t id, std::shared_ptr<AgentSink> sink) {
  bool gone = false;
  {
    std::lock_guard guard(sinks_mu_);
    if (alive_) {
      sinks_[id] = std::move(sink);
    } else {
      gone = true;
    }
  }
  if (gone) sink->on_disconnect(Error{EPIPE, "agent connection is closed"});
}

void AgentConnection::forget(uint32_t id) {
  std::lock_guard guard(sinks_mu_);
  sinks_.erase(id);
}

Status AgentConnection::send(const proto::Message& m, std::chrono::milliseconds wait) {
  TRY(auto frame, proto::encode_frame(m));
  return send_frame(std::move(frame), wait);
}

Status AgentConnection::send_frame(std::vector<uint8_t> frame, std::chrono::milliseconds wait) {
  std::unique_lock lock(out_mu_);
  auto deadline = Clock::now() + wait;
  while (alive_ && !out_.empty() && out_.size() + frame.size() > kMaxQueued) {
    if (out_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return Error{ETIMEDOUT, "agent " + name_ + " is not reading"};
    }
  }
  if (!alive_) return Error{EPIPE, "agent connection is closed"};
  out_.append(reinterpret_cast<const char*>(frame.data()), frame.size());
  // Write now from this thread when the socket takes it (the common case: no hop to the hub).
  Status status = flush_locked();
  if (!status.ok()) {
    lock.unlock();
    close(status.error());
    return status;
  }
  if (!out_.empty() && !want_write_) {
    want_write_ = true;
    hub_.want_write(*this, true);
  }
  return {};
}

void AgentConnection::send_control(std::vector<uint8_t> frame) {
  Status status;
  {
    std::lock_guard guard(out_mu_);
    if (!alive_) return;
    out_.append(reinterpret_cast<const char*>(frame.data()), frame.size());
    status = flush_locked();
    if (status.ok() && !out_.empty() && !want_write_) {
      want_write_ = true;
      hub_.want_write(*this, true);
    }
  }
  if (!status.ok()) close(status.error());
}

Status AgentConnection::flush_locked() {
  while (!out_.empty()) {
    ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return sys_error("send to agent");
  }
  out_cv_.notify_all();
  return {};
}

void AgentConnection::on_writable() {
  Status status;
  {
    std::lock_guard guard(out_mu_);
    status = flush_locked();
    if (status.ok() && out_.empty() && want_write_) {
      want_write_ = false;
      hub_.want_write(*this, false);
    }
  }
  if (!status.ok()) close(status.error());
}

void AgentConnection::on_readable() {
  for (int round = 0; round < 16 && alive_; ++round) {  // then let other connections have a turn
    if (!dispatch_buffered()) return;
    auto space = reader_.writable();
    ssize_t n = ::recv(fd_.get(), space.data(), space.size(), MSG_DONTWAIT);
    if (n == 0) return close(Error{ECONNRESET, "the agent closed the connection"});
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      return close(sys_error("recv from agent"));
    }
    reader_.commit(static_cast<size_t>(n));
  }
  dispatch_buffered();
}

bool AgentConnection::dispatch_buffered() {
  for (;;) {
    proto::Message m;
    auto got = reader_.next(m);
    if (!got.ok()) {
      close(got.error());
      return false;
    }
    if (!*got) return alive_;
    if (m.type == proto::Type::kError && m.id == 0) {
      hub_.log_.warn("agent " + name_ + ": " + std::string(proto::to_string_view(m.error.message)).substr(0, 200));
      continue;
    }
    std::shared_ptr<AgentSink> sink;
    {
      std::lock_guard guard(sinks_mu_);
      if (auto it = sinks_.find(m.id); it != sinks_.end()) sink = it->second;
    }
    if (!sink) {
      // Replies and events for an id whose sink is gone (its caller left, or the process ran
      // before a reconnect) are dropped; a frame about an id never handed out is a violation.
      if (m.id < next_id_ && m.type != proto::Type::kHelloAck && m.type != proto::Type::kPong) continue;
      close(protocol_error("frame for an id never used (" + std::to_string(m.id) + ")"));
      return false;
    }
    switch (sink->on_message(m)) {
      case AgentSink::Verdict::kMore:
        break;
      case AgentSink::Verdict::kDone:
        forget(m.id);
        break;
      case AgentSink::Verdict::kViolation:
        close(protocol_error("unexpected frame type " + std::to_string(static_cast<int>(m.type)) + " for id " +
                             std::to_string(m.id)));
        return false;
    }
  }
}

void AgentConnection::close(const Error& why) {
  if (alive_.exchange(false)) {
    {
      std::lock_guard guard(out_mu_);
      out_.clear();
    }
    out_cv_.notify_all();
    hub_.remove(*this);
    // The fd itself stays open while anything holds this connection (see remove()); shut it down
    // so that the agent sees the drop now and cannot keep filling a socket nobody reads.
    ::shutdown(fd_.get(), SHUT_RDWR);
    std::map<uint32_t, std::shared_ptr<AgentSink>> sinks;
    {
      std::lock_guard guard(sinks_mu_);
      sinks.swap(sinks_);
    }
    if (why.errnum == EPROTO) hub_.log_.warn("agent " + name_ + ": " + why.describe() + "; connection dropped");
    for (auto& [id, sink] : sinks) sink->on_disconnect(why);
  }
}

// --- AgentHub ----------------------------------------------------------------------------------------

AgentHub::AgentHub(const Logger& log)
    : log_(log), epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = wake_.get();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);
  thread_ = std::thread([this] { loop(); });
}

AgentHub::~AgentHub() {
  stopping_ = true;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  std::map<int, std::shared_ptr<AgentConnection>> conns;
  {
    std::lock_guard guard(conns_mu_);
    conns = conns_;
  }
  for (auto& [fd, c] : conns) c->close(Error{ECANCELED, "the daemon is stopping"});
}

size_t AgentHub::connections() {
  std::lock_guard guard(conns_mu_);
  return conns_.size();
}

Result<std::shared_ptr<AgentConnection>> AgentHub::connect(const std::string& socket_path, const std::string& name,
                                                           uint32_t first_id, std::chrono::milliseconds timeout) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) return plain_error("agent socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return sys_error("agent socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return sys_error("connect to agent at " + socket_path);
  }
  auto conn = std::make_shared<AgentConnection>(*this, std::move(fd), name, first_id);
  TRY_CTX(handshake(conn->fd_.get(), conn->reader_, Clock::now() + timeout), "agent at " + socket_path);
  // Frames that came right behind the HelloAck are already buffered. Asked now: once the
  // connection is registered, its reader belongs to the hub thread.
  bool buffered = conn->reader_.buffered() > 0;
  struct epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = conn->fd_.get();
  {
    std::lock_guard guard(conns_mu_);
    conns_[conn->fd_.get()] = conn;
  }
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, conn->fd_.get(), &ev) != 0) {
    Error e = sys_error("epoll_ctl");
    remove(*conn);
    return e;
  }
  if (buffered) {
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
  }
  return conn;
}

void AgentHub::want_write(AgentConnection& c, bool on) {
  struct epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
  ev.data.fd = c.fd_.get();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd_.get(), &ev);
}

void AgentHub::remove(AgentConnection& c) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd_.get(), nullptr);
  // The fd stays open (owned by the connection) until its last reference goes, so a number the
  // kernel reuses never meets an old entry in conns_.
  std::shared_ptr<AgentConnection> keep;
  std::lock_guard guard(conns_mu_);
  if (auto it = conns_.find(c.fd_.get()); it != conns_.end() && it->second.get() == &c) {
    keep = std::move(it->second);
    conns_.erase(it);
  }
}

void AgentHub::loop() {
  std::vector<struct epoll_event> events(64);
  while (!stopping_) {
    int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 1000);
    if (n < 0 && errno != EINTR) {
      log_.error("agent hub: epoll_wait: " + std::string(std::strerror(errno)));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_.get()) {
        uint64_t v;
        (void)!::read(wake_.get(), &v, sizeof v);
        // Connections with frames buffered from their handshake.
        std::vector<std::shared_ptr<AgentConnection>> pending;
        {
          std::lock_guard guard(conns_mu_);
          for (auto& [cfd, c] : conns_)
            if (c->reader_.buffered() > 0) pending.push_back(c);
        }
        for (auto& c : pending) c->on_readable();
        continue;
      }
      std::shared_ptr<AgentConnection> conn;
      {
        std::lock_guard guard(conns_mu_);
        if (auto it = conns_.find(fd); it != conns_.end()) conn = it->second;
      }
      if (!conn) continue;
      if (events[i].events & EPOLLOUT) conn->on_writable();
      if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) conn->on_readable();
    }
  }
}

}  // namespace airlock::daemon
