// API keys (admin): POST /v1/keys (the secret is returned once), GET /v1/keys (never secrets),
// DELETE /v1/keys/{key_id} (revoke, idempotent).
#include <nlohmann/json.hpp>

#include <charconv>

#include "daemon/api_key_json.h"
#include "daemon/json_body.h"
#include "daemon/page_cursor.h"
#include "daemon/routes/routes.h"

namespace airlock::daemon {
namespace {

constexpr int64_t kMaxPageSize = 1000;
constexpr int64_t kDefaultPageSize = 100;
constexpr size_t kMaxKeyIdLength = 64;  // the path parameter's maxLength

// --- cursors: opaque to clients, tied to the filters they were made with ----------------------------

std::string filter_text(const KeyListQuery& q) {
  return std::string(q.include_revoked ? "1" : "0") + "|" + (q.tenant ? *q.tenant : "*");
}

// --- handlers -----------------------------------------------------------------------------------------

ApiResult<HttpResponse> create_key(ApiServices& services, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  JsonFields fields(body);
  auto name = fields.string("name", {1, 64, valid_key_name, "free of control characters"}, true);
  auto tenant = fields.string("tenant", {1, 63, valid_tenant_name, "a tenant name matching ^[a-z0-9][a-z0-9_-]{0,62}$"});
  auto admin = fields.boolean("admin");
  if (auto error = fields.finish()) return *error;

  NewApiKey key{tenant.value_or(ctx.principal.tenant), *name, admin.value_or(false)};
  API_TRY(auto created, or_internal(services.keys.create(key)));
  services.log.info("api key " + created.record.key_id + " created (tenant " + key.tenant +
                    (key.admin ? ", admin" : "") + ") by " + ctx.principal.key_id);
  nlohmann::json out = api_key_json(created.record);
  out["secret"] = created.secret;
  HttpResponse response = json_response(201, out);
  response.with_header("Cache-Control", "no-store");  // the only time the secret is shown
  return response;
}

ApiResult<HttpResponse> list_keys(ApiServices& services, const RequestContext& ctx) {
  const QueryParams& q = ctx.query;
  if (auto error = q.check_names({"tenant", "include_revoked", "limit", "cursor"})) return *error;
  KeyListQuery query;
  API_TRY(query.tenant, q.string("tenant", valid_tenant_name, "a tenant name matching ^[a-z0-9][a-z0-9_-]{0,62}$"));
  API_TRY(auto include_revoked, q.boolean("include_revoked"));
  API_TRY(auto limit, q.integer("limit", 1, kMaxPageSize));
  API_TRY(auto cursor, q.string("cursor", [](std::string_view c) { return !c.empty() && c.size() <= 512; },
                                "1 to 512 characters"));
  query.include_revoked = include_revoked.value_or(false);
  query.limit = limit.value_or(kDefaultPageSize);
  if (cursor) {
    API_TRY(query.before_seq, read_page_cursor(*cursor, "k1", filter_text(query), "tenant, include_revoked"));
  }

  API_TRY(auto page, or_internal(services.keys.list(query)));
  nlohmann::json keys = nlohmann::json::array();
  for (const auto& key : page.keys) keys.push_back(api_key_json(key));
  nlohmann::json next = page.next_before ? nlohmann::json(make_page_cursor("k1", *page.next_before, filter_text(query))) : nlohmann::json();
  return json_response(200, {{"keys", std::move(keys)}, {"next_cursor", std::move(next)}});
}

ApiResult<HttpResponse> revoke_key(ApiServices& services, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  std::string_view key_id = ctx.params.get("key_id");
  if (key_id.size() > kMaxKeyIdLength) {
    return api_error(ErrorCode::kInvalidParameter, "key_id is longer than 64 characters").with_field("key_id");
  }
  API_TRY(auto key, or_internal(services.keys.revoke(key_id)));
  if (!key) return api_error(ErrorCode::kKeyNotFound, "API key " + std::string(key_id) + " not found");
  services.log.info("api key " + key->key_id + " revoked by " + ctx.principal.key_id);
  return json_response(200, api_key_json(*key));
}

}  // namespace

void add_key_routes(Router& router, ApiServices& services) {
  router.add({"POST", "/v1/keys", Access::kAdmin, BodyKind::kJson, kDefaultBodyLimit,
              [&services](const RequestContext& ctx) { return create_key(services, ctx); }});
  router.add({"GET", "/v1/keys", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit,
              [&services](const RequestContext& ctx) { return list_keys(services, ctx); }});
  router.add({"DELETE", "/v1/keys/{key_id}", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit,
              [&services](const RequestContext& ctx) { return revoke_key(services, ctx); }});
}

}  // namespace airlock::daemon
