// GET /healthz: liveness and readiness; the only unauthenticated operation.
#include <nlohmann/json.hpp>

#include "daemon/routes/routes.h"
#include "daemon/version.h"

namespace airlock::daemon {

void add_health_routes(Router& router, const ApiServices& services) {
  auto started = services.started;
  router.add({"GET", "/healthz", Access::kPublic, BodyKind::kNone, kDefaultBodyLimit,
              [started](const RequestContext& ctx) -> ApiResult<HttpResponse> {
                (void)ctx;  // query parameters are ignored: probes add their own
                using namespace std::chrono;
                double uptime = duration<double>(steady_clock::now() - started).count();
                return json_response(200, {{"status", "ok"},
                                           {"version", std::string(kDaemonVersion)},
                                           {"uptime_seconds", std::max(0.0, uptime)}});
              }});
}

}  // namespace airlock::daemon
