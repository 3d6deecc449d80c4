// Method + path pattern -> route. Patterns are literal segments and `{name}` parameters
// ("/v1/keys/{key_id}"). A path that matches some route but not with this method is 405 with the
// allowed methods; a path that matches none is 404. Parameters are percent-decoded; literals are not.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "daemon/errors.h"
#include "daemon/http_message.h"
#include "daemon/principal.h"
#include "daemon/query.h"

namespace airlock::daemon {

// Who may call a route.
enum class Access {
  kPublic,  // no key (only /healthz)
  kTenant,  // any valid key
  kAdmin,   // an admin key (x-airlock-admin in the spec)
};

// What a route reads from the request body.
enum class BodyKind {
  kNone,  // ignored (still bounded by the body limit)
  kJson,  // Content-Type: application/json required (415 otherwise)
  // Not read up front: the handler reads it piece by piece through RequestContext::body (uploads
  // larger than anyone should hold in memory). Still bounded by body_limit; the route must be blocking.
  kStream,
};

inline constexpr size_t kDefaultBodyLimit = size_t{1} << 20;  // 1 MiB, the contract's JSON limit

struct PathParams {
  std::vector<std::pair<std::string, std::string>> values;
  std::string_view get(std::string_view name) const {
    for (const auto& [n, v] : values) {
      if (n == name) return v;
    }
    return {};
  }
};

struct RequestContext {
  const HttpRequest& request;
  PathParams params;
  QueryParams query;
  Principal principal;  // empty for public routes
  BodyReader* body = nullptr;  // set for BodyKind::kStream routes (request.body is then empty)
};

using Handler = std::function<ApiResult<HttpResponse>(const RequestContext&)>;

struct Route {
  std::string method;   // "GET", "POST", ...
  std::string pattern;  // "/v1/keys/{key_id}"
  Access access = Access::kTenant;
  BodyKind body = BodyKind::kNone;
  size_t body_limit = kDefaultBodyLimit;
  Handler handler;
  // The handler may block (engine, agent): it runs on the worker pool, never on an I/O thread.
  bool blocking = false;
};

class Router {
 public:
  struct Found {
    const Route* route;
    PathParams params;
  };
  struct NotFound {};
  struct MethodNotAllowed {
    std::vector<std::string> allow;  // sorted, unique
  };
  using Match = std::variant<Found, NotFound, MethodNotAllowed>;

  // Adds a route; a malformed pattern or a duplicate (method, pattern) is a bug and aborts.
  void add(Route route);
  // `path` is the request path still percent-encoded (no query).
  Match match(std::string_view method, std::string_view path) const;

 private:
  struct Segment {
    std::string text;  // literal text, or the parameter's name
    bool is_param = false;
  };
  struct Entry {
    Route route;
    std::vector<Segment> segments;
  };
  static std::optional<std::vector<Segment>> parse_pattern(std::string_view pattern);

  std::vector<Entry> entries_;
};

}  // namespace airlock::daemon
