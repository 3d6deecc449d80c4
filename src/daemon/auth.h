// Bearer API keys: `Authorization: Bearer alk_...`. Missing, malformed, unknown and revoked keys are
// 401 `unauthenticated`; a valid tenant key on an admin operation is 403 `forbidden`.
#pragma once

#include <optional>
#include <string_view>

#include "daemon/errors.h"
#include "daemon/http_message.h"
#include "daemon/key_store.h"
#include "daemon/principal.h"
#include "daemon/router.h"

namespace airlock::daemon {

// The token of a well-formed "Bearer <token>" header value (scheme case-insensitive), else nullopt.
std::optional<std::string_view> bearer_token(std::string_view authorization);

class Authenticator {
 public:
  explicit Authenticator(KeyStore& keys) : keys_(keys) {}

  // The caller of a route with this access level; public routes get an empty Principal.
  ApiResult<Principal> authenticate(const HttpRequest& request, Access access);

 private:
  KeyStore& keys_;
};

}  // namespace airlock::daemon
