#include "daemon/http_server.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <csignal>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/unique_fd.h"
#include "daemon/errors.h"

namespace airlock::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
using beast::error_code;
using UnixStream = beast::basic_stream<local, asio::any_io_executor, beast::unlimited_rate_policy>;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;  // the TCP listeners' stream with TLS files

namespace {

// Unparsed bytes held per connection: the 16 KiB header limit plus one socket read of look-ahead. A
// chunk-size line that does not fit is refused (400) instead of growing the buffer.
constexpr size_t kReadBufferLimit = 96 * 1024;
// After a response that ends a connection, unread input is drained for at most this long and this
// much, so the client sees the response instead of a reset (a "lingering close", as nginx does).
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 1 << 20;

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void drain() = 0;  // close if idle; otherwise close after the current response
  // The I/O threads have stopped for good: answer whatever a handler on another thread still waits
  // for (a body read), since nothing posted to the server will run any more.
  virtual void stopped() {}
};

bool is_http_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

HttpResponse error_for(ErrorCode code, std::string message) {
  return error_response(api_error(code, std::move(message)));
}

template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// OpenSSL's queued errors as one line ("no start line; PEM lib"), and the queue emptied.
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason ? reason : "error " + std::to_string(e);
  }
  return out.empty() ? "unknown error" : out;
}

// open(2) first: OpenSSL's own message for a missing file is an unhelpful "system lib".
Status check_readable(const std::string& what, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return sys_error(what + " " + path);
  return {};
}

// TLS 1.2 and 1.3 only, forward-secret AEAD suites in the server's order of preference; no compression
// (CRIME) and no renegotiation (CVE-2009-3555, and a client making the server redo handshakes).
Result<std::unique_ptr<asio::ssl::context>> make_tls_context(const TlsFiles& files) {
  TRY_STATUS(check_readable("tls certificate", files.cert_path));
  TRY_STATUS(check_readable("tls key", files.key_path));
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // TLS 1.2's list (1.3 has only AEAD suites and keeps OpenSSL's default order).
  SSL_CTX_set_cipher_list(ctx,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  // An encrypted key would make OpenSSL ask for a passphrase on the terminal; refuse it instead.
  SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
  // The key first: a certificate loaded after a key that does not match it drops the key, and
  // SSL_CTX_check_private_key then names the mismatch for what it is.
  if (SSL_CTX_use_PrivateKey_file(ctx, files.key_path.c_str(), SSL_FILETYPE_PEM) != 1) {
    return plain_error("tls key " + files.key_path + ": " + openssl_errors() +
                       " (an unencrypted PEM private key is needed)");
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_path.c_str()) != 1) {
    return plain_error("tls certificate " + files.cert_path + ": " + openssl_errors() +
                       " (a PEM certificate, then any intermediates, is needed)");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return plain_error("tls key " + files.key_path + " does not match certificate " + files.cert_path);
  }
  return context;
}

}  // namespace

struct HttpServer::Impl {
  Impl(HttpServerOptions o, HttpHandler& h, const Logger& l)
      : options(std::move(o)),
        handler(h),
        log(l),
        ioc(static_cast<int>(std::max(1u, options.threads))),
        accept_strand(asio::make_strand(ioc)),
        signals(ioc),
        grace_timer(ioc) {}
  ~Impl() { destroying = true; }

  Status listen_tcp(const ListenAddress& address);
  Status listen_unix(const std::string& path);
  template <class Protocol>
  void accept_next(asio::basic_socket_acceptor<Protocol>& acceptor);
  template <class Stream>
  void start_session(Stream stream);
  void forget(uint64_t id);
  // Registers a session for shutdown draining; false (and nothing registered) when at the maximum.
  bool enlist(const std::shared_ptr<SessionBase>& session, uint64_t& id);
  void begin_shutdown();

  // Declared before ioc: sessions destroyed with the io_context still unregister here.
  HttpServerOptions options;
  HttpHandler& handler;
  const Logger& log;
  std::atomic<bool> destroying{false};
  std::atomic<bool> draining{false};
  std::mutex sessions_mu;  // guards sessions and next_session_id
  std::unordered_map<uint64_t, std::weak_ptr<SessionBase>> sessions;
  uint64_t next_session_id = 0;

  asio::io_context ioc;
  asio::strand<asio::io_context::executor_type> accept_strand;  // acceptors, signals, shutdown
  std::vector<std::unique_ptr<tcp::acceptor>> tcp_acceptors;
  std::unique_ptr<local::acceptor> unix_acceptor;
  std::unique_ptr<asio::ssl::context> tls_context;  // set: the TCP listeners speak HTTPS only
  asio::signal_set signals;
  asio::steady_timer grace_timer;
  std::vector<std::string> addresses;
};

namespace {


// One accepted WebSocket: reads messages into the handler, writes queued messages in order.
// Everything runs on the connection's strand; send()/close() may be called from any thread.
template <class Stream>
class WsSession final : public SessionBase,
                        public WebSocketPeer,
                        public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  static constexpr size_t kMaxMessage = 64 * 1024;  // from the client (the contract's limit)

  WsSession(HttpServer::Impl& server, Stream&& stream, std::shared_ptr<WebSocketHandler> handler)
      : server_(server), ws_(std::move(stream)), handler_(std::move(handler)) {}
  ~WsSession() override {
    if (id_) server_.forget(*id_);
  }

