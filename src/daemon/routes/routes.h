// Route registration, one file per resource (routes/<resource>.cc). Each adds its operations of
// api/openapi.yaml to the router; what they need is passed in, nothing is global.
#pragma once

#include <chrono>

#include "daemon/key_store.h"
#include "daemon/log.h"
#include "daemon/router.h"

namespace airlock::daemon {

class SandboxManager;

struct ApiServices {
  KeyStore& keys;
  const Logger& log;                              // audit lines (key created, revoked)
  std::chrono::steady_clock::time_point started;  // for uptime
  SandboxManager* sandboxes = nullptr;            // null: no engine (unit tests); sandbox routes absent
};

void add_health_routes(Router& router, const ApiServices& services);   // GET /healthz
void add_version_routes(Router& router);                                // GET /v1/version
void add_key_routes(Router& router, ApiServices& services);            // /v1/keys, /v1/keys/{key_id}
// /v1/sandboxes, /v1/sandboxes/{id}, .../timeout, .../commands/run (all on the worker pool)
void add_sandbox_routes(Router& router, SandboxManager& sandboxes);

// Every route this daemon serves. Paths of the contract that are not implemented yet are not
// registered, so they answer 404 `route_not_found` like any unknown path.
void add_all_routes(Router& router, ApiServices& services);

}  // namespace airlock::daemon
