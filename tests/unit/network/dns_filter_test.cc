// DnsFilter against a fake upstream resolver and a fake oracle, all on 127.0.0.1: allowed names are
// resolved and admitted before the sandbox gets the answer, other names never leave the filter,
// upstream answers are checked (id, question, address), and hostile input does not stop it.
#include "network/dns_filter.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "network/dns_message.h"

namespace airlock::net {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

// --- wire helpers ---------------------------------------------------------------------------------

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
Bytes wire(const std::string& dotted) {
  Bytes b;
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    b.push_back(static_cast<uint8_t>(dot - start));
    b.insert(b.end(), dotted.begin() + static_cast<long>(start), dotted.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  b.push_back(0);
  return b;
}
Bytes make_query(uint16_t id, const Bytes& name, uint16_t type = dns::type::kA, uint16_t klass = dns::kClassIn,
                 bool edns = false) {
  Bytes b;
  put16(b, id);
  put16(b, 0x0100);  // RD
  put16(b, 1);
  put16(b, 0);
  put16(b, 0);
  put16(b, edns ? 1 : 0);
  b.insert(b.end(), name.begin(), name.end());
  put16(b, type);
  put16(b, klass);
  if (edns) {
    b.push_back(0);
    put16(b, dns::type::kOpt);
    put16(b, 1232);
    put32(b, 0);
    put16(b, 0);
  }
  return b;
}
Bytes make_query(uint16_t id, const std::string& name, uint16_t type = dns::type::kA) {
  return make_query(id, wire(name), type);
}

struct Answer {
  uint16_t type;
  Bytes rdata;
  std::string owner;  // empty: the question's name (compressed, 0xc00c)
};
// A response to `q` with the given id, flags (QR and RA are added) and answers.
Bytes make_response(uint16_t id, const dns::Query& q, const std::vector<Answer>& answers, uint16_t flags = 0,
                    const Bytes* other_name = nullptr) {
  Bytes b;
  put16(b, id);
  put16(b, 0x8180 | flags);
  put16(b, 1);
  put16(b, static_cast<uint16_t>(answers.size()));
  put16(b, 0);
  put16(b, 0);
  const Bytes& name = other_name ? *other_name : q.question.name;
  b.insert(b.end(), name.begin(), name.end());
  put16(b, q.question.type);
  put16(b, q.question.klass);
  for (const Answer& a : answers) {
    if (a.owner.empty()) {
      put16(b, 0xc00c);
    } else {
      Bytes o = wire(a.owner);
      b.insert(b.end(), o.begin(), o.end());
    }
    put16(b, a.type);
    put16(b, dns::kClassIn);
    put32(b, 300);
    put16(b, static_cast<uint16_t>(a.rdata.size()));
    b.insert(b.end(), a.rdata.begin(), a.rdata.end());
  }
  return b;
}
Answer a_record(uint8_t a, uint8_t b, uint8_t c, uint8_t d, std::string owner = {}) {
  return Answer{dns::type::kA, {a, b, c, d}, std::move(owner)};
}

std::vector<std::string> addresses_of(const Bytes& reply) {
  std::vector<std::string> out;
  auto r = dns::parse_response(reply);
  if (!r.ok()) return {"unparsable: " + r.error().message};
  for (const auto& a : r->addresses) out.push_back(a.str());
  return out;
}
int rcode_of(const Bytes& reply) {
  auto h = dns::parse_header(reply);
  return h.ok() ? h->rcode() : -1;
}
uint16_t id_of(const Bytes& reply) { return dns::parse_header(reply).ok() ? dns::parse_header(reply)->id : 0; }


// Polls `done` until it holds; the 10 s bound only keeps a broken filter from hanging the suite.
bool wait_until(const std::function<bool()>& done) {
  auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

sockaddr_in v4(const std::string& ip, uint16_t port) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &s.sin_addr);
  return s;
}
UniqueFd bound_socket(int type, const std::string& ip, uint16_t port = 0) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in s = v4(ip, port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&s), sizeof s) != 0) return UniqueFd();
  return fd;
}
uint16_t port_of(int fd) {
  sockaddr_in s{};
  socklen_t len = sizeof s;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&s), &len);
  return ntohs(s.sin_port);
}
void set_recv_timeout(int fd) {
  timeval tv{10, 0};  // a hang guard, not an expectation
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}
bool read_exact(int fd, uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// --- a scripted upstream resolver on 127.0.0.1 (UDP and TCP on one port) --------------------------
//   silent.*  never answers          hold.*   answers when release_held() is called
//   tc.*      UDP: TC=1, TCP: 192.0.2.7     big.*  60 A records (too big for 512 bytes)
//   spoof.*   a wrong id, a wrong port and a wrong question (all 6.6.6.6), then 192.0.2.5
//   cname.*   CNAME edge.cdn.test, edge.cdn.test A 192.0.2.9     anything else: A 192.0.2.1
class FakeUpstream {
 public:
  struct Seen {
    std::string name;
    uint16_t type;
    bool tcp;
  };

  FakeUpstream() {
    for (int attempt = 0; attempt < 16 && !tcp_; ++attempt) {
      udp_ = bound_socket(SOCK_DGRAM, "127.0.0.1");
      port_ = port_of(udp_.get());
      tcp_ = bound_socket(SOCK_STREAM, "127.0.0.1", port_);
    }
    ::listen(tcp_.get(), 16);
    spoof_ = bound_socket(SOCK_DGRAM, "127.0.0.1");
    int p[2];
    if (::pipe2(p, O_CLOEXEC) == 0) {
      wake_read_.reset(p[0]);
      wake_write_.reset(p[1]);
    }
    thread_ = std::thread([this] { run(); });
  }
  ~FakeUpstream() {
    poke('s');
    thread_.join();
  }

  DnsEndpoint endpoint() const { return DnsEndpoint{*IpAddress::parse("127.0.0.1"), port_}; }
  bool ok() const { return udp_ && tcp_ && spoof_ && wake_write_; }
  std::vector<Seen> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }
  size_t count(const std::string& name, bool tcp) {
    size_t n = 0;
    for (const auto& s : seen()) n += (s.name == name && s.tcp == tcp);
    return n;
  }
  Bytes last_sent() {
    std::lock_guard lock(mu_);
    return last_sent_;
  }
  void release_held() { poke('r'); }

 private:
  struct Held {
    dns::Query query;
    sockaddr_in from;
  };

  void poke(char c) { (void)!::write(wake_write_.get(), &c, 1); }

  void run() {
    for (;;) {
      pollfd fds[3] = {{udp_.get(), POLLIN, 0}, {tcp_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0) continue;
      if (fds[2].revents) {
        char c = 0;
        (void)!::read(wake_read_.get(), &c, 1);
        if (c == 's') return;
        for (const Held& h : held_) send(udp_.get(), make_response(h.query.header.id, h.query, {a_record(192, 0, 2, 3)}), h.from);
        held_.clear();
      }
      if (fds[0].revents) on_udp();
      if (fds[1].revents) on_tcp();
    }
  }

  void record(const dns::Query& q, bool tcp) {
    std::lock_guard lock(mu_);
    seen_.push_back({lower(q.question.text()), q.question.type, tcp});
  }
  void send(int fd, const Bytes& m, const sockaddr_in& to) {
    {
      std::lock_guard lock(mu_);
      last_sent_ = m;  // before sending: the client may read the filter's copy at once
    }
    ::sendto(fd, m.data(), m.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  }

  static std::vector<Answer> big() {
    std::vector<Answer> out;
    for (uint8_t i = 1; i <= 60; ++i) out.push_back(a_record(198, 18, 0, i));
    return out;
  }

  void on_udp() {
    Bytes buf(65536);
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(udp_.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;
    buf.resize(static_cast<size_t>(n));
    auto q = dns::parse_query(buf);
    if (!q.ok()) return;
    record(*q, false);
    std::string name = lower(q->question.text());
    uint16_t id = q->header.id;
    std::string first = name.substr(0, name.find('.'));
    if (first == "silent") return;
    if (first == "hold") return held_.push_back({*q, from});
    if (first == "tc") return send(udp_.get(), make_response(id, *q, {}, 0x0200), from);
    if (first == "big") return send(udp_.get(), make_response(id, *q, big()), from);
    if (first == "cname") {
      return send(udp_.get(),
                  make_response(id, *q, {{dns::type::kCname, wire("edge.cdn.test"), {}}, a_record(192, 0, 2, 9, "edge.cdn.test")}),
                  from);
    }
    if (first == "spoof") {
      send(udp_.get(), make_response(id ^ 0x5555, *q, {a_record(6, 6, 6, 6)}), from);
      send(spoof_.get(), make_response(id, *q, {a_record(6, 6, 6, 6)}), from);
      Bytes other = wire("other.allowed.test");
      send(udp_.get(), make_response(id, *q, {a_record(6, 6, 6, 6)}, 0, &other), from);
    }
    uint8_t last = first == "spoof" ? 5 : 1;
    send(udp_.get(), make_response(id, *q, {a_record(192, 0, 2, last)}), from);
  }

  void on_tcp() {
    UniqueFd conn(::accept4(tcp_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) return;
    set_recv_timeout(conn.get());
    uint8_t len[2];
    if (!read_exact(conn.get(), len, 2)) return;
    Bytes buf((size_t{len[0]} << 8) | len[1]);
    if (!read_exact(conn.get(), buf.data(), buf.size())) return;
    auto q = dns::parse_query(buf);
    if (!q.ok()) return;
    record(*q, true);
    std::string first = lower(q->question.text());
    first = first.substr(0, first.find('.'));
    Bytes reply = first == "big" ? make_response(q->header.id, *q, big())
                  : first == "tc" ? make_response(q->header.id, *q, {a_record(192, 0, 2, 7)})
                                  : make_response(q->header.id, *q, {a_record(192, 0, 2, 1)});
    Bytes framed{static_cast<uint8_t>(reply.size() >> 8), static_cast<uint8_t>(reply.size())};
    framed.insert(framed.end(), reply.begin(), reply.end());
    (void)!::send(conn.get(), framed.data(), framed.size(), MSG_NOSIGNAL);
  }

  UniqueFd udp_, tcp_, spoof_, wake_read_, wake_write_;
  uint16_t port_ = 0;
  std::vector<Held> held_;  // upstream thread only
  std::mutex mu_;
  std::vector<Seen> seen_;
  Bytes last_sent_;
  std::thread thread_;
};

// --- the daemon's side: sandboxes at 127.0.0.1 and 127.0.0.3 may resolve allowed.test and below ----
class FakeOracle : public DnsOracle {
 public:
  struct Admitted {
    std::string sandbox, name;
    std::vector<std::string> addresses;
    uint32_t ttl;
    bool reply_already_sent;
  };
  struct Refusal {
    std::string sandbox, name;
    uint16_t qtype;
  };

  DnsDecision judge(const IpAddress& source, const std::string& name) override {
    std::lock_guard lock(mu_);
    judged_.push_back(name);
    std::string s = source.str();
    if (s != "127.0.0.1" && s != "127.0.0.3") return {DnsDecision::kUnknownSource, ""};
    std::string suffix = ".allowed.test";
    bool allowed = resolve_everything || name == "allowed.test" ||
                   (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
    return {allowed ? DnsDecision::kResolve : DnsDecision::kRefuse, "sb-" + s};
  }
  bool admit(const std::string& sandbox, const IpAddress&, const std::string& name,
             const std::vector<IpAddress>& addresses, uint32_t ttl) override {
    Admitted a{sandbox, name, {}, ttl, false};
    for (const auto& ip : addresses) a.addresses.push_back(ip.str());
    // The filter replies on this same thread after admit() returns: if the reply were sent first,
    // it would already sit in the client's socket (loopback delivers within sendto).
    if (int fd = client_fd; fd >= 0) {
      char c;
      a.reply_already_sent = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0;
    }
    std::lock_guard lock(mu_);
    admitted_.push_back(a);
    return name != "noadmit.allowed.test";
  }
  void refused(const std::string& sandbox, const IpAddress&, const std::string& name, uint16_t qtype) override {
    std::lock_guard lock(mu_);
    refusals_.push_back({sandbox, name, qtype});
  }

  std::vector<Admitted> admitted() {
    std::lock_guard lock(mu_);
    return admitted_;
  }
  std::vector<Refusal> refusals() {
    std::lock_guard lock(mu_);
    return refusals_;
  }
  std::vector<std::string> judged() {
    std::lock_guard lock(mu_);
    return judged_;
  }

  std::atomic<int> client_fd{-1};
  std::atomic<bool> resolve_everything{false};

 private:
  std::mutex mu_;
  std::vector<std::string> judged_;
  std::vector<Admitted> admitted_;
  std::vector<Refusal> refusals_;
};

class UdpClient {
 public:
  explicit UdpClient(const std::string& ip = "127.0.0.1") : fd_(bound_socket(SOCK_DGRAM, ip)) {
    set_recv_timeout(fd_.get());
  }
  int fd() const { return fd_.get(); }
  void send(const Bytes& m, const DnsEndpoint& to) {
    sockaddr_in s = v4(to.address.str(), to.port);
    ::sendto(fd_.get(), m.data(), m.size(), 0, reinterpret_cast<sockaddr*>(&s), sizeof s);
  }
  Bytes recv() {
    Bytes b(65536);
    ssize_t n = ::recv(fd_.get(), b.data(), b.size(), 0);
    b.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return b;
  }
  Bytes ask(const Bytes& m, const DnsEndpoint& to) {
    send(m, to);
    return recv();
  }

 private:
  UniqueFd fd_;
};

class TcpClient {
 public:
  explicit TcpClient(const DnsEndpoint& to) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    set_recv_timeout(fd_.get());
    sockaddr_in s = v4(to.address.str(), to.port);
    connected_ = ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&s), sizeof s) == 0;
  }
  bool connected() const { return connected_; }
  void send_raw(const Bytes& b) { (void)!::send(fd_.get(), b.data(), b.size(), MSG_NOSIGNAL); }
  static Bytes frame(const Bytes& m) {
    Bytes b{static_cast<uint8_t>(m.size() >> 8), static_cast<uint8_t>(m.size())};
    b.insert(b.end(), m.begin(), m.end());
    return b;
  }
  void send(const Bytes& m) { send_raw(frame(m)); }
  // The next length-prefixed message; empty when the filter closed the connection.
  Bytes recv() {
    uint8_t len[2];
    if (!read_exact(fd_.get(), len, 2)) return {};
    Bytes b((size_t{len[0]} << 8) | len[1]);
    if (!read_exact(fd_.get(), b.data(), b.size())) return {};
    return b;
  }
  bool closed_by_peer() {
    char c;
    return ::recv(fd_.get(), &c, 1, 0) == 0;
  }

 private:
  UniqueFd fd_;
  bool connected_ = false;
};

class DnsFilterTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(upstream_.ok()); }
  void start(DnsFilterOptions options = {}) {
    if (options.listen.empty()) options.listen = {DnsEndpoint{*IpAddress::parse("127.0.0.1"), 0}};
    if (options.upstream.empty()) options.upstream = {upstream_.endpoint()};
    auto f = DnsFilter::start(options, oracle_);
    ASSERT_TRUE(f.ok()) << f.error().message;
    filter_ = std::move(*f);
  }
  DnsEndpoint at() const { return filter_->listening().at(0); }

  FakeUpstream upstream_;
  FakeOracle oracle_;
  std::unique_ptr<DnsFilter> filter_;  // declared last: stopped before the oracle goes
};

