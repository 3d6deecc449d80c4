#include "network/netlink.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cstring>

namespace airlock::net {
namespace {

// Builds one netlink message: header, fixed part, then attributes (nested ones by begin/end).
class MessageBuilder {
 public:
  MessageBuilder(uint16_t type, uint16_t flags) {
    buf_.resize(NLMSG_HDRLEN);
    auto* h = header();
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
  }
  template <typename T>
  void fixed(const T& value) {
    append(&value, sizeof value);
  }
  void attr(uint16_t type, const void* data, size_t len) {
    struct rtattr a = {};
    a.rta_type = type;
    a.rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    append(&a, sizeof a);
    append(data, len);
  }
  void attr_u32(uint16_t type, uint32_t v) { attr(type, &v, sizeof v); }
  void attr_u8(uint16_t type, uint8_t v) { attr(type, &v, sizeof v); }
  void attr_str(uint16_t type, const std::string& s) { attr(type, s.c_str(), s.size() + 1); }
  size_t begin(uint16_t type) {
    size_t at = buf_.size();
    attr(type, nullptr, 0);
    return at;
  }
  void end(size_t at) {
    struct rtattr a;
    std::memcpy(&a, buf_.data() + at, sizeof a);
    a.rta_len = static_cast<uint16_t>(buf_.size() - at);
    std::memcpy(buf_.data() + at, &a, sizeof a);
  }
  std::vector<uint8_t> finish() {
    header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
    return std::move(buf_);
  }

 private:
  struct nlmsghdr* header() { return reinterpret_cast<struct nlmsghdr*>(buf_.data()); }
  void append(const void* data, size_t len) {
    size_t at = buf_.size();
    buf_.resize(at + NLMSG_ALIGN(len));
    if (len) std::memcpy(buf_.data() + at, data, len);
  }
  std::vector<uint8_t> buf_;
};

struct ifinfomsg link_message(int ifindex = 0) {
  struct ifinfomsg info = {};
  info.ifi_family = AF_UNSPEC;
  info.ifi_index = ifindex;
  return info;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.size() > 45) return std::nullopt;
  std::string s(text);
  IpAddress a;
  if (::inet_pton(AF_INET, s.c_str(), a.bytes) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (::inet_pton(AF_INET6, s.c_str(), a.bytes) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return std::nullopt;
}

std::string IpAddress::str() const {
  char out[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes, out, sizeof out);
  return out;
}

bool IpAddress::operator==(const IpAddress& o) const {
  return family == o.family && std::memcmp(bytes, o.bytes, size()) == 0;
}

bool valid_interface_name(std::string_view name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return false;
  for (char c : name) {
    if (c == '/' || c == ':' || c <= ' ' || c == 0x7f) return false;
  }
  return name != "." && name != "..";
}

Result<Netlink> Netlink::open() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return sys_error("netlink socket");
  struct sockaddr_nl local = {};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return sys_error("bind netlink socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  return Netlink(std::move(fd));
}

Status Netlink::transact(std::vector<uint8_t>& message, std::string_view what) {
  auto* h = reinterpret_cast<struct nlmsghdr*>(message.data());
  h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  h->nlmsg_seq = seq_++;
  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_.get(), message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    return sys_error(what);
  }
  alignas(struct nlmsghdr) uint8_t reply[8192];
  for (;;) {
    ssize_t n = ::recv(fd_.get(), reply, sizeof reply, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error(what);
    }
    for (auto* r = reinterpret_cast<struct nlmsghdr*>(reply); NLMSG_OK(r, static_cast<unsigned>(n));
         r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_seq != h->nlmsg_seq) continue;  // a late answer to an earlier request
      if (r->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const struct nlmsgerr*>(NLMSG_DATA(r));
        if (err->error == 0) return {};
        return sys_error(what, -err->error);
      }
    }
  }
}

Result<int> Netlink::link_index(const std::string& name) {
  if (!valid_interface_name(name)) return Error{EINVAL, "invalid interface name: " + name};
  // if_nametoindex asks the namespace of the calling thread; ask this socket's namespace instead.
  MessageBuilder m(RTM_GETLINK, 0);
  m.fixed(link_message());
  m.attr_str(IFLA_IFNAME, name);
  auto msg = m.finish();
  auto* h = reinterpret_cast<struct nlmsghdr*>(msg.data());
  h->nlmsg_flags = NLM_F_REQUEST;
  h->nlmsg_seq = seq_++;
  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_.get(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    return sys_error("get link " + name);
  }
  alignas(struct nlmsghdr) uint8_t reply[16384];
  for (;;) {
    ssize_t n = ::recv(fd_.get(), reply, sizeof reply, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("get link " + name);
    }
    for (auto* r = reinterpret_cast<struct nlmsghdr*>(reply); NLMSG_OK(r, static_cast<unsigned>(n));
         r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_seq != h->nlmsg_seq) continue;
      if (r->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const struct nlmsgerr*>(NLMSG_DATA(r));
        return sys_error("get link " + name, err->error ? -err->error : EPROTO);
      }
      if (r->nlmsg_type == RTM_NEWLINK) {
        const auto* info = static_cast<const struct ifinfomsg*>(NLMSG_DATA(r));
        return info->ifi_index;
      }
    }
  }
}

