// Route registration, one file per resource (routes/<resource>.cc). Each adds its operations of
// api/openapi.yaml to the router; what they need is passed in, nothing is global.
#pragma once

#include <chrono>

#include "daemon/key_store.h"
#include "daemon/log.h"
#include "daemon/router.h"

namespace airlock::daemon {

class SandboxManager;
class IdempotencyStore;
class Timers;
class QuotaStore;     // [obs]
class DaemonMetrics;  // [obs]
class SandboxLogs;    // [obs]
class PortService;

struct ApiServices {
  KeyStore& keys;
  const Logger& log;                              // audit lines (key created, revoked)
  std::chrono::steady_clock::time_point started;  // for uptime
  SandboxManager* sandboxes = nullptr;            // null: no engine (unit tests); sandbox routes absent
  Timers* timers = nullptr;                       // for streams and long polls (with `sandboxes`)
  IdempotencyStore* idempotency = nullptr;        // Idempotency-Key replays; required with `sandboxes`
  // [obs] Quotas, metrics and logs (issue 3); null: their routes are absent.
  QuotaStore* quotas = nullptr;
  DaemonMetrics* metrics = nullptr;
  SandboxLogs* logs = nullptr;  // the log routes also need `sandboxes`
  PortService* ports = nullptr;  // exposed ports (issue 4); with `sandboxes`
};

void add_health_routes(Router& router, const ApiServices& services);   // GET /healthz
void add_version_routes(Router& router);                                // GET /v1/version
void add_key_routes(Router& router, ApiServices& services);            // /v1/keys, /v1/keys/{key_id}
// /v1/sandboxes, /v1/sandboxes/{id}, .../timeout, .../commands/run (all on the worker pool); the
// create honours Idempotency-Key through `idempotency`
void add_sandbox_routes(Router& router, SandboxManager& sandboxes, IdempotencyStore& idempotency);
// .../commands/stream and .../processes/* (streams, long polls and the WebSocket attach); starting a
// process honours Idempotency-Key through `idempotency`
void add_process_routes(Router& router, SandboxManager& sandboxes, Timers& timers, IdempotencyStore& idempotency);
// .../files/* (every path resolved by the agent, inside the sandbox)
void add_file_routes(Router& router, SandboxManager& sandboxes, Timers& timers);
// PUT /v1/sandboxes/{id}/network (egress policy at runtime)
void add_network_routes(Router& router, SandboxManager& sandboxes);
// /v1/sandboxes/{id}/ports[/{port}[/tokens[/{token_id}]|/wait|/connect]] (exposed ports, issue 4)
void add_port_routes(Router& router, SandboxManager& sandboxes, PortService& ports);
// [obs] GET /v1/quota, GET/PUT /v1/tenants/{tenant}/quota
void add_quota_routes(Router& router, ApiServices& services);
// [obs] GET /metrics (admin)
void add_metrics_routes(Router& router, ApiServices& services);
// [obs] GET /v1/sandboxes/{id}/logs and .../logs/stream
void add_log_routes(Router& router, SandboxManager& sandboxes, SandboxLogs& logs);

// Every route this daemon serves. Paths of the contract that are not implemented yet are not
// registered, so they answer 404 `route_not_found` like any unknown path.
void add_all_routes(Router& router, ApiServices& services);

}  // namespace airlock::daemon
