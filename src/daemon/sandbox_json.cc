#include "daemon/sandbox_json.h"

#include <string.h>

#include <algorithm>

#include "daemon/base64.h"
#include "daemon/timestamp.h"

namespace airlock::daemon {
namespace {

nlohmann::json optional_time(const std::optional<UnixMillis>& t) {
  return t ? nlohmann::json(format_timestamp(*t)) : nlohmann::json();
}

nlohmann::json optional_text(const std::optional<std::string>& s) { return s ? nlohmann::json(*s) : nlohmann::json(); }

}  // namespace

nlohmann::json signal_json(int signal) {
  if (signal <= 0) return nullptr;
  const char* name = ::sigabbrev_np(signal);
  if (!name) return nullptr;
  return "SIG" + std::string(name);
}

nlohmann::json sandbox_json(const SandboxRecord& r, UnixMillis now, const SandboxUsage* sampled) {
  const SandboxSettings& s = r.settings;
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [k, v] : s.metadata) metadata[k] = v;
  // [obs] Read from the cgroup when asked, for live sandboxes; an ended one shows zeros (its final
  // values are not kept yet). disk_bytes is not measured yet.
  SandboxUsage u = sampled ? *sampled : SandboxUsage{};
  nlohmann::json usage = {{"cpu_seconds", u.cpu_seconds}, {"memory_bytes", u.memory_bytes},
                          {"memory_peak_bytes", u.memory_peak_bytes}, {"disk_bytes", 0},
                          {"pids", u.pids}, {"oom_kills", u.oom_kills},
                          {"sampled_at", format_timestamp(now)}};
  // Exposed ports go with the sandbox: an ended one lists none.
  nlohmann::json ports = nlohmann::json::array();
  if (is_live(r.state)) {
    for (const auto& p : s.ports) ports.push_back({{"port", p.port}, {"public", p.is_public}});
  }
  return {{"sandbox_id", r.sandbox_id},
          {"template", s.template_name},
          {"state", state_name(r.state)},
          {"stop_reason", optional_text(r.stop_reason)},
          {"stop_message", optional_text(r.stop_message)},
          {"exit_code", nullptr},
          {"created_at", format_timestamp(r.created_at)},
          {"started_at", optional_time(r.started_at)},
          {"ended_at", optional_time(r.ended_at)},
          {"expires_at", optional_time(r.expires_at)},
          {"last_activity_at", format_timestamp(r.last_activity_at)},
          {"timeout", s.timeout},
          {"idle_timeout", s.idle_timeout ? nlohmann::json(*s.idle_timeout) : nlohmann::json()},
          {"cpu", static_cast<double>(s.cpu_millis) / 1000.0},
          {"memory_mb", s.memory_mb},
          {"disk_mb", s.disk_mb},
          {"pids", s.pids},
          {"workdir", s.workdir},
          {"command", nullptr},
          {"metadata", std::move(metadata)},
          {"network", network_to_json(s)},
          {"ports", std::move(ports)},
          {"usage", std::move(usage)}};
}

nlohmann::json command_result_json(const CommandRun& run, bool base64_output) {
  const CommandOutcome& o = run.outcome;
  std::string reason;
  nlohmann::json error = nullptr;
  int exit_code = std::clamp(o.exit_code, 0, 255);
  nlohmann::json signal = nullptr;
  if (o.exec_errno) {
    reason = "failed_to_start";
    error = std::string("cannot execute: ") + ::strerrorname_np(static_cast<int>(o.exec_errno));
  } else if (o.timed_out) {
    reason = "timeout";
    exit_code = 124;
    signal = "SIGKILL";
  } else if (o.signal > 0) {
    reason = "signaled";
    exit_code = std::min(255, 128 + o.signal);
    signal = signal_json(o.signal);
  } else {
    reason = "exited";
  }
  auto text = [&](const std::string& bytes) { return base64_output ? base64_encode(bytes) : bytes; };
  return {{"pid", std::max<uint32_t>(o.pid, 1)},  // a command that never started has no pid; 1 keeps the schema
          {"exit_code", exit_code},
          {"signal", signal},
          {"reason", reason},
          {"error", error},
          {"stdout", text(o.stdout_tail)},
          {"stderr", text(o.stderr_tail)},
          {"encoding", base64_output ? "base64" : "utf-8"},
          {"stdout_bytes", o.stdout_bytes},
          {"stderr_bytes", o.stderr_bytes},
          {"stdout_truncated", o.stdout_truncated},
          {"stderr_truncated", o.stderr_truncated},
          {"started_at", format_timestamp(run.started_at)},
          {"ended_at", format_timestamp(run.ended_at)},
          {"duration_ms", std::max(0.0, run.duration_ms)},
          {"cpu_time_ms", 0.0}};
}

}  // namespace airlock::daemon
