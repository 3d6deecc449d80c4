// A minimal rtnetlink client: just the link, address and route operations a sandbox network needs
// (bridge, veth pair, addresses, default routes). Requests are acknowledged one by one, so every
// error comes back with the operation that caused it. A socket works in the network namespace it
// was created in (see netns.h), whatever the calling thread's namespace is later.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace airlock::net {

// An IPv4 or IPv6 address in network byte order.
struct IpAddress {
  int family = AF_INET;       // AF_INET or AF_INET6
  uint8_t bytes[16] = {};     // first 4 used for AF_INET

  static std::optional<IpAddress> parse(std::string_view text);
  std::string str() const;
  size_t size() const { return family == AF_INET ? 4 : 16; }
  bool operator==(const IpAddress& o) const;
};

class Netlink {
 public:
  // Opens an NETLINK_ROUTE socket in the calling thread's network namespace.
  static Result<Netlink> open();

  Result<int> link_index(const std::string& name);  // ENODEV when there is none
  Status create_bridge(const std::string& name);     // EEXIST when there is one
  // A veth pair: `name` here, `peer` moved into the namespace `peer_netns_fd` (-1: stays here).
  Status create_veth(const std::string& name, const std::string& peer, int peer_netns_fd);
  Status delete_link(const std::string& name);  // ENODEV when there is none
  Status set_up(int ifindex);
  Status set_master(int ifindex, int master_ifindex);
  // Bridge port flags: isolated ports never exchange frames with each other (only with the bridge
  // itself), so one sandbox cannot reach another at layer 2 whatever addresses it claims.
  Status set_bridge_port_isolated(int ifindex);
  // Replaces the addresses on the link; no duplicate-address detection for IPv6 (the pool hands
  // out unique addresses, and DAD would hold the address back for a second).
  Status add_address(int ifindex, const IpAddress& address, int prefix_len);
  Status add_default_route(int ifindex, const IpAddress& gateway);
  // A route to `destination` (a host) straight out of the link, no gateway (scope link).
  Status add_link_route(int ifindex, const IpAddress& destination);

 private:
  explicit Netlink(UniqueFd fd) : fd_(std::move(fd)) {}
  // A host route (`destination`, scope link) or a default route (`gateway`), out of `ifindex`.
  Status add_route(int ifindex, const IpAddress* destination, const IpAddress* gateway, const IpAddress& family_of);
  // Sends one request (flags gain NLM_F_REQUEST | NLM_F_ACK) and waits for its acknowledgement.
  Status transact(std::vector<uint8_t>& message, std::string_view what);

  UniqueFd fd_;
  uint32_t seq_ = 1;
};

// Valid Linux interface name: 1..15 bytes, no '/', whitespace or ':'.
bool valid_interface_name(std::string_view name);

}  // namespace airlock::net
