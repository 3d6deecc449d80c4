#include "daemon/sandbox_manager.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>

#include "daemon/metrics.h"       // [obs]
#include "daemon/quota_store.h"   // [obs]
#include "daemon/sandbox_logs.h"  // [obs]

namespace airlock::daemon {
namespace {

constexpr auto kAgentConnectTimeout = std::chrono::seconds(5);
constexpr uint32_t kIdBlock = 1024;     // process ids reserved per store write

std::vector<std::string> as_assignments(const StringPairs& pairs) {
  std::vector<std::string> out;
  out.reserve(pairs.size());
  for (const auto& [k, v] : pairs) out.push_back(k + "=" + v);
  return out;
}

ApiError not_found(std::string_view sandbox_id) {
  return api_error(ErrorCode::kSandboxNotFound, "sandbox " + std::string(sandbox_id) + " not found");
}

ApiError not_running(const SandboxRecord& r) { return sandbox_not_running_error(r); }

}  // namespace

ApiError sandbox_not_running_error(const SandboxRecord& r) {
  nlohmann::json reason = r.stop_reason ? nlohmann::json(*r.stop_reason) : nlohmann::json();
  return api_error(ErrorCode::kSandboxNotRunning,
                   "sandbox " + r.sandbox_id + " is " + std::string(state_name(r.state)))
      .with_details({{"state", state_name(r.state)}, {"stop_reason", reason}});
}

SandboxManager::SandboxManager(Engine engine, IdRangeAllocator ids, SandboxStore& store, const Logger& log,
                               SandboxPolicy policy, WallClock clock)
    : hub_(log), engine_(std::move(engine)), ids_(std::move(ids)), store_(store), log_(log), policy_(policy), clock_(std::move(clock)) {}

SandboxManager::~SandboxManager() { stop_timer(); }

void SandboxManager::destroy(DetachedSandbox detached) {
  std::string name = detached.name;
  // Before the id range is released: its index names the sandbox's interface and addresses.
  if (network_) {
    if (auto* networks = network_->started()) {
      if (auto gone = networks->detach(detached.ids.index(), /*sandbox_ending=*/true); !gone.ok()) {
        log_.warn("destroy " + name + ": network: " + gone.error().describe());
      }
    }
  }
  Status status;
  {
    std::lock_guard guard(engine_mu_);
    status = engine_.destroy_detached(std::move(detached));
  }
  if (!status.ok()) log_.warn("destroy " + name + ": " + status.error().describe());
}

Result<std::shared_ptr<AgentConnection>> SandboxManager::connect_agent(Live& live, std::chrono::milliseconds timeout) {
  if (live.conn && live.conn->alive()) return live.conn;
  if (live.conn) live.last_id = std::max(live.last_id, live.conn->peek_next_id());
  live.conn.reset();
  uint32_t floor = std::max(live.last_id, live.reserved);
  TRY(auto conn, hub_.connect(live.agent_socket, live.sandbox_id, floor + 1, timeout));
  live.last_id = floor;
  // Processes that run on: their events now come over this connection (with a fresh window).
  std::lock_guard guard(live.procs_mu);
  for (auto& p : live.procs) {
    if (p->exited()) continue;
    p->set_connection(conn);
    conn->expect(p->id(), p);
  }
  live.conn = conn;
  return conn;
}

Status SandboxManager::reserve_ids(Live& live) {
  if (live.conn) live.last_id = std::max(live.last_id, live.conn->peek_next_id());
  if (live.last_id + 16 <= live.reserved) return {};
  uint32_t reserved = live.last_id + kIdBlock;
  TRY_STATUS(store_.set_process_ids_reserved(live.seq, reserved));
  live.reserved = reserved;
  return {};
}

std::shared_ptr<SandboxManager::Live> SandboxManager::live(const std::string& sandbox_id) {
  std::lock_guard guard(live_mu_);
  auto it = live_.find(sandbox_id);
  return it == live_.end() ? nullptr : it->second;
}

ApiResult<SandboxRecord> SandboxManager::find(const std::string& tenant, std::string_view sandbox_id) {
  if (!valid_sandbox_id(sandbox_id)) return not_found(sandbox_id.substr(0, 64));
  API_TRY(auto record, or_internal(store_.get(tenant, sandbox_id)));
  if (!record) return not_found(sandbox_id);
  if (is_live(record->state)) {  // an API request is activity (idle_timeout)
    if (auto entry = live(record->sandbox_id)) entry->last_activity = clock_();
  }
  return std::move(*record);
}

// --- lifecycle ----------------------------------------------------------------------------------------

ApiResult<SandboxRecord> SandboxManager::create(const std::string& tenant, const SandboxSettings& settings) {
  auto create_started = std::chrono::steady_clock::now();  // [obs]
  SandboxRecord record;
  record.sandbox_id = new_sandbox_id();
  record.tenant = tenant;
  record.settings = settings;
  record.created_at = record.last_activity_at = clock_();
  record.expires_at = record.created_at + settings.timeout * 1000;
  // [obs] The quota check and the insert happen under one lock: the record counts from its insert
  // on, so two concurrent creates cannot both take the last slot (429 quota_exceeded).
  if (policy_.accounting.quotas) {
    if (auto refused = policy_.accounting.quotas->admit(record)) return std::move(*refused);
  } else {
    std::lock_guard admission(admission_mu_);
    API_TRY(auto usage, or_internal(store_.live_usage(tenant)));
    QuotaLimits fixed{policy_.max_sandboxes, policy_.max_memory_mb};
    if (auto refused = quota_violation(tenant, fixed, QuotaUsage{usage.first, usage.second}, settings.memory_mb)) {
      return std::move(*refused);
    }
    API_TRY_STATUS_INTERNAL(store_.insert(record));
  }
  log_lifecycle(record, "created", "sandbox created");  // [obs]

  SandboxSpec spec;
  spec.env = merge_environment(default_environment(0, false, nullptr), as_assignments(settings.env));
  spec.workdir = settings.workdir;
  spec.limits.memory_bytes = static_cast<uint64_t>(settings.memory_mb) << 20;
  spec.limits.cpu_millicores = static_cast<uint64_t>(settings.cpu_millis);
  spec.limits.max_pids = static_cast<uint64_t>(settings.pids);
  spec.limits.disk_bytes = static_cast<uint64_t>(settings.disk_mb) << 20;
  IoOptions io;
  io.service = true;

  auto fail = [&](const Error& cause, ApiError answer) -> ApiError {
    record.state = SandboxState::kStopped;
    record.stop_reason = "error";
    record.stop_message = "create: " + cause.describe().substr(0, 4000);
    record.ended_at = clock_();
    record.expires_at.reset();
    (void)store_.update(record);
    log_lifecycle(record, "stopped", "sandbox stopped: it could not be created");  // [obs]
    log_.warn("create " + record.sandbox_id + ": " + cause.describe());
    return answer;
  };

  Result<Sandbox> made = plain_error("not created");
  {
    std::lock_guard guard(engine_mu_);
    made = engine_.create(spec, io);
  }
  if (!made.ok()) {
    int e = made.error().errnum;
    if (e == EAGAIN || e == ENOSPC || e == ENOMEM || e == EBUSY) {
      return fail(made.error(), api_error(ErrorCode::kNoCapacity, "the host has no room for the sandbox now")
                                    .with_header("Retry-After", "5"));
    }
    return fail(made.error(), internal_error(made.error()));
  }
  // The pidfd names the sandbox's network namespace for as long as init lives (no pid reuse race).
  UniqueFd pidfd(::fcntl(made.value().pidfd(), F_DUPFD_CLOEXEC, 0));
  DetachedSandbox detached = made.value().detach();
  if (auto refused = attach_network(record, detached.ids.index(), pidfd.get())) {
    Error cause = plain_error(refused->message);
    destroy(std::move(detached));
    return fail(cause, std::move(*refused));
  }
  pidfd.reset();
  auto entry = std::make_shared<Live>();
  entry->sandbox_id = record.sandbox_id;
  entry->tenant = tenant;
  entry->seq = record.seq;
  entry->agent_socket = detached.agent_socket_path;
  Result<std::shared_ptr<AgentConnection>> agent = plain_error("not connected");
  {
    std::lock_guard agent_guard(entry->agent_mu);
    agent = connect_agent(*entry, kAgentConnectTimeout);
  }
  if (!agent.ok()) {
    Error cause = agent.error();
    destroy(std::move(detached));
    return fail(cause, api_error(ErrorCode::kAgentError, "the sandbox's agent did not answer"));
  }
  if (record.settings.network.has_interface()) {
    if (auto written = write_resolv_conf(record, *entry); !written.ok()) {
      {
        std::lock_guard agent_guard(entry->agent_mu);
        if (entry->conn) entry->conn->close(Error{ECANCELED, "sandbox ended"});
      }
      destroy(std::move(detached));
      return fail(written.error(), internal_error(written.error()));
    }
  }
  if (settings.workdir != "/root") {  // "created if missing"
    RunCommandRequest mkdir;
    mkdir.argv = {"/bin/mkdir", "-p", "--", settings.workdir};
    mkdir.cwd = "/";
    mkdir.timeout = std::chrono::seconds(10);
    mkdir.max_output_bytes = 4096;
    auto made_dir = launch(record, *entry, mkdir, ProcessKind::kRun);
    std::optional<ProcessEnd> ended;
    if (made_dir.ok() && (*made_dir)->wait_exit(std::chrono::seconds(15))) ended = (*made_dir)->end();
    if (!ended || ended->exit_code != 0) {
      Error cause = plain_error("mkdir " + settings.workdir + ": " +
                                (ended ? (*made_dir)->outcome().stderr_tail : std::string("did not finish")));
      {
        std::lock_guard agent_guard(entry->agent_mu);
        if (entry->conn) entry->conn->close(Error{ECANCELED, "sandbox ended"});
      }
      destroy(std::move(detached));
      return fail(cause, api_error(ErrorCode::kInvalidField, "workdir " + settings.workdir + " cannot be created")
                             .with_field("workdir"));
    }
    prune(*entry);
  }

  record.state = SandboxState::kRunning;
  record.started_at = clock_();
  record.engine_name = detached.name;
  record.id_index = detached.ids.index();
  record.init_pid = detached.init_pid;
  record.agent_socket = detached.agent_socket_path;
  entry->expires_at = *record.expires_at;
  entry->idle_timeout_ms = settings.idle_timeout.value_or(0) * 1000;
  entry->last_activity = clock_();
  {
    std::lock_guard guard(live_mu_);
    entry->detached.emplace(std::move(detached));
    live_[record.sandbox_id] = entry;
  }
  live_cv_.notify_all();
  if (auto status = store_.update(record); !status.ok()) {
    (void)end(tenant, record.sandbox_id, SandboxState::kStopped, "error", "store update failed");
    return internal_error(status.error());
  }
  log_.info("sandbox " + record.sandbox_id + " created (tenant " + tenant + ", " + record.engine_name + ")");
  log_lifecycle(record, "started", "sandbox is running");  // [obs]
  if (policy_.accounting.metrics) {                        // [obs]
    policy_.accounting.metrics->observe_sandbox_create(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - create_started).count());
  }
  return record;
}