  void start(http::request<http::string_body> request, std::string protocol) {
    request_ = std::move(request);
    uint64_t id = 0;
    if (!server_.enlist(this->shared_from_this(), id)) {
      handler_->on_close();
      return;
    }
    id_ = id;
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.idle_timeout = std::chrono::seconds(30);  // a ping every 15 s; closed after missing pongs
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator([protocol](websocket::response_type& res) {
      res.set(http::field::server, "airlockd");
      if (!protocol.empty()) res.set(http::field::sec_websocket_protocol, protocol);
    }));
    ws_.read_message_max(kMaxMessage);
    ws_.async_accept(request_, [self = this->shared_from_this()](error_code ec) {
      if (ec) return self->finish();
      self->open_ = true;
      self->handler_->on_open(self);
      self->read();
    });
  }

  void send(std::string data, bool binary) override {
    buffered_ += data.size();
    asio::post(ws_.get_executor(), [self = this->shared_from_this(), data = std::move(data), binary]() mutable {
      if (self->closed_ || self->closing_) {
        self->buffered_ -= data.size();
        return;
      }
      self->queue_.push_back({std::move(data), binary});
      if (!self->writing_) self->write_next();
    });
  }
  size_t buffered() const override { return buffered_; }
  void close(uint16_t code, std::string reason) override {
    asio::post(ws_.get_executor(), [self = this->shared_from_this(), code, reason = std::move(reason)] {
      if (self->closed_ || self->closing_) return;
      self->closing_ = true;
      self->close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
      if (!self->writing_) self->write_next();
    });
  }
  void drain() override { close(1001, "daemon shutting down"); }

 private:
  struct Outgoing {
    std::string data;
    bool binary;
  };

  void read() {
    ws_.async_read(in_, [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return self->finish();
      std::string data = beast::buffers_to_string(self->in_.data());
      self->in_.consume(self->in_.size());
      self->handler_->on_message(std::move(data), self->ws_.got_binary());
      self->read();
    });
  }

  void write_next() {
    if (closed_) return;
    if (queue_.empty()) {
      if (closing_ && !close_sent_) {
        close_sent_ = true;
        writing_ = true;
        ws_.async_close(close_reason_, [self = this->shared_from_this()](error_code) {
          self->writing_ = false;
          self->finish();
        });
      }
      return;
    }
    writing_ = true;
    ws_.binary(queue_.front().binary);
    ws_.async_write(asio::buffer(queue_.front().data), [self = this->shared_from_this()](error_code ec, size_t) {
      self->writing_ = false;
      if (self->closed_) return;  // finish() already dropped the queue
      self->buffered_ -= self->queue_.front().data.size();
      self->queue_.pop_front();
      if (ec) return self->finish();
      if (self->queue_.empty() && !self->closing_ && self->open_) self->handler_->on_writable();
      self->write_next();
    });
  }

  void finish() {
    if (closed_) return;
    closed_ = true;
    for (auto& o : queue_) buffered_ -= o.data.size();
    queue_.clear();
    error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(asio::socket_base::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).close();
    handler_->on_close();
    handler_.reset();  // breaks the handler <-> peer cycle
  }

  HttpServer::Impl& server_;
  websocket::stream<Stream> ws_;
  std::shared_ptr<WebSocketHandler> handler_;
  http::request<http::string_body> request_;  // the handshake, kept until it is answered
  beast::flat_buffer in_;
  std::deque<Outgoing> queue_;
  std::atomic<size_t> buffered_{0};
  std::optional<uint64_t> id_;
  websocket::close_reason close_reason_;
  bool open_ = false, writing_ = false, closing_ = false, close_sent_ = false, closed_ = false;
};

// --- relays to another socket (the port proxy: HttpResponse::tunnel) ---------------------------------
//
// Each direction has one buffer and at most one read or write under way: a side that does not read
// stops the other side's reads (backpressure), so a relay holds at most 2 x kRelayBuffer. Everything
// runs on the client connection's strand; close() may come from any thread.
constexpr size_t kRelayBuffer = 256 * 1024;

using Backend = asio::posix::stream_descriptor;

// Raw bytes both ways. The backend's end of the data (EOF) ends the relay: for the proxied HTTP
// exchanges that is the end of the response. The client's EOF is passed on as a half-close.
template <class Stream>
class RawRelay final : public SessionBase, public Tunnel, public std::enable_shared_from_this<RawRelay<Stream>> {
 public:
  RawRelay(HttpServer::Impl& server, Stream&& client, UniqueFd backend, std::string first, std::string inject)
      : server_(server), client_(std::move(client)), backend_(client_.get_executor(), backend.release()),
        up_(first.begin(), first.end()), down_(kRelayBuffer), inject_(std::move(inject)) {}
  ~RawRelay() override {
    if (id_) server_.forget(*id_);
  }

  void start(std::function<void(std::shared_ptr<Tunnel>)> opened) {
    uint64_t id = 0;
    if (!server_.enlist(this->shared_from_this(), id)) return finish();
    id_ = id;
    beast::get_lowest_layer(client_).expires_never();
    if (opened) opened(this->shared_from_this());
    write_up(up_.size());
    read_down();
  }
  void close() override {
    asio::post(client_.get_executor(), [self = this->shared_from_this()] { self->finish(); });
  }
  void drain() override { close(); }

