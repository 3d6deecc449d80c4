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

#include "common/unique_fd.h"

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
  unsigned version = 11;            // 10 or 11 (HTTP/1.0, HTTP/1.1)
  std::string peer;                 // the client's address ("" on the unix socket)
  bool tls = false;                 // received over HTTPS

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

// A request body read as it arrives (the mirror image of BodySource), for routes whose bodies are too
// large to hold (file uploads, raw stdin). Pull-based, so a slow consumer slows the client instead of
// growing a buffer: the server reads the next piece from the socket only when asked. read() may be
// called from any thread, one call at a time (the next only after the previous callback); the server
// calls `callback` exactly once per read, from one of its I/O threads, and the callback must not block.
// Each piece is 1 to `max` bytes, or empty with `end` (or `error`). After `end` or an error, further
// reads answer at once the same way. A body larger than the route's limit, malformed chunked coding,
// a client that goes away or stalls past the body timeout, and a server that stops all end in `error`;
// the route then answers as it likes (its response is sent if the connection is still usable: the
// server answers 413 or 400 itself when the body was at fault).
struct BodyPiece {
  std::string data;
  bool end = false;   // the body is complete (data may still hold its last bytes)
  std::string error;  // not empty: the body cannot be read (no more pieces)
};

class BodyReader {
 public:
  using Callback = std::function<void(BodyPiece piece)>;
  static constexpr size_t kMaxPiece = 256 * 1024;  // larger `max` values are cut to this
  virtual ~BodyReader() = default;
  virtual void read(size_t max, Callback callback) = 0;
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

// A client connection turned into a byte relay to another socket (the port proxy, issue 4). The
// server writes `preamble` and then every byte the client sent after the request head to `socket`,
// and relays both ways with bounded buffers until either side closes: streaming bodies, chunked
// coding and WebSocket upgrades pass through unparsed. With `websocket`, the request must be a
// WebSocket handshake: the server completes it and relays binary messages <-> bytes instead.
class Tunnel {
 public:
  virtual ~Tunnel() = default;
  virtual void close() = 0;  // ends the relay (both sides) now; thread-safe
};

struct TunnelTarget {
  UniqueFd socket;       // a connected stream socket
  std::string preamble;  // raw relays: written to `socket` first (the rewritten request head)
  bool websocket = false;
  // Raw relays: a header line ("Name: value\r\n") added to the first response the target sends
  // (after its status line), e.g. the Set-Cookie of a token that came in the query.
  std::string response_header;
  // Called once the relay runs (on an I/O thread), with a handle that can end it later.
  std::function<void(std::shared_ptr<Tunnel>)> opened;
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
  // When set, the connection becomes a relay to the target (see TunnelTarget); nothing else is sent.
  std::shared_ptr<TunnelTarget> tunnel;

  HttpResponse& with_header(std::string name, std::string value) {
    headers.push_back({std::move(name), std::move(value)});
    return *this;
  }
};

}  // namespace airlock::daemon