ApiResult<SandboxRecord> SandboxManager::end(const std::string& tenant, std::string_view sandbox_id, SandboxState state,
                                             std::optional<std::string> reason, std::optional<std::string> message) {
  std::lock_guard transitions(transitions_mu_);
  API_TRY(auto record, find(tenant, sandbox_id));
  std::optional<DetachedSandbox> detached;
  std::shared_ptr<Live> ended;
  {
    std::lock_guard guard(live_mu_);
    if (auto it = live_.find(record.sandbox_id); it != live_.end()) {
      detached = std::move(it->second->detached);
      ended = it->second;
      live_.erase(it);
    }
  }
  live_cv_.notify_all();
  if (detached) destroy(std::move(*detached));
  if (ended) {
    // Its processes died with it; whoever waits on them hears so now.
    std::vector<std::shared_ptr<Process>> procs;
    {
      std::lock_guard guard(ended->procs_mu);
      procs = ended->procs;
    }
    UnixMillis when = clock_();
    for (auto& p : procs) p->mark_sandbox_stopped(when);
    std::lock_guard agent_guard(ended->agent_mu);
    if (ended->conn) ended->conn->close(Error{ECANCELED, "the sandbox ended"});
  }
  UnixMillis now = clock_();
  if (is_live(record.state)) {
    record.settings.ipv4.clear();  // the interface went with the sandbox
    record.settings.ipv6.clear();
    record.state = state;
    record.stop_reason = std::move(reason);
    record.stop_message = std::move(message);
    record.ended_at = now;
    record.expires_at.reset();
  } else if (state == SandboxState::kTerminated && record.state != SandboxState::kTerminated) {
    record.state = SandboxState::kTerminated;  // DELETE after it stopped on its own: keeps stop_reason
  } else {
    return record;
  }
  API_TRY_STATUS_INTERNAL(store_.update(record));
  log_lifecycle(record, std::string(state_name(record.state)),  // [obs] "stopped" or "terminated"
                "sandbox " + std::string(state_name(record.state)) + (record.stop_message ? ": " + *record.stop_message : ""));
  log_.info("sandbox " + record.sandbox_id + " " + std::string(state_name(record.state)) +
            (record.stop_reason ? " (" + *record.stop_reason + ")" : ""));
  return record;
}

