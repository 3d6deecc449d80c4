#include "daemon/sandbox_manager.h"

#include <signal.h>

#include <algorithm>

namespace airlock::daemon {
namespace {

constexpr auto kAgentConnectTimeout = std::chrono::seconds(5);
constexpr uint32_t kIdBlock = 1024;     // process ids reserved per store write
constexpr uint32_t kAdoptWindow = 4096;  // ids before the floor whose late events are accepted

std::vector<std::string> as_assignments(const StringPairs& pairs) {
  std::vector<std::string> out;
  out.reserve(pairs.size());
  for (const auto& [k, v] : pairs) out.push_back(k + "=" + v);
  return out;
}

ApiError not_found(std::string_view sandbox_id) {
  return api_error(ErrorCode::kSandboxNotFound, "sandbox " + std::string(sandbox_id) + " not found");
}

ApiError not_running(const SandboxRecord& r) {
  nlohmann::json reason = r.stop_reason ? nlohmann::json(*r.stop_reason) : nlohmann::json();
  return api_error(ErrorCode::kSandboxNotRunning,
                   "sandbox " + r.sandbox_id + " is " + std::string(state_name(r.state)))
      .with_details({{"state", state_name(r.state)}, {"stop_reason", reason}});
}

}  // namespace

SandboxManager::SandboxManager(Engine engine, IdRangeAllocator ids, SandboxStore& store, const Logger& log,
                               SandboxPolicy policy, WallClock clock)
    : engine_(std::move(engine)), ids_(std::move(ids)), store_(store), log_(log), policy_(policy), clock_(std::move(clock)) {}

SandboxManager::~SandboxManager() { stop_timer(); }

void SandboxManager::destroy(DetachedSandbox detached) {
  std::string name = detached.name;
  Status status;
  {
    std::lock_guard guard(engine_mu_);
    status = engine_.destroy_detached(std::move(detached));
  }
  if (!status.ok()) log_.warn("destroy " + name + ": " + status.error().describe());
}

Result<AgentClient> SandboxManager::open_agent(Live& live, const std::string& socket, std::chrono::milliseconds timeout) {
  Error last = plain_error("not tried");
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto agent = AgentClient::connect(socket, timeout);
    if (!agent.ok()) {
      last = agent.error();
      if (last.errnum == ENOENT || last.errnum == ECONNREFUSED) break;  // nobody is serving it
      continue;
    }
    uint32_t floor = std::max(live.last_id, live.reserved);
    for (uint32_t id = floor > kAdoptWindow ? floor - kAdoptWindow : 1; id <= floor; ++id) agent->adopt(id);
    auto pong = agent->ping(timeout);
    if (pong.ok()) {
      live.last_id = floor + 1;  // the ping's id
      return agent;
    }
    last = pong.error();
  }
  return last;
}

Status SandboxManager::reserve_ids(Live& live) {
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
  return std::move(*record);
}

// --- lifecycle ----------------------------------------------------------------------------------------

ApiResult<SandboxRecord> SandboxManager::create(const std::string& tenant, const SandboxSettings& settings) {
  API_TRY(auto usage, or_internal(store_.live_usage(tenant)));
  auto [count, memory] = usage;
  if (count + 1 > policy_.max_sandboxes) {
    return api_error(ErrorCode::kQuotaExceeded, "tenant " + tenant + " has " + std::to_string(count) +
                                                    " sandboxes running (the maximum)")
        .with_details({{"quota", "max_sandboxes"}, {"limit", policy_.max_sandboxes}, {"used", count}, {"requested", 1}});
  }
  if (memory + settings.memory_mb > policy_.max_memory_mb) {
    return api_error(ErrorCode::kQuotaExceeded, "tenant " + tenant + " would use more than " +
                                                    std::to_string(policy_.max_memory_mb) + " MiB of memory")
        .with_details({{"quota", "max_memory_mb"}, {"limit", policy_.max_memory_mb}, {"used", memory},
                       {"requested", settings.memory_mb}});
  }

  SandboxRecord record;
  record.sandbox_id = new_sandbox_id();
  record.tenant = tenant;
  record.settings = settings;
  record.created_at = record.last_activity_at = clock_();
  record.expires_at = record.created_at + settings.timeout * 1000;
  API_TRY_STATUS_INTERNAL(store_.insert(record));

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
  DetachedSandbox detached = made.value().detach();
  auto entry = std::make_shared<Live>();
  entry->sandbox_id = record.sandbox_id;
  entry->tenant = tenant;
  entry->seq = record.seq;
  auto agent = open_agent(*entry, detached.agent_socket_path, kAgentConnectTimeout);
  if (agent.ok() && settings.workdir != "/root") {  // "created if missing"
    AgentExecRequest mkdir;
    mkdir.argv = {"/bin/mkdir", "-p", "--", settings.workdir};
    mkdir.cwd = "/";
    mkdir.timeout_ms = 10000;
    mkdir.env = default_environment(0, false, nullptr);
    auto made_dir = run_command(*agent, mkdir, {}, 4096);
    if (!made_dir.ok() || made_dir->exit_code != 0) {
      Error cause = made_dir.ok() ? plain_error("mkdir " + settings.workdir + ": " + made_dir->stderr_tail)
                                  : made_dir.error();
      destroy(std::move(detached));
      return fail(cause, api_error(ErrorCode::kInvalidField, "workdir " + settings.workdir + " cannot be created")
                             .with_field("workdir"));
    }
  }
  if (!agent.ok()) {
    Error cause = agent.error();
    destroy(std::move(detached));
    return fail(cause, api_error(ErrorCode::kAgentError, "the sandbox's agent did not answer"));
  }

  record.state = SandboxState::kRunning;
  record.started_at = clock_();
  record.engine_name = detached.name;
  record.id_index = detached.ids.index();
  record.init_pid = detached.init_pid;
  record.agent_socket = detached.agent_socket_path;
  entry->expires_at = *record.expires_at;
  entry->agent.emplace(std::move(agent).value());
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
  return record;
}

