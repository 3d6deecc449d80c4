// The daemon's live sandboxes: creates them through the engine (service sandboxes, detached so they
// outlive a daemon restart), keeps each one's DetachedSandbox (and so its id-range lock) and agent
// connection, enforces deadlines on a timer thread, runs blocking commands, and on start re-attaches
// to what the store says is running (recover()). The store is the record; this class is the owner.
//
// Locking: live_mu_ guards the map of live sandboxes and their deadlines; each sandbox's agent_mu
// guards its AgentClient (one connection per sandbox, as the agent serves one at a time), so
// commands on one sandbox run one after another while different sandboxes proceed in parallel.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "daemon/agent_hub.h"
#include "daemon/command_runner.h"
#include "daemon/process.h"
#include "daemon/errors.h"
#include "daemon/log.h"
#include "daemon/network_service.h"
#include "daemon/sandbox_request.h"
#include "daemon/sandbox_store.h"
#include "daemon/sandbox_usage.h"  // [obs]
#include "engine/agent_client.h"
#include "engine/id_range.h"
#include "engine/sandbox.h"

namespace airlock::daemon {

class QuotaStore;     // [obs]
class DaemonMetrics;  // [obs]
class SandboxLogs;    // [obs]

// [obs] Issue 3: where the manager asks for quotas and reports metrics, log entries and cgroup usage.
// Null members: SandboxPolicy's fixed limits apply to every tenant, and nothing is reported.
struct SandboxAccounting {
  QuotaStore* quotas = nullptr;
  DaemonMetrics* metrics = nullptr;  // observe_sandbox_create, observe_exec
  SandboxLogs* logs = nullptr;       // lifecycle entries (append_output for process output)
  const SandboxUsageReader* usage = nullptr;
};

struct SandboxPolicy {
  int64_t max_sandboxes = 100;         // per tenant, starting + running, when accounting.quotas is null
  int64_t max_memory_mb = 64 * 1024;   // per tenant, likewise
  int64_t max_lifetime_s = 2592000;    // from created_at (the contract's maximum)
  SandboxAccounting accounting;        // [obs]
};

struct CommandRun {
  CommandOutcome outcome;
  UnixMillis started_at = 0, ended_at = 0;
  double duration_ms = 0;
};

// 409 sandbox_not_running with the record's state and stop_reason in details.
ApiError sandbox_not_running_error(const SandboxRecord& record);

class SandboxManager {
 public:
  SandboxManager(Engine engine, IdRangeAllocator ids, SandboxStore& store, const Logger& log,
                 SandboxPolicy policy = {}, WallClock clock = unix_millis_now);
  ~SandboxManager();
  SandboxManager(const SandboxManager&) = delete;
  SandboxManager& operator=(const SandboxManager&) = delete;

  // Re-takes what the store says is live (id-range lock, init alive, agent answers), re-arms
  // deadlines, marks the dead stopped/error. Call once, before serving and before the timer starts.
  void recover();
  void start_timer();
  // Stops the timer; live sandboxes keep running (they outlive the daemon by design).
  void stop_timer();
  // Commands still running are killed and answered 503 `unavailable`; new ones are refused.
  void begin_shutdown() { shutting_down_ = true; }

  ApiResult<SandboxRecord> create(const std::string& tenant, const SandboxSettings& settings);
  ApiResult<SandboxRecord> get(const std::string& tenant, std::string_view sandbox_id);
  ApiResult<SandboxPage> list(const SandboxListQuery& query);
  ApiResult<SandboxRecord> terminate(const std::string& tenant, std::string_view sandbox_id);
  ApiResult<SandboxRecord> set_timeout(const std::string& tenant, std::string_view sandbox_id,
                                       const SetTimeoutRequest& request);
  // Replaces a running sandbox's egress policy (PUT /network); the record's settings keep it.
  ApiResult<SandboxRecord> set_network(const std::string& tenant, std::string_view sandbox_id,
                                       const net::EgressPolicy& policy);
  // Sandbox networking (issue 4); null: only sandboxes without an interface can be created.
  void set_network_service(NetworkService* network) { network_ = network; }
  ApiResult<CommandRun> run(const std::string& tenant, std::string_view sandbox_id, const RunCommandRequest& request);

  // ---- processes (sandbox_processes.cc) ----
  // Starts a process (kind kStream or kBackground) and returns once it runs (or failed to start:
  // then it has ended with reason failed_to_start). At most kMaxProcesses running per sandbox.
  ApiResult<std::shared_ptr<Process>> start(const std::string& tenant, std::string_view sandbox_id,
                                            const RunCommandRequest& request, ProcessKind kind);
  // Running processes (every kind) and the last exited background ones, oldest first.
  ApiResult<std::vector<std::shared_ptr<Process>>> processes(const std::string& tenant, std::string_view sandbox_id);
  // The process with this pid (the newest, should pids repeat); 404 process_not_found.
  ApiResult<std::shared_ptr<Process>> process(const std::string& tenant, std::string_view sandbox_id, int64_t pid);
  // The sandbox's agent connection for a file request: live, reconnected if needed, ids reserved.
  ApiResult<std::shared_ptr<AgentConnection>> agent(const std::string& tenant, std::string_view sandbox_id);
  static constexpr size_t kMaxProcesses = 256;
  static constexpr size_t kKeptExited = 100;

