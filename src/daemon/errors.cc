#include "daemon/errors.h"

#include <algorithm>
#include <array>

namespace airlock::daemon {
namespace {

struct CodeInfo {
  ErrorCode code;
  std::string_view name;
  int status;
};

// The error table of api/openapi.yaml, in its order. tests/e2e/test_daemon_errors.py reads these
// lines and compares them with the spec, so keep one entry per line in this form.
constexpr std::array kCodes = {
    CodeInfo{ErrorCode::kInvalidJson, "invalid_json", 400},
    CodeInfo{ErrorCode::kInvalidField, "invalid_field", 400},
    CodeInfo{ErrorCode::kInvalidParameter, "invalid_parameter", 400},
    CodeInfo{ErrorCode::kUnauthenticated, "unauthenticated", 401},
    CodeInfo{ErrorCode::kPortTokenRequired, "port_token_required", 401},
    CodeInfo{ErrorCode::kForbidden, "forbidden", 403},
    CodeInfo{ErrorCode::kPermissionDenied, "permission_denied", 403},
    CodeInfo{ErrorCode::kRouteNotFound, "route_not_found", 404},
    CodeInfo{ErrorCode::kSandboxNotFound, "sandbox_not_found", 404},
    CodeInfo{ErrorCode::kProcessNotFound, "process_not_found", 404},
    CodeInfo{ErrorCode::kPathNotFound, "path_not_found", 404},
    CodeInfo{ErrorCode::kKeyNotFound, "key_not_found", 404},
    CodeInfo{ErrorCode::kTenantNotFound, "tenant_not_found", 404},
    CodeInfo{ErrorCode::kPortNotFound, "port_not_found", 404},
    CodeInfo{ErrorCode::kPortTokenNotFound, "port_token_not_found", 404},
    CodeInfo{ErrorCode::kMethodNotAllowed, "method_not_allowed", 405},
    CodeInfo{ErrorCode::kSandboxNotRunning, "sandbox_not_running", 409},
    CodeInfo{ErrorCode::kProcessNotRunning, "process_not_running", 409},
    CodeInfo{ErrorCode::kStdinClosed, "stdin_closed", 409},
    CodeInfo{ErrorCode::kNotATty, "not_a_tty", 409},
    CodeInfo{ErrorCode::kPathExists, "path_exists", 409},
    CodeInfo{ErrorCode::kNotADirectory, "not_a_directory", 409},
    CodeInfo{ErrorCode::kIsADirectory, "is_a_directory", 409},
    CodeInfo{ErrorCode::kNotARegularFile, "not_a_regular_file", 409},
    CodeInfo{ErrorCode::kDirectoryNotEmpty, "directory_not_empty", 409},
    CodeInfo{ErrorCode::kIdempotencyKeyInUse, "idempotency_key_in_use", 409},
    CodeInfo{ErrorCode::kPayloadTooLarge, "payload_too_large", 413},
    CodeInfo{ErrorCode::kUnsupportedMediaType, "unsupported_media_type", 415},
    CodeInfo{ErrorCode::kRangeNotSatisfiable, "range_not_satisfiable", 416},
    CodeInfo{ErrorCode::kUnknownTemplate, "unknown_template", 422},
    CodeInfo{ErrorCode::kUnknownUser, "unknown_user", 422},
    CodeInfo{ErrorCode::kLimitExceeded, "limit_exceeded", 422},
    CodeInfo{ErrorCode::kIdempotencyKeyReused, "idempotency_key_reused", 422},
    CodeInfo{ErrorCode::kFileError, "file_error", 422},
    CodeInfo{ErrorCode::kUpgradeRequired, "upgrade_required", 426},
    CodeInfo{ErrorCode::kQuotaExceeded, "quota_exceeded", 429},
    CodeInfo{ErrorCode::kHeadersTooLarge, "headers_too_large", 431},
    CodeInfo{ErrorCode::kInternal, "internal", 500},
    CodeInfo{ErrorCode::kAgentError, "agent_error", 502},
    CodeInfo{ErrorCode::kPortUnreachable, "port_unreachable", 502},
    CodeInfo{ErrorCode::kNoCapacity, "no_capacity", 503},
    CodeInfo{ErrorCode::kUnavailable, "unavailable", 503},
    CodeInfo{ErrorCode::kDiskFull, "disk_full", 507},
};

const CodeInfo& info(ErrorCode code) {
  for (const auto& c : kCodes) {
    if (c.code == code) return c;
  }
  return kCodes[34];  // internal: unreachable while the table covers the enum (a unit test checks)
}

// The spec caps `message` at 4096 characters and `field` at 256. Cutting by bytes keeps at most that
// many characters; a UTF-8 sequence cut in half is replaced by U+FFFD when serialised.
std::string capped(std::string_view s, size_t max_bytes) {
  return std::string(s.substr(0, std::min(s.size(), max_bytes)));
}

}  // namespace

std::string_view error_code_name(ErrorCode code) { return info(code).name; }

int http_status(ErrorCode code) { return info(code).status; }

const std::vector<ErrorCode>& all_error_codes() {
  static const std::vector<ErrorCode> codes = [] {
    std::vector<ErrorCode> v;
    for (const auto& c : kCodes) v.push_back(c.code);
    return v;
  }();
  return codes;
}

ApiError api_error(ErrorCode code, std::string message) {
  ApiError e;
  e.code = code;
  e.message = std::move(message);
  return e;
}

ApiError internal_error(const Error& cause) {
  ApiError e = api_error(ErrorCode::kInternal, "internal error; the daemon's log has the cause");
  e.log_cause = cause.describe();
  return e;
}

std::string to_json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HttpResponse json_response(int status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  r.body = to_json_text(body);
  return r;
}

HttpResponse error_response(const ApiError& error) {
  nlohmann::json detail = {
      {"code", std::string(error_code_name(error.code))},
      {"message", error.message.empty() ? std::string(error_code_name(error.code)) : capped(error.message, 1024)},
  };
  if (!error.field.empty()) detail["field"] = capped(error.field, 256);
  if (error.details.is_object()) detail["details"] = error.details;
  HttpResponse r = json_response(http_status(error.code), {{"error", std::move(detail)}});
  r.headers = error.headers;
  if (error.code == ErrorCode::kUnauthenticated) {
    // RFC 6750: a 401 names the scheme the client should use.
    r.with_header("WWW-Authenticate", "Bearer realm=\"airlock\"");
  }
  r.with_header("Cache-Control", "no-store");
  return r;
}

}  // namespace airlock::daemon