ApiResult<SandboxRecord> SandboxManager::get(const std::string& tenant, std::string_view sandbox_id) {
  return find(tenant, sandbox_id);
}

ApiResult<SandboxPage> SandboxManager::list(const SandboxListQuery& query) { return or_internal(store_.list(query)); }

ApiResult<SandboxRecord> SandboxManager::terminate(const std::string& tenant, std::string_view sandbox_id) {
  return end(tenant, sandbox_id, SandboxState::kTerminated, std::nullopt, std::nullopt);
}

ApiResult<SandboxRecord> SandboxManager::set_timeout(const std::string& tenant, std::string_view sandbox_id,
                                                     const SetTimeoutRequest& request) {
  std::lock_guard transitions(transitions_mu_);
  API_TRY(auto record, find(tenant, sandbox_id));
  if (!is_live(record.state) || !record.expires_at) return not_running(record);
  UnixMillis now = clock_();
  UnixMillis deadline = request.timeout ? now + *request.timeout * 1000 : *record.expires_at + *request.extend_by * 1000;
  UnixMillis max_deadline = record.created_at + policy_.max_lifetime_s * 1000;
  if (deadline > max_deadline) {
    return api_error(ErrorCode::kLimitExceeded, "the deadline would be beyond the maximum lifetime of " +
                                                    std::to_string(policy_.max_lifetime_s) + " s from creation")
        .with_field(request.timeout ? "timeout" : "extend_by")
        .with_details({{"max", policy_.max_lifetime_s}});
  }
  record.expires_at = deadline;
  record.settings.timeout = std::clamp<int64_t>((deadline - record.created_at + 999) / 1000, 1, 2592000);
  API_TRY_STATUS_INTERNAL(store_.update(record));
  log_lifecycle(record, "timeout_changed", "deadline moved to " + format_timestamp(deadline));  // [obs]
  {
    std::lock_guard guard(live_mu_);
    if (auto it = live_.find(record.sandbox_id); it != live_.end()) it->second->expires_at = deadline;
  }
  live_cv_.notify_all();
  return record;
}

