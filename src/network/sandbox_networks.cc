#include "network/sandbox_networks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "common/fs.h"
#include "network/netlink.h"
#include "network/netns.h"

namespace airlock::net {
namespace {

constexpr size_t kMaxResolvedNames = 1024;     // remembered per sandbox (to re-apply after an update)
constexpr uint32_t kMinTtl = 30;               // seconds an answer stays reachable at least...
constexpr uint32_t kMaxTtl = 24 * 3600;        // ...and at most
constexpr uint32_t kTtlGrace = 10;             // the sandbox's resolver may use the answer a bit late

Result<std::string> read_sysctl(const std::string& path) {
  std::string text;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return sys_error("open " + path);
  char buf[64];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n < 0) return sys_error("read " + path);
  text.assign(buf, static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

Status write_sysctl(const std::string& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return sys_error("open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return sys_error("write " + path);
  }
  return {};
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

Status touch(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return sys_error("create " + path);
  return {};
}

// Turns forwarding on if it is off, remembering (in a marker file that outlives a restart) that it
// was the daemon's doing, so that shutdown can put it back.
Result<bool> ensure_forwarding(const std::string& sysctl, const std::string& marker) {
  if (file_exists(marker)) {
    TRY_STATUS(write_sysctl(sysctl, "1"));
    return true;
  }
  TRY(auto value, read_sysctl(sysctl));
  if (value != "0") return false;
  TRY_STATUS(touch(marker));
  TRY_STATUS(write_sysctl(sysctl, "1"));
  return true;
}

void restore_forwarding(const std::string& sysctl, const std::string& marker) {
  if (!file_exists(marker)) return;
  (void)write_sysctl(sysctl, "0");
  ::unlink(marker.c_str());
}

// Index of a pool address (pool + 2 + index), if `a` is one.
std::optional<uint32_t> pool_index(const IpAddress& pool, int prefix_len, const IpAddress& a) {
  if (a.family != pool.family) return std::nullopt;
  int bits = static_cast<int>(a.size()) * 8;
  for (int i = 0; i < prefix_len; ++i) {
    uint8_t m = static_cast<uint8_t>(0x80u >> (i % 8));
    if ((a.bytes[i / 8] & m) != (pool.bytes[i / 8] & m)) return std::nullopt;
  }
  auto low32 = [&](const IpAddress& x) {
    size_t n = x.size();
    return (uint32_t{x.bytes[n - 4]} << 24) | (uint32_t{x.bytes[n - 3]} << 16) | (uint32_t{x.bytes[n - 2]} << 8) |
           x.bytes[n - 1];
  };
  if (bits - prefix_len > 32) {
    // Larger than 32 host bits (IPv6 /64): the bits above the low 32 must be zero.
    for (int i = prefix_len; i < bits - 32; ++i) {
      if (a.bytes[i / 8] & (0x80u >> (i % 8))) return std::nullopt;
    }
  }
  uint32_t offset = low32(a) - low32(pool);
  if (offset < 2) return std::nullopt;
  return offset - 2;
}

}  // namespace

Result<std::unique_ptr<SandboxNetworks>> SandboxNetworks::start(SandboxNetworksOptions options) {
  std::unique_ptr<SandboxNetworks> n(new SandboxNetworks(std::move(options)));
  TRY_CTX(n->set_up_host(), "sandbox networks");
  return n;
}

SandboxNetworks::~SandboxNetworks() = default;

Status SandboxNetworks::set_up_host() {
  const NetworkConfig& c = options_.config;
  if (!options_.state_dir.empty()) TRY_STATUS(make_dirs(options_.state_dir, 0700));
  TRY(auto nl, Netlink::open());
  auto index = nl.link_index(c.bridge);
  if (!index.ok()) {
    if (index.error().errnum != ENODEV) return std::move(index).error();
    TRY_STATUS(nl.create_bridge(c.bridge));
    index = nl.link_index(c.bridge);
    if (!index.ok()) return std::move(index).error();
  }
  bridge_index_ = *index;
  TRY_STATUS(nl.add_address(bridge_index_, c.gateway4(), c.pool4_prefix));
  // The bridge gets no IPv6 addresses of its own making; ours is the gateway.
  (void)write_sysctl("/proc/sys/net/ipv6/conf/" + c.bridge + "/addr_gen_mode", "1");
  TRY_STATUS(nl.add_address(bridge_index_, c.gateway6(), c.pool6_prefix));
  TRY_STATUS(nl.set_up(bridge_index_));

  std::string marker = options_.state_dir.empty() ? "" : options_.state_dir + "/";
  TRY(turned_on_ipv4_forwarding_,
      ensure_forwarding("/proc/sys/net/ipv4/ip_forward", marker + "ipv4-forwarding-turned-on"));
  if (options_.enable_ipv6_forwarding) {
    TRY(turned_on_ipv6_forwarding_,
        ensure_forwarding("/proc/sys/net/ipv6/conf/all/forwarding", marker + "ipv6-forwarding-turned-on"));
  }
  auto v6 = read_sysctl("/proc/sys/net/ipv6/conf/all/forwarding");
  ipv6_egress_ = v6.ok() && v6.value() == "1";
  TRY_STATUS(nft_.run(render_base_tables(c, turned_on_ipv4_forwarding_, turned_on_ipv6_forwarding_)));
  return {};
}

bool SandboxNetworks::shutdown() {
  {
    std::lock_guard guard(sandboxes_mu_);
    if (!sandboxes_.empty()) return false;
  }
  const NetworkConfig& c = options_.config;
  (void)nft_.run(render_delete_tables(c));
  if (auto nl = Netlink::open(); nl.ok()) (void)nl->delete_link(c.bridge);
  std::string marker = options_.state_dir.empty() ? "" : options_.state_dir + "/";
  restore_forwarding("/proc/sys/net/ipv4/ip_forward", marker + "ipv4-forwarding-turned-on");
  restore_forwarding("/proc/sys/net/ipv6/conf/all/forwarding", marker + "ipv6-forwarding-turned-on");
  return true;
}

uint16_t SandboxNetworks::next_generation() {
  if (++generation_ == 0) generation_ = 1;
  return generation_;
}

Status SandboxNetworks::join_bridge(const SandboxAddresses& a) {
  TRY(auto nl, Netlink::open());
  TRY(int index, nl.link_index(a.host_interface));
  // The port needs no addresses; without them it sends nothing of its own (no IPv6 link-local, no
  // neighbour discovery) into the bridge.
  (void)write_sysctl("/proc/sys/net/ipv6/conf/" + a.host_interface + "/disable_ipv6", "1");
  TRY_STATUS(nl.set_master(index, bridge_index_));
  TRY_STATUS(nl.set_bridge_port_isolated(index));
  TRY_STATUS(nl.set_up(index));
  return {};
}

Status SandboxNetworks::create_interface(const SandboxAddresses& a, int pidfd) {
  const NetworkConfig& c = options_.config;
  TRY(auto host_ns, own_netns());
  {
    TRY(auto nl, Netlink::open());
    if (auto stale = nl.link_index(a.host_interface); stale.ok()) {
      // Left by a sandbox that held this index and died with the daemon down: its namespace is
      // gone, so the interface is an orphan.
      TRY_STATUS(nl.delete_link(a.host_interface));
    }
  }
  TRY_STATUS(run_in_netns(pidfd, [&]() -> Status {
    TRY(auto nl, Netlink::open());
    TRY_STATUS(nl.create_veth("eth0", a.host_interface, host_ns.get()));
    TRY(int eth0, nl.link_index("eth0"));
    // Host addresses and a route to the gateway only: every packet, even one for another
    // sandbox, goes through the gateway (and its rules), never straight across the bridge.
    TRY_STATUS(nl.add_address(eth0, a.v4, 32));
    TRY_STATUS(nl.add_address(eth0, a.v6, 128));
    TRY_STATUS(nl.set_up(eth0));
    TRY_STATUS(nl.add_link_route(eth0, c.gateway4()));
    TRY_STATUS(nl.add_link_route(eth0, c.gateway6()));
    TRY_STATUS(nl.add_default_route(eth0, c.gateway4()));
    // Without IPv6 forwarding on the host, an IPv6 default route would make every connection to an
    // IPv6 address wait for its timeout; without one it fails at once and clients fall back to IPv4.
    if (ipv6_egress_) TRY_STATUS(nl.add_default_route(eth0, c.gateway6()));
    return {};
  }));
  return join_bridge(a);
}

std::vector<ResolvedAddress> SandboxNetworks::resolved_entries(const Attached& a) {
  std::vector<ResolvedAddress> out;
  auto now = std::chrono::steady_clock::now();
  for (const auto& r : a.resolved) {
    if (r.expires <= now) continue;
    NameRules rules = rules_for_name(a.policy, r.name);
    if (rules.refuse) continue;
    auto left = std::chrono::duration_cast<std::chrono::seconds>(r.expires - now).count();
    uint32_t ttl = static_cast<uint32_t>(std::max<int64_t>(left, 1));
    for (const auto& address : r.addresses) {
      for (const auto& port : rules.allow_ports) out.push_back({address, port, false, ttl});
      for (uint16_t port : rules.deny_ports) out.push_back({address, port, true, ttl});
    }
  }
  return out;
}

Status SandboxNetworks::attach(uint32_t index, int pidfd, const std::string& sandbox_id, const EgressPolicy& policy) {
  if (!policy.has_interface()) return {};
  TRY(auto a, sandbox_addresses(options_.config, index));
  std::lock_guard guard(sandboxes_mu_);
  if (sandboxes_.count(index)) return Error{EEXIST, "sandbox network " + a.host_interface + " is attached already"};
  Attached entry{a, sandbox_id, policy, next_generation(), policy.has_domain_rules(), {}};
  TRY_CTX(nft_.run(render_sandbox_add(options_.config, a, policy, entry.generation, {})), "network rules");
  if (auto made = create_interface(a, pidfd); !made.ok()) {
    (void)nft_.run(render_sandbox_delete(options_.config, a, entry.dns_sets));
    if (auto nl = Netlink::open(); nl.ok()) (void)nl->delete_link(a.host_interface);
    return std::move(made).error().with_context("sandbox network");
  }
  sandboxes_.emplace(index, std::move(entry));
  return {};
}

Status SandboxNetworks::adopt(uint32_t index, int pidfd, const std::string& sandbox_id, const EgressPolicy& policy) {
  if (!policy.has_interface()) return {};
  TRY(auto a, sandbox_addresses(options_.config, index));
  std::lock_guard guard(sandboxes_mu_);
  Attached entry{a, sandbox_id, policy, next_generation(), policy.has_domain_rules(), {}};
  TRY_CTX(nft_.run(render_sandbox_add(options_.config, a, policy, entry.generation, {})), "network rules");
  bool present = false;
  if (auto nl = Netlink::open(); nl.ok()) present = nl->link_index(a.host_interface).ok();
  if (auto joined = present ? join_bridge(a) : create_interface(a, pidfd); !joined.ok()) {
    (void)nft_.run(render_sandbox_delete(options_.config, a, entry.dns_sets));
    return std::move(joined).error().with_context("re-attach sandbox network");
  }
  sandboxes_[index] = std::move(entry);
  return {};
}

Status SandboxNetworks::update(uint32_t index, int pidfd, const std::string& sandbox_id, const EgressPolicy& policy) {
  bool attached;
  {
    std::lock_guard guard(sandboxes_mu_);
    auto it = sandboxes_.find(index);
    attached = it != sandboxes_.end();
    if (attached && policy.has_interface()) {
      Attached& a = it->second;
      Attached next = a;
      next.policy = policy;
      next.generation = next_generation();
      if (next.generation == a.generation) next.generation = next_generation();
      next.dns_sets = policy.has_domain_rules();
      TRY_CTX(nft_.run(render_sandbox_replace(options_.config, a.addresses, a.dns_sets, policy, next.generation,
                                              next.dns_sets ? resolved_entries(next) : std::vector<ResolvedAddress>{})),
              "network rules");
      a = std::move(next);
      return {};
    }
  }
  if (attached) return detach(index);  // to no interface at all
  return attach(index, pidfd, sandbox_id, policy);
}

Status SandboxNetworks::detach(uint32_t index, bool sandbox_ending) {
  std::optional<Attached> entry;
  {
    std::lock_guard guard(sandboxes_mu_);
    auto it = sandboxes_.find(index);
    if (it != sandboxes_.end()) {
      entry = std::move(it->second);
      sandboxes_.erase(it);
    }
  }
  if (!entry) return {};
  Status rules = nft_.run(render_sandbox_delete(options_.config, entry->addresses, entry->dns_sets));
  if (sandbox_ending) return rules;
  // Deleting the pair cuts a sandbox that keeps running (a policy without an interface).
  TRY(auto nl, Netlink::open());
  if (auto gone = nl.delete_link(entry->addresses.host_interface); !gone.ok() && gone.error().errnum != ENODEV) {
    return std::move(gone).error();
  }
  return rules;
}

std::optional<SandboxAddresses> SandboxNetworks::addresses(uint32_t index) {
  std::lock_guard guard(sandboxes_mu_);
  auto it = sandboxes_.find(index);
  if (it == sandboxes_.end()) return std::nullopt;
  return it->second.addresses;
}

size_t SandboxNetworks::attached() {
  std::lock_guard guard(sandboxes_mu_);
  return sandboxes_.size();
}

std::optional<SandboxNetworks::Lookup> SandboxNetworks::judge(const IpAddress& source, const std::string& name) {
  const NetworkConfig& c = options_.config;
  auto index = source.family == AF_INET ? pool_index(c.pool4, c.pool4_prefix, source)
                                        : pool_index(c.pool6, c.pool6_prefix, source);
  if (!index) return std::nullopt;
  std::lock_guard guard(sandboxes_mu_);
  auto it = sandboxes_.find(*index);
  if (it == sandboxes_.end()) return std::nullopt;
  const Attached& a = it->second;
  if (!(a.addresses.v4 == source) && !(a.addresses.v6 == source)) return std::nullopt;
  return Lookup{a.sandbox_id, rules_for_name(a.policy, name)};
}

Status SandboxNetworks::admit(const std::string& sandbox_id, const IpAddress& source, const std::string& name,
                              const std::vector<IpAddress>& addresses, uint32_t ttl_seconds) {
  const NetworkConfig& c = options_.config;
  auto index = source.family == AF_INET ? pool_index(c.pool4, c.pool4_prefix, source)
                                        : pool_index(c.pool6, c.pool6_prefix, source);
  if (!index) return Error{ENOENT, "no sandbox at " + source.str()};
  std::lock_guard guard(sandboxes_mu_);
  auto it = sandboxes_.find(*index);
  if (it == sandboxes_.end()) return Error{ENOENT, "no sandbox at " + source.str()};
  Attached& a = it->second;
  if (a.sandbox_id != sandbox_id) return Error{ENOENT, source.str() + " belongs to another sandbox now"};
  if (!a.dns_sets) return {};  // no domain rule: nothing to open
  NameRules rules = rules_for_name(a.policy, name);
  if (rules.refuse) return Error{EACCES, name + " is not allowed"};
  uint32_t ttl = std::clamp(ttl_seconds, kMinTtl, kMaxTtl) + kTtlGrace;
  auto now = std::chrono::steady_clock::now();
  auto expires = now + std::chrono::seconds(ttl);

  // Remember the answer (to re-apply it after a policy update); forget expired ones first.
  std::erase_if(a.resolved, [&](const ResolvedName& r) { return r.expires <= now; });
  std::chrono::steady_clock::time_point previous{};
  auto known = std::find_if(a.resolved.begin(), a.resolved.end(), [&](const ResolvedName& r) {
    return r.name == name && r.addresses.size() == addresses.size() &&
           std::equal(r.addresses.begin(), r.addresses.end(), addresses.begin());
  });
  if (known != a.resolved.end()) {
    previous = known->expires;
    known->expires = std::max(known->expires, expires);
  } else {
    if (a.resolved.size() >= kMaxResolvedNames) a.resolved.erase(a.resolved.begin());
    a.resolved.push_back({name, addresses, expires});
  }

  std::vector<ResolvedAddress> entries;
  for (const auto& address : addresses) {
    for (const auto& port : rules.allow_ports) entries.push_back({address, port, false, ttl});
    for (uint16_t port : rules.deny_ports) entries.push_back({address, port, true, ttl});
  }
  if (entries.empty()) return {};
  std::string add = render_resolved(c, a.addresses, entries);
  // An element that is still there keeps its old timeout when added again: replace it (in one
  // batch) when the new answer lives clearly longer. If it expired meanwhile, the delete fails the
  // batch and the plain add below does the job.
  if (previous > now + std::chrono::seconds(1) && expires > previous + std::chrono::seconds(5)) {
    if (nft_.run(render_resolved_delete(c, a.addresses, entries) + add).ok()) return {};
  }
  return nft_.run(add);
}

}  // namespace airlock::net
