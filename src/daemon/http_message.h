// The daemon's view of one HTTP exchange, independent of Boost.Beast: routes, auth and their unit
// tests build without Beast, which stays inside http_server.cc (and keeps compile times down).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
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

// A response body produced over time, sent with chunked transfer coding (NDJSON, SSE, large files).
// Pull-based, so a slow client slows the producer instead of growing a buffer: the server calls
// pull() when it can take more, and the source calls `deliver` exactly once per pull, from any
// thread, now or later (when it has data). `data` may be empty only together with `end`. After
// `end`, the server finishes the response. If the client goes away or the server stops first, the
// server calls cancel() once (from an I/O thread); a delivery after that is ignored.
class BodySource {
 public:
  using Deliver = std::function<void(std::string data, bool end)>;
  virtual ~BodySource() = default;
  virtual void pull(Deliver deliver) = 0;
  virtual void cancel() = 0;
};

// The daemon's end of an accepted WebSocket (RFC 6455), handed to a WebSocketHandler. Thread-safe.
class WebSocketPeer {
 public:
  virtual ~WebSocketPeer() = default;
  // Queues one message. Messages are sent in order; check buffered() first to apply backpressure.
  virtual void send(std::string data, bool binary) = 0;
  virtual size_t buffered() const = 0;  // bytes queued and not yet written
  // Sends a close frame after what is queued, then closes the connection.
  virtual void close(uint16_t code, std::string reason) = 0;
};

// What a route that upgrades to WebSocket supplies. Callbacks come from the connection's I/O
// strand, one at a time: on_open first, then messages, on_writable whenever the send queue drains
// (buffered() reached 0), and on_close exactly once at the end (either side closed, error, shutdown).
class WebSocketHandler {
 public:
  virtual ~WebSocketHandler() = default;
  virtual void on_open(std::shared_ptr<WebSocketPeer> peer) = 0;
  virtual void on_message(std::string data, bool binary) = 0;
  virtual void on_writable() {}
  virtual void on_close() = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<HttpHeader> headers;  // besides Content-Type and Content-Length
  std::string body;
  bool close = false;  // close the connection once this response is sent
  // When set, `body` is ignored and the body comes from the source, chunked.
  std::shared_ptr<BodySource> stream;
  // When set (status 101), the request is a WebSocket handshake: the server completes it with
  // `websocket_protocol` as the subprotocol (if not empty) and hands the connection to the handler.
  std::shared_ptr<WebSocketHandler> websocket;
  std::string websocket_protocol;
  // When set, the real response comes later (a long poll): the server calls this once with a
  // function to call exactly once, from any thread, with that response. No thread waits meanwhile.
  std::function<void(std::function<void(HttpResponse)>)> deferred;

  HttpResponse& with_header(std::string name, std::string value) {
    headers.push_back({std::move(name), std::move(value)});
    return *this;
  }
};

}  // namespace airlock::daemon
