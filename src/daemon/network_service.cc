#include "daemon/network_service.h"

#include "daemon/sandbox_logs.h"  // [obs]

namespace airlock::daemon {

NetworkService::~NetworkService() {
  // The filter calls back into this object: it stops first.
  if (dns_) dns_->stop();
}

Result<net::SandboxNetworks*> NetworkService::networks() {
  std::lock_guard guard(networks_mu_);
  if (networks_) return networks_.get();
  net::SandboxNetworksOptions o;
  o.config = options_.config;
  o.enable_ipv6_forwarding = options_.ipv6_forwarding;
  o.state_dir = options_.state_dir;
  TRY(auto networks, net::SandboxNetworks::start(std::move(o)));

  net::DnsFilterOptions dns;
  dns.listen = {{options_.config.gateway4(), 53}, {options_.config.gateway6(), 53}};
  for (const auto& [address, port] : options_.dns_upstream) dns.upstream.push_back({address, port});
  if (dns.upstream.empty()) {
    auto from_host = net::read_resolv_conf_nameserver();
    if (!from_host.ok()) {
      networks->shutdown();
      return std::move(from_host).error().with_context("DNS filter: no upstream resolver (use --net-dns-upstream)");
    }
    dns.upstream.push_back(*from_host);
  }
  std::string upstream;
  for (const auto& u : dns.upstream) upstream += (upstream.empty() ? "" : ", ") + u.str();
  auto filter = net::DnsFilter::start(std::move(dns), *this);
  if (!filter.ok()) {
    networks->shutdown();
    return std::move(filter).error().with_context("DNS filter");
  }
  networks_ = std::move(networks);
  dns_ = std::move(filter).value();
  log_.info("sandbox networks: bridge " + options_.config.bridge + " (" + options_.config.gateway4().str() + ", " +
            options_.config.gateway6().str() + "), nftables tables inet/bridge " + options_.config.table +
            ", DNS filter upstream " + upstream);
  return networks_.get();
}

net::SandboxNetworks* NetworkService::started() {
  std::lock_guard guard(networks_mu_);
  return networks_.get();
}

std::string NetworkService::resolv_conf() const {
  return "# the sandbox's resolver: airlockd's DNS filter (answers only what the egress policy allows)\n"
         "nameserver " + options_.config.gateway4().str() + "\nnameserver " + options_.config.gateway6().str() +
         "\noptions edns0 timeout:2 attempts:2\n";
}

void NetworkService::shutdown() {
  std::unique_ptr<net::DnsFilter> dns;
  {
    std::lock_guard guard(networks_mu_);
    dns = std::move(dns_);
  }
  if (dns) dns->stop();  // outside the lock: its thread may be asking networks() something
  std::lock_guard guard(networks_mu_);
  if (!networks_) return;
  if (networks_->shutdown()) {
    log_.info("sandbox networks: bridge and tables removed");
  } else {
    log_.info("sandbox networks: kept for " + std::to_string(networks_->attached()) + " running sandbox(es)");
  }
  networks_.reset();
}

// --- the DNS filter's oracle (on its thread; the networks exist while the filter runs) -----------------

net::DnsDecision NetworkService::judge(const net::IpAddress& source, const std::string& name) {
  net::SandboxNetworks* networks = started();
  if (!networks) return {};
  auto lookup = networks->judge(source, name.empty() ? std::string("invalid.") : name);
  if (!lookup) return {};
  net::DnsDecision d;
  d.kind = lookup->rules.refuse || name.empty() ? net::DnsDecision::kRefuse : net::DnsDecision::kResolve;
  d.sandbox = lookup->sandbox_id;
  return d;
}

bool NetworkService::admit(const std::string& sandbox, const net::IpAddress& source, const std::string& name,
                           const std::vector<net::IpAddress>& addresses, uint32_t ttl_seconds) {
  net::SandboxNetworks* networks = started();
  if (!networks) return false;
  auto opened = networks->admit(sandbox, source, name, addresses, ttl_seconds);
  if (!opened.ok()) log_.warn("DNS filter: " + sandbox + " " + name + ": " + opened.error().describe());
  return opened.ok();
}

void NetworkService::refused(const std::string& sandbox, const net::IpAddress& source, const std::string& name,
                             uint16_t qtype) {
  auto now = std::chrono::steady_clock::now();
  auto& [since, count] = refusals_[sandbox];
  if (now - since > std::chrono::minutes(1)) {
    since = now;
    count = 0;
  }
  if (refusals_.size() > 4096) refusals_.clear();  // bounded; at worst a few more lines get logged
  if (++count > kRefusalsLoggedPerMinute) return;
  std::string shown = name.substr(0, 300);
  log_.debug("DNS filter: refused " + shown + " (type " + std::to_string(qtype) + ") for " + sandbox + " at " +
             source.str());
  if (!logs_) return;
  LifecycleEvent event;
  event.event = "dns_refused";
  event.message = "DNS: " + shown + " (type " + std::to_string(qtype) + ") is not allowed by the egress policy" +
                  (count == kRefusalsLoggedPerMinute ? "; further refusals this minute are not logged" : "");
  logs_->append_lifecycle(sandbox, event);
}

}  // namespace airlock::daemon