 private:
  void read_up() {
    if (up_.size() < kRelayBuffer) up_.resize(kRelayBuffer);
    client_.async_read_some(asio::buffer(up_), [self = this->shared_from_this()](error_code ec, size_t n) {
      if (self->done_) return;
      if (ec) {  // the client is done sending: tell the backend, keep relaying its answer
        error_code ignored;
        if (ec != asio::error::eof && ec != asio::ssl::error::stream_truncated) return self->finish();
        ::shutdown(self->backend_.native_handle(), SHUT_WR);
        (void)ignored;
        return;
      }
      self->write_up(n);
    });
  }
  void write_up(size_t n) {
    if (n == 0) return read_up();
    asio::async_write(backend_, asio::buffer(up_.data(), n), [self = this->shared_from_this()](error_code ec, size_t) {
      if (self->done_) return;
      if (ec) return self->finish();
      self->read_up();
    });
  }
  void read_down() {
    if constexpr (!kIsTls<Stream>) {
      if (inject_.empty() && held_ == 0 && splice_ready()) return splice_down();
    }
    backend_.async_read_some(asio::buffer(down_.data() + held_, down_.size() - held_),
                             [self = this->shared_from_this()](error_code ec, size_t n) {
      if (self->done_) return;
      if (ec) return self->finish();  // EOF included: the backend has said everything
      n += std::exchange(self->held_, 0);
      if (!self->inject_.empty()) {
        // The first response's status line ends at the first CRLF; the header goes right after it.
        std::string_view seen(self->down_.data(), n);
        size_t eol = seen.find("\r\n");
        if (eol == std::string_view::npos && n < 8192) {
          self->held_ = n;  // the status line is not complete yet
          return self->read_down();
        }
        std::string out;
        if (eol != std::string_view::npos) {
          out.reserve(n + self->inject_.size());
          out.append(seen.substr(0, eol + 2)).append(self->inject_).append(seen.substr(eol + 2));
        } else {
          out.assign(seen);  // not HTTP: passed on untouched
        }
        self->inject_.clear();
        self->injected_ = std::move(out);
        return asio::async_write(self->client_, asio::buffer(self->injected_), [self](error_code ec2, size_t) {
          if (self->done_) return;
          if (ec2) return self->finish();
          self->injected_.clear();
          self->read_down();
        });
      }
      asio::async_write(self->client_, asio::buffer(self->down_.data(), n), [self](error_code ec2, size_t) {
        if (self->done_) return;
        if (ec2) return self->finish();
        self->read_down();
      });
    });
  }
  // Plain streams: backend -> client through a pipe with splice(2), so the bytes never enter user
  // space (bulk responses go about half again as fast as with read/write on two cores). A pipe that
  // cannot be made keeps the copying path.
  bool splice_ready() {
    if (pipe_r_) return true;
    if (splice_failed_) return false;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      splice_failed_ = true;
      return false;
    }
    pipe_r_.reset(fds[0]);
    pipe_w_.reset(fds[1]);
    ::fcntl(pipe_w_.get(), F_SETPIPE_SZ, static_cast<int>(kRelayBuffer));  // a hint; the default 64 KiB works too
    for (int fd : {static_cast<int>(backend_.native_handle()),
                   static_cast<int>(beast::get_lowest_layer(client_).socket().native_handle())}) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    return true;
  }
  void splice_down() {
    backend_.async_wait(Backend::wait_read, [self = this->shared_from_this()](error_code ec) {
      if (self->done_) return;
      if (ec) return self->finish();
      ssize_t n = ::splice(self->backend_.native_handle(), nullptr, self->pipe_w_.get(), nullptr, kRelayBuffer,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n == 0) return self->finish();  // EOF: the backend has said everything
      if (n < 0) return (errno == EAGAIN || errno == EINTR) ? self->splice_down() : self->finish();
      self->in_pipe_ = static_cast<size_t>(n);
      self->drain_pipe();
    });
  }
  void drain_pipe() {
    int out = beast::get_lowest_layer(client_).socket().native_handle();
    while (in_pipe_ > 0) {
      ssize_t n = ::splice(pipe_r_.get(), nullptr, out, nullptr, in_pipe_, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_pipe_ -= static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {  // the client is slow: wait for room (backpressure on the backend)
        return beast::get_lowest_layer(client_).socket().async_wait(
            asio::socket_base::wait_write, [self = this->shared_from_this()](error_code ec) {
              if (self->done_) return;
              if (ec) return self->finish();
              self->drain_pipe();
            });
      }
      return finish();
    }
    splice_down();
  }

  // A plain TCP close of both sides (under TLS without close_notify: the HTTP framing, or the
  // backend's own close, says where the data ends).
  void finish() {
    if (done_) return;
    done_ = true;
    error_code ignored;
    backend_.close(ignored);
    beast::get_lowest_layer(client_).socket().shutdown(asio::socket_base::shutdown_both, ignored);
    beast::get_lowest_layer(client_).close();
  }

  HttpServer::Impl& server_;
  Stream client_;
  Backend backend_;
  std::vector<char> up_;    // client -> backend (first: the preamble and bytes read beyond the head)
  std::vector<char> down_;  // backend -> client
  size_t held_ = 0;         // bytes of down_ kept while waiting for the first status line
  std::string inject_;      // the header line for the first response, until it is added
  std::string injected_;    // that response's first bytes with the header, being written
  UniqueFd pipe_r_, pipe_w_;  // splice(2) path (plain streams)
  size_t in_pipe_ = 0;        // bytes in the pipe not yet passed to the client
  bool splice_failed_ = false;
  std::optional<uint64_t> id_;
  bool done_ = false;
};

// WebSocket messages (binary or text) <-> raw bytes: the raw TCP forwarding of `airlock port-forward`.
template <class Stream>
class WsRelay final : public SessionBase, public Tunnel, public std::enable_shared_from_this<WsRelay<Stream>> {
 public:
  static constexpr size_t kMaxMessage = 1 << 20;

  WsRelay(HttpServer::Impl& server, Stream&& stream, UniqueFd backend)
      : server_(server), ws_(std::move(stream)), backend_(ws_.get_executor(), backend.release()), down_(kRelayBuffer) {}
  ~WsRelay() override {
    if (id_) server_.forget(*id_);
  }

  void start(http::request<http::string_body> request, std::function<void(std::shared_ptr<Tunnel>)> opened) {
    request_ = std::move(request);
    uint64_t id = 0;
    if (!server_.enlist(this->shared_from_this(), id)) return finish();
    id_ = id;
    beast::get_lowest_layer(ws_).expires_never();
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.idle_timeout = std::chrono::seconds(30);
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "airlockd"); }));
    ws_.read_message_max(kMaxMessage);
    ws_.binary(true);
    ws_.async_accept(request_, [self = this->shared_from_this(), opened = std::move(opened)](error_code ec) {
      if (ec) return self->finish();
      if (opened) opened(self);
      self->read_up();
      self->read_down();
    });
  }
  void close() override {
    asio::post(ws_.get_executor(), [self = this->shared_from_this()] { self->finish(); });
  }
  void drain() override { close(); }

 private:
  void read_up() {
    ws_.async_read(in_, [self = this->shared_from_this()](error_code ec, size_t) {
      if (self->done_) return;
      if (ec) return self->finish();
      asio::async_write(self->backend_, self->in_.data(), [self](error_code ec2, size_t) {
        if (self->done_) return;
        if (ec2) return self->finish();
        self->in_.consume(self->in_.size());
        self->read_up();
      });
    });
  }
  void read_down() {
    backend_.async_read_some(asio::buffer(down_), [self = this->shared_from_this()](error_code ec, size_t n) {
      if (self->done_) return;
      if (ec) {  // the port closed its end: a normal close frame, then the connection goes
        self->closing_ = true;
        return self->ws_.async_close(websocket::close_code::normal, [self](error_code) { self->finish(); });
      }
      self->ws_.async_write(asio::buffer(self->down_.data(), n), [self](error_code ec2, size_t) {
        if (self->done_ || self->closing_) return;
        if (ec2) return self->finish();
        self->read_down();
      });
    });
  }
  void finish() {
    if (done_) return;
    done_ = true;
    error_code ignored;
    backend_.close(ignored);
    beast::get_lowest_layer(ws_).socket().shutdown(asio::socket_base::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).close();
  }

  HttpServer::Impl& server_;
  websocket::stream<Stream> ws_;
  Backend backend_;
  http::request<http::string_body> request_;
  beast::flat_buffer in_;
  std::vector<char> down_;
  std::optional<uint64_t> id_;
  bool done_ = false, closing_ = false;
};

