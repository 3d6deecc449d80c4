// Sandboxes: POST/GET /v1/sandboxes, GET/DELETE /v1/sandboxes/{sandbox_id},
// POST /v1/sandboxes/{sandbox_id}/timeout, and the blocking POST .../commands/run.
// Every operation is scoped to the caller's tenant: another tenant's sandbox is 404, like a missing one.
// The create honours Idempotency-Key (idempotency.h wraps its handler where it is registered).
#include <nlohmann/json.hpp>

#include <charconv>

#include "daemon/idempotency.h"
#include "daemon/json_body.h"
#include "daemon/page_cursor.h"
#include "daemon/routes/routes.h"
#include "daemon/sandbox_json.h"
#include "daemon/sandbox_manager.h"

namespace airlock::daemon {
namespace {

constexpr int64_t kMaxPageSize = 1000;
constexpr int64_t kDefaultPageSize = 100;

// Cursors carry a short fingerprint of the filters, so a cursor used with other filters is refused.
std::string filter_fingerprint(const SandboxListQuery& q) {
  std::string text;
  for (auto s : q.states) text += std::string(state_name(s)) + ",";
  text += "|";
  for (const auto& [k, v] : q.metadata) text += k + "=" + v + "\n";
  return std::to_string(std::hash<std::string>{}(text) & 0xffffffffu);
}

ApiResult<HttpResponse> create_sandbox(SandboxManager& sandboxes, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  API_TRY(auto settings, parse_create_sandbox(body));
  API_TRY(auto record, sandboxes.create(ctx.principal.tenant, settings));
  HttpResponse response = json_response(201, sandbox_json(record, unix_millis_now()));
  response.with_header("Location", "/v1/sandboxes/" + record.sandbox_id);
  return response;
}

ApiResult<HttpResponse> list_sandboxes(SandboxManager& sandboxes, const RequestContext& ctx) {
  const QueryParams& q = ctx.query;
  if (auto error = q.check_names({"state", "metadata", "limit", "cursor"}, {"state", "metadata"})) return *error;
  SandboxListQuery query;
  query.tenant = ctx.principal.tenant;
  for (const auto& [name, value] : q.all()) {
    if (name == "state") {
      auto state = parse_state(value);
      if (!state) {
        return api_error(ErrorCode::kInvalidParameter, "state must be starting, running, stopped or terminated")
            .with_field("state");
      }
      if (std::find(query.states.begin(), query.states.end(), *state) != query.states.end()) {
        return api_error(ErrorCode::kInvalidParameter, "state " + value + " is given twice").with_field("state");
      }
      query.states.push_back(*state);
    } else if (name == "metadata") {
      size_t eq = value.find('=');
      std::string key = value.substr(0, eq);
      bool key_ok = eq != std::string::npos && !key.empty() && key.size() <= 63 && value.size() <= 320 &&
                    std::isalnum(static_cast<unsigned char>(key[0])) &&
                    std::all_of(key.begin(), key.end(), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '/' || c == '-';
                    });
      if (!key_ok) {
        return api_error(ErrorCode::kInvalidParameter, "metadata must be key=value with a valid label key")
            .with_field("metadata");
      }
      if (query.metadata.size() == 16) {
        return api_error(ErrorCode::kInvalidParameter, "at most 16 metadata filters").with_field("metadata");
      }
      query.metadata.emplace_back(key, value.substr(eq + 1));
    }
  }
  std::sort(query.states.begin(), query.states.end());
  std::sort(query.metadata.begin(), query.metadata.end());
  API_TRY(auto limit, q.integer("limit", 1, kMaxPageSize));
  API_TRY(auto cursor, q.string("cursor", [](std::string_view c) { return !c.empty() && c.size() <= 512; },
                                "1 to 512 characters"));
  query.limit = limit.value_or(kDefaultPageSize);
  if (cursor) {
    API_TRY(query.before_seq, read_page_cursor(*cursor, "s1", filter_fingerprint(query), "state, metadata"));
  }
  API_TRY(auto page, sandboxes.list(query));
  UnixMillis now = unix_millis_now();
  nlohmann::json items = nlohmann::json::array();
  for (const auto& r : page.sandboxes) items.push_back(sandbox_json(r, now));
  nlohmann::json next = page.next_before
                            ? nlohmann::json(make_page_cursor("s1", *page.next_before, filter_fingerprint(query)))
                            : nlohmann::json();
  return json_response(200, {{"sandboxes", std::move(items)}, {"next_cursor", std::move(next)}});
}

ApiResult<HttpResponse> get_sandbox(SandboxManager& sandboxes, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto record, sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  auto usage = sandboxes.usage(record.sandbox_id);  // [obs] cgroup usage while it is live
  return json_response(200, sandbox_json(record, unix_millis_now(), usage ? &*usage : nullptr));
}

ApiResult<HttpResponse> terminate_sandbox(SandboxManager& sandboxes, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto record, sandboxes.terminate(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  return json_response(200, sandbox_json(record, unix_millis_now()));
}

ApiResult<HttpResponse> set_timeout(SandboxManager& sandboxes, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  // The sandbox is looked up first: an unknown sandbox is 404 whatever the body says.
  API_TRY(auto existing, sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  (void)existing;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  API_TRY(auto request, parse_set_timeout(body));
  API_TRY(auto record, sandboxes.set_timeout(ctx.principal.tenant, ctx.params.get("sandbox_id"), request));
  return json_response(200, sandbox_json(record, unix_millis_now()));
}

ApiResult<HttpResponse> run_command(SandboxManager& sandboxes, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto existing, sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  (void)existing;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  API_TRY(auto request, parse_run_command(body));
  API_TRY(auto run, sandboxes.run(ctx.principal.tenant, ctx.params.get("sandbox_id"), request));
  return json_response(200, command_result_json(run, request.base64_output));
}

}  // namespace

void add_sandbox_routes(Router& router, SandboxManager& sandboxes, IdempotencyStore& idempotency) {
  // Reads are a store lookup (microseconds, like the key routes) and stay on the I/O threads, so a
  // pool full of long commands never delays them; everything that reaches the engine or an agent,
  // or waits behind a destroy, is blocking.
  auto route = [&](std::string method, std::string pattern, BodyKind body, bool blocking,
                   ApiResult<HttpResponse> (*fn)(SandboxManager&, const RequestContext&),
                   std::optional<IdempotentOperation> idempotent = std::nullopt) {
    Handler handler = [&sandboxes, fn](const RequestContext& ctx) { return fn(sandboxes, ctx); };
    if (idempotent) handler = with_idempotency(idempotency, std::move(*idempotent), std::move(handler));
    Route r{std::move(method), std::move(pattern), Access::kTenant, body, kDefaultBodyLimit, std::move(handler)};
    r.blocking = blocking;
    router.add(std::move(r));
  };
  route("POST", "/v1/sandboxes", BodyKind::kJson, true, create_sandbox, create_sandbox_operation());
  route("GET", "/v1/sandboxes", BodyKind::kNone, false, list_sandboxes);
  route("GET", "/v1/sandboxes/{sandbox_id}", BodyKind::kNone, false, get_sandbox);
  route("DELETE", "/v1/sandboxes/{sandbox_id}", BodyKind::kNone, true, terminate_sandbox);
  route("POST", "/v1/sandboxes/{sandbox_id}/timeout", BodyKind::kJson, true, set_timeout);
  route("POST", "/v1/sandboxes/{sandbox_id}/commands/run", BodyKind::kJson, true, run_command);
}

}  // namespace airlock::daemon
