#include "network/nft_rules.h"

#include <algorithm>
#include <cstdio>

namespace airlock::net {
namespace {

// Ranges a sandbox in mode `allow` never reaches unless a rule allows them explicitly.
constexpr const char* kBlocked4 =
    "0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.0.0.0/24, "
    "192.168.0.0/16, 198.18.0.0/15, 224.0.0.0/3";
constexpr const char* kBlocked6 = "::/127, ::ffff:0:0/96, 100::/64, fc00::/7, fe80::/10, ff00::/8";

IpAddress plus(IpAddress base, uint32_t n) {
  // Adds n to the low 32 bits (pool sizes never need more).
  size_t last = base.size() - 1;
  uint64_t carry = n;
  for (size_t i = 0; i < 4 && carry; ++i) {
    uint64_t v = base.bytes[last - i] + (carry & 0xff);
    base.bytes[last - i] = static_cast<uint8_t>(v);
    carry = (carry >> 8) + (v >> 8);
  }
  return base;
}

std::string cidr(const IpAddress& a, int prefix) { return a.str() + "/" + std::to_string(prefix); }

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string chain_name(const SandboxAddresses& s, const char* dir) {
  return "sb_" + std::to_string(s.index) + "_" + dir;
}

std::string set_name(const SandboxAddresses& s, const char* what) {
  return "sb_" + std::to_string(s.index) + "_" + what;
}

std::string hex_mark(uint16_t generation) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04x0000", generation);
  return buf;
}

// Static entries of one list, split by family and by whether they carry a port.
struct Split {
  std::vector<std::string> v4, v6, v4p, v6p;
};

Split split(const std::vector<Destination>& list) {
  Split out;
  for (const auto& d : list) {
    if (d.kind != Destination::Kind::kCidr) continue;
    std::string net = cidr(d.address, d.prefix_len);
    bool v4 = d.address.family == AF_INET;
    if (d.port) {
      (v4 ? out.v4p : out.v6p).push_back(net + " . " + std::to_string(*d.port));
    } else {
      (v4 ? out.v4 : out.v6).push_back(net);
    }
  }
  return out;
}

std::string anon_set(const std::vector<std::string>& items) {
  std::string out = "{ ";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out + " }";
}

// The rules of one direction. out: the sandbox's packets (destination = daddr/dport); in: packets
// coming back (the remote = saddr/sport). Denied: `goto refuse` out (a reset or an ICMP error, so the
// program fails at once), dropped in.
std::string render_chain(const NetworkConfig& config, const SandboxAddresses& s, const EgressPolicy& policy,
                         uint16_t generation, bool out) {
  const std::string chain = chain_name(s, out ? "out" : "in");
  const std::string a4 = out ? "ip daddr" : "ip saddr";
  const std::string a6 = out ? "ip6 daddr" : "ip6 saddr";
  const std::string port = out ? "th dport" : "th sport";
  const std::string deny = out ? "goto refuse" : "drop";
  const std::string mark = hex_mark(generation);
  const std::string accept = "ct mark set ct mark and 0x0000ffff or " + mark + " accept";
  const std::string tp = "meta l4proto { tcp, udp } ";
  std::string r;
  auto rule = [&](const std::string& text) { r += "add rule inet " + config.table + " " + chain + " " + text + "\n"; };

  if (policy.bandwidth_mbps) {
    // Policing, per direction: packets beyond the rate (after a burst of ~100 ms) are dropped, and
    // TCP backs off to the rate.
    uint64_t kbytes = uint64_t{*policy.bandwidth_mbps} * 125;
    rule("limit rate over " + std::to_string(kbytes) + " kbytes/second burst " +
         std::to_string(std::max<uint64_t>(kbytes / 10, 64)) + " kbytes drop");
  }
  rule("ct state established,related ct mark and 0xffff0000 == " + mark + " accept");
  Split d = split(policy.deny_out);
  if (!d.v4.empty()) rule(a4 + " " + anon_set(d.v4) + " " + deny);
  if (!d.v6.empty()) rule(a6 + " " + anon_set(d.v6) + " " + deny);
  if (!d.v4p.empty()) rule(tp + a4 + " . " + port + " " + anon_set(d.v4p) + " " + deny);
  if (!d.v6p.empty()) rule(tp + a6 + " . " + port + " " + anon_set(d.v6p) + " " + deny);
  bool dns = policy.has_domain_rules();
  if (dns) {
    rule(tp + a4 + " . " + port + " @" + set_name(s, "dnsdeny4p") + " " + deny);
    rule(tp + a6 + " . " + port + " @" + set_name(s, "dnsdeny6p") + " " + deny);
  }
  Split a = split(policy.allow_out);
  if (!a.v4.empty()) rule(a4 + " " + anon_set(a.v4) + " " + accept);
  if (!a.v6.empty()) rule(a6 + " " + anon_set(a.v6) + " " + accept);
  if (!a.v4p.empty()) rule(tp + a4 + " . " + port + " " + anon_set(a.v4p) + " " + accept);
  if (!a.v6p.empty()) rule(tp + a6 + " . " + port + " " + anon_set(a.v6p) + " " + accept);
  if (dns) {
    rule(a4 + " @" + set_name(s, "dns4") + " " + accept);
    rule(a6 + " @" + set_name(s, "dns6") + " " + accept);
    rule(tp + a4 + " . " + port + " @" + set_name(s, "dns4p") + " " + accept);
    rule(tp + a6 + " . " + port + " @" + set_name(s, "dns6p") + " " + accept);
  }
  if (policy.mode == EgressMode::kAllow) {
    rule(a4 + " @blocked4 " + deny);
    rule(a6 + " @blocked6 " + deny);
    rule(accept);
  } else {
    rule(deny);
  }
  return r;
}

// Adding an element that is already there keeps its old timeout (nft 1.0.6 has no "destroy" or
// "update"): SandboxNetworks::admit deletes and re-adds in one batch to extend one.
std::string render_resolved_elements(const NetworkConfig& config, const SandboxAddresses& s,
                                     const std::vector<ResolvedAddress>& resolved, bool add) {
  std::string r;
  for (const auto& e : resolved) {
    bool v4 = e.address.family == AF_INET;
    const char* set = e.deny ? (v4 ? "dnsdeny4p" : "dnsdeny6p")
                             : e.port ? (v4 ? "dns4p" : "dns6p") : (v4 ? "dns4" : "dns6");
    if (e.deny && !e.port) continue;  // a port-less deny never resolves (NXDOMAIN)
    std::string key = e.address.str();
    if (e.port) key += " . " + std::to_string(*e.port);
    if (add) key += " timeout " + std::to_string(std::clamp<uint32_t>(e.ttl_seconds, 1, 86400)) + "s";
    r += (add ? "add" : "delete") + std::string(" element inet ") + config.table + " " + set_name(s, set) + " { " +
         key + " }\n";
  }
  return r;
}

}  // namespace

