// SandboxManager: processes and the agent connection (the rest is in sandbox_manager.cc).
#include <signal.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "daemon/sandbox_manager.h"
#include "daemon/metrics.h"
#include "daemon/sandbox_logs.h"

namespace airlock::daemon {
namespace {

constexpr auto kAgentTimeout = std::chrono::seconds(5);
constexpr auto kStartTimeout = std::chrono::seconds(10);

std::vector<std::string> assignments(const StringPairs& pairs) {
  std::vector<std::string> out;
  out.reserve(pairs.size());
  for (const auto& [k, v] : pairs) out.push_back(k + "=" + v);
  return out;
}

ApiError sandbox_not_running(const SandboxRecord& r) {
  return api_error(ErrorCode::kSandboxNotRunning, "sandbox " + r.sandbox_id + " is " + std::string(state_name(r.state)))
      .with_details({{"state", state_name(r.state)},
                     {"stop_reason", r.stop_reason ? nlohmann::json(*r.stop_reason) : nlohmann::json()}});
}

// The stored form of a background process (SandboxStore::StoredProcess::doc).
std::string process_doc(Process& p) {
  const ProcessSpec& s = p.spec();
  nlohmann::json doc = {{"argv", s.argv},
                        {"cwd", s.cwd},
                        {"user", s.user},
                        {"kind", kind_name(s.kind)},
                        {"started_at", p.started_at()},
                        {"open_stdin", p.stdin_open()},
                        {"ring_bytes", s.ring_bytes}};
  doc["pty"] = s.pty ? nlohmann::json{{"cols", s.pty->cols}, {"rows", s.pty->rows}} : nlohmann::json();
  doc["timeout_ms"] = s.timeout_ms ? nlohmann::json(*s.timeout_ms) : nlohmann::json();
  if (auto end = p.end()) {
    doc["end"] = {{"reason", end->reason},
                  {"exit_code", end->exit_code},
                  {"signal", end->signal},
                  {"error", end->error ? nlohmann::json(*end->error) : nlohmann::json()},
                  {"ended_at", end->ended_at}};
  }
  return doc.dump();
}

}  // namespace

Result<std::shared_ptr<AgentConnection>> SandboxManager::connect_agent_for(Live& live) {
  std::lock_guard guard(live.agent_mu);
  TRY(auto conn, connect_agent(live, kAgentTimeout));
  TRY_STATUS(reserve_ids(live));
  return conn;
}

ApiError SandboxManager::agent_lost(const std::string& tenant, const SandboxRecord& record, const Error& cause) {
  if (!live(record.sandbox_id)) {
    auto now = find(tenant, record.sandbox_id);
    return sandbox_not_running(now.ok() ? now.value() : record);
  }
  // The contract: an agent that stopped answering stops its sandbox with reason `error`.
  log_.warn("sandbox " + record.sandbox_id + ": agent: " + cause.describe());
  (void)end(tenant, record.sandbox_id, SandboxState::kStopped, "error", "its agent stopped answering");
  return api_error(ErrorCode::kAgentError, "the sandbox's agent did not answer; the sandbox is stopped");
}

void SandboxManager::prune(Live& live) {
  std::lock_guard guard(live.procs_mu);
  size_t exited_background = 0;
  for (auto it = live.procs.rbegin(); it != live.procs.rend(); ++it) {
    if ((*it)->exited() && (*it)->spec().kind == ProcessKind::kBackground) ++exited_background;
  }
  std::erase_if(live.procs, [&](const std::shared_ptr<Process>& p) {
    if (!p->exited()) return false;
    if (p->spec().kind != ProcessKind::kBackground) return true;
    if (exited_background > kKeptExited) {
      --exited_background;  // the oldest go first (procs is oldest first)
      return true;
    }
    return false;
  });
}

ApiResult<std::shared_ptr<Process>> SandboxManager::launch(const SandboxRecord& record, Live& live,
                                                           const RunCommandRequest& request, ProcessKind kind) {
  AgentExecRequest exec;
  exec.argv = request.argv;
  exec.uid = request.uid;
  exec.gid = request.gid;
  exec.timeout_ms = static_cast<uint32_t>(std::min<int64_t>(request.timeout.count(), UINT32_MAX));
  const std::string& workdir = record.settings.workdir;
  exec.cwd = !request.cwd ? workdir : (*request.cwd)[0] == '/' ? *request.cwd : workdir + "/" + *request.cwd;
  exec.env = merge_environment(merge_environment(default_environment(request.uid, request.pty.has_value(), nullptr),
                                                 assignments(record.settings.env)),
                               assignments(request.env));
  if (request.pty) {
    exec.tty = true;
    exec.cols = request.pty->first;
    exec.rows = request.pty->second;
  }

  ProcessSpec spec;
  spec.kind = kind;
  spec.argv = request.argv;
  spec.cwd = exec.cwd;
  spec.user = request.user;
  if (request.pty) spec.pty = PtySize{request.pty->first, request.pty->second};
  if (request.timeout.count() > 0) spec.timeout_ms = request.timeout.count();
  spec.open_stdin = request.open_stdin || request.pty.has_value();
  spec.ring_bytes = kind == ProcessKind::kRun ? 64 * 1024 : request.output_buffer_bytes;
  spec.max_output = request.max_output_bytes;

  {
    std::lock_guard guard(live.procs_mu);
    size_t running = std::count_if(live.procs.begin(), live.procs.end(), [](auto& p) { return !p->exited(); });
    if (running >= kMaxProcesses) {
      return api_error(ErrorCode::kQuotaExceeded, "sandbox " + record.sandbox_id + " has " + std::to_string(running) +
                                                      " processes running (the maximum)")
          .with_details({{"quota", "processes"}, {"limit", kMaxProcesses}, {"used", running}, {"requested", 1}});
    }
  }

  std::shared_ptr<Process> process;
  {
    std::lock_guard guard(live.agent_mu);
    auto conn = connect_agent(live, kAgentTimeout);
    if (!conn.ok()) return agent_lost(record.tenant, record, conn.error());
    API_TRY_STATUS_INTERNAL(reserve_ids(live));
    uint32_t id = (*conn)->next_id();
    live.last_id = std::max(live.last_id, id);
    auto frame = protocol::agent::encode_exec(id, exec);
    if (!frame.ok()) {
      return api_error(ErrorCode::kInvalidField, "the command does not fit the agent protocol: " + frame.error().message)
          .with_field("argv");
    }
    process = std::make_shared<Process>(id, std::move(spec), clock_(), *conn);
    int64_t seq = live.seq;
    std::string sandbox_id = record.sandbox_id;
    process->on_end([this, seq, sandbox_id](Process& p) { process_ended(seq, sandbox_id, p); });
    if (auto* logs = policy_.accounting.logs; logs && kind != ProcessKind::kRun) {
      process->on_output([logs, sandbox_id](uint32_t pid, int stream, std::string_view data) {
        logs->append_output(sandbox_id, pid, stream == 2 ? OutputStream::kStderr : OutputStream::kStdout, data);
      });
    }
    {
      std::lock_guard procs(live.procs_mu);
      live.procs.push_back(process);
    }
    (*conn)->expect(id, process);
    if (auto sent = (*conn)->send_frame(std::move(frame).value()); !sent.ok()) {
      return agent_lost(record.tenant, record, sent.error());
    }
  }
  if (!request.stdin_data.empty()) (void)process->send_stdin(request.stdin_data, false);
  if (!request.open_stdin && !request.pty) (void)process->close_stdin();
  if (!process->wait_started(kStartTimeout)) {
    (void)process->signal(SIGKILL);
    return agent_lost(record.tenant, record, Error{ETIMEDOUT, "no answer to Exec"});
  }
  if (kind == ProcessKind::kBackground && !process->exited()) {
    (void)store_.save_process(live.seq, {process->id(), process->pid(), true, process_doc(*process)});
  }
  if (auto* logs = policy_.accounting.logs; logs && kind != ProcessKind::kRun && process->pid()) {
    auto pid = static_cast<int64_t>(process->pid());
    logs->append_lifecycle(record.sandbox_id, {"process_started", "process " + std::to_string(pid) + " started (" +
                                                   std::string(kind_name(kind)) + ")",
                                               pid, std::nullopt, std::nullopt, std::nullopt});
  }
  return process;
}

// Once per process, when it ends (any thread): the store's record of a background process, the
// sandbox log, and the exec histogram.
void SandboxManager::process_ended(int64_t seq, const std::string& sandbox_id, Process& p) {
  if (p.spec().kind == ProcessKind::kBackground) {
    (void)store_.save_process(seq, {p.id(), p.pid(), false, process_doc(p)});
    (void)store_.prune_processes(seq, kKeptExited);
  }
  log_process_end(sandbox_id, p);
  auto end = p.end();
  if (policy_.accounting.metrics && end && p.spec().kind != ProcessKind::kRun && end->reason != "failed_to_start") {
    policy_.accounting.metrics->observe_exec(static_cast<double>(end->ended_at - p.started_at()) / 1000.0);
  }
}

void SandboxManager::log_process_end(const std::string& sandbox_id, Process& p) {
  SandboxLogs* logs = policy_.accounting.logs;
  auto end = p.end();
  if (!logs || !end || p.pid() == 0 || p.spec().kind == ProcessKind::kRun) return;
  auto pid = static_cast<int64_t>(p.pid());
  logs->append_lifecycle(sandbox_id, {"process_exited",
                                      "process " + std::to_string(pid) + " ended (" + end->reason + ", exit code " +
                                          std::to_string(end->exit_code) + ")",
                                      pid, std::nullopt, std::nullopt, end->exit_code});
}


ApiResult<std::shared_ptr<Process>> SandboxManager::start(const std::string& tenant, std::string_view sandbox_id,
                                                          const RunCommandRequest& request, ProcessKind kind) {
  API_TRY(auto record, find(tenant, sandbox_id));
  if (!is_live(record.state)) return sandbox_not_running(record);
  auto entry = live(record.sandbox_id);
  if (!entry) return sandbox_not_running(record);
  if (shutting_down_) {
    return api_error(ErrorCode::kUnavailable, "the daemon is shutting down").with_header("Retry-After", "1");
  }
  prune(*entry);
  return launch(record, *entry, request, kind);
}

ApiResult<std::vector<std::shared_ptr<Process>>> SandboxManager::processes(const std::string& tenant,
                                                                         std::string_view sandbox_id) {
  API_TRY(auto record, find(tenant, sandbox_id));
  if (!is_live(record.state)) return sandbox_not_running(record);
  auto entry = live(record.sandbox_id);
  if (!entry) return sandbox_not_running(record);
  prune(*entry);
  std::lock_guard guard(entry->procs_mu);
  std::vector<std::shared_ptr<Process>> out;
  for (auto& p : entry->procs) {
    if (p->started()) out.push_back(p);
  }
  return out;
}

ApiResult<std::shared_ptr<Process>> SandboxManager::process(const std::string& tenant, std::string_view sandbox_id,
                                                            int64_t pid) {
  API_TRY(auto list, processes(tenant, sandbox_id));
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    if ((*it)->pid() == pid) return *it;
  }
  return api_error(ErrorCode::kProcessNotFound, "process " + std::to_string(pid) + " not found in sandbox " +
                                                    std::string(sandbox_id));
}

