// Exposed ports (issue 4): /v1/sandboxes/{sandbox_id}/ports (list, expose), .../ports/{port} (unexpose),
// .../ports/{port}/tokens (access tokens), .../ports/{port}/wait (readiness long poll) and
// .../ports/{port}/connect (raw TCP over WebSocket, for `airlock port-forward`). The proxy itself is
// PortService, ahead of the router.
#include <cmath>
#include <cstdlib>

#include "daemon/json_body.h"
#include "daemon/port_service.h"
#include "daemon/routes/routes.h"
#include "daemon/sandbox_manager.h"
#include "daemon/sandbox_request.h"

namespace airlock::daemon {
namespace {

constexpr int64_t kMaxTokenLifetime = 2592000;  // 30 days, the longest a sandbox lives

ApiResult<uint16_t> port_param(const RequestContext& ctx) {
  auto port = parse_port_number(ctx.params.get("port"));
  if (!port) return api_error(ErrorCode::kInvalidParameter, "port must be an integer from 1 to 65535").with_field("port");
  return *port;
}

// `http(s)://HOST` from the request (the address the client used to reach the daemon).
std::string base_url(const HttpRequest& request) {
  auto host = request.header("Host");
  std::string h = host ? std::string(*host) : "localhost";
  return std::string(request.tls ? "https://" : "http://") + h;
}

nlohmann::json port_json(const RequestContext& ctx, const SandboxRecord& record, const ExposedPort& p,
                         const std::string& domain) {
  std::string id = record.sandbox_id;
  nlohmann::json host_url = nullptr;
  if (!domain.empty()) {
    std::string port_suffix;
    if (auto host = ctx.request.header("Host")) {  // the daemon's own port, as the client reached it
      std::string_view h = *host;
      size_t colon = h.rfind(':');
      if (colon != std::string_view::npos && h.find(']', colon) == std::string_view::npos) port_suffix = h.substr(colon);
    }
    host_url = std::string(ctx.request.tls ? "https://" : "http://") + std::to_string(p.port) + "-" + id + "." + domain +
               port_suffix + "/";
  }
  return {{"port", p.port},
          {"public", p.is_public},
          {"url", base_url(ctx.request) + "/p/" + id + "/" + std::to_string(p.port) + "/"},
          {"host_url", host_url},
          {"created_at", format_timestamp(p.created_at ? p.created_at : record.created_at)}};
}

nlohmann::json token_json(const PortToken& t) {
  return {{"token_id", t.token_id},
          {"port", t.port},
          {"name", t.name},
          {"created_at", format_timestamp(t.created_at)},
          {"expires_at", t.expires_at ? nlohmann::json(format_timestamp(*t.expires_at)) : nlohmann::json()}};
}

// The live sandbox's exposed port, or 404 port_not_found.
ApiResult<std::pair<SandboxRecord, ExposedPort>> exposed(SandboxManager& sandboxes, const RequestContext& ctx, uint16_t port) {
  API_TRY(auto record, sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  if (is_live(record.state)) {
    for (const auto& p : record.settings.ports) {
      if (p.port == port) return std::pair{record, p};
    }
  }
  return api_error(ErrorCode::kPortNotFound, "sandbox " + record.sandbox_id + " does not expose port " + std::to_string(port));
}

struct Deps {
  SandboxManager& sandboxes;
  PortService& ports;
};

ApiResult<HttpResponse> list_ports(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto record, d.sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  nlohmann::json items = nlohmann::json::array();
  if (is_live(record.state)) {
    for (const auto& p : record.settings.ports) items.push_back(port_json(ctx, record, p, d.ports.proxy_domain()));
  }
  return json_response(200, {{"ports", std::move(items)}});
}

ApiResult<HttpResponse> expose(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto existing, d.sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  (void)existing;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  API_TRY(auto port, parse_exposed_port(body, ""));
  API_TRY(auto change, d.sandboxes.expose_port(ctx.principal.tenant, ctx.params.get("sandbox_id"), port));
  d.ports.ports_changed(change.record.sandbox_id, std::nullopt);
  return json_response(change.added ? 201 : 200, port_json(ctx, change.record, change.port, d.ports.proxy_domain()));
}

ApiResult<HttpResponse> unexpose(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto port, port_param(ctx));
  API_TRY(auto record, d.sandboxes.unexpose_port(ctx.principal.tenant, ctx.params.get("sandbox_id"), port));
  API_TRY_STATUS_INTERNAL(d.ports.tokens().remove_port(record.sandbox_id, port));
  d.ports.ports_changed(record.sandbox_id, port);  // its relays are closed
  HttpResponse r;
  r.status = 204;
  return r;
}

ApiResult<HttpResponse> create_token(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto port, port_param(ctx));
  API_TRY(auto found, exposed(d.sandboxes, ctx, port));
  API_TRY(auto body, parse_json_object(ctx.request.body));
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "name" && it.key() != "expires_in") {
      return api_error(ErrorCode::kInvalidField, it.key() + " is not a known field").with_field(it.key());
    }
  }
  std::string name;
  if (body.contains("name") && !body["name"].is_null()) {
    if (!body["name"].is_string() || body["name"].get<std::string>().size() > 128) {
      return api_error(ErrorCode::kInvalidField, "name must be a string of at most 128 bytes").with_field("name");
    }
    name = body["name"].get<std::string>();
  }
  std::optional<UnixMillis> expires_at;
  UnixMillis now = unix_millis_now();
  if (body.contains("expires_in") && !body["expires_in"].is_null()) {
    const auto& v = body["expires_in"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxTokenLifetime) {
      return api_error(ErrorCode::kInvalidField, "expires_in must be an integer number of seconds from 1 to 2592000")
          .with_field("expires_in");
    }
    expires_at = now + v.get<int64_t>() * 1000;
  }
  API_TRY(auto created, or_internal(d.ports.tokens().create(found.first.sandbox_id, port, std::move(name), now, expires_at)));
  if (!created) {
    return api_error(ErrorCode::kLimitExceeded, "the port already has " + std::to_string(kMaxTokensPerPort) + " tokens")
        .with_details({{"max", kMaxTokensPerPort}});
  }
  nlohmann::json j = token_json(created->token);
  j["token"] = created->secret;  // shown once
  return json_response(201, j);
}