ApiResult<SandboxRecord> SandboxManager::end(const std::string& tenant, std::string_view sandbox_id, SandboxState state,
                                             std::optional<std::string> reason, std::optional<std::string> message) {
  std::lock_guard transitions(transitions_mu_);
  API_TRY(auto record, find(tenant, sandbox_id));
  std::optional<DetachedSandbox> detached;
  {
    std::lock_guard guard(live_mu_);
    if (auto it = live_.find(record.sandbox_id); it != live_.end()) {
      detached = std::move(it->second->detached);
      live_.erase(it);
    }
  }
  live_cv_.notify_all();
  if (detached) destroy(std::move(*detached));
  UnixMillis now = clock_();
  if (is_live(record.state)) {
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
  API_TRY(auto record, find(tenant, sandbox_id));
  if (!is_live(record.state)) return not_running(record);
  auto entry = live(record.sandbox_id);
  if (!entry) return not_running(record);

  AgentExecRequest exec;
  exec.argv = request.argv;
  exec.uid = request.uid;
  exec.gid = request.gid;
  exec.timeout_ms = static_cast<uint32_t>(std::min<int64_t>(request.timeout.count(), UINT32_MAX));
  const std::string& workdir = record.settings.workdir;
  if (!request.cwd) {
    exec.cwd = workdir;
  } else {
    exec.cwd = (*request.cwd)[0] == '/' ? *request.cwd : workdir + "/" + *request.cwd;
  }
  exec.env = merge_environment(merge_environment(default_environment(request.uid, false, nullptr),
                                                 as_assignments(record.settings.env)),
                               as_assignments(request.env));

  auto unavailable = [] {
    return api_error(ErrorCode::kUnavailable, "the daemon is shutting down").with_header("Retry-After", "1");
  };
  if (shutting_down_) return unavailable();
  std::unique_lock agent_guard(entry->agent_mu);
  if (!entry->agent || !entry->agent->connected()) {
    auto agent = open_agent(*entry, record.agent_socket, kAgentConnectTimeout);
    if (!agent.ok()) {
      entry->agent.reset();
      agent_guard.unlock();
      if (!live(record.sandbox_id)) {
        auto now = find(tenant, sandbox_id);
        return not_running(now.ok() ? now.value() : record);
      }
      // The contract: an agent that stopped answering stops its sandbox with reason `error`.
      log_.warn("sandbox " + record.sandbox_id + ": agent: " + agent.error().describe());
      (void)end(tenant, record.sandbox_id, SandboxState::kStopped, "error", "its agent stopped answering");
      return api_error(ErrorCode::kAgentError, "the sandbox's agent did not answer; the sandbox is stopped");
    }
    entry->agent.emplace(std::move(agent).value());
  }
  API_TRY_STATUS_INTERNAL(reserve_ids(*entry));
  CommandRun run;
  run.started_at = clock_();
  auto t0 = std::chrono::steady_clock::now();
  auto outcome = run_command(*entry->agent, exec, request.stdin_data, request.max_output_bytes, &shutting_down_);
  run.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  run.ended_at = clock_();
  if (!outcome.ok()) {
    entry->agent.reset();  // the next command reconnects
    entry->last_id += 1;   // the exec may have used an id
    if (outcome.error().errnum == ECANCELED) return unavailable();
    if (!live(record.sandbox_id)) {
      auto now = find(tenant, sandbox_id);
      return not_running(now.ok() ? now.value() : record);
    }
    log_.warn("sandbox " + record.sandbox_id + ": command: " + outcome.error().describe());
    return api_error(ErrorCode::kAgentError, "the sandbox's agent failed during the command");
  }
  run.outcome = std::move(outcome).value();
  entry->last_id = std::max(entry->last_id, run.outcome.process_id);
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
    for (const auto& [id, entry] : live_) {
      if (entry->expires_at <= now) {
        due.emplace_back(entry->tenant, id);
      } else {
        next = std::min(next, entry->expires_at);
      }
    }
    if (!due.empty()) {
      lock.unlock();
      for (const auto& [tenant, id] : due) {
        auto ended = end(tenant, id, SandboxState::kStopped, "timeout", "its timeout passed");
        if (!ended.ok()) log_.warn("stop " + id + " at its deadline: " + ended.error().message);
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
    Result<AgentClient> agent = plain_error("init is gone");
    if (::kill(detached.init_pid, 0) == 0 || errno == EPERM) {
      agent = open_agent(*entry, r.agent_socket, std::chrono::seconds(2));
    }
    if (!agent.ok()) {
      std::string why = agent.error().describe();
      destroy(std::move(detached));
      mark_dead(why);
      continue;
    }
    entry->expires_at = r.expires_at.value_or(clock_());
    entry->agent.emplace(std::move(agent).value());
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
  }
}

}  // namespace airlock::daemon