// --- the tests ---------------------------------------------------------------------------------------

TEST_F(DnsFilterTest, AllowedNameIsAdmittedBeforeTheSandboxGetsTheAnswer) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  oracle_.client_fd = client.fd();
  Bytes reply = client.ask(make_query(0x1111, "WWW.Allowed.Test."), at());
  ASSERT_FALSE(reply.empty());
  EXPECT_EQ(id_of(reply), 0x1111);
  EXPECT_EQ(rcode_of(reply), 0);
  EXPECT_EQ(addresses_of(reply), std::vector<std::string>{"192.0.2.1"});

  auto admitted = oracle_.admitted();
  ASSERT_EQ(admitted.size(), 1u);
  EXPECT_EQ(admitted[0].sandbox, "sb-127.0.0.1");
  EXPECT_EQ(admitted[0].name, "www.allowed.test");  // judged and admitted under the normalised name
  EXPECT_EQ(admitted[0].addresses, std::vector<std::string>{"192.0.2.1"});
  EXPECT_EQ(admitted[0].ttl, 300u);
  EXPECT_FALSE(admitted[0].reply_already_sent);
  EXPECT_EQ(oracle_.judged(), std::vector<std::string>{"www.allowed.test"});

  // Upstream's answer is passed on unchanged but for the id (and it echoes the sandbox's spelling).
  Bytes sent = upstream_.last_sent();
  ASSERT_EQ(sent.size(), reply.size());
  EXPECT_TRUE(std::equal(sent.begin() + 2, sent.end(), reply.begin() + 2));
  EXPECT_EQ(upstream_.count("www.allowed.test", false), 1u);
  EXPECT_EQ(filter_->stats().forwarded, 1u);
}

