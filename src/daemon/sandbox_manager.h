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

#include "daemon/command_runner.h"
#include "daemon/errors.h"
#include "daemon/log.h"
#include "daemon/sandbox_request.h"
#include "daemon/sandbox_store.h"
#include "engine/agent_client.h"
#include "engine/id_range.h"
#include "engine/sandbox.h"

namespace airlock::daemon {

struct SandboxPolicy {
  int64_t max_sandboxes = 100;         // per tenant, starting + running (fixed until quotas land)
  int64_t max_memory_mb = 64 * 1024;   // per tenant
  int64_t max_lifetime_s = 2592000;    // from created_at (the contract's maximum)
};

struct CommandRun {
  CommandOutcome outcome;
  UnixMillis started_at = 0, ended_at = 0;
  double duration_ms = 0;
};

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
  ApiResult<CommandRun> run(const std::string& tenant, std::string_view sandbox_id, const RunCommandRequest& request);

 private:
  struct Live {
    std::string sandbox_id;
    std::string tenant;
    UnixMillis expires_at = 0;  // guarded by live_mu_
    std::optional<DetachedSandbox> detached;  // guarded by live_mu_; moved out to destroy
    int64_t seq = 0;
    std::mutex agent_mu;                      // guards agent, last_id, reserved
    std::optional<AgentClient> agent;
    uint32_t last_id = 0;   // the highest process id this daemon may have used
    uint32_t reserved = 0;  // process ids up to this one are reserved in the store
  };

  // Connects to a sandbox's agent with ids clear of everything used before (see
  // SandboxRecord::process_ids_reserved): adopts the recent ids so late events of earlier processes
  // are accepted, and retries when stale events of an earlier connection break the first tries.
  Result<AgentClient> open_agent(Live& live, const std::string& socket, std::chrono::milliseconds timeout);
  // Reserves more ids in the store when the next exec could pass the reservation.
  Status reserve_ids(Live& live);

  ApiResult<SandboxRecord> find(const std::string& tenant, std::string_view sandbox_id);
  // Removes it from the live map, destroys it and records `state`/`reason`. Idempotent.
  // Under transitions_mu_, re-reads the record: a live one is destroyed and gets `state` (with
  // `reason`); an ended one becomes terminated when that is asked (DELETE of a stopped sandbox).
  ApiResult<SandboxRecord> end(const std::string& tenant, std::string_view sandbox_id, SandboxState state,
                               std::optional<std::string> reason, std::optional<std::string> message);
  void destroy(DetachedSandbox detached);
  std::shared_ptr<Live> live(const std::string& sandbox_id);
  void timer_loop();

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
};

}  // namespace airlock::daemon
