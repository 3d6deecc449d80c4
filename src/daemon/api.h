// The request pipeline between the HTTP server and the routes, in contract order:
//   target -> route (404 route_not_found / 405 method_not_allowed with Allow)
//          -> key (401 unauthenticated / 403 forbidden)
//          -> media type (415) -> body size (413, enforced by the server) -> query (400) -> handler
// Everything before the body is decided from the headers alone, so an unauthenticated client cannot
// make the daemon read a body. Every error leaves through errors.h.
#pragma once

#include "daemon/auth.h"
#include "daemon/http_server.h"
#include "daemon/log.h"
#include "daemon/router.h"
#include "daemon/worker_pool.h"

namespace airlock::daemon {

class DaemonMetrics;  // [obs]
class PortService;

class Api final : public HttpHandler {
 public:
  // `workers` runs the routes marked blocking; without it they run inline (unit tests).
  // [obs] `metrics` counts every response by route pattern and status (null: not counted).
  Api(const Router& router, Authenticator& auth, const Logger& log, WorkerPool* workers = nullptr,
      DaemonMetrics* metrics = nullptr)
      : router_(router), auth_(auth), log_(log), workers_(workers), metrics_(metrics) {}

  Admission admit(const HttpRequest& head) override;
  // Requests for exposed ports (/p/..., or a host under the proxy domain) go to the proxy before the
  // router sees them: they carry a port token, never an API key.
  void set_port_proxy(PortService* proxy) { proxy_ = proxy; }

 private:
  // [obs] `route`: the matched route's pattern, for the request counter.
  Admission reject(const HttpRequest& head, const ApiError& error, std::string_view route = "unmatched") const;
  HttpResponse respond(const HttpRequest& request, const Principal& who, ApiResult<HttpResponse> result,
                       std::string_view route) const;

  const Router& router_;
  Authenticator& auth_;
  const Logger& log_;
  WorkerPool* workers_;
  DaemonMetrics* metrics_;  // [obs]
  PortService* proxy_ = nullptr;
};

}  // namespace airlock::daemon
