#include "daemon/routes/routes.h"

namespace airlock::daemon {

void add_all_routes(Router& router, ApiServices& services) {
  add_health_routes(router, services);
  add_version_routes(router);
  add_key_routes(router, services);
  if (services.sandboxes) add_sandbox_routes(router, *services.sandboxes);
}

}  // namespace airlock::daemon
