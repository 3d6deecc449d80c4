// The daemon's REST API as the CLI sees it: the bearer key on every request, JSON bodies in and
// out, and the contract's one error shape turned into an Error whose message is
// "<message> (<code>)", the way `airlock` prints it. Transport failures are Errors too.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cli/client_config.h"
#include "cli/http_client.h"
#include "common/result.h"

namespace airlock::cli {

// JSON text that never throws: invalid UTF-8 (from user input) is replaced, not fatal.
std::string dump_json(const nlohmann::json& value, int indent = -1);

struct ApiReply {
  int status = 0;
  HttpResponseHead head;
  nlohmann::json body;  // null when the body is empty or not JSON

  bool ok() const { return status >= 200 && status < 300; }
  // The contract's error code ("sandbox_not_found"), or "" when the body has none.
  std::string error_code() const;
  // "<message> (<code>)"; "HTTP 502" and such when the body is not the error shape.
  Error error() const;
};

// Builds the error of a non-2xx answer from its status and raw body.
ApiReply error_reply(int status, HttpResponseHead head, std::string_view body);

// A 2xx response whose body is read as it arrives.
class ApiStream {
 public:
  ApiStream(HttpConnection connection, HttpResponseHead head)
      : connection_(std::move(connection)), head_(std::move(head)) {}
  const HttpResponseHead& head() const { return head_; }
  // Some bytes as soon as they arrive; 0 at the end of the body.
  Result<size_t> read(char* buffer, size_t cap) { return connection_.read_body(buffer, cap); }

 private:
  HttpConnection connection_;
  HttpResponseHead head_;
};

class ApiClient {
 public:
  explicit ApiClient(ClientConfig config) : config_(std::move(config)) {}
  const ClientConfig& config() const { return config_; }

  // One request; any HTTP status is a reply (only transport failures are errors).
  Result<ApiReply> request(std::string_view method, const std::string& target, const nlohmann::json* body = nullptr) const;
  // The same, with a non-2xx status turned into its error.
  Result<nlohmann::json> get(const std::string& target) const;
  Result<nlohmann::json> post(const std::string& target, const nlohmann::json& body) const;
  Result<nlohmann::json> del(const std::string& target) const;
  // Sends `length` bytes of fd as the body (application/octet-stream).
  Result<ApiReply> upload(std::string_view method, const std::string& target, int fd, uint64_t length) const;
  // Opens a streamed response (NDJSON events, file bytes); a non-2xx answer becomes its error.
  Result<ApiStream> open(std::string_view method, const std::string& target, const nlohmann::json* body = nullptr) const;

  // The headers every request carries (Authorization), for the WebSocket handshake.
  std::vector<HttpHeader> auth_headers() const;

 private:
  Result<HttpConnection> start(std::string_view method, const std::string& target, const nlohmann::json* body) const;
  ClientConfig config_;
};

}  // namespace airlock::cli
