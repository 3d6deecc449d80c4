#include "network/dns_filter.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>

#include "common/fs.h"
#include "network/dns_message.h"
#include "network/egress_policy.h"

namespace airlock::net {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxTcpMessage = 65535;  // the 2-byte length prefix
constexpr size_t kMaxTcpBuffer = 2 + kMaxTcpMessage;
constexpr int kBatch = 64;  // datagrams / accepts per readiness event, so one socket cannot starve the rest

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

SockAddr to_sockaddr(const DnsEndpoint& e) {
  SockAddr s;
  if (e.address.family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&s.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(e.port);
    std::memcpy(&in->sin_addr, e.address.bytes, 4);
    s.len = sizeof *in;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&s.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(e.port);
    std::memcpy(&in6->sin6_addr, e.address.bytes, 16);
    s.len = sizeof *in6;
  }
  return s;
}

DnsEndpoint from_sockaddr(const SockAddr& s) {
  DnsEndpoint e;
  if (s.storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&s.storage);
    e.address.family = AF_INET6;
    std::memcpy(e.address.bytes, &in6->sin6_addr, 16);
    e.port = ntohs(in6->sin6_port);
  } else {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&s.storage);
    e.address.family = AF_INET;
    std::memcpy(e.address.bytes, &in->sin_addr, 4);
    e.port = ntohs(in->sin_port);
  }
  return e;
}

std::string source_key(const IpAddress& a) {
  std::string k(1, static_cast<char>(a.family));
  k.append(reinterpret_cast<const char*>(a.bytes), a.size());
  return k;
}

