// GET /v1/version: daemon and API version and the sandbox backends this build offers.
#include <nlohmann/json.hpp>

#include "daemon/routes/routes.h"
#include "daemon/version.h"

namespace airlock::daemon {

void add_version_routes(Router& router) {
  router.add({"GET", "/v1/version", Access::kTenant, BodyKind::kNone, kDefaultBodyLimit,
              [](const RequestContext& ctx) -> ApiResult<HttpResponse> {
                if (auto error = ctx.query.check_names({})) return *error;
#ifdef AIRLOCK_COMMIT
                nlohmann::json commit = AIRLOCK_COMMIT;
#else
                nlohmann::json commit = nullptr;  // builds do not record their commit yet
#endif
                return json_response(200, {{"version", std::string(kDaemonVersion)},
                                           {"api_version", std::string(kApiVersion)},
                                           {"commit", commit},
                                           {"backends", {"container"}}});
              }});
}

}  // namespace airlock::daemon