IpAddress NetworkConfig::gateway4() const { return plus(pool4, 1); }
IpAddress NetworkConfig::gateway6() const { return plus(pool6, 1); }

Result<SandboxAddresses> sandbox_addresses(const NetworkConfig& config, uint32_t index) {
  uint64_t capacity4 = (uint64_t{1} << (32 - config.pool4_prefix)) - 3;  // network, gateway, broadcast
  if (index >= capacity4) {
    return Error{ENOSPC, "sandbox network pool " + cidr(config.pool4, config.pool4_prefix) + " has no address for index " +
                             std::to_string(index)};
  }
  SandboxAddresses s;
  s.index = index;
  s.v4 = plus(config.pool4, index + 2);
  s.v6 = plus(config.pool6, index + 2);
  s.host_interface = "alv" + std::to_string(index);
  return s;
}

std::string render_delete_tables(const NetworkConfig& config) {
  // "add" first so the delete never fails on a missing table: idempotent.
  return "add table inet " + config.table + "\ndelete table inet " + config.table + "\nadd table bridge " +
         config.table + "\ndelete table bridge " + config.table + "\n";
}

std::string render_base_tables(const NetworkConfig& config, bool isolate4, bool isolate6) {
  const std::string br = quoted(config.bridge);
  const std::string p4 = cidr(config.pool4, config.pool4_prefix);
  const std::string p6 = cidr(config.pool6, config.pool6_prefix);
  const std::string gw4 = config.gateway4().str();
  const std::string gw6 = config.gateway6().str();
  const std::string out_if = config.uplink ? "oifname " + quoted(*config.uplink) : "oifname != " + br;
  std::string t = render_delete_tables(config);
  t += "table inet " + config.table + " {\n";
  t += "  set blocked4 { type ipv4_addr; flags interval; auto-merge; elements = { " + std::string(kBlocked4) + ", " + p4 + " } }\n";
  t += "  set blocked6 { type ipv6_addr; flags interval; auto-merge; elements = { " + std::string(kBlocked6) + ", " + p6 + " } }\n";
  t += "  map out4 { type ipv4_addr : verdict; }\n";
  t += "  map out6 { type ipv6_addr : verdict; }\n";
  t += "  map in4 { type ipv4_addr : verdict; }\n";
  t += "  map in6 { type ipv6_addr : verdict; }\n";
  t += "  chain refuse {\n    meta l4proto tcp reject with tcp reset\n    reject with icmpx admin-prohibited\n  }\n";
  t += "  chain forward {\n    type filter hook forward priority filter; policy accept;\n";
  t += "    iifname " + br + " oifname " + br + " goto refuse\n";  // sandbox to sandbox, whatever the rules say
  t += "    iifname " + br + " ip saddr vmap @out4\n";
  t += "    iifname " + br + " ip6 saddr vmap @out6\n";
  t += "    iifname " + br + " drop\n";  // unknown (spoofed) source
  if (config.uplink) t += "    oifname " + br + " iifname != " + quoted(*config.uplink) + " drop\n";
  t += "    oifname " + br + " ct state established,related ip daddr vmap @in4\n";
  t += "    oifname " + br + " ct state established,related ip6 daddr vmap @in6\n";
  t += "    oifname " + br + " drop\n";  // nothing opens a connection into a sandbox
  if (isolate4) t += "    meta nfproto ipv4 drop\n";
  if (isolate6) t += "    meta nfproto ipv6 drop\n";
  t += "  }\n";
  // The host itself: only the resolver on the gateway, and what IPv6 needs to find its neighbours.
  t += "  chain input {\n    type filter hook input priority filter; policy accept;\n";
  t += "    iifname " + br + " ct state established,related accept\n";
  t += "    iifname " + br + " ip daddr " + gw4 + " meta l4proto { tcp, udp } th dport 53 accept\n";
  t += "    iifname " + br + " ip6 daddr " + gw6 + " meta l4proto { tcp, udp } th dport 53 accept\n";
  t += "    iifname " + br + " icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n";
  t += "    iifname " + br + " goto refuse\n  }\n";  // fail fast, like any refused destination
  t += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
  t += "    ip saddr " + p4 + " " + out_if + " masquerade\n";
  t += "    ip6 saddr " + p6 + " " + out_if + " masquerade\n  }\n";
  t += "}\n";
  // Layer 2: a port may only send from its own addresses (and IPv6 link-local for neighbour
  // discovery), so no sandbox can borrow another's policy by claiming its address.
  t += "table bridge " + config.table + " {\n";
  t += "  set src4 { type ifname . ipv4_addr; }\n";
  t += "  set src6 { type ifname . ipv6_addr; }\n";
  t += "  chain prerouting {\n    type filter hook prerouting priority filter; policy accept;\n";
  t += "    iifname != \"alv*\" accept\n";  // not a sandbox's port (meta ibrname needs nft_meta_bridge)
  t += "    ether type != { ip, ip6, arp } drop\n";
  t += "    ether type ip iifname . ip saddr != @src4 drop\n";
  t += "    ether type arp iifname . arp saddr ip != @src4 drop\n";
  t += "    ether type ip6 ip6 saddr { ::/128, fe80::/10 } accept\n";
  t += "    ether type ip6 iifname . ip6 saddr != @src6 drop\n";
  t += "  }\n}\n";
  return t;
}

