// The daemon's view of one HTTP exchange, independent of Boost.Beast: routes, auth and their unit
// tests build without Beast, which stays inside http_server.cc (and keeps compile times down).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace airlock::daemon {

struct HttpHeader {
  std::string name;
  std::string value;
};

inline bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

struct HttpRequest {
  std::string method;               // "GET"
  std::string target;               // request-target as received: "/v1/keys?limit=2"
  std::vector<HttpHeader> headers;  // as received; names compare case-insensitively
  std::string body;                 // empty until the server has read it

  // The first header with this name, if any.
  std::optional<std::string_view> header(std::string_view name) const {
    for (const auto& h : headers) {
      if (ascii_iequals(h.name, name)) return std::string_view(h.value);
    }
    return std::nullopt;
  }
  size_t header_count(std::string_view name) const {
    size_t n = 0;
    for (const auto& h : headers) n += ascii_iequals(h.name, name) ? 1 : 0;
    return n;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<HttpHeader> headers;  // besides Content-Type and Content-Length
  std::string body;
  bool close = false;  // close the connection once this response is sent

  HttpResponse& with_header(std::string name, std::string value) {
    headers.push_back({std::move(name), std::move(value)});
    return *this;
  }
};

}  // namespace airlock::daemon