// The BodyReader a streamed request's handler holds; it keeps the session alive until dropped.
template <class Session>
class SessionBody final : public BodyReader {
 public:
  SessionBody(std::shared_ptr<Session> session, uint64_t request)
      : session_(std::move(session)), request_(request) {}
  void read(size_t max, Callback callback) override {
    session_->request_piece(request_, max, std::move(callback));
  }

 private:
  std::shared_ptr<Session> session_;
  uint64_t request_;  // which of the connection's requests this body belongs to
};

template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
  using StreamedBody = SessionBody<Session>;

 public:
  Session(HttpServer::Impl& server, Stream&& stream, uint64_t id)
      : server_(server), stream_(std::move(stream)), buffer_(kReadBufferLimit), id_(id) {}
  ~Session() override { server_.forget(id_); }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kIsTls<Stream>) {
        self->handshake();
      } else {
        self->read_header();
      }
    });
  }
  void drain() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->idle_) self->close();
    });
  }

 private:
  // The TCP stream under TLS (or the stream itself): timeouts, shutdown and close act on it.
  auto& lowest() { return beast::get_lowest_layer(stream_); }

  // Bounded by the header timeout: a client that connects and never says hello must not hold a
  // descriptor for long. A failure (plain HTTP to this port, a client that does not trust the
  // certificate, a scanner) concerns that client only: debug log, close.
  void handshake() {
    std::string peer;  // taken now: a timeout closes the socket before the handler runs
    if (server_.log.enabled(LogLevel::kDebug)) {
      error_code ignored;
      auto endpoint = lowest().socket().remote_endpoint(ignored);
      peer = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    }
    lowest().expires_after(server_.options.header_timeout);
    stream_.async_handshake(asio::ssl::stream_base::server,
                            [self = this->shared_from_this(), peer = std::move(peer)](error_code ec) {
                              if (!ec) return self->read_header();
                              if (ec != asio::error::operation_aborted) {  // not our own close at shutdown
                                self->server_.log.debug("tls handshake with " + peer + ": " + ec.message());
                              }
                              self->close();
                            });
  }

  // Sends close_notify (so the client can tell the end from a truncation) and waits a little for the
  // client's, then closes. Only when nothing else is reading or writing the TLS stream.
  void shutdown_tls() {
    if (!lowest().socket().is_open()) return;
    lowest().expires_after(kLingerTime);
    stream_.async_shutdown([self = this->shared_from_this()](error_code) { self->close(); });
  }

  void read_header() {
    idle_ = true;
    head_request_ = false;
    version_ = 11;
    body_parser_.reset();  // a streamed body's parser, if the last request had one
    if (server_.draining) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.header_limit));
    // No limit until the handler has named one (Beast 1.74 treats boost::none as "exceeded").
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    lowest().expires_after(buffer_.size() > 0 ? server_.options.header_timeout : server_.options.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    idle_ = false;
    if (ec) return on_read_error(ec, true);
    const auto& msg = parser_->get();
    head_ = HttpRequest{};
    head_.method = std::string(msg.method_string());
    head_request_ = msg.method() == http::verb::head;
    version_ = msg.version() == 10 ? 10 : 11;
    head_.target = std::string(msg.target());
    for (const auto& field : msg) head_.headers.push_back({std::string(field.name_string()), std::string(field.value())});
    head_.version = version_;
    head_.tls = kIsTls<Stream>;
    if constexpr (!std::is_same_v<Stream, UnixStream>) {
      error_code ignored;
      auto endpoint = lowest().socket().remote_endpoint(ignored);
      if (!ignored) head_.peer = endpoint.address().to_string();
    }

    // RFC 9112 §6.3: a request whose transfer coding is not (only) chunked has no knowable length;
    // guessing would let a proxy in front and this daemon disagree about where the request ends.
    if (auto te = head_.header("Transfer-Encoding"); te && (!ascii_iequals(*te, "chunked") || !parser_->chunked())) {
      return send(error_response(api_error(ErrorCode::kInvalidParameter, "only Transfer-Encoding: chunked is supported")
                                     .with_field("Transfer-Encoding")),
                  true);
    }
    try {
      admission_ = server_.handler.admit(head_);
    } catch (const std::exception& e) {
      server_.log.error(std::string("bug: request admission threw: ") + e.what());
      admission_ = Admission{error_for(ErrorCode::kInternal, "internal error; the daemon's log has the cause"), 0, {}};
    }
    if (admission_.reject) return send(std::move(*admission_.reject), !parser_->is_done());
    if (admission_.run_tunnel) return start_tunnel();
    if (auto length = parser_->content_length(); length && *length > admission_.body_limit) {
      return send(too_large(), true);
    }
    parser_->body_limit(admission_.body_limit);
    auto expect = head_.header("Expect");
    bool expect_continue = expect && ascii_iequals(*expect, "100-continue") && !parser_->is_done();
    if (admission_.run_stream) return start_streamed(expect_continue);
    if (expect_continue) {
      continue_ = http::response<http::empty_body>(http::status::continue_, 11);
      lowest().expires_after(server_.options.write_timeout);
      return http::async_write(stream_, continue_, [self = this->shared_from_this()](error_code ec, size_t) {
        if (ec) return self->close();
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return on_body({});
    lowest().expires_after(server_.options.body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(error_code ec) {
    if (ec) return on_read_error(ec, false);
    HttpRequest request = std::move(head_);
    request.body = std::move(parser_->get().body());
    if (admission_.run_async) {
      lowest().expires_never();  // the work may take long; send() arms the write timeout
      bool close_after = !parser_->get().keep_alive();
      auto self = this->shared_from_this();
      auto done = [self, close_after](HttpResponse response) {
        asio::post(self->stream_.get_executor(), [self, close_after, response = std::move(response)]() mutable {
          self->send(std::move(response), close_after);
        });
      };
      try {
        admission_.run_async(std::move(request), std::move(done));
      } catch (const std::exception& e) {
        server_.log.error(std::string("bug: request handler threw: ") + e.what());
        send(error_for(ErrorCode::kInternal, "internal error; the daemon's log has the cause"), true);
      }
      return;
    }
    HttpResponse response;
    try {
      response = admission_.run(request);
    } catch (const std::exception& e) {
      server_.log.error(std::string("bug: request handler threw: ") + e.what());
      response = error_for(ErrorCode::kInternal, "internal error; the daemon's log has the cause");
    }
    send(std::move(response), !parser_->get().keep_alive());
  }

  // The port proxy: the body stays unread (it is relayed with everything after it).
  void start_tunnel() {
    lowest().expires_never();  // the handler connects to the target meanwhile
    auto self = this->shared_from_this();
    auto done = [self](HttpResponse response) {
      asio::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        if (response.tunnel && !response.tunnel->websocket) return self->relay_raw(std::move(response));
        self->send(std::move(response), true);
      });
    };
    try {
      admission_.run_tunnel(std::move(head_), std::move(done));
    } catch (const std::exception& e) {
      server_.log.error(std::string("bug: request handler threw: ") + e.what());
      send(error_for(ErrorCode::kInternal, "internal error; the daemon's log has the cause"), true);
    }
  }

  void relay_raw(HttpResponse response) {
    auto target = std::move(response.tunnel);
    std::string first = std::move(target->preamble);
    auto unread = buffer_.data();  // bytes the client sent after the head
    first.append(static_cast<const char*>(unread.data()), unread.size());
    buffer_.consume(buffer_.size());
    auto relay = std::make_shared<RawRelay<Stream>>(server_, std::move(stream_), std::move(target->socket),
                                                    std::move(first), std::move(target->response_header));
    relay->start(std::move(target->opened));
    // This session is done: its stream now belongs to the relay.
  }

  // --- a body streamed to the handler as it asks (Admission::run_stream) ---------------------------------
  //
  // The header parser becomes a buffer_body parser, which parses Content-Length and chunked bodies
  // straight into the buffer of the piece asked for (nothing else is held beyond the read buffer).
  // Strand state: reading_ while a read (or the 100 Continue before it) is under way; a response
  // from the handler that arrives meanwhile waits in pending_response_ (the read is cancelled).
  // The handler's callback sits in body_callback_ under body_mu_, so that stopped() can answer it.

 public:
  // Any thread (the handler's BodyReader::read).
  void request_piece(uint64_t request, size_t max, BodyReader::Callback callback) {
    std::string refused;
    {
      std::lock_guard guard(body_mu_);
      if (request != streamed_request_) {
        refused = "bug: a body read after the request was answered";
      } else if (body_callback_) {
        refused = "bug: a body read while another is pending";
      } else if (server_stopped_) {
        refused = "the daemon is shutting down";
      } else {
        body_callback_ = std::move(callback);
      }
    }
    if (!refused.empty()) return callback(BodyPiece{{}, false, std::move(refused)});
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), max] { self->read_piece(max); });
  }

  void stopped() override {
    {
      std::lock_guard guard(body_mu_);
      server_stopped_ = true;
    }
    answer_piece(BodyPiece{{}, false, "the daemon is shutting down"});
  }

 private:
  void start_streamed(bool expect_continue) {
    lowest().expires_never();  // armed per read; the handler's own work may take long
    body_parser_.emplace(std::move(*parser_));
    parser_.reset();
    body_parser_->body_limit(admission_.body_limit);
    need_continue_ = expect_continue;
    body_error_.reset();
    body_failure_.reset();
    pending_response_.reset();
    reading_ = false;
    answered_ = false;
    client_gone_ = false;
    bool close_after = !body_parser_->get().keep_alive();
    uint64_t request_number;
    {
      std::lock_guard guard(body_mu_);
      request_number = ++streamed_request_;
    }
    auto self = this->shared_from_this();
    auto done = [self, close_after](HttpResponse response) {
      asio::post(self->stream_.get_executor(), [self, close_after, response = std::move(response)]() mutable {
        self->finish_streamed(std::move(response), close_after);
      });
    };
    HttpRequest request = std::move(head_);
    try {
      admission_.run_stream(std::move(request), std::make_shared<StreamedBody>(self, request_number), std::move(done));
    } catch (const std::exception& e) {
      server_.log.error(std::string("bug: request handler threw: ") + e.what());
      send(error_for(ErrorCode::kInternal, "internal error; the daemon's log has the cause"), true);
    }
  }

  void answer_piece(BodyPiece piece) {
    BodyReader::Callback callback;
    {
      std::lock_guard guard(body_mu_);
      callback = std::exchange(body_callback_, nullptr);
    }
    if (callback) callback(std::move(piece));
  }

  void read_piece(size_t max) {
    if (!body_parser_ || answered_) return answer_piece(BodyPiece{{}, false, "the request was already answered"});
    if (body_error_) return answer_piece(BodyPiece{{}, false, *body_error_});
    if (pending_response_ || body_parser_->is_done()) return answer_piece(BodyPiece{{}, true, {}});
    reading_ = true;
    if (need_continue_) {  // the client waits for this before it sends the body
      need_continue_ = false;
      continue_ = http::response<http::empty_body>(http::status::continue_, 11);
      lowest().expires_after(server_.options.write_timeout);
      return http::async_write(stream_, continue_, [self = this->shared_from_this(), max](error_code ec, size_t) {
        self->lowest().expires_never();
        if (!ec && self->pending_response_) ec = asio::error::operation_aborted;
        if (ec) return self->piece_failed(ec);
        self->read_piece(max);
      });
    }
    // One socket read holds at most kReadBufferLimit bytes, and a piece is cut from one read: a
    // buffer of that size, kept for the connection, is never the limit (and is not reallocated).
    if (piece_.empty()) piece_.resize(kReadBufferLimit);
    auto& body = body_parser_->get().body();
    body.data = piece_.data();
    body.size = std::min({max, piece_.size(), BodyReader::kMaxPiece});
    body.size = std::max<size_t>(body.size, 1);
    piece_asked_ = body.size;
    body.more = true;
    lowest().expires_after(server_.options.body_timeout);
    http::async_read_some(stream_, buffer_, *body_parser_, [self = this->shared_from_this(), max](error_code ec, size_t) {
      self->on_piece(ec, max);
    });
  }

  void on_piece(error_code ec, size_t max) {
    lowest().expires_never();
    if (ec == http::error::need_buffer) ec = {};  // the piece is full: not an error
    if (!ec && pending_response_) ec = asio::error::operation_aborted;
    if (ec) return piece_failed(ec);
    size_t got = piece_asked_ - body_parser_->get().body().size;
    body_parser_->get().body().data = nullptr;
    if (got == 0 && !body_parser_->is_done()) return read_piece(max);  // a chunk header, no data yet
    reading_ = false;
    answer_piece(BodyPiece{std::string(piece_.data(), got), body_parser_->is_done(), {}});
  }

  // The body cannot be read further. A body at fault (too large, malformed) is answered by the
  // server once the handler is done; a client that went away or stalled gets no answer at all.
  void piece_failed(error_code ec) {
    reading_ = false;
    std::string why;
    if (pending_response_) {
      why = "the request was answered before its body was read";
    } else if (ec == http::error::body_limit) {
      body_failure_ = too_large();
      why = "the request body exceeds " + std::to_string(admission_.body_limit) + " bytes";
    } else if (is_http_parse_error(ec) && ec != http::error::end_of_stream && ec != http::error::partial_message) {
      body_failure_ = error_for(ErrorCode::kInvalidParameter, "malformed HTTP request: " + ec.message());
      why = "malformed request body: " + ec.message();
    } else {
      why = ec == beast::error::timeout ? "the client sent nothing for " +
                                              std::to_string(server_.options.body_timeout.count()) + " s"
                                        : "the client went away before the body's end";
      client_gone_ = true;
      close();
    }
    body_error_ = why;
    answer_piece(BodyPiece{{}, false, std::move(why)});
    if (pending_response_) {
      auto response = std::move(*pending_response_);
      pending_response_.reset();
      finish_streamed(std::move(response), true);
    }
  }

  void finish_streamed(HttpResponse response, bool close_after) {
    if (!body_parser_ || answered_) return;  // a second answer (a handler bug): the first one stands
    if (reading_) {  // answer once the read under way has ended; cancelling it ends it now
      if (!pending_response_) pending_response_ = std::move(response);
      lowest().cancel();
      return;
    }
    answered_ = true;
    {
      std::lock_guard guard(body_mu_);
      ++streamed_request_;  // reads from here on are refused
    }
    if (client_gone_) return;  // nobody to answer
    if (body_failure_) {
      auto failure = std::move(*body_failure_);
      body_failure_.reset();
      return send(std::move(failure), true);
    }
    send(std::move(response), close_after || !body_parser_->is_done());
  }

  HttpResponse too_large() {
    ApiError e = api_error(ErrorCode::kPayloadTooLarge,
                           "request body exceeds " + std::to_string(admission_.body_limit) + " bytes");
    return error_response(std::move(e).with_details({{"limit_bytes", admission_.body_limit}}));
  }

  void on_read_error(error_code ec, bool in_header) {
    if (ec == http::error::header_limit || (in_header && ec == http::error::buffer_overflow)) {
      return send(error_for(ErrorCode::kHeadersTooLarge,
                            "request line and headers exceed " + std::to_string(server_.options.header_limit) + " bytes"),
                  true);
    }
    if (ec == http::error::body_limit) return send(too_large(), true);
    // A client that went away, timed out or stopped mid-message gets no answer: there is no one to read it.
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || !is_http_parse_error(ec)) {
      return close();
    }
    send(error_for(ErrorCode::kInvalidParameter, "malformed HTTP request: " + ec.message()), true);
  }

  void send(HttpResponse response, bool close_after) {
    if (response.deferred) {
      auto later = std::move(response.deferred);
      lowest().expires_never();
      auto self = this->shared_from_this();
      auto once = std::make_shared<std::atomic<bool>>(false);
      later([self, close_after, once](HttpResponse real) {
        if (once->exchange(true)) return;
        real.deferred = nullptr;
        asio::post(self->stream_.get_executor(),
                   [self, close_after, real = std::move(real)]() mutable { self->send(std::move(real), close_after); });
      });
      return;
    }
    if (response.websocket) return upgrade(std::move(response));
    if (response.tunnel) return relay_websocket(std::move(response));
    if (response.stream) return send_stream(std::move(response));
    response_ = {};
    response_.version(version_);
    response_.result(static_cast<unsigned>(response.status));
    response_.set(http::field::server, "airlockd");
    response_.set(http::field::content_type, response.content_type);
    for (auto& h : response.headers) response_.insert(h.name, h.value);
    response_.body() = std::move(response.body);
    close_after_write_ = close_after || response.close || server_.draining;
    response_.keep_alive(!close_after_write_);
    response_.prepare_payload();
    if (head_request_) response_.body().clear();  // RFC 9110: the headers of a GET, no content
    lowest().expires_after(server_.options.write_timeout);
    http::async_write(stream_, response_, [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return self->close();
      if (self->close_after_write_) return self->linger();
      self->read_header();
    });
  }

  void upgrade(HttpResponse response) {
    if (!parser_ || !websocket::is_upgrade(parser_->get())) {
      return send(error_response(api_error(ErrorCode::kUpgradeRequired, "this route needs a WebSocket upgrade")
                                     .with_header("Upgrade", "websocket")),
                  true);
    }
    auto ws = std::make_shared<WsSession<Stream>>(server_, std::move(stream_), std::move(response.websocket));
    ws->start(parser_->release(), std::move(response.websocket_protocol));
    // This session is done: its stream now belongs to the WebSocket session.
  }

  void relay_websocket(HttpResponse response) {
    if (!response.tunnel->websocket || !parser_ || !websocket::is_upgrade(parser_->get())) {
      return send(error_response(api_error(ErrorCode::kUpgradeRequired, "this route needs a WebSocket upgrade")
                                     .with_header("Upgrade", "websocket")),
                  true);
    }
    auto target = std::move(response.tunnel);
    auto relay = std::make_shared<WsRelay<Stream>>(server_, std::move(stream_), std::move(target->socket));
    relay->start(parser_->release(), std::move(target->opened));
  }

  // A chunked response whose body comes from a BodySource. The connection closes at its end
  // (simpler than keeping it alive: the read watching for a disconnect may hold pipelined bytes).
  void send_stream(HttpResponse response) {
    source_ = std::move(response.stream);
    stream_response_ = {};
    stream_response_.version(11);
    stream_response_.result(static_cast<unsigned>(response.status));
    stream_response_.set(http::field::server, "airlockd");
    stream_response_.set(http::field::content_type, response.content_type);
    stream_response_.set(http::field::cache_control, "no-store");
    for (auto& h : response.headers) stream_response_.insert(h.name, h.value);
    stream_response_.keep_alive(false);
    stream_response_.chunked(true);
    serializer_.emplace(stream_response_);
    lowest().expires_after(server_.options.write_timeout);
    http::async_write_header(stream_, *serializer_, [self = this->shared_from_this()](error_code ec, size_t) {
      self->lowest().expires_never();
      if (ec) return self->abort_stream();
      self->watch_disconnect();
      self->pull_next();
    });
  }

  // The client sends nothing while it reads a stream; a read that ends means it went away.
  void watch_disconnect() {
    stream_.async_read_some(asio::buffer(discard_), [self = this->shared_from_this()](error_code ec, size_t n) {
      if (self->stream_done_) {
        if constexpr (kIsTls<Stream>) return self->shutdown_tls();  // end_stream() stopped this read
        if (ec || self->lingered_ > kLingerBytes) return self->close();
        self->lingered_ += n;
        return self->watch_disconnect();
      }
      if (ec) return self->abort_stream();
      self->lingered_ += n;
      if (self->lingered_ > kLingerBytes) return self->abort_stream();
      self->watch_disconnect();
    });
  }

  void pull_next() {
    if (stream_done_) return;
    auto self = this->shared_from_this();
    auto once = std::make_shared<std::atomic<bool>>(false);
    source_->pull([self, once](std::string data, bool end) {
      if (once->exchange(true)) return;  // a second delivery for one pull is a bug; ignore it
      asio::post(self->stream_.get_executor(),
                 [self, data = std::move(data), end]() mutable { self->write_chunk(std::move(data), end); });
    });
  }

  void write_chunk(std::string data, bool end) {
    if (stream_done_) return;
    chunk_ = std::move(data);
    lowest().expires_after(server_.options.write_timeout);
    auto after = [self = this->shared_from_this(), end](error_code ec, size_t) {
      self->lowest().expires_never();
      if (ec) return self->abort_stream();
      if (end) return self->end_stream();
      self->pull_next();
    };
    if (chunk_.empty()) {
      if (!end) return pull_next();
      return asio::async_write(stream_, http::make_chunk_last(), std::move(after));
    }
    if (end) {
      return asio::async_write(stream_, http::make_chunk(asio::buffer(chunk_)), [self = this->shared_from_this()](error_code ec, size_t) {
        if (ec) return self->abort_stream();
        self->write_chunk({}, true);
      });
    }
    asio::async_write(stream_, http::make_chunk(asio::buffer(chunk_)), std::move(after));
  }

  // The body is complete: half-close and let the pending disconnect watch (a read) see the client
  // close, or time out. Under TLS, close_notify cannot be written while that read owns the TLS
  // stream: the read is cancelled and its handler shuts TLS down.
  void end_stream() {
    stream_done_ = true;
    source_.reset();
    if constexpr (kIsTls<Stream>) {
      lowest().cancel();
      return;
    }
    error_code ignored;
    lowest().socket().shutdown(asio::socket_base::shutdown_send, ignored);
    lowest().expires_after(kLingerTime);
  }

  void abort_stream() {
    if (stream_done_) return;
    stream_done_ = true;
    if (source_) source_->cancel();
    source_.reset();
    close();
  }

  void linger() {
    if constexpr (kIsTls<Stream>) return shutdown_tls();  // reads and drops what comes until close_notify
    error_code ignored;
    lowest().socket().shutdown(asio::socket_base::shutdown_send, ignored);
    lowest().expires_after(kLingerTime);
    read_and_discard();
  }

  void read_and_discard() {
    stream_.async_read_some(asio::buffer(discard_), [self = this->shared_from_this()](error_code ec, size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kLingerBytes) return self->close();
      self->read_and_discard();
    });
  }

  // Errors, timeouts and idle connections at shutdown: a plain TCP close, even under TLS (a read may
  // be pending, and the client of a broken connection has nothing to learn from close_notify).
  void close() {
    error_code ignored;
    lowest().socket().shutdown(asio::socket_base::shutdown_both, ignored);
    lowest().close();
  }

  HttpServer::Impl& server_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::request_parser<http::buffer_body>> body_parser_;  // a streamed body (run_stream)
  std::vector<char> piece_;                   // the buffer of the body read under way
  size_t piece_asked_ = 0;                    // how much of it that read may fill
  std::optional<std::string> body_error_;     // why the streamed body cannot be read further
  std::optional<HttpResponse> body_failure_;  // the server's answer to a body at fault (413, 400)
  std::optional<HttpResponse> pending_response_;  // the handler's, waiting for a read to end
  bool reading_ = false, need_continue_ = false, client_gone_ = false, answered_ = false;
  std::mutex body_mu_;  // guards body_callback_, streamed_request_ and server_stopped_
  BodyReader::Callback body_callback_;
  uint64_t streamed_request_ = 0;  // bumped when a streamed request starts and when it is answered
  bool server_stopped_ = false;
  unsigned version_ = 11;  // the request's HTTP version (10 or 11), for the response
  HttpRequest head_;
  Admission admission_;
  http::response<http::string_body> response_;
  http::response<http::empty_body> continue_;
  std::shared_ptr<BodySource> source_;  // the body of a streamed response
  http::response<http::empty_body> stream_response_;
  std::optional<http::response_serializer<http::empty_body>> serializer_;
  std::string chunk_;
  bool stream_done_ = false;
  bool idle_ = true;
  bool head_request_ = false;
  bool close_after_write_ = false;
  size_t lingered_ = 0;
  std::array<char, 16 * 1024> discard_{};
  uint64_t id_;
};

}  // namespace

