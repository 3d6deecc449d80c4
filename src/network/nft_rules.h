// The nftables rules of sandbox networking, rendered as nft text (pure functions: unit-tested
// without privileges, applied by Nft). Everything lives in two tables of our own, `inet airlock`
// and `bridge airlock`, so the host's other rules are never touched and teardown is one delete.
//
// Per sandbox: a chain for its outgoing packets (sb_<i>_out) and one for packets coming back
// (sb_<i>_in), reached through verdict maps keyed by the sandbox's address (spoofing another
// sandbox's address is stopped first, at the bridge). Established connections are accepted by a
// conntrack mark holding the policy's generation, so a policy update (new generation) makes every
// packet of an old connection go through the new rules: newly denied destinations are cut at once.
// Domain rules are served by named sets that the DNS filter fills with the answers it hands out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "network/egress_policy.h"
#include "network/netlink.h"

namespace airlock::net {

struct NetworkConfig {
  std::string bridge = "airlock0";
  std::string table = "airlock";  // name of both nft tables
  IpAddress pool4 = *IpAddress::parse("10.213.0.0");
  int pool4_prefix = 16;
  IpAddress pool6 = *IpAddress::parse("fd00:a1c0:7e57::");
  int pool6_prefix = 64;
  std::optional<std::string> uplink;  // NAT only out of this interface (default: any but the bridge)

  IpAddress gateway4() const;  // pool + 1 (the bridge's address, the resolver's address)
  IpAddress gateway6() const;
};

// The addresses of the sandbox holding id-range index `index` (pool + 2 + index).
struct SandboxAddresses {
  uint32_t index = 0;
  IpAddress v4;
  IpAddress v6;
  std::string host_interface;  // "alv<index>" (the bridge port; "eth0" inside)
};
Result<SandboxAddresses> sandbox_addresses(const NetworkConfig& config, uint32_t index);

// Answers the DNS filter added for one sandbox: the address may be reached (on `port`, or any port
// when none), or not reached on `port` (deny with a port). Expires after `ttl_seconds`.
struct ResolvedAddress {
  IpAddress address;
  std::optional<uint16_t> port;
  bool deny = false;
  uint32_t ttl_seconds = 60;
};

// Creates (or recreates: the old tables are deleted in the same batch) both tables, without any
// sandbox. `isolate4`/`isolate6`: the daemon turned IPv4/IPv6 forwarding on, so forwarding that is
// not a sandbox's is dropped, as it was before.
std::string render_base_tables(const NetworkConfig& config, bool isolate4, bool isolate6);
std::string render_delete_tables(const NetworkConfig& config);

// Adds a sandbox's chains, sets and map entries. `generation` (1..65535) must differ from the one
// used before for this sandbox when replacing (see render_sandbox_replace).
std::string render_sandbox_add(const NetworkConfig& config, const SandboxAddresses& sandbox,
                               const EgressPolicy& policy, uint16_t generation,
                               const std::vector<ResolvedAddress>& resolved);
std::string render_sandbox_delete(const NetworkConfig& config, const SandboxAddresses& sandbox, bool had_dns_sets);
// One atomic batch: delete, then add with the new policy and generation.
std::string render_sandbox_replace(const NetworkConfig& config, const SandboxAddresses& sandbox, bool had_dns_sets,
                                   const EgressPolicy& policy, uint16_t generation,
                                   const std::vector<ResolvedAddress>& resolved);
// Adds DNS answers to a sandbox's sets (only when its policy has domain rules).
std::string render_resolved(const NetworkConfig& config, const SandboxAddresses& sandbox,
                            const std::vector<ResolvedAddress>& resolved);
// Removes them again (fails when one has expired meanwhile).
std::string render_resolved_delete(const NetworkConfig& config, const SandboxAddresses& sandbox,
                                   const std::vector<ResolvedAddress>& resolved);

}  // namespace airlock::net
