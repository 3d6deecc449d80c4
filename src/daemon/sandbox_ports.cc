// SandboxManager: exposed ports (issue 4). The ports are part of the sandbox's settings (so they
// survive a restart and end with it); the proxy itself is PortService (port_service.h).
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "daemon/sandbox_manager.h"

namespace airlock::daemon {

ApiResult<SandboxManager::PortChange> SandboxManager::expose_port(const std::string& tenant,
                                                                  std::string_view sandbox_id, ExposedPort port) {
  std::lock_guard transitions(transitions_mu_);
  API_TRY(auto record, find(tenant, sandbox_id));
  if (!is_live(record.state)) return sandbox_not_running_error(record);
  auto& ports = record.settings.ports;
  auto it = std::find_if(ports.begin(), ports.end(), [&](const ExposedPort& p) { return p.port == port.port; });
  PortChange change;
  if (it != ports.end()) {
    it->is_public = port.is_public;
    change.port = *it;
  } else {
    if (ports.size() >= kMaxExposedPorts) {
      return api_error(ErrorCode::kLimitExceeded,
                       "the sandbox already exposes " + std::to_string(kMaxExposedPorts) + " ports (the maximum)")
          .with_field("port")
          .with_details({{"max", kMaxExposedPorts}});
    }
    port.created_at = clock_();
    ports.push_back(port);
    std::sort(ports.begin(), ports.end(), [](const ExposedPort& a, const ExposedPort& b) { return a.port < b.port; });
    change.port = port;
    change.added = true;
  }
  API_TRY_STATUS_INTERNAL(store_.update(record));
  change.record = std::move(record);
  return change;
}

ApiResult<SandboxRecord> SandboxManager::unexpose_port(const std::string& tenant, std::string_view sandbox_id,
                                                       uint16_t port) {
  std::lock_guard transitions(transitions_mu_);
  API_TRY(auto record, find(tenant, sandbox_id));
  auto& ports = record.settings.ports;
  auto it = std::find_if(ports.begin(), ports.end(), [&](const ExposedPort& p) { return p.port == port; });
  if (!is_live(record.state) || it == ports.end()) {
    return api_error(ErrorCode::kPortNotFound,
                     "sandbox " + record.sandbox_id + " does not expose port " + std::to_string(port));
  }
  ports.erase(it);
  API_TRY_STATUS_INTERNAL(store_.update(record));
  return record;
}

std::optional<SandboxManager::PortTarget> SandboxManager::port_target(std::string_view sandbox_id) {
  PortTarget target;
  {
    // Under live_mu_ with `detached` present, init has not been destroyed: its pid names it (and the
    // pidfd, once open, names it for good: a pid reused later cannot be mistaken for it).
    std::lock_guard guard(live_mu_);
    auto it = live_.find(std::string(sandbox_id));
    if (it == live_.end() || !it->second->detached) return std::nullopt;
    target.tenant = it->second->tenant;
    target.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, it->second->detached->init_pid, 0)));
    if (!target.pidfd) return std::nullopt;
    it->second->last_activity = clock_();  // proxied traffic is activity (idle_timeout)
  }
  auto record = store_.get(target.tenant, sandbox_id);
  if (!record.ok() || !record.value() || !is_live(record.value()->state)) return std::nullopt;
  target.ports = record.value()->settings.ports;
  return target;
}

}  // namespace airlock::daemon