ApiResult<HttpResponse> list_tokens(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto port, port_param(ctx));
  API_TRY(auto found, exposed(d.sandboxes, ctx, port));
  API_TRY(auto tokens, or_internal(d.ports.tokens().list(found.first.sandbox_id, port)));
  nlohmann::json items = nlohmann::json::array();
  for (const auto& t : tokens) items.push_back(token_json(t));
  return json_response(200, {{"tokens", std::move(items)}});
}

ApiResult<HttpResponse> revoke_token(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto port, port_param(ctx));
  API_TRY(auto found, exposed(d.sandboxes, ctx, port));
  std::string token_id(ctx.params.get("token_id"));
  API_TRY(bool revoked, or_internal(d.ports.tokens().revoke(found.first.sandbox_id, port, token_id)));
  if (!revoked) {
    return api_error(ErrorCode::kPortTokenNotFound, "port " + std::to_string(port) + " has no token " + token_id.substr(0, 64));
  }
  HttpResponse r;
  r.status = 204;
  return r;
}

ApiResult<HttpResponse> wait_port(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"timeout"})) return *error;
  API_TRY(auto port, port_param(ctx));
  API_TRY(double seconds, wait_timeout_seconds(ctx.query));
  API_TRY(auto record, d.sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  if (!is_live(record.state)) return sandbox_not_running_error(record);
  // One probe now (this is a worker); then the service's monitor probes every 100 ms.
  auto first = d.ports.connect_owned(ctx.principal.tenant, record.sandbox_id, port);
  if (first.ok() || seconds == 0) return json_response(200, {{"port", port}, {"ready", first.ok()}});
  if (first.error().code != ErrorCode::kPortUnreachable) return first.error();
  HttpResponse r;
  PortService& service = d.ports;
  r.deferred = [&service, id = record.sandbox_id, port, seconds](std::function<void(HttpResponse)> done) {
    service.wait_for(id, port, std::chrono::milliseconds(std::llround(seconds * 1000)), [done, port](bool ready) {
      done(json_response(200, {{"port", port}, {"ready", ready}}));
    });
  };
  return r;
}

ApiResult<HttpResponse> connect(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto port, port_param(ctx));
  auto upgrade = ctx.request.header("Upgrade");
  if (!upgrade || !ascii_iequals(*upgrade, "websocket")) {
    return api_error(ErrorCode::kUpgradeRequired, "this route needs a WebSocket upgrade (Upgrade: websocket)")
        .with_header("Upgrade", "websocket");
  }
  API_TRY(auto record, d.sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  if (!is_live(record.state)) return sandbox_not_running_error(record);
  API_TRY(auto fd, d.ports.connect_owned(ctx.principal.tenant, record.sandbox_id, port));
  auto target = std::make_shared<TunnelTarget>();
  target->socket = std::move(fd);
  target->websocket = true;
  PortService& service = d.ports;
  target->opened = [&service, id = record.sandbox_id, port](std::shared_ptr<Tunnel> t) { service.track(id, port, std::move(t)); };
  HttpResponse r;
  r.status = 101;
  r.tunnel = std::move(target);
  return r;
}

}  // namespace

void add_port_routes(Router& router, SandboxManager& sandboxes, PortService& ports) {
  auto d = std::make_shared<Deps>(Deps{sandboxes, ports});
  auto add = [&](std::string method, std::string pattern, BodyKind body, ApiResult<HttpResponse> (*fn)(Deps&, const RequestContext&)) {
    Route r{std::move(method), std::move(pattern), Access::kTenant, body, kDefaultBodyLimit,
            [d, fn](const RequestContext& ctx) { return fn(*d, ctx); }};
    r.blocking = true;  // the store, and connects inside the sandbox
    router.add(std::move(r));
  };
  add("GET", "/v1/sandboxes/{sandbox_id}/ports", BodyKind::kNone, list_ports);
  add("POST", "/v1/sandboxes/{sandbox_id}/ports", BodyKind::kJson, expose);
  add("DELETE", "/v1/sandboxes/{sandbox_id}/ports/{port}", BodyKind::kNone, unexpose);
  add("GET", "/v1/sandboxes/{sandbox_id}/ports/{port}/tokens", BodyKind::kNone, list_tokens);
  add("POST", "/v1/sandboxes/{sandbox_id}/ports/{port}/tokens", BodyKind::kJson, create_token);
  add("DELETE", "/v1/sandboxes/{sandbox_id}/ports/{port}/tokens/{token_id}", BodyKind::kNone, revoke_token);
  add("GET", "/v1/sandboxes/{sandbox_id}/ports/{port}/wait", BodyKind::kNone, wait_port);
  add("GET", "/v1/sandboxes/{sandbox_id}/ports/{port}/connect", BodyKind::kNone, connect);
}

}  // namespace airlock::daemon