TEST_F(DnsFilterTest, AddressesBehindACnameAreAdmitted) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  oracle_.client_fd = client.fd();
  Bytes reply = client.ask(make_query(2, "cname.allowed.test"), at());
  EXPECT_EQ(addresses_of(reply), std::vector<std::string>{"192.0.2.9"});
  auto admitted = oracle_.admitted();
  ASSERT_EQ(admitted.size(), 1u);
  EXPECT_EQ(admitted[0].addresses, std::vector<std::string>{"192.0.2.9"});
  EXPECT_FALSE(admitted[0].reply_already_sent);
}

TEST_F(DnsFilterTest, ExfiltrationThroughARefusedNameNeverLeavesTheFilter) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  Bytes reply = client.ask(make_query(3, "c2VjcmV0LWtleQ.evil.test", dns::type::kTxt), at());
  EXPECT_EQ(id_of(reply), 3);
  EXPECT_EQ(rcode_of(reply), 3);  // NXDOMAIN
  auto refusals = oracle_.refusals();
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0].sandbox, "sb-127.0.0.1");
  EXPECT_EQ(refusals[0].name, "c2VjcmV0LWtleQ.evil.test");
  EXPECT_EQ(refusals[0].qtype, dns::type::kTxt);
  // A query after it: the upstream handles queries in order, so had the refused one been sent, it
  // would be recorded by now.
  ASSERT_EQ(rcode_of(client.ask(make_query(4, "sync.allowed.test"), at())), 0);
  for (const auto& s : upstream_.seen()) EXPECT_EQ(s.name.find("evil"), std::string::npos) << s.name;
  EXPECT_TRUE(oracle_.admitted().size() == 1u && oracle_.admitted()[0].name == "sync.allowed.test");
}