// --- commands -----------------------------------------------------------------------------------------

ApiResult<CommandRun> SandboxManager::run(const std::string& tenant, std::string_view sandbox_id,
                                          const RunCommandRequest& request) {
  auto unavailable = [] {
    return api_error(ErrorCode::kUnavailable, "the daemon is shutting down").with_header("Retry-After", "1");
  };
  API_TRY(auto record, find(tenant, sandbox_id));
  if (!is_live(record.state)) return not_running(record);
  auto entry = live(record.sandbox_id);
  if (!entry) return not_running(record);

  if (shutting_down_) return unavailable();
  CommandRun run;
  run.started_at = clock_();
  auto t0 = std::chrono::steady_clock::now();
  API_TRY(auto process, launch(record, *entry, request, ProcessKind::kRun));
  // The agent enforces the timeout; the slack covers its Exited arriving. Shutdown kills it.
  auto deadline = t0 + request.timeout + std::chrono::seconds(5);
  while (!process->wait_exit(std::chrono::milliseconds(250))) {
    if (shutting_down_ || std::chrono::steady_clock::now() > deadline) {
      (void)process->signal(SIGKILL);
      process->wait_exit(std::chrono::seconds(2));
      prune(*entry);
      if (shutting_down_) return unavailable();
      return api_error(ErrorCode::kAgentError, "the sandbox's agent did not report the command's end");
    }
  }
  run.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  run.ended_at = clock_();
  auto ended = process->end();
  run.outcome = process->outcome();
  if (ended && ended->reason == "failed_to_start") {
    run.outcome.exec_errno = ended->exit_code == 127 ? ENOENT : EACCES;
    run.outcome.pid = 0;
  }
  if (ended && ended->reason == "sandbox_stopped") {
    prune(*entry);
    auto now = find(tenant, sandbox_id);
    return not_running(now.ok() ? now.value() : record);
  }
  prune(*entry);
  if (policy_.accounting.metrics) policy_.accounting.metrics->observe_exec(run.duration_ms / 1000.0);  // [obs]
  log_command(record.sandbox_id, run.outcome);                                                          // [obs]
  return run;
}

