// Quotas: GET /v1/quota (the caller's tenant), GET/PUT /v1/tenants/{tenant}/quota (admin). A tenant is
// known once a key has named it (revoked keys included); any other tenant is 404 `tenant_not_found`.
#include <nlohmann/json.hpp>

#include <cmath>

#include "daemon/json_body.h"
#include "daemon/quota_store.h"
#include "daemon/routes/routes.h"

namespace airlock::daemon {
namespace {

constexpr int64_t kMaxSandboxesLimit = 1000000;     // SetQuotaRequest.max_sandboxes maximum
constexpr int64_t kMaxMemoryLimit = 1073741824;     // SetQuotaRequest.max_memory_mb maximum
constexpr size_t kMaxTenantParam = 64;              // the path parameter's maxLength

nlohmann::json limit_json(const std::optional<int64_t>& limit) { return limit ? nlohmann::json(*limit) : nlohmann::json(); }

ApiResult<HttpResponse> quota_response(QuotaStore& quotas, const std::string& tenant) {
  API_TRY(auto limits, or_internal(quotas.limits(tenant)));
  API_TRY(auto usage, or_internal(quotas.usage(tenant)));
  return json_response(200, {{"tenant", tenant},
                             {"max_sandboxes", limit_json(limits.max_sandboxes)},
                             {"max_memory_mb", limit_json(limits.max_memory_mb)},
                             {"sandboxes", usage.sandboxes},
                             {"memory_mb", usage.memory_mb}});
}

// The {tenant} of the path, if a key ever named it.
ApiResult<std::string> known_tenant(KeyStore& keys, const RequestContext& ctx) {
  std::string_view tenant = ctx.params.get("tenant");
  if (tenant.size() > kMaxTenantParam) {
    return api_error(ErrorCode::kInvalidParameter, "tenant is longer than 64 characters").with_field("tenant");
  }
  auto not_found = [&] { return api_error(ErrorCode::kTenantNotFound, "no key ever named tenant " + std::string(tenant)); };
  if (!valid_tenant_name(tenant)) return not_found();  // no key can have named it
  KeyListQuery query;
  query.tenant = std::string(tenant);
  query.include_revoked = true;
  query.limit = 1;
  API_TRY(auto page, or_internal(keys.list(query)));
  if (page.keys.empty()) return not_found();
  return std::string(tenant);
}

// SetQuotaRequest: both fields required, each an integer in range or null (unlimited).
ApiResult<QuotaLimits> parse_set_quota(const nlohmann::json& body) {
  auto bad = [](const std::string& field, const std::string& message) {
    return api_error(ErrorCode::kInvalidField, field + " " + message).with_field(field);
  };
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "max_sandboxes" && it.key() != "max_memory_mb") return bad(it.key(), "is not a known field");
  }
  auto limit = [&](const std::string& name, int64_t max) -> ApiResult<std::optional<int64_t>> {
    if (!body.contains(name)) return bad(name, "is required (null for unlimited)");
    const auto& v = body[name];
    if (v.is_null()) return std::optional<int64_t>();
    int64_t n = 0;
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) {
      return bad(name, "must be between 0 and " + std::to_string(max) + ", or null");
    }
    if (v.is_number_integer()) {
      n = v.get<int64_t>();
    } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::abs(v.get<double>()) < 9e18) {
      n = static_cast<int64_t>(v.get<double>());  // 3.0 is an integer to JSON Schema
    } else {
      return bad(name, "must be an integer or null");
    }
    if (n < 0 || n > max) return bad(name, "must be between 0 and " + std::to_string(max) + ", or null");
    return std::optional<int64_t>(n);
  };
  API_TRY(auto sandboxes, limit("max_sandboxes", kMaxSandboxesLimit));
  API_TRY(auto memory, limit("max_memory_mb", kMaxMemoryLimit));
  return QuotaLimits{sandboxes, memory};
}

ApiResult<HttpResponse> get_own_quota(ApiServices& services, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  return quota_response(*services.quotas, ctx.principal.tenant);
}

ApiResult<HttpResponse> get_tenant_quota(ApiServices& services, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto tenant, known_tenant(services.keys, ctx));
  return quota_response(*services.quotas, tenant);
}

ApiResult<HttpResponse> set_tenant_quota(ApiServices& services, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto tenant, known_tenant(services.keys, ctx));
  API_TRY(auto body, parse_json_object(ctx.request.body));
  API_TRY(auto limits, parse_set_quota(body));
  API_TRY_STATUS_INTERNAL(services.quotas->set(tenant, limits));
  auto shown = [](const std::optional<int64_t>& v) { return v ? std::to_string(*v) : std::string("unlimited"); };
  services.log.info("quota of tenant " + tenant + " set to " + shown(limits.max_sandboxes) + " sandboxes, " +
                    shown(limits.max_memory_mb) + " MiB by " + ctx.principal.key_id);
  return quota_response(*services.quotas, tenant);
}

}  // namespace

void add_quota_routes(Router& router, ApiServices& services) {
  router.add({"GET", "/v1/quota", Access::kTenant, BodyKind::kNone, kDefaultBodyLimit,
              [&services](const RequestContext& ctx) { return get_own_quota(services, ctx); }});
  router.add({"GET", "/v1/tenants/{tenant}/quota", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit,
              [&services](const RequestContext& ctx) { return get_tenant_quota(services, ctx); }});
  router.add({"PUT", "/v1/tenants/{tenant}/quota", Access::kAdmin, BodyKind::kJson, kDefaultBodyLimit,
              [&services](const RequestContext& ctx) { return set_tenant_quota(services, ctx); }});
}

}  // namespace airlock::daemon
