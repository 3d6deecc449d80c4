// PUT /v1/sandboxes/{sandbox_id}/network: replace a running sandbox's egress policy (issue 4).
#include "daemon/json_body.h"
#include "daemon/routes/routes.h"
#include "daemon/sandbox_json.h"
#include "daemon/sandbox_manager.h"
#include "daemon/sandbox_request.h"

namespace airlock::daemon {
namespace {

ApiResult<HttpResponse> set_network(SandboxManager& sandboxes, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  // The sandbox is looked up first: an unknown sandbox is 404 whatever the body says.
  API_TRY(auto existing, sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  (void)existing;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  API_TRY(auto policy, parse_network(body, ""));
  API_TRY(auto record, sandboxes.set_network(ctx.principal.tenant, ctx.params.get("sandbox_id"), policy));
  return json_response(200, network_to_json(record.settings));
}

}  // namespace

void add_network_routes(Router& router, SandboxManager& sandboxes) {
  Route r{"PUT", "/v1/sandboxes/{sandbox_id}/network", Access::kTenant, BodyKind::kJson, kDefaultBodyLimit,
          [&sandboxes](const RequestContext& ctx) { return set_network(sandboxes, ctx); }};
  r.blocking = true;  // nftables and netlink work
  router.add(std::move(r));
}

}  // namespace airlock::daemon
