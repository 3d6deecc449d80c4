// A sandbox's egress policy as data: the mode, and the allow/deny lists of destinations (CIDRs,
// addresses with a port, domains with wildcards). Parsing validates every entry; rendering to
// nftables lives in nft_rules.h and matching names for the DNS filter here (matches_domain).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "network/netlink.h"

namespace airlock::net {

enum class EgressMode {
  kNone,   // loopback only, unless allow_out lists destinations (then: only those)
  kAllow,  // the internet, minus private/link-local/host/sandbox ranges unless allowed explicitly
};

// One allow_out/deny_out entry, e.g. "10.1.0.0/16", "203.0.113.7:443", "[2001:db8::1]:53",
// "github.com", "*.pypi.org", "pypi.org:443".
struct Destination {
  enum class Kind { kCidr, kDomain };
  Kind kind = Kind::kCidr;
  IpAddress address;            // kCidr: the network address (host bits cleared)
  int prefix_len = 0;           // kCidr
  std::string domain;           // kDomain: lowercase, no trailing dot; "*.x.y" = any name under x.y
  std::optional<uint16_t> port; // TCP and UDP; none: every port

  std::string str() const;  // canonical text, parseable again
};

// Parses one entry; the error names what is wrong with it.
Result<Destination> parse_destination(std::string_view text);

struct EgressPolicy {
  EgressMode mode = EgressMode::kNone;
  std::vector<Destination> allow_out;
  std::vector<Destination> deny_out;
  // Each direction (to and from the sandbox) policed to this many Mbit/s; none: unlimited.
  std::optional<uint32_t> bandwidth_mbps;

  // Whether the sandbox needs an interface at all (otherwise: loopback only).
  bool has_interface() const { return mode == EgressMode::kAllow || !allow_out.empty(); }
  bool has_domain_rules() const;
};

inline constexpr size_t kMaxPolicyEntries = 256;  // per list
inline constexpr size_t kMaxDomainLength = 253;
inline constexpr uint32_t kMaxBandwidthMbps = 100000;

// Normalises a DNS name for matching: lowercase, trailing dot removed. Empty when invalid.
std::string normalize_domain(std::string_view name);
// Does `name` (normalised) match the rule's domain ("github.com" exactly; "*.pypi.org": any name
// strictly under pypi.org)?
bool matches_domain(const Destination& rule, std::string_view name);

// What the DNS filter does with a query for `name` under a policy.
struct NameRules {
  bool refuse = false;  // answer NXDOMAIN (and log): no rule admits the name, or a port-less deny
  // When resolved: the answers become reachable on these ports (nullopt: every port)...
  std::vector<std::optional<uint16_t>> allow_ports;
  // ...and unreachable on these (a deny rule with a port, e.g. "evil.test:25").
  std::vector<uint16_t> deny_ports;
};
NameRules rules_for_name(const EgressPolicy& policy, std::string_view name);

}  // namespace airlock::net
