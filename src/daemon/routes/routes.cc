#include "daemon/routes/routes.h"

#include <cstdio>
#include <cstdlib>

namespace airlock::daemon {

void add_all_routes(Router& router, ApiServices& services) {
  add_health_routes(router, services);
  add_version_routes(router);
  add_key_routes(router, services);
  if (services.sandboxes && !services.idempotency) {
    std::fputs("bug: sandbox routes without an idempotency store\n", stderr);
    std::abort();
  }
  if (services.sandboxes) add_sandbox_routes(router, *services.sandboxes, *services.idempotency);
  if (services.sandboxes && services.timers) {
    add_process_routes(router, *services.sandboxes, *services.timers, *services.idempotency);
    add_file_routes(router, *services.sandboxes, *services.timers);
  }
  if (services.sandboxes) add_network_routes(router, *services.sandboxes);
  if (services.sandboxes && services.ports) add_port_routes(router, *services.sandboxes, *services.ports);
  if (services.quotas) add_quota_routes(router, services);                                      // [obs]
  if (services.metrics) add_metrics_routes(router, services);                                   // [obs]
  if (services.sandboxes && services.logs) add_log_routes(router, *services.sandboxes, *services.logs);  // [obs]
}

}  // namespace airlock::daemon
