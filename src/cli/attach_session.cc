#include "cli/attach_session.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <thread>

#include "cli/daemon_socket.h"
#include "cli/fd_io.h"
#include "cli/query_string.h"
#include "cli/terminal.h"
#include "common/unique_fd.h"

namespace airlock::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::system::error_code;
using WsStream = websocket::stream<DaemonSocket>;

namespace {

constexpr const char* kSubprotocol = "airlock.attach.v1";
constexpr size_t kStdinChunk = 32 * 1024;        // well under the contract's 64 KiB per client frame
constexpr size_t kMaxQueuedBytes = 256 * 1024;   // stdin read pauses beyond this (backpressure)
constexpr size_t kMaxMessage = 16u << 20;        // from the daemon
constexpr auto kCloseGrace = std::chrono::seconds(2);

// Copies in_fd to out_fd until either ends. Runs on its own thread with every signal blocked, so
// that signals reach the Asio thread; it touches nothing but the two descriptors it owns.
void pump_stdin(int in_fd, int out_fd) {
  char buffer[kStdinChunk];
  for (;;) {
    ssize_t n = ::read(in_fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!write_all(out_fd, std::string_view(buffer, static_cast<size_t>(n))).ok()) break;
  }
  ::close(out_fd);
}

// Starts the pump; returns the pipe's read end (ours to watch with Asio).
Result<UniqueFd> start_stdin_pump() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return sys_error("pipe");
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &old);
  // Detached: it may sit in read(0) for ever (a terminal nobody types in); it ends with the process.
  std::thread(pump_stdin, STDIN_FILENO, fds[1]).detach();
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return UniqueFd(fds[0]);
}

class AttachRelay {
 public:
  AttachRelay(asio::io_context& io, WsStream& ws, const AttachOptions& options, ProcessEventPrinter& printer)
      : io_(io), ws_(ws), options_(options), printer_(printer), signals_(io), stdin_(io), grace_(io) {}

  Status run(std::optional<UniqueFd> stdin_pipe) {
    if (stdin_pipe) {
      stdin_.assign(stdin_pipe->release());
      read_stdin();
    }
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) signals_.add(sig);
    if (options_.tty) signals_.add(SIGWINCH);
    wait_signal();
    read_next();
    io_.run();
    return result_;
  }

 private:
  void finish(Status status) {
    if (done_) return;
    done_ = true;
    result_ = std::move(status);
    io_.stop();
  }

  void read_next() {
    ws_.async_read(read_buffer_, [this](error_code ec, size_t) { on_message(ec); });
  }

  void on_message(error_code ec) {
    if (ec) {
      if (printer_.exited()) return finish({});
      if (ec == websocket::error::closed) {
        auto reason = ws_.reason();
        return finish(plain_error("the daemon closed the attach session before the process exited (" +
                                  std::to_string(reason.code) + (reason.reason.empty() ? "" : " " + std::string(reason.reason.c_str())) + ")"));
      }
      return finish(plain_error("attach session: " + ec.message()));
    }
    std::string message = beast::buffers_to_string(read_buffer_.data());
    read_buffer_.consume(read_buffer_.size());
    if (ws_.got_binary()) {
      if (!message.empty() && (message[0] == 1 || message[0] == 2)) {
        auto written = printer_.write_output(message[0] == 2, std::string_view(message).substr(1));
        if (!written.ok()) return finish(std::move(written).error());
      }
    } else {
      auto event = nlohmann::json::parse(message, nullptr, /*allow_exceptions=*/false);
      if (event.is_discarded()) return finish(plain_error("malformed control message from the daemon"));
      std::string type = event.is_object() && event.contains("type") && event["type"].is_string()
                             ? event["type"].get<std::string>() : "";
      if (type == "error" && printer_.exited()) {
        // After the exit nothing more matters (a late stdin_closed for a keystroke, say).
      } else if (type != "attached") {
        auto handled = printer_.handle(event);
        if (!handled.ok()) return finish(std::move(handled).error());
      }
      if (type == "exit") {
        // The daemon closes with 1000 after `exit`; don't wait long for it.
        grace_.expires_after(kCloseGrace);
        grace_.async_wait([this](error_code timer_ec) {
          if (!timer_ec) finish({});
        });
      }
    }
    read_next();
  }

  void queue(bool text, std::string data) {
    queued_bytes_ += data.size();
    outbox_.push_back({text, std::move(data)});
    if (!writing_) write_next();
  }

  void write_next() {
    if (outbox_.empty() || done_) {
      writing_ = false;
      return;
    }
    writing_ = true;
    ws_.text(outbox_.front().text);
    ws_.async_write(asio::buffer(outbox_.front().data), [this](error_code ec, size_t) {
      if (ec) return finish(plain_error("attach session: " + ec.message()));
      queued_bytes_ -= outbox_.front().data.size();
      outbox_.pop_front();
      if (stdin_paused_ && queued_bytes_ < kMaxQueuedBytes) {
        stdin_paused_ = false;
        read_stdin();
      }
      write_next();
    });
  }

  void read_stdin() {
    stdin_.async_read_some(asio::buffer(stdin_buffer_ + 1, kStdinChunk), [this](error_code ec, size_t n) {
      if (ec) {
        // Our stdin ended: a terminal's end-of-input character for a PTY (the shell sees ^D at an
        // empty prompt), otherwise the process's stdin is closed, as with a pipe.
        if (options_.tty) {
          queue(false, std::string("\0\4", 2));
        } else {
          queue(true, R"({"type":"close_stdin"})");
        }
        return;
      }
      stdin_buffer_[0] = 0;  // channel 0: stdin
      queue(false, std::string(stdin_buffer_, n + 1));
      if (queued_bytes_ >= kMaxQueuedBytes) {
        stdin_paused_ = true;
      } else {
        read_stdin();
      }
    });
  }

  void wait_signal() {
    signals_.async_wait([this](error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGWINCH) {
        if (auto size = window_size(STDIN_FILENO)) {
          queue(true, dump_json({{"type", "resize"}, {"cols", size->cols}, {"rows", size->rows}}));
        }
      } else {
        std::string name = std::string("SIG") + ::sigabbrev_np(sig);
        queue(true, dump_json({{"type", "signal"}, {"signal", name}}));
      }
      wait_signal();
    });
  }

  struct Frame {
    bool text;
    std::string data;
  };

  asio::io_context& io_;
  WsStream& ws_;
  const AttachOptions& options_;
  ProcessEventPrinter& printer_;
  asio::signal_set signals_;
  asio::posix::stream_descriptor stdin_;
  asio::steady_timer grace_;
  beast::flat_buffer read_buffer_;
  char stdin_buffer_[kStdinChunk + 1];
  std::deque<Frame> outbox_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool stdin_paused_ = false;
  bool done_ = false;
  Status result_;
};

}  // namespace