// Binds a listening socket. IP_FREEBIND: the bridge (and its gateway address) may come up after the
// daemon starts the filter; packets arrive once the address exists.
Result<UniqueFd> bind_socket(const DnsEndpoint& e, int type) {
  UniqueFd fd(::socket(e.address.family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket");
  int one = 1;
  if (type == SOCK_STREAM) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (e.address.family == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
#ifdef IPV6_FREEBIND
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
#endif
  } else {
    ::setsockopt(fd.get(), IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
  }
  SockAddr s = to_sockaddr(e);
  if (::bind(fd.get(), s.get(), s.len) != 0) return sys_error("bind " + e.str());
  if (type == SOCK_STREAM && ::listen(fd.get(), 128) != 0) return sys_error("listen " + e.str());
  return fd;
}

uint16_t bound_port(int fd) {
  SockAddr s;
  s.len = sizeof s.storage;
  if (::getsockname(fd, s.get(), &s.len) != 0) return 0;
  return from_sockaddr(s).port;
}

// Query ids and (through the kernel's port choice) source ports are what keeps an off-path attacker
// from forging upstream answers: ids come from the kernel's CSPRNG, not a seeded PRNG.
class RandomIds {
 public:
  uint16_t next() {
    if (at_ + 2 > buf_.size()) {
      size_t got = 0;
      while (got < buf_.size()) {
        ssize_t n = ::getrandom(buf_.data() + got, buf_.size() - got, 0);
        if (n < 0 && errno != EINTR) std::abort();  // no kernel CSPRNG (Linux < 3.17): never guess ids
        if (n > 0) got += static_cast<size_t>(n);
      }
      at_ = 0;
    }
    uint16_t v = static_cast<uint16_t>((buf_[at_] << 8) | buf_[at_ + 1]);
    at_ += 2;
    return v;
  }

 private:
  std::array<uint8_t, 256> buf_{};
  size_t at_ = 256;
};

enum class Kind : uint64_t { kWake = 0, kUdpListener = 1, kTcpListener = 2, kClient = 3, kUpstream = 4 };
Kind kind_of(uint64_t token) { return static_cast<Kind>(token >> 56); }

}  // namespace

std::string DnsEndpoint::str() const {
  std::string out;
  if (address.family == AF_INET6) {
    out += '[';
    out += address.str();
    out += ']';
  } else {
    out += address.str();
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

// ---------------------------------------------------------------------------------------------------
class DnsFilter::Loop {
 public:
  Loop(DnsFilterOptions options, DnsOracle& oracle) : options_(std::move(options)), oracle_(oracle) {}

  Status init(int wake_fd) {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return sys_error("epoll_create1");
    return watch(wake_fd, EPOLLIN, token(Kind::kWake));
  }

  // Binds UDP and TCP on `e` (the same port for both when e.port is 0).
  Result<DnsEndpoint> listen(DnsEndpoint e) {
    Error last = plain_error("bind");
    for (int attempt = 0; attempt < 16; ++attempt) {
      TRY(auto udp, bind_socket(e, SOCK_DGRAM));
      DnsEndpoint bound = e;
      bound.port = bound_port(udp.get());
      auto tcp = bind_socket(bound, SOCK_STREAM);
      if (!tcp.ok()) {
        last = std::move(tcp).error();
        if (e.port == 0 && last.errnum == EADDRINUSE) continue;  // the free UDP port is taken for TCP
        return last;
      }
      uint64_t ut = token(Kind::kUdpListener);
      uint64_t tt = token(Kind::kTcpListener);
      TRY_STATUS(watch(udp.get(), EPOLLIN, ut));
      TRY_STATUS(watch(tcp->get(), EPOLLIN, tt));
      listeners_[ut] = std::move(udp);
      listeners_[tt] = std::move(*tcp);
      return bound;
    }
    return last;
  }

  void run() {
    std::array<epoll_event, 64> events;
    for (;;) {
      int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), next_timeout_ms());
      if (n < 0 && errno != EINTR) return;  // only EBADF/EINVAL: a bug; stop serving rather than spin
      for (int i = 0; i < n; ++i) {
        uint64_t t = events[i].data.u64;
        switch (kind_of(t)) {
          case Kind::kWake: return;
          case Kind::kUdpListener: on_udp_listener(listeners_[t].get()); break;
          case Kind::kTcpListener: on_tcp_listener(listeners_[t].get()); break;
          case Kind::kClient: on_client(t, events[i].events); break;
          case Kind::kUpstream: on_upstream(t, events[i].events); break;
        }
      }
      // Pipelined TCP queries already in our buffer: epoll will not report them again.
      while (!ready_clients_.empty()) {
        uint64_t t = ready_clients_.back();
        ready_clients_.pop_back();
        if (auto it = clients_.find(t); it != clients_.end()) read_client_message(*it->second);
      }
      expire(Clock::now());
    }
  }

  DnsFilterStats stats() const {
    DnsFilterStats s;
    s.queries = queries_;
    s.malformed = malformed_;
    s.unknown_source = unknown_source_;
    s.refused = refused_;
    s.forwarded = forwarded_;
    s.over_limit = over_limit_;
    s.upstream_failed = upstream_failed_;
    s.ignored_responses = ignored_responses_;
    s.tcp_rejected = tcp_rejected_;
    s.inflight = inflight_count_;
    return s;
  }

 private:
  // Who gets the reply: a UDP peer (through the listener it wrote to) or a client TCP connection.
  struct ClientRef {
    uint64_t conn = 0;  // TCP: the connection's token (it may be gone by the time the reply is ready)
    int udp_fd = -1;    // UDP: the listener's socket
    SockAddr peer;      // UDP
  };

  struct ClientConn {
    uint64_t token = 0;
    UniqueFd fd;
    IpAddress source;
    enum class State { kReading, kWaiting, kWriting } state = State::kReading;
    std::vector<uint8_t> in;   // received, not yet handled
    std::vector<uint8_t> out;  // length-prefixed reply
    size_t out_done = 0;
    Clock::time_point deadline;
  };

  struct Inflight {
    uint64_t token = 0;
    ClientRef client;
    IpAddress source;
    std::string sandbox;
    std::string name;  // normalised
    dns::Query query;  // the sandbox's
    uint16_t upstream_id = 0;
    std::vector<uint8_t> upstream_query;
    size_t upstream_index = 0;
    enum class Phase { kUdp, kTcpConnect, kTcpWrite, kTcpRead } phase = Phase::kUdp;
    UniqueFd fd;
    Clock::time_point deadline;
    std::vector<uint8_t> buf;  // TCP: length-prefixed query, then the response as it arrives
    size_t done = 0;           // TCP: bytes of buf written
  };

  uint64_t token(Kind k) { return (static_cast<uint64_t>(k) << 56) | ++serial_; }

  Status watch(int fd, uint32_t events, uint64_t t) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = t;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return sys_error("epoll_ctl add");
    return {};
  }
  void rewatch(int fd, uint32_t events, uint64_t t) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = t;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
  }
  void unwatch(int fd) { ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

  int next_timeout_ms() const {
    auto next = Clock::time_point::max();
    for (const auto& [t, q] : inflight_) next = std::min(next, q->deadline);
    for (const auto& [t, c] : clients_) next = std::min(next, c->deadline);
    if (next == Clock::time_point::max()) return -1;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()).count();
    return static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
  }

  // --- sandbox side ----------------------------------------------------------------------------
  void on_udp_listener(int fd) {
    for (int i = 0; i < kBatch; ++i) {
      ClientRef client;
      client.udp_fd = fd;
      client.peer.len = sizeof client.peer.storage;
      ssize_t n = ::recvfrom(fd, packet_.data(), packet_.size(), MSG_TRUNC, client.peer.get(), &client.peer.len);
      if (n < 0) return;  // EAGAIN, or an ICMP error queued on the socket: nothing to read
      if (static_cast<size_t>(n) > packet_.size()) {
        ++malformed_;  // cannot happen with a 64 KiB buffer; kept as the bound
        continue;
      }
      IpAddress source = from_sockaddr(client.peer).address;
      handle_query(std::span<const uint8_t>(packet_.data(), static_cast<size_t>(n)), source, client);
    }
  }

  void on_tcp_listener(int fd) {
    for (int i = 0; i < kBatch; ++i) {
      SockAddr peer;
      peer.len = sizeof peer.storage;
      UniqueFd conn(::accept4(fd, peer.get(), &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!conn) return;
      IpAddress source = from_sockaddr(peer).address;
      std::string key = source_key(source);
      if (clients_.size() >= options_.max_tcp_connections ||
          clients_by_source_[key] >= options_.max_tcp_connections_per_source) {
        ++tcp_rejected_;
        if (clients_by_source_[key] == 0) clients_by_source_.erase(key);
        continue;  // closed by UniqueFd
      }
      auto c = std::make_unique<ClientConn>();
      c->token = token(Kind::kClient);
      c->source = source;
      c->deadline = Clock::now() + options_.tcp_idle_timeout;
      if (!watch(conn.get(), EPOLLIN, c->token).ok()) continue;
      c->fd = std::move(conn);
      ++clients_by_source_[key];
      clients_[c->token] = std::move(c);
    }
  }

  void on_client(uint64_t t, uint32_t events) {
    auto it = clients_.find(t);
    if (it == clients_.end()) return;
    ClientConn& c = *it->second;
    if (c.state == ClientConn::State::kWriting) {
      write_client(c);
      return;
    }
    if (c.state == ClientConn::State::kWaiting) {
      // Not reading while a query is in flight: only errors and hang-ups are reported.
      if (events & (EPOLLERR | EPOLLHUP)) close_client(t);
      return;
    }
    size_t room = kMaxTcpBuffer - c.in.size();
    if (room > 0) {
      size_t had = c.in.size();
      c.in.resize(had + room);
      ssize_t n = ::recv(c.fd.get(), c.in.data() + had, room, 0);
      c.in.resize(had + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close_client(t);
        return;
      }
    }
    read_client_message(c);
  }

  // Handles the first complete length-prefixed query in the connection's buffer, if there is one.
  void read_client_message(ClientConn& c) {
    if (c.state != ClientConn::State::kReading || c.in.size() < 2) return;
    size_t len = (size_t{c.in[0]} << 8) | c.in[1];
    if (len < dns::kHeaderSize) {
      ++malformed_;
      close_client(c.token);
      return;
    }
    if (c.in.size() < 2 + len) return;
    std::vector<uint8_t> message(c.in.begin() + 2, c.in.begin() + static_cast<ptrdiff_t>(2 + len));
    c.in.erase(c.in.begin(), c.in.begin() + static_cast<ptrdiff_t>(2 + len));
    c.state = ClientConn::State::kWaiting;
    c.deadline = Clock::time_point::max();  // the query has its own deadline
    rewatch(c.fd.get(), 0, c.token);
    ClientRef client;
    client.conn = c.token;
    handle_query(message, c.source, client);  // may close or reply to `c` already
  }

  void write_client(ClientConn& c) {
    while (c.out_done < c.out.size()) {
      ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_done, c.out.size() - c.out_done, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        close_client(c.token);
        return;
      }
      c.out_done += static_cast<size_t>(n);
    }
    c.out.clear();
    c.out_done = 0;
    c.state = ClientConn::State::kReading;
    c.deadline = Clock::now() + options_.tcp_idle_timeout;
    rewatch(c.fd.get(), EPOLLIN, c.token);
    if (c.in.size() >= 2) ready_clients_.push_back(c.token);
  }

  void close_client(uint64_t t) {
    auto it = clients_.find(t);
    if (it == clients_.end()) return;
    unwatch(it->second->fd.get());
    std::string key = source_key(it->second->source);
    if (--clients_by_source_[key] == 0) clients_by_source_.erase(key);
    clients_.erase(it);
  }

  void reply(const ClientRef& client, std::span<const uint8_t> message) {
    if (client.conn == 0) {
      // UDP: best effort; a full socket buffer drops the reply and the sandbox asks again.
      ::sendto(client.udp_fd, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL, client.peer.get(),
               client.peer.len);
      return;
    }
    auto it = clients_.find(client.conn);
    if (it == clients_.end()) return;  // the connection went away meanwhile
    ClientConn& c = *it->second;
    c.out.clear();
    c.out.push_back(static_cast<uint8_t>(message.size() >> 8));
    c.out.push_back(static_cast<uint8_t>(message.size()));
    c.out.insert(c.out.end(), message.begin(), message.end());
    c.out_done = 0;
    c.state = ClientConn::State::kWriting;
    c.deadline = Clock::now() + options_.tcp_idle_timeout;
    rewatch(c.fd.get(), EPOLLOUT, c.token);
    write_client(c);
  }

  // A message that gets no reply: TCP clients lose the connection (they would wait forever).
  void drop(const ClientRef& client) {
    if (client.conn != 0) close_client(client.conn);
  }

  void handle_query(std::span<const uint8_t> packet, const IpAddress& source, const ClientRef& client) {
    auto parsed = dns::parse_query(packet);
    if (!parsed.ok()) {
      ++malformed_;
      auto header = dns::parse_header(packet);
      // Never answer something that claims to be a response (no reply loops between resolvers).
      if (header.ok() && !header->qr()) {
        reply(client, dns::build_header_reply(*header, dns::Rcode::kFormErr));
      } else {
        drop(client);
      }
      return;
    }
    ++queries_;
    const dns::Query& q = *parsed;
    if (q.header.opcode() != 0) return reply(client, dns::build_reply(q, dns::Rcode::kNotImp));
    uint16_t qtype = q.question.type;
    if (q.question.klass != dns::kClassIn || qtype == dns::type::kAxfr || qtype == dns::type::kIxfr ||
        qtype == dns::type::kOpt || qtype == 0) {
      return reply(client, dns::build_reply(q, dns::Rcode::kRefused));
    }
    std::string text = q.question.text();
    std::string name = normalize_domain(text);
    DnsDecision decision = oracle_.judge(source, name);
    if (decision.kind == DnsDecision::kUnknownSource) {
      ++unknown_source_;
      return reply(client, dns::build_reply(q, dns::Rcode::kRefused));
    }
    if (decision.kind != DnsDecision::kResolve || name.empty()) {
      ++refused_;
      oracle_.refused(decision.sandbox, source, text, qtype);
      return reply(client, dns::build_reply(q, dns::Rcode::kNxDomain));
    }
    std::string key = source_key(source);
    auto per_source = inflight_by_source_.find(key);
    size_t mine = per_source == inflight_by_source_.end() ? 0 : per_source->second;
    if (inflight_.size() >= options_.max_inflight || mine >= options_.max_inflight_per_source) {
      ++over_limit_;
      return reply(client, dns::build_reply(q, dns::Rcode::kServFail));
    }
    auto f = std::make_unique<Inflight>();
    f->token = token(Kind::kUpstream);
    f->client = client;
    f->source = source;
    f->sandbox = std::move(decision.sandbox);
    f->name = std::move(name);
    f->query = std::move(*parsed);
    Inflight& ref = *f;
    uint64_t t = f->token;
    inflight_[t] = std::move(f);
    ++inflight_by_source_[key];
    inflight_count_ = inflight_.size();
    ++forwarded_;
    start_udp(ref);
  }

  // --- upstream side ---------------------------------------------------------------------------
  void start_udp(Inflight& f) {
    const DnsEndpoint& up = options_.upstream[f.upstream_index];
    f.phase = Inflight::Phase::kUdp;
    f.deadline = Clock::now() + options_.upstream_timeout;
    f.upstream_id = ids_.next();
    f.upstream_query = dns::build_query(f.upstream_id, f.query.header.flags, f.query.question, f.query.edns);
    // A new socket per query: connect() gives it a fresh random source port (the kernel picks ports
    // at random), and a connected UDP socket only receives datagrams from that upstream address/port.
    f.fd.reset(::socket(up.address.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    SockAddr to = to_sockaddr(up);
    if (!f.fd || ::connect(f.fd.get(), to.get(), to.len) != 0 ||
        ::send(f.fd.get(), f.upstream_query.data(), f.upstream_query.size(), MSG_NOSIGNAL) < 0 ||
        !watch(f.fd.get(), EPOLLIN, f.token).ok()) {
      return next_upstream(f);
    }
  }

  void start_tcp(Inflight& f) {
    const DnsEndpoint& up = options_.upstream[f.upstream_index];
    unwatch(f.fd.get());
    f.phase = Inflight::Phase::kTcpConnect;
    f.deadline = Clock::now() + options_.upstream_timeout;
    f.buf.clear();
    f.buf.push_back(static_cast<uint8_t>(f.upstream_query.size() >> 8));
    f.buf.push_back(static_cast<uint8_t>(f.upstream_query.size()));
    f.buf.insert(f.buf.end(), f.upstream_query.begin(), f.upstream_query.end());
    f.done = 0;
    f.fd.reset(::socket(up.address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    SockAddr to = to_sockaddr(up);
    if (!f.fd || (::connect(f.fd.get(), to.get(), to.len) != 0 && errno != EINPROGRESS) ||
        !watch(f.fd.get(), EPOLLOUT, f.token).ok()) {
      return next_upstream(f);
    }
  }

  void on_upstream(uint64_t t, uint32_t events) {
    auto it = inflight_.find(t);
    if (it == inflight_.end()) return;
    Inflight& f = *it->second;
    switch (f.phase) {
      case Inflight::Phase::kUdp: return read_udp_response(f);
      case Inflight::Phase::kTcpConnect: {
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(f.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0 ||
            (events & (EPOLLERR | EPOLLHUP))) {
          return next_upstream(f);
        }
        f.phase = Inflight::Phase::kTcpWrite;
        [[fallthrough]];
      }
      case Inflight::Phase::kTcpWrite: {
        while (f.done < f.buf.size()) {
          ssize_t n = ::send(f.fd.get(), f.buf.data() + f.done, f.buf.size() - f.done, MSG_NOSIGNAL);
          if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            return next_upstream(f);
          }
          f.done += static_cast<size_t>(n);
        }
        f.phase = Inflight::Phase::kTcpRead;
        f.buf.clear();
        rewatch(f.fd.get(), EPOLLIN, f.token);
        return;
      }
      case Inflight::Phase::kTcpRead: return read_tcp_response(f);
    }
  }

  void read_udp_response(Inflight& f) {
    const DnsEndpoint& up = options_.upstream[f.upstream_index];
    for (int i = 0; i < kBatch; ++i) {
      SockAddr from;
      from.len = sizeof from.storage;
      ssize_t n = ::recvfrom(f.fd.get(), packet_.data(), packet_.size(), MSG_TRUNC, from.get(), &from.len);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        return next_upstream(f);  // e.g. ECONNREFUSED: nothing listens there
      }
      std::span<const uint8_t> message(packet_.data(), std::min(static_cast<size_t>(n), packet_.size()));
      // The kernel already filters by peer on a connected socket; checked again all the same.
      if (!(from_sockaddr(from) == up) || static_cast<size_t>(n) > packet_.size()) {
        ++ignored_responses_;
        continue;
      }
      auto response = dns::parse_response(message);
      if (!response.ok() || !answers(f, *response)) {
        ++ignored_responses_;  // spoofed, stale or broken: keep waiting for the real one
        continue;
      }
      if (response->header.tc()) return start_tcp(f);
      return complete(f, message, *response);
    }
  }

  void read_tcp_response(Inflight& f) {
    size_t want = f.buf.size() < 2 ? 2 : 2 + ((size_t{f.buf[0]} << 8) | f.buf[1]);
    size_t had = f.buf.size();
    f.buf.resize(want);
    ssize_t n = ::recv(f.fd.get(), f.buf.data() + had, want - had, 0);
    f.buf.resize(had + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return next_upstream(f);
    if (f.buf.size() == 2) {
      if (((size_t{f.buf[0]} << 8) | f.buf[1]) < dns::kHeaderSize) return next_upstream(f);
      return;  // the body follows (level-triggered: read on the next event)
    }
    if (f.buf.size() < want) return;
    std::span<const uint8_t> message(f.buf.data() + 2, f.buf.size() - 2);
    auto response = dns::parse_response(message);
    // On a connection of our own, a wrong answer is a broken upstream, not a spoofer to wait out.
    if (!response.ok() || !answers(f, *response)) return next_upstream(f);
    complete(f, message, *response);
  }

  // Does `r` answer the query we sent (id, opcode, the same question)?
  static bool answers(const Inflight& f, const dns::Response& r) {
    return r.header.id == f.upstream_id && r.header.opcode() == 0 &&
           r.question.type == f.query.question.type && r.question.klass == f.query.question.klass &&
           dns::same_name(r.question.name, f.query.question.name);
  }

  void next_upstream(Inflight& f) {
    unwatch(f.fd.get());
    f.fd.reset();
    if (++f.upstream_index < options_.upstream.size()) return start_udp(f);
    ++upstream_failed_;
    reply(f.client, dns::build_reply(f.query, dns::Rcode::kServFail));
    finish(f);
  }

  void complete(Inflight& f, std::span<const uint8_t> message, const dns::Response& response) {
    // The addresses become reachable before the sandbox learns them: it cannot race the rules.
    if (!response.addresses.empty() &&
        !oracle_.admit(f.sandbox, f.source, f.name, response.addresses, response.min_ttl.value_or(0))) {
      reply(f.client, dns::build_reply(f.query, dns::Rcode::kServFail));
      return finish(f);
    }
    std::vector<uint8_t> out(message.begin(), message.end());
    dns::set_id(out, f.query.header.id);  // the only byte changed on the way back
    if (f.client.conn == 0) {
      size_t limit = dns::kClassicUdpSize;
      if (f.query.edns) limit = std::clamp<size_t>(f.query.edns->udp_payload, dns::kClassicUdpSize, dns::kOurUdpSize);
      // Too big for the sandbox's UDP buffer: TC=1 and nothing else, it asks again over TCP.
      if (out.size() > limit) {
        out = dns::build_reply(f.query, static_cast<dns::Rcode>(response.header.rcode()), true);
      }
    }
    reply(f.client, out);
    finish(f);
  }

  void finish(Inflight& f) {
    if (f.fd) unwatch(f.fd.get());
    std::string key = source_key(f.source);
    if (--inflight_by_source_[key] == 0) inflight_by_source_.erase(key);
    inflight_.erase(f.token);  // destroys f
    inflight_count_ = inflight_.size();
  }

  void expire(Clock::time_point now) {
    std::vector<uint64_t> late;
    for (const auto& [t, f] : inflight_) {
      if (f->deadline <= now) late.push_back(t);
    }
    for (uint64_t t : late) {
      if (auto it = inflight_.find(t); it != inflight_.end()) next_upstream(*it->second);
    }
    late.clear();
    for (const auto& [t, c] : clients_) {
      if (c->deadline <= now) late.push_back(t);
    }
    for (uint64_t t : late) close_client(t);
  }

  DnsFilterOptions options_;
  DnsOracle& oracle_;
  UniqueFd epoll_;
  uint64_t serial_ = 0;
  RandomIds ids_;
  std::array<uint8_t, 65536> packet_{};
  std::unordered_map<uint64_t, UniqueFd> listeners_;
  std::unordered_map<uint64_t, std::unique_ptr<ClientConn>> clients_;
  std::map<std::string, size_t> clients_by_source_;
  std::unordered_map<uint64_t, std::unique_ptr<Inflight>> inflight_;
  std::map<std::string, size_t> inflight_by_source_;
  std::vector<uint64_t> ready_clients_;

  std::atomic<uint64_t> queries_{0}, malformed_{0}, unknown_source_{0}, refused_{0}, forwarded_{0}, over_limit_{0},
      upstream_failed_{0}, ignored_responses_{0}, tcp_rejected_{0}, inflight_count_{0};
};

// ---------------------------------------------------------------------------------------------------
Result<std::unique_ptr<DnsFilter>> DnsFilter::start(DnsFilterOptions options, DnsOracle& oracle) {
  if (options.listen.empty()) return Error{EINVAL, "dns filter: no listen address"};
  if (options.upstream.empty()) return Error{EINVAL, "dns filter: no upstream resolver"};
  for (const auto& up : options.upstream) {
    if (up.address.family != AF_INET && up.address.family != AF_INET6) {
      return Error{EINVAL, "dns filter: upstream address family"};
    }
    // Forwarding to ourselves would loop every allowed query until the in-flight cap.
    if (std::find(options.listen.begin(), options.listen.end(), up) != options.listen.end()) {
      return Error{EINVAL, "dns filter: upstream " + up.str() + " is a listen address"};
    }
  }
  std::unique_ptr<DnsFilter> filter(new DnsFilter());
  filter->wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!filter->wake_) return sys_error("dns filter: eventfd");
  auto listen = options.listen;
  auto upstream = options.upstream;
  filter->loop_ = std::make_unique<Loop>(std::move(options), oracle);
  TRY_CTX(filter->loop_->init(filter->wake_.get()), "dns filter");
  for (const auto& e : listen) {
    auto bound = filter->loop_->listen(e);
    if (!bound.ok()) return std::move(bound).error().with_context("dns filter");
    if (std::find(upstream.begin(), upstream.end(), *bound) != upstream.end()) {  // port 0 picked it
      return Error{EINVAL, "dns filter: upstream " + bound->str() + " is a listen address"};
    }
    filter->listening_.push_back(*bound);
  }
  Loop* loop = filter->loop_.get();
  filter->thread_ = std::thread([loop] { loop->run(); });
  return filter;
}

DnsFilter::~DnsFilter() { stop(); }

void DnsFilter::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  while (::write(wake_.get(), &one, sizeof one) < 0 && errno == EINTR) {
  }
  thread_.join();
}

DnsFilterStats DnsFilter::stats() const { return loop_->stats(); }

// ---------------------------------------------------------------------------------------------------
Result<DnsEndpoint> parse_resolv_conf_nameserver(std::string_view text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (size_t c = line.find_first_of("#;"); c != std::string_view::npos) line = line.substr(0, c);
    auto word = [&line]() {
      size_t b = line.find_first_not_of(" \t\r");
      if (b == std::string_view::npos) return std::string_view{};
      size_t e = line.find_first_of(" \t\r", b);
      if (e == std::string_view::npos) e = line.size();
      std::string_view w = line.substr(b, e - b);
      line = line.substr(e);
      return w;
    };
    if (word() != "nameserver") continue;
    auto address = IpAddress::parse(word());
    if (address) return DnsEndpoint{*address, 53};
  }
  return Error{ENOENT, "no usable nameserver in resolv.conf"};
}

Result<DnsEndpoint> read_resolv_conf_nameserver(const std::string& path) {
  TRY(auto text, read_file(path));
  auto e = parse_resolv_conf_nameserver(text);
  if (!e.ok()) return std::move(e).error().with_context(path);
  return e;
}

}  // namespace airlock::net