std::string render_sandbox_add(const NetworkConfig& config, const SandboxAddresses& s, const EgressPolicy& policy,
                               uint16_t generation, const std::vector<ResolvedAddress>& resolved) {
  const std::string& tb = config.table;
  const std::string in = chain_name(s, "in");
  const std::string out = chain_name(s, "out");
  std::string r;
  if (policy.has_domain_rules()) {
    for (const char* set : {"dns4", "dns6", "dns4p", "dns6p", "dnsdeny4p", "dnsdeny6p"}) {
      std::string name(set);
      std::string type = name.find('4') != std::string::npos ? "ipv4_addr" : "ipv6_addr";
      if (name.back() == 'p') type += " . inet_service";
      r += "add set inet " + tb + " " + set_name(s, set) + " { type " + type + "; flags timeout; }\n";
    }
  }
  r += "add chain inet " + tb + " " + out + "\n";
  r += "add chain inet " + tb + " " + in + "\n";
  r += render_chain(config, s, policy, generation, true);
  r += render_chain(config, s, policy, generation, false);
  r += render_resolved_elements(config, s, resolved, true);
  r += "add element inet " + tb + " out4 { " + s.v4.str() + " : jump " + out + " }\n";
  r += "add element inet " + tb + " out6 { " + s.v6.str() + " : jump " + out + " }\n";
  r += "add element inet " + tb + " in4 { " + s.v4.str() + " : jump " + in + " }\n";
  r += "add element inet " + tb + " in6 { " + s.v6.str() + " : jump " + in + " }\n";
  r += "add element bridge " + tb + " src4 { " + quoted(s.host_interface) + " . " + s.v4.str() + " }\n";
  r += "add element bridge " + tb + " src6 { " + quoted(s.host_interface) + " . " + s.v6.str() + " }\n";
  return r;
}