  // ---- exposed ports (sandbox_ports.cc) ----
  // Adds a port to a live sandbox, or changes `public` of one it has; `added` says which.
  struct PortChange {
    SandboxRecord record;
    ExposedPort port;
    bool added = false;
  };
  ApiResult<PortChange> expose_port(const std::string& tenant, std::string_view sandbox_id, ExposedPort port);
  // 404 port_not_found when the sandbox does not expose it.
  ApiResult<SandboxRecord> unexpose_port(const std::string& tenant, std::string_view sandbox_id, uint16_t port);
  // For the port proxy (any tenant; counts as activity): while the sandbox is live, its tenant, exposed
  // ports and a pidfd of its init (whose network namespace has the ports). nullopt otherwise.
  struct PortTarget {
    std::string tenant;
    std::vector<ExposedPort> ports;
    UniqueFd pidfd;
  };
  std::optional<PortTarget> port_target(std::string_view sandbox_id);

  // [obs] The live sandboxes as (sandbox_id, tenant), for /metrics; fn runs without the manager's locks.
  void for_each_live(const std::function<void(const std::string&, const std::string&)>& fn);
  // [obs] Cgroup usage of a sandbox this manager holds; nullopt once it has ended (or without a reader).
  std::optional<SandboxUsage> usage(const std::string& sandbox_id);

 private:
  struct Live {
    std::string sandbox_id;
    std::string tenant;
    UnixMillis expires_at = 0;  // guarded by live_mu_
    std::optional<DetachedSandbox> detached;  // guarded by live_mu_; moved out to destroy
    int64_t seq = 0;
    std::string agent_socket;
    std::atomic<UnixMillis> last_activity{0};  // the last API request about it (idle_timeout)
    int64_t idle_timeout_ms = 0;               // 0: none
    std::mutex agent_mu;                      // guards conn, last_id, reserved
    std::shared_ptr<AgentConnection> conn;
    uint32_t last_id = 0;   // the highest process id this daemon may have used
    uint32_t reserved = 0;  // process ids up to this one are reserved in the store
    std::mutex procs_mu;    // guards procs
    std::vector<std::shared_ptr<Process>> procs;  // running, and the last exited background ones
  };

  // The live connection to the sandbox's agent, connecting (again) when there is none: ids start
  // clear of everything used before (SandboxRecord::process_ids_reserved), and the processes still
  // running are registered on the new connection. Call with agent_mu held.
  Result<std::shared_ptr<AgentConnection>> connect_agent(Live& live, std::chrono::milliseconds timeout);
  // Reserves more ids in the store when the next request could pass the reservation (agent_mu held).
  Status reserve_ids(Live& live);
  // Starts a process on the live sandbox; the common part of run() and start().
  ApiResult<std::shared_ptr<Process>> launch(const SandboxRecord& record, Live& live, const RunCommandRequest& request,
                                             ProcessKind kind);
  // The agent did not answer: stop the sandbox (reason error) and say so.
  ApiError agent_lost(const std::string& tenant, const SandboxRecord& record, const Error& cause);
  // Drops exited run/stream processes and all but the last kKeptExited exited background ones.
  static void prune(Live& live);
  // connect_agent + reserve_ids, taking agent_mu.
  Result<std::shared_ptr<AgentConnection>> connect_agent_for(Live& live);
  // After a restart: the sandbox's stored background processes, re-registered on its connection.
  void adopt_processes(const SandboxRecord& record, Live& live);
  void process_ended(int64_t seq, const std::string& sandbox_id, Process& p);
  void log_process_end(const std::string& sandbox_id, Process& p);
  AgentHub hub_;

  ApiResult<SandboxRecord> find(const std::string& tenant, std::string_view sandbox_id);
  // Removes it from the live map, destroys it and records `state`/`reason`. Idempotent.
  // Under transitions_mu_, re-reads the record: a live one is destroyed and gets `state` (with
  // `reason`); an ended one becomes terminated when that is asked (DELETE of a stopped sandbox).
  ApiResult<SandboxRecord> end(const std::string& tenant, std::string_view sandbox_id, SandboxState state,
                               std::optional<std::string> reason, std::optional<std::string> message);
  void destroy(DetachedSandbox detached);
  // Gives the sandbox its interface and rules (policy with an interface only) and its resolv.conf;
  // fills record.settings.ipv4/ipv6. The caller undoes with destroy() (which detaches).
  std::optional<ApiError> attach_network(SandboxRecord& record, uint32_t index, int pidfd);
  Status write_resolv_conf(const SandboxRecord& record, Live& live);
  // [obs] A lifecycle entry in the sandbox's log (state and stop_reason from the record).
  void log_lifecycle(const SandboxRecord& record, std::string event, std::string message);
  // [obs] A blocking command's start, output tails and exit in the sandbox's log.
  void log_command(const std::string& sandbox_id, const CommandOutcome& outcome);
  std::shared_ptr<Live> live(const std::string& sandbox_id);
  void timer_loop();

  std::mutex admission_mu_;  // [obs] without accounting.quotas: serialises the quota check with the insert
  std::mutex transitions_mu_;  // serialises state changes that destroy (DELETE, deadline, failures)
  std::mutex engine_mu_;  // guards engine_ (create and destroy)
  Engine engine_;
  IdRangeAllocator ids_;
  SandboxStore& store_;
  const Logger& log_;
  SandboxPolicy policy_;
  WallClock clock_;
  std::string init_path_;

  std::mutex live_mu_;  // guards live_, stopping_ and every Live's expires_at/detached
  std::condition_variable live_cv_;
  std::map<std::string, std::shared_ptr<Live>> live_;
  bool stopping_ = false;
  std::thread timer_;
  std::atomic<bool> shutting_down_{false};
  NetworkService* network_ = nullptr;
};

}  // namespace airlock::daemon