template <class Stream>
void HttpServer::Impl::start_session(Stream stream) {
  uint64_t id;
  {
    std::lock_guard guard(sessions_mu);
    if (sessions.size() >= options.max_connections) {
      log.warn("connection refused: " + std::to_string(sessions.size()) + " connections open (the maximum)");
      error_code ignored;
      beast::get_lowest_layer(stream).socket().close(ignored);
      return;
    }
    id = next_session_id++;
  }
  auto session = std::make_shared<Session<Stream>>(*this, std::move(stream), id);
  {
    std::lock_guard guard(sessions_mu);
    sessions.emplace(id, session);
  }
  session->start();
}

bool HttpServer::Impl::enlist(const std::shared_ptr<SessionBase>& session, uint64_t& id) {
  std::lock_guard guard(sessions_mu);
  if (draining) return false;
  id = next_session_id++;
  sessions.emplace(id, session);
  return true;
}

void HttpServer::Impl::forget(uint64_t id) {
  bool last;
  {
    std::lock_guard guard(sessions_mu);
    sessions.erase(id);
    last = sessions.empty();
  }
  if (last && draining && !destroying) {
    asio::post(accept_strand, [this] { grace_timer.cancel(); });
  }
}

template <class Protocol>
void HttpServer::Impl::accept_next(asio::basic_socket_acceptor<Protocol>& acceptor) {
  acceptor.async_accept(asio::make_strand(ioc), [this, &acceptor](error_code ec, typename Protocol::socket socket) {
    if (draining || !acceptor.is_open()) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: back off rather than spin on a failing accept.
      log.warn("accept: " + ec.message());
      auto timer = std::make_shared<asio::steady_timer>(accept_strand, std::chrono::milliseconds(100));
      timer->async_wait([this, &acceptor, timer](error_code) { accept_next(acceptor); });
      return;
    }
    if constexpr (std::is_same_v<Protocol, tcp>) {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // small JSON responses: no Nagle delay
      if (tls_context) {
        start_session(TlsStream(std::move(socket), *tls_context));
      } else {
        start_session(beast::tcp_stream(std::move(socket)));
      }
    } else {
      start_session(UnixStream(std::move(socket)));  // local and 0600: plain HTTP even with TLS files
    }
    accept_next(acceptor);
  });
}

