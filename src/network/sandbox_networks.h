// Every sandbox network on this host: the bridge, the nftables tables, and per sandbox a veth pair,
// its addresses and its rules. Host state is re-established idempotently when the daemon starts
// (the bridge is re-used, the tables are rebuilt from the sandboxes the daemon still has) and
// removed once no sandbox needs it.
//
//   host:     airlock0 (gateway 10.213.0.1/16, fd00:a1c0:7e57::1/64) ── alv<i> (isolated port)
//   sandbox:  eth0 (10.213.x.y/16, fd00:a1c0:7e57::x/64, default routes via the gateway), lo
//
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "network/egress_policy.h"
#include "network/nft.h"
#include "network/nft_rules.h"

namespace airlock::net {

struct SandboxNetworksOptions {
  NetworkConfig config;
  // IPv6 egress needs the host to forward IPv6, which also makes every interface ignore router
  // advertisements (accept_ra=1): only turned on when asked. IPv4 forwarding is turned on when
  // needed (and other forwarding kept off by our own rule, as it was).
  bool enable_ipv6_forwarding = false;
  std::string state_dir;  // remembers what the daemon changed on the host (e.g. /run/airlock/net)
};

// A DNS answer the filter handed out: reachable for the sandbox until it expires.
struct ResolvedName {
  std::string name;
  std::vector<IpAddress> addresses;
  std::chrono::steady_clock::time_point expires;
};

class SandboxNetworks {
 public:
  static Result<std::unique_ptr<SandboxNetworks>> start(SandboxNetworksOptions options);
  ~SandboxNetworks();

  const NetworkConfig& config() const { return options_.config; }

  // Gives the sandbox (id-range index `index`, init process behind `pidfd`) an interface and rules.
  // Nothing is left behind on failure. Policies without an interface (mode none, no allow_out) are
  // a no-op.
  Status attach(uint32_t index, int pidfd, const std::string& sandbox_id, const EgressPolicy& policy);
  // After a daemon restart: the veth pair survived with the sandbox; re-join it to the bridge and
  // install its rules again (a pair that is gone is made again).
  Status adopt(uint32_t index, int pidfd, const std::string& sandbox_id, const EgressPolicy& policy);
  // Replaces the rules atomically (existing connections to newly denied destinations are cut). Going
  // from no interface to one, or back, adds or removes the veth pair.
  Status update(uint32_t index, int pidfd, const std::string& sandbox_id, const EgressPolicy& policy);
  // Removes the sandbox's rules and veth pair (idempotent). `sandbox_ending`: the sandbox's network
  // namespace is about to go, and its veth pair with it, so the slow deletion (the kernel waits for a
  // grace period) is left to the kernel; a later attach on the index clears a pair still there.
  Status detach(uint32_t index, bool sandbox_ending = false);
  // Tears the bridge and tables down when no sandbox has a network any more; otherwise keeps them,
  // as the sandboxes outlive the daemon. Returns whether it removed them.
  bool shutdown();

  // For the DNS filter: the sandbox behind a source address, its policy's verdict on a name...
  struct Lookup {
    std::string sandbox_id;
    NameRules rules;
  };
  std::optional<Lookup> judge(const IpAddress& source, const std::string& name);
  // ...and the answers it handed out (added to the sandbox's sets before the reply goes).
  // `sandbox_id`: the one judge() named; answers are not given to a different sandbox that took the
  // address in between.
  Status admit(const std::string& sandbox_id, const IpAddress& source, const std::string& name,
               const std::vector<IpAddress>& addresses, uint32_t ttl_seconds);

  std::optional<SandboxAddresses> addresses(uint32_t index);
  size_t attached();

 private:
  explicit SandboxNetworks(SandboxNetworksOptions options) : options_(std::move(options)) {}
  Status set_up_host();
  Status create_interface(const SandboxAddresses& a, int pidfd);
  Status join_bridge(const SandboxAddresses& a);
  uint16_t next_generation();

  struct Attached {
    SandboxAddresses addresses;
    std::string sandbox_id;
    EgressPolicy policy;
    uint16_t generation = 0;
    bool dns_sets = false;
    std::vector<ResolvedName> resolved;
  };
  std::vector<ResolvedAddress> resolved_entries(const Attached& a);

  SandboxNetworksOptions options_;
  Nft nft_;
  int bridge_index_ = 0;
  bool turned_on_ipv4_forwarding_ = false;
  bool turned_on_ipv6_forwarding_ = false;
  bool ipv6_egress_ = false;  // the host forwards IPv6: sandboxes get an IPv6 default route

  std::mutex sandboxes_mu_;  // guards sandboxes_ and generation_
  std::map<uint32_t, Attached> sandboxes_;
  uint16_t generation_ = 0;
};

}  // namespace airlock::net