// --- deadlines and recovery ---------------------------------------------------------------------------

void SandboxManager::start_timer() {
  std::lock_guard guard(live_mu_);
  stopping_ = false;
  if (!timer_.joinable()) timer_ = std::thread([this] { timer_loop(); });
}

void SandboxManager::stop_timer() {
  {
    std::lock_guard guard(live_mu_);
    stopping_ = true;
  }
  live_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
}

void SandboxManager::timer_loop() {
  std::unique_lock lock(live_mu_);
  while (!stopping_) {
    UnixMillis now = clock_();
    std::vector<std::pair<std::string, std::string>> due;  // (tenant, id)
    UnixMillis next = now + 1000;
    std::vector<std::pair<std::string, std::string>> idle;  // (tenant, id)
    for (const auto& [id, entry] : live_) {
      if (entry->expires_at <= now) {
        due.emplace_back(entry->tenant, id);
        continue;
      }
      next = std::min(next, entry->expires_at);
      if (entry->idle_timeout_ms > 0 && now - entry->last_activity >= entry->idle_timeout_ms) {
        // Running processes started through the API (open streams among them) keep it busy.
        std::lock_guard procs(entry->procs_mu);
        bool busy = std::any_of(entry->procs.begin(), entry->procs.end(), [](auto& p) { return !p->exited(); });
        if (busy) {
          entry->last_activity = now;
        } else {
          idle.emplace_back(entry->tenant, id);
        }
      }
    }
    if (!due.empty() || !idle.empty()) {
      lock.unlock();
      for (const auto& [tenant, id] : due) {
        auto ended = end(tenant, id, SandboxState::kStopped, "timeout", "its timeout passed");
        if (!ended.ok()) log_.warn("stop " + id + " at its deadline: " + ended.error().message);
      }
      for (const auto& [tenant, id] : idle) {
        auto ended = end(tenant, id, SandboxState::kStopped, "idle", "no API activity for its idle_timeout");
        if (!ended.ok()) log_.warn("stop " + id + " when idle: " + ended.error().message);
      }
      lock.lock();
      continue;
    }
    live_cv_.wait_for(lock, std::chrono::milliseconds(std::max<UnixMillis>(1, next - now)));
  }
}

void SandboxManager::recover() {
  auto records = store_.list_live();
  if (!records.ok()) {
    log_.error("recover sandboxes: " + records.error().describe());
    return;
  }
  for (auto& r : records.value()) {
    auto mark_dead = [&](const std::string& why) {
      r.state = SandboxState::kStopped;
      r.stop_reason = "error";
      r.stop_message = "found dead after a daemon restart: " + why;
      r.ended_at = clock_();
      r.expires_at.reset();
      if (auto s = store_.update(r); !s.ok()) log_.error("recover " + r.sandbox_id + ": " + s.error().describe());
      log_lifecycle(r, "stopped", "sandbox stopped: " + *r.stop_message);  // [obs]
      log_.warn("sandbox " + r.sandbox_id + " " + *r.stop_message);
    };
    if (!r.id_index || !r.init_pid || r.engine_name.empty()) {
      mark_dead("it never finished starting");
      continue;
    }
    auto ids = ids_.try_acquire(static_cast<uint32_t>(*r.id_index));
    if (!ids.ok()) {
      mark_dead("its id range is held elsewhere (" + ids.error().describe() + ")");
      continue;
    }
    DetachedSandbox detached{r.engine_name, static_cast<pid_t>(*r.init_pid), r.agent_socket, std::move(ids).value()};
    auto entry = std::make_shared<Live>();
    entry->sandbox_id = r.sandbox_id;
    entry->tenant = r.tenant;
    entry->seq = r.seq;
    entry->reserved = static_cast<uint32_t>(std::clamp<int64_t>(r.process_ids_reserved, 0, UINT32_MAX / 2));
    entry->last_id = entry->reserved;  // every id up to here may have been used before the restart
    entry->agent_socket = r.agent_socket;
    Result<std::shared_ptr<AgentConnection>> agent = plain_error("init is gone");
    if (::kill(detached.init_pid, 0) == 0 || errno == EPERM) {
      std::lock_guard agent_guard(entry->agent_mu);
      agent = connect_agent(*entry, std::chrono::seconds(2));
    }
    if (!agent.ok()) {
      std::string why = agent.error().describe();
      destroy(std::move(detached));
      mark_dead(why);
      continue;
    }
    if (r.settings.network.has_interface()) {
      Status adopted = plain_error("sandbox networking is not configured");
      if (network_) {
        UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, detached.init_pid, 0)));
        auto networks = network_->networks();
        adopted = !networks.ok() ? Status(networks.error())
                  : !pidfd        ? Status(sys_error("pidfd_open"))
                                  : (*networks)->adopt(detached.ids.index(), pidfd.get(), r.sandbox_id, r.settings.network);
      }
      if (!adopted.ok()) {
        // Running without its rules is not an option: stop it rather than let it out unfiltered.
        {
          std::lock_guard agent_guard(entry->agent_mu);
          if (entry->conn) entry->conn->close(Error{ECANCELED, "sandbox ended"});
        }
        destroy(std::move(detached));
        mark_dead("its network could not be restored: " + adopted.error().describe());
        continue;
      }
    }
    entry->expires_at = r.expires_at.value_or(clock_());
    entry->idle_timeout_ms = r.settings.idle_timeout.value_or(0) * 1000;
    entry->last_activity = clock_();  // the restart counts as activity: the idle clock starts again
    adopt_processes(r, *entry);
    entry->detached.emplace(std::move(detached));
    if (r.state == SandboxState::kStarting) {
      r.state = SandboxState::kRunning;
      (void)store_.update(r);
    }
    {
      std::lock_guard guard(live_mu_);
      live_[r.sandbox_id] = entry;
    }
    log_.info("sandbox " + r.sandbox_id + " re-attached (" + r.engine_name + ")");
    log_lifecycle(r, "reattached", "the daemon restarted and found the sandbox alive");  // [obs]
  }
}