Result<AttachOutcome> attach_process(const ApiClient& api, const std::string& sandbox_id, int pid,
                                     const AttachOptions& options, ProcessEventPrinter& printer) {
  std::string target = sandbox_target(sandbox_id, "/processes/" + std::to_string(pid) + "/attach");
  asio::io_context io(1);
  TRY(auto socket, connect_daemon(io, api.config().endpoint));
  WsStream ws(std::move(socket));
  ws.read_message_max(kMaxMessage);
  auto headers = api.auth_headers();
  ws.set_option(websocket::stream_base::decorator([&headers](websocket::request_type& req) {
    for (const auto& h : headers) req.set(h.name, h.value);
    req.set(beast::http::field::user_agent, "airlock-cli/0.1.0");
    req.set(beast::http::field::sec_websocket_protocol, kSubprotocol);
  }));
  error_code ec;
  ws.handshake(api.config().endpoint.host_header(), target, ec);
  if (ec == websocket::error::upgrade_declined) {
    // Beast 1.74 drops the refusal's body, and the daemon checks the Upgrade header before the
    // process: the process itself tells us why (sandbox or process gone, or it has exited).
    std::string process = sandbox_target(sandbox_id, "/processes/" + std::to_string(pid));
    TRY(auto reply, api.request("GET", process));
    if (!reply.ok()) return AttachOutcome{std::move(reply)};
    if (reply.body.is_object() && reply.body.value("state", "") == "exited") {
      reply.status = 409;
      reply.body = {{"error", {{"code", "process_not_running"}, {"message", "process " + std::to_string(pid) + " has exited"}}}};
      return AttachOutcome{std::move(reply)};
    }
    return plain_error("the daemon declined the WebSocket upgrade for process " + std::to_string(pid));
  }
  if (ec) return plain_error("attach to process " + std::to_string(pid) + ": " + ec.message());
  ws.binary(true);

  std::optional<UniqueFd> stdin_pipe;
  if (options.forward_stdin) {
    TRY(auto fd, start_stdin_pump());
    stdin_pipe = std::move(fd);
  }
  AttachRelay relay(io, ws, options, printer);
  TRY_STATUS(relay.run(std::move(stdin_pipe)));
  return AttachOutcome{};
}

}  // namespace airlock::cli