TEST_F(DnsFilterTest, NameThatIsNotAHostnameIsRefusedWhateverTheOracleSays) {
  oracle_.resolve_everything = true;
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  // Labels "x.y", "allowed", "test": as text "x.y.allowed.test" would pass for an allowed name.
  Bytes name{3, 'x', '.', 'y'};
  Bytes rest = wire("allowed.test");
  name.insert(name.end(), rest.begin(), rest.end());
  Bytes reply = client.ask(make_query(5, name), at());
  EXPECT_EQ(rcode_of(reply), 3);
  ASSERT_EQ(oracle_.refusals().size(), 1u);
  EXPECT_EQ(oracle_.refusals()[0].name, "x\\.y.allowed.test");
  EXPECT_EQ(oracle_.judged(), std::vector<std::string>{""});
  ASSERT_EQ(rcode_of(client.ask(make_query(6, "sync.allowed.test"), at())), 0);
  EXPECT_EQ(upstream_.seen().size(), 1u);
}

TEST_F(DnsFilterTest, UnknownSourceIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient stranger("127.0.0.2");
  Bytes reply = stranger.ask(make_query(7, "www.allowed.test"), at());
  EXPECT_EQ(id_of(reply), 7);
  EXPECT_EQ(rcode_of(reply), 5);  // REFUSED
  EXPECT_TRUE(oracle_.refusals().empty());
  EXPECT_EQ(filter_->stats().unknown_source, 1u);
  UdpClient client;
  ASSERT_EQ(rcode_of(client.ask(make_query(8, "sync.allowed.test"), at())), 0);
  EXPECT_EQ(upstream_.seen().size(), 1u);
}

