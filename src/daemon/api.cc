#include "daemon/api.h"

#include <algorithm>
#include <memory>

#include "daemon/json_body.h"
#include "daemon/metrics.h"  // [obs]
#include "daemon/port_service.h"
#include "daemon/url.h"

namespace airlock::daemon {
namespace {

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

// For messages and the log: the path without the query (which may be long), bounded.
std::string shown_path(const HttpRequest& head) {
  std::string_view target = head.target;
  target = target.substr(0, std::min(target.find('?'), size_t{200}));
  return std::string(target);
}

}  // namespace

Admission Api::reject(const HttpRequest& head, const ApiError& error, std::string_view route) const {
  HttpResponse response = error_response(error);
  if (metrics_) metrics_->count_http_request(route, response.status);  // [obs]
  if (log_.enabled(LogLevel::kDebug)) {
    log_.debug(head.method + " " + shown_path(head) + " " + std::to_string(response.status));
  }
  return Admission{std::move(response), 0, {}};
}

Admission Api::admit(const HttpRequest& head) {
  if (proxy_) {
    if (auto proxied = proxy_->admit(head)) return std::move(*proxied);
  }
  auto target = split_target(head.target);
  if (!target) {
    return reject(head, api_error(ErrorCode::kRouteNotFound, "no route for request target " + shown_path(head)));
  }
  auto match = router_.match(head.method, target->path);
  if (std::holds_alternative<Router::NotFound>(match)) {
    return reject(head, api_error(ErrorCode::kRouteNotFound, "no route for " + head.method + " " + shown_path(head)));
  }
  if (auto* wrong = std::get_if<Router::MethodNotAllowed>(&match)) {
    std::string allow = join(wrong->allow, ", ");
    return reject(head, api_error(ErrorCode::kMethodNotAllowed,
                                  head.method + " is not allowed on " + shown_path(head) + " (allowed: " + allow + ")")
                            .with_header("Allow", allow));
  }
  auto& found = std::get<Router::Found>(match);
  const Route* route = found.route;

  auto who = auth_.authenticate(head, route->access);
  if (!who.ok()) return reject(head, who.error(), route->pattern);
  if (route->body == BodyKind::kJson) {
    if (auto error = check_json_content_type(head)) return reject(head, *error, route->pattern);
  }

  Admission admission;
  admission.body_limit = route->body_limit;
  // `body`: the streamed body of a kStream route (null otherwise).
  auto run = [this, route, params = std::move(found.params), principal = std::move(who).value(),
              query = std::move(target->query)](HttpRequest& request, BodyReader* body) -> HttpResponse {
    auto parsed = QueryParams::parse(query);
    if (!parsed.ok()) return respond(request, principal, std::move(parsed).error(), route->pattern);
    RequestContext context{request, params, std::move(parsed).value(), principal, body};
    return respond(request, principal, route->handler(context), route->pattern);
  };
  if (route->body == BodyKind::kStream) {
    // The handler blocks on the body: on a worker (or inline without a pool: unit tests, whose
    // readers answer at once).
    admission.run_stream = [this, route, run](HttpRequest request, std::shared_ptr<BodyReader> body,
                                              Admission::Done done) {
      auto job = [this, run, request = std::move(request), body = std::move(body), done]() mutable {
        HttpResponse response;
        try {
          response = run(request, body.get());
        } catch (const std::exception& e) {
          log_.error(std::string("bug: request handler threw: ") + e.what());
          response = error_response(api_error(ErrorCode::kInternal, "internal error; the daemon's log has the cause"));
        }
        body.reset();
        done(std::move(response));
      };
      if (!workers_) return job();
      if (!workers_->submit(std::move(job))) {
        if (metrics_) metrics_->count_http_request(route->pattern, 503);  // [obs]
        done(error_response(api_error(ErrorCode::kUnavailable, "the daemon is shutting down").with_header("Retry-After", "1")));
      }
    };
    return admission;
  }
  admission.run = [run](HttpRequest& request) { return run(request, nullptr); };
  if (route->blocking && workers_) {
    admission.run_async = [this, route, run = std::move(admission.run)](HttpRequest request, Admission::Done done) {
      auto shared = std::make_shared<std::pair<HttpRequest, Admission::Done>>(std::move(request), std::move(done));
      bool queued = workers_->submit([this, run, shared] {
        HttpResponse response;
        try {
          response = run(shared->first);
        } catch (const std::exception& e) {
          log_.error(std::string("bug: request handler threw: ") + e.what());
          response = error_response(api_error(ErrorCode::kInternal, "internal error; the daemon's log has the cause"));
        }
        shared->second(std::move(response));
      });
      if (!queued) {
        if (metrics_) metrics_->count_http_request(route->pattern, 503);  // [obs]
        shared->second(error_response(api_error(ErrorCode::kUnavailable, "the daemon is shutting down")
                                          .with_header("Retry-After", "1")));
      }
    };
  }
  return admission;
}

HttpResponse Api::respond(const HttpRequest& request, const Principal& who, ApiResult<HttpResponse> result,
                          std::string_view route) const {
  HttpResponse response;
  if (result.ok()) {
    response = std::move(result).value();
  } else {
    const ApiError& error = result.error();
    if (!error.log_cause.empty()) {
      log_.error(request.method + " " + shown_path(request) + ": " + error.log_cause);
    }
    response = error_response(error);
  }
  if (metrics_) metrics_->count_http_request(route, response.status);  // [obs]
  if (log_.enabled(LogLevel::kDebug)) {
    std::string line = request.method + " " + shown_path(request) + " " + std::to_string(response.status);
    if (!who.key_id.empty()) line += " (" + who.key_id + ")";
    log_.debug(line);
  }
  return response;
}

}  // namespace airlock::daemon
