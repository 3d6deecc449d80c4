// A synchronous HTTP/1.1 client for one request on one connection (TCP or unix socket), built on
// Boost.Beast. Bodies go out from memory or streamed from a file descriptor, and come back either
// whole (bounded) or piece by piece as they arrive, so event streams and downloads never sit in memory.
// Beast stays inside the .cc file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/client_config.h"
#include "common/result.h"

namespace airlock::cli {

struct HttpHeader {
  std::string name;
  std::string value;
};

struct HttpRequestHead {
  std::string method;  // "GET", "POST", ...
  std::string target;  // "/v1/sandboxes?state=running", already escaped
  std::vector<HttpHeader> headers;
};

struct HttpResponseHead {
  int status = 0;
  std::vector<HttpHeader> headers;
  // The first header of that name (case-insensitive), or nullptr.
  const std::string* find(std::string_view name) const;
};

class HttpConnection {
 public:
  static Result<HttpConnection> connect(const DaemonEndpoint& endpoint);
  HttpConnection(HttpConnection&&) noexcept;
  HttpConnection& operator=(HttpConnection&&) noexcept;
  ~HttpConnection();

  // Sends the request with `body` (Content-Length; none for an empty GET/DELETE body).
  Status send(const HttpRequestHead& head, std::string_view body);
  // Sends the request with a body of exactly `length` bytes read from fd (a regular file).
  Status send_from_fd(const HttpRequestHead& head, int fd, uint64_t length);
  // Reads the status line and headers of the response.
  Result<HttpResponseHead> read_head();
  // Reads the next piece of the body as soon as some bytes are there (at most cap); 0 at its end.
  Result<size_t> read_body(char* buffer, size_t cap);
  // Reads the rest of the body; more than limit bytes is an error.
  Result<std::string> read_body_all(size_t limit);

 private:
  struct Impl;
  explicit HttpConnection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace airlock::cli
