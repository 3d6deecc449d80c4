// The daemon's side of sandbox networking: starts the host part (bridge, nftables tables, the DNS
// filter on the gateway) on first use, or at start when a surviving sandbox needs it, and tears it
// down at shutdown once no sandbox uses it. Sandboxes with the default policy (`none`, nothing
// allowed) never start it. It is the DNS filter's oracle: names are judged by the sandbox's policy,
// answers opened in its rules, refusals written to its log.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "daemon/log.h"
#include "network/dns_filter.h"
#include "network/sandbox_networks.h"

namespace airlock::daemon {

class SandboxLogs;  // [obs]

struct NetworkServiceOptions {
  net::NetworkConfig config;
  bool ipv6_forwarding = false;
  std::string state_dir;  // e.g. /run/airlock/net
  // Where the DNS filter forwards allowed names; empty: the first nameserver of /etc/resolv.conf.
  std::vector<std::pair<net::IpAddress, uint16_t>> dns_upstream;
};

class NetworkService : private net::DnsOracle {
 public:
  NetworkService(NetworkServiceOptions options, const Logger& log, SandboxLogs* logs = nullptr)
      : options_(std::move(options)), log_(log), logs_(logs) {}
  ~NetworkService() override;

  // The host side, started now if it is not yet.
  Result<net::SandboxNetworks*> networks();
  // The host side if it runs (null otherwise): for removals, which need nothing started.
  net::SandboxNetworks* started();
  // The sandbox's /etc/resolv.conf when it has an interface: the daemon's resolver on the gateway.
  std::string resolv_conf() const;
  // Removes the host side unless a sandbox still uses it (they outlive the daemon).
  void shutdown();

  static constexpr int kRefusalsLoggedPerMinute = 20;

 private:
  net::DnsDecision judge(const net::IpAddress& source, const std::string& name) override;
  bool admit(const std::string& sandbox, const net::IpAddress& source, const std::string& name,
             const std::vector<net::IpAddress>& addresses, uint32_t ttl_seconds) override;
  void refused(const std::string& sandbox, const net::IpAddress& source, const std::string& name,
               uint16_t qtype) override;

  NetworkServiceOptions options_;
  const Logger& log_;
  SandboxLogs* logs_;
  std::mutex networks_mu_;  // guards networks_ and dns_
  std::unique_ptr<net::SandboxNetworks> networks_;
  std::unique_ptr<net::DnsFilter> dns_;
  // Refusals logged per sandbox in the current minute (the filter's thread only).
  std::map<std::string, std::pair<std::chrono::steady_clock::time_point, int>> refusals_;
};

}  // namespace airlock::daemon