TEST_F(DnsFilterTest, OtherClassesAndZoneTransfersAreRefused) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  EXPECT_EQ(rcode_of(client.ask(make_query(9, wire("version.allowed.test"), dns::type::kTxt, 3), at())), 5);  // CH
  EXPECT_EQ(rcode_of(client.ask(make_query(10, "allowed.test", dns::type::kAxfr), at())), 5);
  ASSERT_EQ(rcode_of(client.ask(make_query(11, "sync.allowed.test"), at())), 0);
  EXPECT_EQ(upstream_.seen().size(), 1u);
}

TEST_F(DnsFilterTest, UpstreamTimeoutIsServfail) {
  DnsFilterOptions options;
  options.upstream_timeout = 50ms;
  ASSERT_NO_FATAL_FAILURE(start(options));
  UdpClient client;
  Bytes reply = client.ask(make_query(12, "silent.allowed.test"), at());
  EXPECT_EQ(id_of(reply), 12);
  EXPECT_EQ(rcode_of(reply), 2);  // SERVFAIL
  EXPECT_TRUE(oracle_.admitted().empty());
  EXPECT_EQ(filter_->stats().upstream_failed, 1u);
  EXPECT_TRUE(wait_until([&] { return filter_->stats().inflight == 0; }));  // released after the reply
}