std::string render_sandbox_delete(const NetworkConfig& config, const SandboxAddresses& s, bool had_dns_sets) {
  const std::string& tb = config.table;
  std::string r;
  r += "delete element inet " + tb + " out4 { " + s.v4.str() + " }\n";
  r += "delete element inet " + tb + " out6 { " + s.v6.str() + " }\n";
  r += "delete element inet " + tb + " in4 { " + s.v4.str() + " }\n";
  r += "delete element inet " + tb + " in6 { " + s.v6.str() + " }\n";
  r += "delete element bridge " + tb + " src4 { " + quoted(s.host_interface) + " . " + s.v4.str() + " }\n";
  r += "delete element bridge " + tb + " src6 { " + quoted(s.host_interface) + " . " + s.v6.str() + " }\n";
  r += "delete chain inet " + tb + " " + chain_name(s, "out") + "\n";
  r += "delete chain inet " + tb + " " + chain_name(s, "in") + "\n";
  if (had_dns_sets) {
    for (const char* set : {"dns4", "dns6", "dns4p", "dns6p", "dnsdeny4p", "dnsdeny6p"}) {
      r += "delete set inet " + tb + " " + set_name(s, set) + "\n";
    }
  }
  return r;
}

std::string render_sandbox_replace(const NetworkConfig& config, const SandboxAddresses& s, bool had_dns_sets,
                                   const EgressPolicy& policy, uint16_t generation,
                                   const std::vector<ResolvedAddress>& resolved) {
  return render_sandbox_delete(config, s, had_dns_sets) + render_sandbox_add(config, s, policy, generation, resolved);
}

std::string render_resolved(const NetworkConfig& config, const SandboxAddresses& s,
                            const std::vector<ResolvedAddress>& resolved) {
  return render_resolved_elements(config, s, resolved, true);
}

std::string render_resolved_delete(const NetworkConfig& config, const SandboxAddresses& s,
                                   const std::vector<ResolvedAddress>& resolved) {
  return render_resolved_elements(config, s, resolved, false);
}

}  // namespace airlock::net
