// The one place where failures become HTTP: every error code of api/openapi.yaml with its status, and
// the one JSON shape {"error": {"code", "message", "field"?, "details"?}}.
//
// Handlers return ApiResult<T>: a value or an ApiError that already names its contract code. Errors from
// the layers below (Result<T> of common/) that are not the client's fault become 500 `internal` here.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/result.h"
#include "daemon/http_message.h"

namespace airlock::daemon {

// Mirrors the ErrorCode enum and the error table of api/openapi.yaml (a test keeps them in sync).
enum class ErrorCode {
  kInvalidJson,
  kInvalidField,
  kInvalidParameter,
  kUnauthenticated,
  kPortTokenRequired,
  kForbidden,
  kPermissionDenied,
  kRouteNotFound,
  kSandboxNotFound,
  kProcessNotFound,
  kPathNotFound,
  kKeyNotFound,
  kTenantNotFound,
  kPortNotFound,
  kPortTokenNotFound,
  kMethodNotAllowed,
  kSandboxNotRunning,
  kProcessNotRunning,
  kStdinClosed,
  kNotATty,
  kPathExists,
  kNotADirectory,
  kIsADirectory,
  kNotARegularFile,
  kDirectoryNotEmpty,
  kIdempotencyKeyInUse,
  kPayloadTooLarge,
  kUnsupportedMediaType,
  kRangeNotSatisfiable,
  kUnknownTemplate,
  kUnknownUser,
  kLimitExceeded,
  kIdempotencyKeyReused,
  kFileError,
  kUpgradeRequired,
  kQuotaExceeded,
  kHeadersTooLarge,
  kInternal,
  kAgentError,
  kPortUnreachable,
  kNoCapacity,
  kUnavailable,
  kDiskFull,
};

std::string_view error_code_name(ErrorCode code);
int http_status(ErrorCode code);
// All codes, in table order (for tests and docs).
const std::vector<ErrorCode>& all_error_codes();

struct ApiError {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;              // lowercase, says what and why
  std::string field;                // the offending body field / parameter / header; empty: none
  nlohmann::json details;           // null: none
  std::vector<HttpHeader> headers;  // e.g. Allow on 405, Retry-After on 503
  std::string log_cause;            // for the daemon's log only, never sent (set on 500s)

  ApiError&& with_field(std::string f) && {
    field = std::move(f);
    return std::move(*this);
  }
  ApiError&& with_details(nlohmann::json d) && {
    details = std::move(d);
    return std::move(*this);
  }
  ApiError&& with_header(std::string name, std::string value) && {
    headers.push_back({std::move(name), std::move(value)});
    return std::move(*this);
  }
};

ApiError api_error(ErrorCode code, std::string message);
// A failure of ours, never the client's: 500 `internal`. The cause goes to the log, not to the client
// (it may name host paths); the message points at the log.
ApiError internal_error(const Error& cause);

// Serialises for the wire. Strings that came from the client may hold invalid UTF-8: they are replaced
// with U+FFFD rather than failing, so that bad input can never turn into a 500.
std::string to_json_text(const nlohmann::json& value);
HttpResponse json_response(int status, const nlohmann::json& body);
HttpResponse error_response(const ApiError& error);

// A value or an ApiError.
template <typename T>
class [[nodiscard]] ApiResult {
 public:
  ApiResult(T value) : v_(std::move(value)) {}      // NOLINT(implicit)
  ApiResult(ApiError error) : v_(std::move(error)) {}  // NOLINT(implicit)
  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }
  const ApiError& error() const& { return std::get<1>(v_); }
  ApiError&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, ApiError> v_;
};

// A Result of the layers below whose failure is ours (a store error): its error becomes 500 `internal`.
template <typename T>
ApiResult<T> or_internal(Result<T> result) {
  if (!result.ok()) return internal_error(result.error());
  return std::move(result).value();
}

}  // namespace airlock::daemon

// API_TRY(auto x, expr): binds the value of an ApiResult or returns its error.
#define API_TRY(decl, expr) API_TRY_IMPL(AIRLOCK_CONCAT(api_try_, __LINE__), decl, expr)
#define API_TRY_IMPL(tmp, decl, expr)           \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return std::move(tmp).error(); \
  decl = std::move(tmp).value()

// API_TRY_STATUS_INTERNAL(status): returns 500 `internal` when a Status of the layers below failed.
#define API_TRY_STATUS_INTERNAL(expr)                                  \
  do {                                                                 \
    auto api_status_ = (expr);                                         \
    if (!api_status_.ok()) return internal_error(api_status_.error()); \
  } while (0)