ApiResult<std::shared_ptr<AgentConnection>> SandboxManager::agent(const std::string& tenant,
                                                                  std::string_view sandbox_id) {
  API_TRY(auto record, find(tenant, sandbox_id));
  if (!is_live(record.state)) return sandbox_not_running(record);
  auto entry = live(record.sandbox_id);
  if (!entry) return sandbox_not_running(record);
  if (shutting_down_) {
    return api_error(ErrorCode::kUnavailable, "the daemon is shutting down").with_header("Retry-After", "1");
  }
  auto conn = connect_agent_for(*entry);
  if (!conn.ok()) return agent_lost(tenant, record, conn.error());
  return std::move(conn).value();
}

void SandboxManager::adopt_processes(const SandboxRecord& record, Live& live) {
  auto stored = store_.list_processes(record.seq);
  if (!stored.ok()) {
    log_.warn("sandbox " + record.sandbox_id + ": processes: " + stored.error().describe());
    return;
  }
  std::lock_guard agent_guard(live.agent_mu);
  for (const auto& row : stored.value()) {
    auto doc = nlohmann::json::parse(row.doc, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) continue;
    try {
      ProcessSpec spec;
      spec.kind = ProcessKind::kBackground;
      spec.argv = doc.at("argv").get<std::vector<std::string>>();
      if (spec.argv.empty()) continue;
      spec.cwd = doc.at("cwd").get<std::string>();
      spec.user = doc.at("user").get<std::string>();
      if (doc.at("pty").is_object()) spec.pty = PtySize{doc["pty"].at("cols").get<uint16_t>(), doc["pty"].at("rows").get<uint16_t>()};
      if (doc.at("timeout_ms").is_number()) spec.timeout_ms = doc["timeout_ms"].get<int64_t>();
      spec.open_stdin = doc.at("open_stdin").get<bool>();
      spec.ring_bytes = doc.at("ring_bytes").get<size_t>();
      std::optional<ProcessEnd> end;
      if (doc.contains("end")) {
        const auto& e = doc["end"];
        end = ProcessEnd{e.at("reason").get<std::string>(), e.at("exit_code").get<int>(), e.at("signal").get<int>(),
                         e.at("error").is_string() ? std::optional<std::string>(e["error"].get<std::string>()) : std::nullopt,
                         e.at("ended_at").get<int64_t>()};
      }
      auto p = std::make_shared<Process>(static_cast<uint32_t>(row.id), std::move(spec), doc.at("started_at").get<int64_t>(),
                                         live.conn);
      p->restore(static_cast<uint32_t>(row.pid), end, doc.at("open_stdin").get<bool>());
      int64_t seq = record.seq;
      if (!end) {
        p->on_end([this, seq, sandbox_id = record.sandbox_id](Process& proc) { process_ended(seq, sandbox_id, proc); });
      }
      {
        std::lock_guard guard(live.procs_mu);
        live.procs.push_back(p);
      }
      if (!end && live.conn) {
        live.conn->expect(p->id(), p);
        // Is it still there? Its Exited may have gone to the daemon that died: a Resize to the
        // size it has (a no-op; ignored without a pty) is answered with ESRCH if it is gone.
        protocol::agent::Message probe{};
        probe.type = protocol::agent::Type::kResize;
        probe.id = p->id();
        probe.resize = {p->spec().pty ? p->spec().pty->rows : uint16_t{24}, p->spec().pty ? p->spec().pty->cols : uint16_t{80}};
        (void)live.conn->send(probe);
      }
    } catch (const nlohmann::json::exception&) {
      log_.warn("sandbox " + record.sandbox_id + ": a stored process is unreadable; skipped");
    }
  }
}

}  // namespace airlock::daemon