Status HttpServer::Impl::listen_tcp(const ListenAddress& address) {
  error_code ec;
  tcp::endpoint endpoint;
  auto ip = asio::ip::make_address(address.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(ip, address.port);
  } else {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(address.host, std::to_string(address.port), ec);
    if (ec || results.empty()) return plain_error("resolve " + address.host + ": " + ec.message());
    endpoint = results.begin()->endpoint();
  }
  auto acceptor = std::make_unique<tcp::acceptor>(accept_strand);
  std::string where = "listen on " + address.host + ":" + std::to_string(address.port);
  acceptor->open(endpoint.protocol(), ec);
  if (ec) return Error{ec.value(), where + ": " + ec.message()};
  (void)acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  acceptor->bind(endpoint, ec);
  if (ec) return Error{ec.value(), where + ": " + ec.message()};
  acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{ec.value(), where + ": " + ec.message()};
  auto bound = acceptor->local_endpoint(ec);
  std::string host = bound.address().to_string();
  if (bound.address().is_v6()) host = "[" + host + "]";
  addresses.push_back((tls_context ? "https://" : "http://") + host + ":" + std::to_string(bound.port()));
  tcp_acceptors.push_back(std::move(acceptor));
  return {};
}

Status HttpServer::Impl::listen_unix(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return plain_error("unix socket path " + path + " is longer than " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    // A socket left by a daemon that died; the data dir's lock already ensured none is running.
    if (!S_ISSOCK(st.st_mode)) return plain_error("unix socket path " + path + " exists and is not a socket");
    if (::unlink(path.c_str()) != 0) return sys_error("unlink " + path);
  }
  error_code ec;
  auto acceptor = std::make_unique<local::acceptor>(accept_strand);
  std::string where = "listen on unix:" + path;
  acceptor->open(local(), ec);
  if (ec) return Error{ec.value(), where + ": " + ec.message()};
  acceptor->bind(local::endpoint(path), ec);
  if (ec) return Error{ec.value(), where + ": " + ec.message()};
  // Only root may connect (the data dir is 0700 too); the bearer key is still required.
  if (::chmod(path.c_str(), 0600) != 0) return sys_error("chmod " + path);
  acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{ec.value(), where + ": " + ec.message()};
  addresses.push_back("unix:" + path);
  unix_acceptor = std::move(acceptor);
  return {};
}

