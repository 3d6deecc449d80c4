// The HTTP/1.1 server (Boost.Beast over Asio): accepts on TCP and a unix socket, reads each request's
// headers, asks the handler whether to take it (and how large a body it may have), reads the body
// (whole, or piece by piece as the handler asks: Admission::run_stream), and writes the handler's
// response. Keep-alive, timeouts against slow clients, 431 for oversized
// headers, 413 for oversized bodies, 400 for anything that is not HTTP, and a graceful drain on
// SIGTERM/SIGINT. With TLS files, the TCP listeners speak HTTPS only (the unix socket stays plain HTTP).
// It knows nothing about routes or keys: that is the handler's business.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "daemon/http_message.h"
#include "daemon/listen_address.h"
#include "daemon/log.h"

namespace airlock::daemon {

// What to do with a request whose headers are in.
struct Admission {
  std::optional<HttpResponse> reject;  // answer this without reading the body
  size_t body_limit = 0;               // otherwise: read at most this many body bytes (413 beyond)
  std::function<HttpResponse(HttpRequest&)> run;  // then answer with this (request.body filled in)
  // Or, when set instead of `run`: start the work and call `done` exactly once, from any thread, when
  // the response is ready. The I/O thread is free meanwhile (engine and agent work runs elsewhere).
  using Done = std::function<void(HttpResponse)>;
  std::function<void(HttpRequest, Done done)> run_async;
  // Or, when set instead of both: the body is not read up front. The handler gets the head (its body
  // empty) and a BodyReader, and calls `done` exactly once, from any thread (after its last read has
  // been answered). An `Expect: 100-continue` is answered at the first read, so a request refused
  // before reading never makes the client send its body. A body not read to its end closes the
  // connection after the response.
  std::function<void(HttpRequest, std::shared_ptr<BodyReader> body, Done done)> run_stream;
  // Or: the request is forwarded, not answered (the port proxy). The body is not read; the handler
  // gets the head and calls `done` once, from any thread, with a response carrying a raw `tunnel`
  // (the connection becomes that relay, including any bytes read beyond the head) or with an
  // ordinary response, sent before the connection closes.
  std::function<void(HttpRequest, Done done)> run_tunnel;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Called on one of the server's threads once the headers are in; must not throw.
  virtual Admission admit(const HttpRequest& head) = 0;
};

// PEM files for the TCP listeners. The key must not be encrypted (there is no one to type a passphrase).
struct TlsFiles {
  std::string cert_path;  // the certificate, then any intermediates (a chain file)
  std::string key_path;
};

struct HttpServerOptions {
  std::vector<ListenAddress> tcp;
  std::optional<TlsFiles> tls;  // set: every TCP listener is HTTPS only (TLS 1.2+)
  std::optional<std::string> unix_path;  // replaced if a stale socket is there
  unsigned threads = 2;
  size_t header_limit = 16 * 1024;  // request line + headers (the contract's 431 limit)
  std::chrono::seconds idle_timeout{75};    // keep-alive connection waiting for a request
  std::chrono::seconds header_timeout{30};  // a request's headers, once started; also the TLS handshake
  std::chrono::seconds body_timeout{120};
  std::chrono::seconds write_timeout{60};
  std::chrono::seconds shutdown_grace{10};  // in-flight requests get this long after SIGTERM
  size_t max_connections = 4096;
  bool stop_on_signals = true;  // SIGTERM/SIGINT start a graceful shutdown
};

class HttpServer {
 public:
  // Loads the TLS files and binds every listener now, so that their errors surface before run().
  static Result<std::unique_ptr<HttpServer>> create(HttpServerOptions options, HttpHandler& handler,
                                                    const Logger& log);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // "http://127.0.0.1:7070" ("https://..." with TLS; the bound port when 0 was asked for),
  // "unix:/var/lib/airlock/airlockd.sock".
  std::vector<std::string> addresses() const;
  // Serves on `threads` threads (this one included) until shutdown, then drains and returns.
  void run();
  // Stops accepting, closes idle connections, lets in-flight requests finish. Thread-safe.
  void shutdown();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace airlock::daemon