// --- [obs] quotas, metrics and logs (issue 3) ---------------------------------------------------------

void SandboxManager::log_lifecycle(const SandboxRecord& record, std::string event, std::string message) {
  if (!policy_.accounting.logs) return;
  LifecycleEvent entry;
  entry.event = std::move(event);
  entry.message = std::move(message);
  entry.state = record.state;
  entry.stop_reason = record.stop_reason;
  policy_.accounting.logs->append_lifecycle(record.sandbox_id, entry);
}

void SandboxManager::log_command(const std::string& sandbox_id, const CommandOutcome& outcome) {
  SandboxLogs* logs = policy_.accounting.logs;
  if (!logs || outcome.pid == 0) return;
  auto pid = static_cast<int64_t>(outcome.pid);
  logs->append_lifecycle(sandbox_id, {"process_started", "process " + std::to_string(pid) + " started (commands/run)",
                                      pid, std::nullopt, std::nullopt, std::nullopt});
  // A blocking run returns the tails only (max_output_bytes); streamed processes log all of it.
  logs->append_output(sandbox_id, pid, OutputStream::kStdout, outcome.stdout_tail);
  logs->append_output(sandbox_id, pid, OutputStream::kStderr, outcome.stderr_tail);
  int64_t exit_code = outcome.timed_out ? 124 : outcome.signal > 0 ? std::min(255, 128 + outcome.signal)
                                                                   : std::clamp(outcome.exit_code, 0, 255);
  logs->append_lifecycle(sandbox_id, {"process_exited", "process " + std::to_string(pid) + " exited with " +
                                                            std::to_string(exit_code),
                                      pid, std::nullopt, std::nullopt, exit_code});
}

void SandboxManager::for_each_live(const std::function<void(const std::string&, const std::string&)>& fn) {
  std::vector<std::pair<std::string, std::string>> live;
  {
    std::lock_guard guard(live_mu_);
    for (const auto& [id, entry] : live_) live.emplace_back(id, entry->tenant);
  }
  for (const auto& [id, tenant] : live) fn(id, tenant);
}

std::optional<SandboxUsage> SandboxManager::usage(const std::string& sandbox_id) {
  if (!policy_.accounting.usage) return std::nullopt;
  // Under live_mu_: end() takes the sandbox out of the map before destroying it, so its engine name
  // cannot have been given to another sandbox while we read.
  std::lock_guard guard(live_mu_);
  auto it = live_.find(sandbox_id);
  if (it == live_.end() || !it->second->detached) return std::nullopt;
  auto usage = policy_.accounting.usage->read(it->second->detached->name);
  if (!usage.ok()) return std::nullopt;
  return usage.value();
}

}  // namespace airlock::daemon
