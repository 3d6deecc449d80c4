// SandboxManager: sandbox networks (issue 4) — attach at create, replace the policy at runtime.
// Detaching happens in destroy(); re-attaching after a restart in recover().
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon/sandbox_manager.h"
#include "daemon/file_ops.h"
#include "protocol/agent_protocol_host.h"
#include "daemon/sandbox_logs.h"  // [obs]

namespace airlock::daemon {
namespace {
constexpr std::chrono::seconds kResolvConfTimeout{10};
}  // namespace

std::optional<ApiError> SandboxManager::attach_network(SandboxRecord& record, uint32_t index, int pidfd) {
  const net::EgressPolicy& policy = record.settings.network;
  if (!policy.has_interface()) return std::nullopt;
  if (!network_) {
    return api_error(ErrorCode::kUnavailable, "sandbox networking is not available in this daemon").with_field("network");
  }
  auto networks = network_->networks();
  if (!networks.ok()) {
    ApiError e = api_error(ErrorCode::kUnavailable,
                           "sandbox networking cannot start on this host: " + networks.error().describe());
    e.log_cause = networks.error().describe();
    return e;
  }
  if (auto attached = (*networks)->attach(index, pidfd, record.sandbox_id, policy); !attached.ok()) {
    return internal_error(attached.error());
  }
  if (auto a = (*networks)->addresses(index)) {
    record.settings.ipv4 = a->v4.str();
    record.settings.ipv6 = a->v6.str();
  }
  return std::nullopt;
}

Status SandboxManager::write_resolv_conf(const SandboxRecord& record, Live& live) {
  (void)record;
  if (!network_) return {};
  std::shared_ptr<AgentConnection> conn;
  {
    std::lock_guard agent_guard(live.agent_mu);
    TRY(conn, connect_agent(live, kResolvConfTimeout));
  }
  // One FileWrite (create + truncate) through the agent: the path is resolved inside the sandbox's
  // own mount namespace; the daemon never writes into the sandbox's files itself.
  std::string text = network_->resolv_conf();
  protocol::agent::Message write{};
  write.type = protocol::agent::Type::kFileWrite;
  write.file_write = {protocol::agent::to_str("/etc/resolv.conf"), 0644, 3, 0,
                      {reinterpret_cast<const uint8_t*>(text.data()), static_cast<uint32_t>(text.size())}};
  auto reply = file_call(*conn, write, kResolvConfTimeout);
  if (!reply.ok()) return plain_error("write /etc/resolv.conf: " + reply.error().message);
  if (reply->errnum) return sys_error("write /etc/resolv.conf: " + reply->message, static_cast<int>(reply->errnum));
  return {};
}

ApiResult<SandboxRecord> SandboxManager::set_network(const std::string& tenant, std::string_view sandbox_id,
                                                     const net::EgressPolicy& policy) {
  std::lock_guard transitions(transitions_mu_);
  API_TRY(auto record, find(tenant, sandbox_id));
  if (!is_live(record.state) || !record.id_index || !record.init_pid) return sandbox_not_running_error(record);
  auto entry = live(record.sandbox_id);
  if (!entry) return sandbox_not_running_error(record);
  if (!network_) {
    return api_error(ErrorCode::kUnavailable, "sandbox networking is not available in this daemon");
  }
  bool had_interface = record.settings.network.has_interface();
  if (policy.has_interface() || had_interface) {
    auto networks = network_->networks();
    if (!networks.ok()) {
      return api_error(ErrorCode::kUnavailable,
                       "sandbox networking cannot start on this host: " + networks.error().describe());
    }
    // Init is alive (the sandbox is live and its transitions are ours): its pidfd names its namespace.
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(*record.init_pid), 0)));
    if (!pidfd) return internal_error(sys_error("pidfd_open"));
    auto index = static_cast<uint32_t>(*record.id_index);
    API_TRY_STATUS_INTERNAL((*networks)->update(index, pidfd.get(), record.sandbox_id, policy));
    auto a = (*networks)->addresses(index);
    record.settings.ipv4 = a ? a->v4.str() : "";
    record.settings.ipv6 = a ? a->v6.str() : "";
  }
  record.settings.network = policy;
  API_TRY_STATUS_INTERNAL(store_.update(record));
  if (policy.has_interface() && !had_interface) {
    if (auto written = write_resolv_conf(record, *entry); !written.ok()) {
      log_.warn("sandbox " + record.sandbox_id + ": " + written.error().describe());
    }
  }
  std::string summary = network_to_json(record.settings).dump();
  log_lifecycle(record, "network_changed", "egress policy replaced: " + summary);  // [obs]
  return record;
}

}  // namespace airlock::daemon
