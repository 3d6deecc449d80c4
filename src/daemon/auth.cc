#include "daemon/auth.h"

#include "daemon/key_secret.h"

namespace airlock::daemon {
namespace {

ApiError unauthenticated(std::string message) {
  return api_error(ErrorCode::kUnauthenticated, std::move(message)).with_field("Authorization");
}

}  // namespace

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() || !ascii_iequals(authorization.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ') return std::nullopt;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
  return rest;
}

ApiResult<Principal> Authenticator::authenticate(const HttpRequest& request, Access access) {
  if (access == Access::kPublic) return Principal{};
  size_t headers = request.header_count("Authorization");
  if (headers == 0) return unauthenticated("missing bearer API key (Authorization: Bearer alk_...)");
  if (headers > 1) return unauthenticated("more than one Authorization header");
  auto token = bearer_token(*request.header("Authorization"));
  if (!token) return unauthenticated("malformed Authorization header; expected Bearer alk_...");
  if (!looks_like_secret(*token)) return unauthenticated("malformed API key; keys look like alk_ + 43 characters");

  auto check = keys_.check(*token);
  if (!check.ok()) return internal_error(check.error());
  switch (check->outcome) {
    case KeyCheck::Outcome::kUnknown:
      return unauthenticated("unknown API key");
    case KeyCheck::Outcome::kRevoked:
      return unauthenticated("API key " + check->record.key_id + " has been revoked");
    case KeyCheck::Outcome::kValid:
      break;
  }
  const ApiKeyRecord& key = check->record;
  if (access == Access::kAdmin && !key.admin) {
    return api_error(ErrorCode::kForbidden, "this operation needs an admin API key");
  }
  return Principal{key.key_id, key.tenant, key.admin};
}

}  // namespace airlock::daemon
