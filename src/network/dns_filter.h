// The DNS filter: the resolver sandboxes are given (on the bridge's gateway address). It answers only
// names the sandbox's policy allows, and hands the addresses of each answer to the daemon before the
// sandbox sees them, so that the sandbox can reach exactly the addresses it was told about (the
// daemon adds them to the sandbox's nftables set). Everything else is NXDOMAIN and never leaves the
// host: a sandbox cannot exfiltrate data by asking for `<secret>.evil.test`.
//
//   sandbox ──UDP/TCP──▶ DnsFilter ──judge(source, name)──▶ oracle (daemon: policy of that sandbox)
//                           │ allowed: query upstream (new random id, new random source port)
//                           │ answer:  admit(addresses) ──▶ oracle (nftables set), then reply
//                           ▼ refused: NXDOMAIN + refused() for the log; unknown source: REFUSED
//
// One thread runs an epoll loop over every socket; the oracle is called on that thread and should
// be quick (it delays every query behind it). Bounded: queries in flight per source and in total,
// TCP connections in total and per source, one query at a time per TCP connection, timeouts on
// every upstream exchange and idle TCP connection.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "network/netlink.h"

namespace airlock::net {

struct DnsEndpoint {
  IpAddress address;
  uint16_t port = 53;

  std::string str() const;  // "10.213.0.1:53", "[fd00::1]:53"
  bool operator==(const DnsEndpoint& o) const { return address == o.address && port == o.port; }
};

// The filter's question to the daemon about a query: whose is it, and may the name be resolved?
struct DnsDecision {
  enum Kind {
    kUnknownSource,  // no sandbox has this address: REFUSED
    kRefuse,         // the sandbox's policy does not admit the name: NXDOMAIN
    kResolve,        // forward upstream
  };
  Kind kind = kUnknownSource;
  std::string sandbox;  // the sandbox id (kRefuse, kResolve); handed back to admit() and refused()
};

// Implemented by the daemon. Called on the filter's thread, one call at a time.
class DnsOracle {
 public:
  virtual ~DnsOracle() = default;
  // `name` is normalised (normalize_domain: lowercase, no trailing dot), or empty when the query's
  // name is not a valid hostname; such a query is refused whatever the answer (unless the source
  // is unknown).
  virtual DnsDecision judge(const IpAddress& source, const std::string& name) = 0;
  // The addresses of an answer for an allowed name, before the reply goes to the sandbox. `sandbox`
  // is the id judge() gave, so an address that changed hands in between is not given the answers.
  // Returns false to answer SERVFAIL instead (the addresses could not be made reachable).
  virtual bool admit(const std::string& sandbox, const IpAddress& source, const std::string& name,
                     const std::vector<IpAddress>& addresses, uint32_t ttl_seconds) = 0;
  // A query answered NXDOMAIN by policy (for the sandbox's log). `name` is the query's name in
  // presentation form (escaped, possibly not a valid hostname).
  virtual void refused(const std::string& sandbox, const IpAddress& source, const std::string& name,
                       uint16_t qtype) = 0;
};

struct DnsFilterOptions {
  // UDP and TCP on each (port 0: any free port, see DnsFilter::listening()). Bound with IP_FREEBIND,
  // so the bridge's address need not exist yet.
  std::vector<DnsEndpoint> listen;
  // Tried in order: the next one after a timeout or an error of the one before.
  std::vector<DnsEndpoint> upstream;
  std::chrono::milliseconds upstream_timeout{2000};  // per upstream attempt (UDP, then TCP on TC=1)
  std::chrono::milliseconds tcp_idle_timeout{10000};  // client TCP: reading a query, writing a reply
  size_t max_inflight_per_source = 64;  // more: SERVFAIL at once
  size_t max_inflight = 512;            // in total (each holds one upstream socket)
  size_t max_tcp_connections = 64;      // client connections in total; more are closed at accept
  size_t max_tcp_connections_per_source = 8;
};

// Counters for metrics and tests (monotonic except `inflight`).
struct DnsFilterStats {
  uint64_t queries = 0;          // well-formed queries received (UDP and TCP)
  uint64_t malformed = 0;        // packets that are not a query (answered FORMERR, or dropped)
  uint64_t unknown_source = 0;   // REFUSED: no sandbox at the source address
  uint64_t refused = 0;          // NXDOMAIN by policy
  uint64_t forwarded = 0;        // sent upstream
  uint64_t over_limit = 0;       // SERVFAIL: in-flight cap reached
  uint64_t upstream_failed = 0;  // SERVFAIL: every upstream timed out or failed
  uint64_t ignored_responses = 0;  // upstream datagrams that did not answer our query (spoofed, late)
  uint64_t tcp_rejected = 0;     // client TCP connections closed at accept (cap)
  uint64_t inflight = 0;         // queries waiting for an upstream now
};

class DnsFilter {
 public:
  // Binds every listen address, then serves on its own thread until stop().
  static Result<std::unique_ptr<DnsFilter>> start(DnsFilterOptions options, DnsOracle& oracle);
  ~DnsFilter();  // stop()
  DnsFilter(const DnsFilter&) = delete;
  DnsFilter& operator=(const DnsFilter&) = delete;

  // Stops serving and joins the thread; queries in flight get no answer. Idempotent.
  void stop();

  // The bound addresses, in the order of options.listen (ports filled in).
  const std::vector<DnsEndpoint>& listening() const { return listening_; }
  DnsFilterStats stats() const;

  class Loop;  // the event loop (dns_filter.cc)

 private:
  DnsFilter() = default;

  std::vector<DnsEndpoint> listening_;
  UniqueFd wake_;  // eventfd: stop()
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

// The first usable `nameserver` of a resolv.conf text (addresses with a zone index, "fe80::1%eth0",
// are skipped: IpAddress has no zone), port 53. ENOENT when there is none.
Result<DnsEndpoint> parse_resolv_conf_nameserver(std::string_view text);
Result<DnsEndpoint> read_resolv_conf_nameserver(const std::string& path = "/etc/resolv.conf");

}  // namespace airlock::net