void HttpServer::Impl::begin_shutdown() {
  if (draining.exchange(true)) return;
  error_code ignored;
  signals.cancel(ignored);
  for (auto& a : tcp_acceptors) a->close(ignored);
  if (unix_acceptor) {
    unix_acceptor->close(ignored);
    if (options.unix_path) ::unlink(options.unix_path->c_str());
  }
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    std::lock_guard guard(sessions_mu);
    for (auto& [id, weak] : sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  log.info("shutting down: " + std::to_string(live.size()) + " connection(s) to finish");
  if (live.empty()) return;
  // Arm the grace timer before any session can finish: the last one to go cancels it (forget()
  // posts that cancel to this strand), and a cancel that ran before the timer was armed would be
  // lost, leaving shutdown to wait out the whole grace period.
  grace_timer.expires_after(options.shutdown_grace);
  grace_timer.async_wait([this](error_code ec) {
    if (ec) return;  // cancelled: every connection finished
    log.warn("shutdown grace period over; dropping the remaining connections");
    ioc.stop();
  });
  for (auto& s : live) s->drain();
  live.clear();
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

Result<std::unique_ptr<HttpServer>> HttpServer::create(HttpServerOptions options, HttpHandler& handler,
                                                       const Logger& log) {
  auto impl = std::make_unique<Impl>(std::move(options), handler, log);
  if (impl->options.tls) {
    TRY(impl->tls_context, make_tls_context(*impl->options.tls));
  }
  for (const auto& address : impl->options.tcp) TRY_STATUS(impl->listen_tcp(address));
  if (impl->options.unix_path) TRY_STATUS(impl->listen_unix(*impl->options.unix_path));
  if (impl->tcp_acceptors.empty() && !impl->unix_acceptor) return plain_error("nothing to listen on");
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

std::vector<std::string> HttpServer::addresses() const { return impl_->addresses; }

void HttpServer::run() {
  Impl& s = *impl_;
  asio::dispatch(s.accept_strand, [&s] {
    if (s.options.stop_on_signals) {
      s.signals.add(SIGTERM);
      s.signals.add(SIGINT);
      s.signals.async_wait([&s](error_code ec, int signo) {
        if (ec) return;
        s.log.info(std::string("received ") + (signo == SIGTERM ? "SIGTERM" : "SIGINT"));
        // begin_shutdown and the grace timer belong to the accept strand (see forget()).
        asio::post(s.accept_strand, [&s] { s.begin_shutdown(); });
      });
    }
    for (auto& a : s.tcp_acceptors) s.accept_next(*a);
    if (s.unix_acceptor) s.accept_next(*s.unix_acceptor);
  });
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < std::max(1u, s.options.threads); ++i) pool.emplace_back([&s] { s.ioc.run(); });
  s.ioc.run();
  for (auto& t : pool) t.join();
  // Handlers still working on other threads (a worker waiting for a body piece) are answered now:
  // whatever they posted to the stopped io_context will never run.
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    std::lock_guard guard(s.sessions_mu);
    for (auto& [id, weak] : s.sessions) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
  }
  for (auto& session : live) session->stopped();
}

void HttpServer::shutdown() {
  asio::post(impl_->accept_strand, [impl = impl_.get()] { impl->begin_shutdown(); });
}

}  // namespace airlock::daemon