TEST_F(DnsFilterTest, NextUpstreamIsTriedWhenOneFails) {
  // A port nothing listens on: the ICMP "port unreachable" ends the first attempt.
  uint16_t dead_port = 0;
  {
    UniqueFd s = bound_socket(SOCK_DGRAM, "127.0.0.1");
    dead_port = port_of(s.get());
  }
  DnsFilterOptions options;
  options.upstream = {DnsEndpoint{*IpAddress::parse("127.0.0.1"), dead_port}, upstream_.endpoint()};
  ASSERT_NO_FATAL_FAILURE(start(options));
  UdpClient client;
  Bytes reply = client.ask(make_query(13, "www.allowed.test"), at());
  EXPECT_EQ(addresses_of(reply), std::vector<std::string>{"192.0.2.1"});
}

TEST_F(DnsFilterTest, SpoofedResponsesAreIgnored) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  Bytes reply = client.ask(make_query(14, "spoof.allowed.test"), at());
  EXPECT_EQ(id_of(reply), 14);
  EXPECT_EQ(addresses_of(reply), std::vector<std::string>{"192.0.2.5"});
  auto admitted = oracle_.admitted();
  ASSERT_EQ(admitted.size(), 1u);
  EXPECT_EQ(admitted[0].addresses, std::vector<std::string>{"192.0.2.5"});
  // The wrong id and the wrong question reached the filter and were dropped; the one from another
  // port was already dropped by the kernel (connected socket).
  EXPECT_GE(filter_->stats().ignored_responses, 2u);
}

TEST_F(DnsFilterTest, TcpQueriesAreAnsweredOneAfterAnother) {
  ASSERT_NO_FATAL_FAILURE(start());
  TcpClient tcp(at());
  ASSERT_TRUE(tcp.connected());
  tcp.send(make_query(15, "a.allowed.test"));
  Bytes first = tcp.recv();
  EXPECT_EQ(id_of(first), 15);
  EXPECT_EQ(addresses_of(first), std::vector<std::string>{"192.0.2.1"});
  tcp.send(make_query(16, "b.evil.test"));
  EXPECT_EQ(rcode_of(tcp.recv()), 3);
  // Two queries in one segment (pipelined): both answered, in order.
  Bytes both = TcpClient::frame(make_query(17, "c.allowed.test"));
  Bytes second = TcpClient::frame(make_query(18, "d.allowed.test"));
  both.insert(both.end(), second.begin(), second.end());
  tcp.send_raw(both);
  EXPECT_EQ(id_of(tcp.recv()), 17);
  EXPECT_EQ(id_of(tcp.recv()), 18);
  EXPECT_EQ(oracle_.admitted().size(), 3u);
}

TEST_F(DnsFilterTest, TruncatedUpstreamAnswerIsAskedAgainOverTcp) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  Bytes reply = client.ask(make_query(19, "tc.allowed.test"), at());
  EXPECT_EQ(id_of(reply), 19);
  EXPECT_EQ(addresses_of(reply), std::vector<std::string>{"192.0.2.7"});
  EXPECT_EQ(upstream_.count("tc.allowed.test", false), 1u);
  EXPECT_EQ(upstream_.count("tc.allowed.test", true), 1u);
  ASSERT_EQ(oracle_.admitted().size(), 1u);
  EXPECT_EQ(oracle_.admitted()[0].addresses, std::vector<std::string>{"192.0.2.7"});
}

TEST_F(DnsFilterTest, AnswerTooBigForTheSandboxUdpBufferIsTruncatedThenServedOverTcp) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  Bytes reply = client.ask(make_query(20, "big.allowed.test"), at());  // no EDNS: 512 bytes
  ASSERT_LE(reply.size(), 512u);
  auto h = dns::parse_header(reply);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(h->tc());
  EXPECT_EQ(h->ancount, 0);
  TcpClient tcp(at());
  tcp.send(make_query(21, "big.allowed.test"));
  EXPECT_EQ(addresses_of(tcp.recv()).size(), 60u);
}

TEST_F(DnsFilterTest, AdmitFailureIsServfail) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  EXPECT_EQ(rcode_of(client.ask(make_query(22, "noadmit.allowed.test"), at())), 2);
}