Status Netlink::create_bridge(const std::string& name) {
  if (!valid_interface_name(name)) return Error{EINVAL, "invalid interface name: " + name};
  MessageBuilder m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  m.fixed(link_message());
  m.attr_str(IFLA_IFNAME, name);
  size_t info = m.begin(IFLA_LINKINFO);
  m.attr_str(IFLA_INFO_KIND, "bridge");
  m.end(info);
  auto msg = m.finish();
  return transact(msg, "create bridge " + name);
}

Status Netlink::create_veth(const std::string& name, const std::string& peer, int peer_netns_fd) {
  if (!valid_interface_name(name) || !valid_interface_name(peer)) {
    return Error{EINVAL, "invalid interface name: " + name + "/" + peer};
  }
  MessageBuilder m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  m.fixed(link_message());
  m.attr_str(IFLA_IFNAME, name);
  size_t info = m.begin(IFLA_LINKINFO);
  m.attr_str(IFLA_INFO_KIND, "veth");
  size_t data = m.begin(IFLA_INFO_DATA);
  size_t peer_at = m.begin(VETH_INFO_PEER);
  m.fixed(link_message());
  m.attr_str(IFLA_IFNAME, peer);
  if (peer_netns_fd >= 0) m.attr_u32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  m.end(peer_at);
  m.end(data);
  m.end(info);
  auto msg = m.finish();
  return transact(msg, "create veth " + name);
}

Status Netlink::delete_link(const std::string& name) {
  if (!valid_interface_name(name)) return Error{EINVAL, "invalid interface name: " + name};
  MessageBuilder m(RTM_DELLINK, 0);
  m.fixed(link_message());
  m.attr_str(IFLA_IFNAME, name);
  auto msg = m.finish();
  return transact(msg, "delete link " + name);
}

Status Netlink::set_up(int ifindex) {
  MessageBuilder m(RTM_NEWLINK, 0);
  auto info = link_message(ifindex);
  info.ifi_flags = IFF_UP;
  info.ifi_change = IFF_UP;
  m.fixed(info);
  auto msg = m.finish();
  return transact(msg, "set link " + std::to_string(ifindex) + " up");
}

Status Netlink::set_master(int ifindex, int master_ifindex) {
  MessageBuilder m(RTM_NEWLINK, 0);
  m.fixed(link_message(ifindex));
  m.attr_u32(IFLA_MASTER, static_cast<uint32_t>(master_ifindex));
  auto msg = m.finish();
  return transact(msg, "attach link " + std::to_string(ifindex) + " to bridge");
}

Status Netlink::set_bridge_port_isolated(int ifindex) {
  // RTM_SETLINK with AF_BRIDGE reaches the bridge's port settings (RTM_NEWLINK ignores them).
  MessageBuilder m(RTM_SETLINK, 0);
  auto info = link_message(ifindex);
  info.ifi_family = AF_BRIDGE;
  m.fixed(info);
  size_t proto = m.begin(IFLA_PROTINFO | NLA_F_NESTED);
  m.attr_u8(IFLA_BRPORT_ISOLATED, 1);
  m.end(proto);
  auto msg = m.finish();
  return transact(msg, "isolate bridge port " + std::to_string(ifindex));
}

Status Netlink::add_address(int ifindex, const IpAddress& address, int prefix_len) {
  MessageBuilder m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
  struct ifaddrmsg a = {};
  a.ifa_family = static_cast<uint8_t>(address.family);
  a.ifa_prefixlen = static_cast<uint8_t>(prefix_len);
  a.ifa_index = static_cast<uint32_t>(ifindex);
  a.ifa_flags = address.family == AF_INET6 ? IFA_F_NODAD : 0;
  m.fixed(a);
  m.attr(IFA_LOCAL, address.bytes, address.size());
  m.attr(IFA_ADDRESS, address.bytes, address.size());
  if (address.family == AF_INET6) m.attr_u32(IFA_FLAGS, IFA_F_NODAD);
  auto msg = m.finish();
  return transact(msg, "add address " + address.str());
}

Status Netlink::add_route(int ifindex, const IpAddress* destination, const IpAddress* gateway,
                          const IpAddress& family_of) {
  MessageBuilder m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  struct rtmsg r = {};
  r.rtm_family = static_cast<uint8_t>(family_of.family);
  r.rtm_dst_len = static_cast<uint8_t>(destination ? destination->size() * 8 : 0);
  r.rtm_table = RT_TABLE_MAIN;
  r.rtm_protocol = RTPROT_STATIC;
  r.rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  r.rtm_type = RTN_UNICAST;
  m.fixed(r);
  if (destination) m.attr(RTA_DST, destination->bytes, destination->size());
  if (gateway) m.attr(RTA_GATEWAY, gateway->bytes, gateway->size());
  m.attr_u32(RTA_OIF, static_cast<uint32_t>(ifindex));
  auto msg = m.finish();
  return transact(msg, destination ? "add route to " + destination->str() : "add default route via " + gateway->str());
}

Status Netlink::add_default_route(int ifindex, const IpAddress& gateway) {
  return add_route(ifindex, nullptr, &gateway, gateway);
}

Status Netlink::add_link_route(int ifindex, const IpAddress& destination) {
  return add_route(ifindex, &destination, nullptr, destination);
}

}  // namespace airlock::net