TEST_F(DnsFilterTest, FloodFromOneSourceStaysWithinItsInflightCap) {
  DnsFilterOptions options;
  options.max_inflight_per_source = 4;
  ASSERT_NO_FATAL_FAILURE(start(options));
  UdpClient flooder;
  for (uint16_t id = 1; id <= 50; ++id) flooder.send(make_query(id, "hold.allowed.test"), at());
  // 46 are answered SERVFAIL at once; 4 wait for the upstream.
  std::set<uint16_t> refused_ids;
  for (int i = 0; i < 46; ++i) {
    Bytes r = flooder.recv();
    ASSERT_EQ(rcode_of(r), 2) << "reply " << i;
    refused_ids.insert(id_of(r));
  }
  EXPECT_EQ(refused_ids.size(), 46u);
  ASSERT_TRUE(wait_until([&] { return upstream_.count("hold.allowed.test", false) == 4; }));
  EXPECT_EQ(filter_->stats().inflight, 4u);
  EXPECT_EQ(filter_->stats().over_limit, 46u);
  // Another sandbox is not held back by the first one's flood.
  UdpClient neighbour("127.0.0.3");
  EXPECT_EQ(addresses_of(neighbour.ask(make_query(99, "www.allowed.test"), at())),
            std::vector<std::string>{"192.0.2.1"});
  upstream_.release_held();
  for (int i = 0; i < 4; ++i) {
    Bytes r = flooder.recv();
    EXPECT_EQ(rcode_of(r), 0);
    EXPECT_EQ(refused_ids.count(id_of(r)), 0u);
  }
  EXPECT_EQ(upstream_.count("hold.allowed.test", false), 4u);
  ASSERT_TRUE(wait_until([&] { return filter_->stats().inflight == 0; }));
  // Room again.
  EXPECT_EQ(rcode_of(flooder.ask(make_query(100, "www.allowed.test"), at())), 0);
}

TEST_F(DnsFilterTest, TotalInflightIsCappedAcrossSources) {
  DnsFilterOptions options;
  options.max_inflight = 3;
  ASSERT_NO_FATAL_FAILURE(start(options));
  UdpClient one, three("127.0.0.3");
  for (uint16_t id = 1; id <= 2; ++id) one.send(make_query(id, "hold.allowed.test"), at());
  ASSERT_TRUE(wait_until([&] { return upstream_.count("hold.allowed.test", false) == 2; }));
  three.send(make_query(3, "hold.allowed.test"), at());
  ASSERT_TRUE(wait_until([&] { return upstream_.count("hold.allowed.test", false) == 3; }));
  EXPECT_EQ(rcode_of(three.ask(make_query(4, "www.allowed.test"), at())), 2);
  upstream_.release_held();
  EXPECT_EQ(rcode_of(three.recv()), 0);
}

TEST_F(DnsFilterTest, MalformedPacketsAreAnsweredOrDroppedAndTheFilterKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(start());
  UdpClient client;
  std::vector<Bytes> formerr;  // header readable, QR=0: FORMERR with the same id
  Bytes zero_questions = make_query(0x0a01, "x.allowed.test");
  zero_questions[5] = 0;
  formerr.push_back(zero_questions);
  Bytes two_questions = make_query(0x0a02, "x.allowed.test");
  two_questions[5] = 2;
  formerr.push_back(two_questions);
  Bytes trailing = make_query(0x0a03, "x.allowed.test");
  trailing.push_back(0);
  formerr.push_back(trailing);
  Bytes loop = make_query(0x0a04, Bytes{0xc0, 0x0c});  // the name points at itself
  formerr.push_back(loop);
  Bytes long_label = make_query(0x0a05, "x.allowed.test");
  long_label[12] = 0x7f;
  formerr.push_back(long_label);
  Bytes counts = make_query(0x0a06, "x.allowed.test");
  counts[10] = counts[11] = 0xff;
  formerr.push_back(counts);
  std::vector<Bytes> dropped;  // no header, or claims to be a response: never answered
  dropped.push_back({});
  dropped.push_back({1, 2, 3, 4, 5});
  Bytes response = make_query(0x0b01, "x.allowed.test");
  response[2] |= 0x80;
  dropped.push_back(response);
  Bytes junk(3000);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 7 + 1);
  junk[2] |= 0x80;
  dropped.push_back(junk);

  for (const auto& d : dropped) client.send(d, at());
  for (const auto& f : formerr) client.send(f, at());
  client.send(make_query(0x0c01, "after.allowed.test"), at());
  // Datagrams are handled in order: the FORMERRs, then the answer, and nothing for the rest.
  for (const auto& f : formerr) {
    Bytes r = client.recv();
    EXPECT_EQ(id_of(r), id_of(f));
    EXPECT_EQ(rcode_of(r), 1);
  }
  Bytes answer = client.recv();
  EXPECT_EQ(id_of(answer), 0x0c01);
  EXPECT_EQ(addresses_of(answer), std::vector<std::string>{"192.0.2.1"});
  EXPECT_EQ(filter_->stats().malformed, formerr.size() + dropped.size());
  EXPECT_EQ(upstream_.seen().size(), 1u);

  // Over TCP: a length too small for a header closes the connection; a FORMERR keeps it.
  TcpClient bad_length(at());
  bad_length.send_raw({0x00, 0x03, 1, 2, 3});
  EXPECT_TRUE(bad_length.closed_by_peer());
  TcpClient tcp(at());
  tcp.send(two_questions);
  EXPECT_EQ(rcode_of(tcp.recv()), 1);
  tcp.send(make_query(0x0c02, "after.allowed.test"));
  EXPECT_EQ(id_of(tcp.recv()), 0x0c02);
}

TEST_F(DnsFilterTest, TcpConnectionsPerSourceAreCapped) {
  DnsFilterOptions options;
  options.max_tcp_connections_per_source = 2;
  ASSERT_NO_FATAL_FAILURE(start(options));
  TcpClient a(at()), b(at());
  // a and b have been accepted by the time they are answered, so c is the third of this source.
  a.send(make_query(1, "a.allowed.test"));
  EXPECT_EQ(id_of(a.recv()), 1);
  b.send(make_query(2, "b.allowed.test"));
  EXPECT_EQ(id_of(b.recv()), 2);
  TcpClient c(at());
  c.send(make_query(3, "c.allowed.test"));
  EXPECT_TRUE(c.recv().empty());  // closed at accept
  EXPECT_EQ(filter_->stats().tcp_rejected, 1u);
  a.send(make_query(4, "a.allowed.test"));
  EXPECT_EQ(id_of(a.recv()), 4);
}

TEST_F(DnsFilterTest, ServesOnIpv6) {
  DnsFilterOptions options;
  options.listen = {DnsEndpoint{*IpAddress::parse("::1"), 0}};
  options.upstream = {upstream_.endpoint()};
  auto f = DnsFilter::start(options, oracle_);
  if (!f.ok()) GTEST_SKIP() << "no IPv6 loopback: " << f.error().message;
  filter_ = std::move(*f);
  UniqueFd fd(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  set_recv_timeout(fd.get());
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_port = htons(at().port);
  to.sin6_addr = in6addr_loopback;
  Bytes q = make_query(30, "www.allowed.test");
  ::sendto(fd.get(), q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  Bytes reply(512);
  ssize_t n = ::recv(fd.get(), reply.data(), reply.size(), 0);
  reply.resize(n < 0 ? 0 : static_cast<size_t>(n));
  EXPECT_EQ(rcode_of(reply), 5);  // ::1 is no sandbox of the fake oracle
  EXPECT_EQ(oracle_.judged(), std::vector<std::string>{"www.allowed.test"});
}

TEST_F(DnsFilterTest, StartChecksItsOptions) {
  DnsFilterOptions none;
  none.listen = {DnsEndpoint{*IpAddress::parse("127.0.0.1"), 0}};
  EXPECT_EQ(DnsFilter::start(none, oracle_).error().errnum, EINVAL);  // no upstream
  DnsFilterOptions self;  // forwarding to itself: refused before anything is bound
  self.listen = {DnsEndpoint{*IpAddress::parse("127.0.0.1"), 53}};
  self.upstream = {upstream_.endpoint(), DnsEndpoint{*IpAddress::parse("127.0.0.1"), 53}};
  auto looped = DnsFilter::start(self, oracle_);
  ASSERT_FALSE(looped.ok());
  EXPECT_EQ(looped.error().errnum, EINVAL);
}

TEST(ResolvConf, FirstUsableNameserver) {
  auto e = parse_resolv_conf_nameserver(
      "# generated\nsearch example.com\n  nameserver   fe80::1%eth0\n;nameserver 9.9.9.9\n"
      "nameserver 10.0.0.2 # comment\nnameserver 10.0.0.3\n");
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(e->str(), "10.0.0.2:53");
  auto v6 = parse_resolv_conf_nameserver("nameserver\t2001:db8::53\n");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->str(), "[2001:db8::53]:53");
  EXPECT_EQ(parse_resolv_conf_nameserver("search x\nnameservers 1.1.1.1\n").error().errnum, ENOENT);
  EXPECT_EQ(read_resolv_conf_nameserver("/nonexistent/resolv.conf").error().errnum, ENOENT);
}

}  // namespace
}  // namespace airlock::net
