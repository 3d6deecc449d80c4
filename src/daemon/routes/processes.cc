// Commands that stream and background processes: POST .../commands/stream, /processes (start, list),
// /processes/{pid} (get, wait, output, stdin, stdin/close, signal, resize, attach over WebSocket).
// Streams are pulled by the HTTP server as the client reads (process_stream.h); waits are deferred
// responses, so no thread is held while a client waits.
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "daemon/base64.h"
#include "daemon/body_reader.h"
#include "daemon/idempotency.h"
#include "daemon/json_body.h"
#include "daemon/process_stream.h"
#include "daemon/routes/routes.h"
#include "daemon/sandbox_manager.h"

namespace airlock::daemon {
namespace {

constexpr size_t kRawStdinLimit = size_t{1} << 30;  // streamed to the process, never held whole

struct Deps {
  SandboxManager& sandboxes;
  Timers& timers;
};

ApiError bad_field(std::string field, std::string message) {
  return api_error(ErrorCode::kInvalidField, field + " " + message).with_field(field);
}

EventFormat format_for(const RequestContext& ctx, bool base64) {
  EventFormat f;
  auto accept = ctx.request.header("Accept");
  f.sse = accept && accept->find("text/event-stream") != std::string_view::npos;
  f.base64 = base64;
  return f;
}

HttpResponse stream_response(std::shared_ptr<BodySource> source, const EventFormat& format) {
  HttpResponse r;
  r.content_type = format.sse ? "text/event-stream" : "application/x-ndjson";
  r.stream = std::move(source);
  return r;
}

ApiResult<int64_t> pid_param(const RequestContext& ctx) {
  std::string_view text = ctx.params.get("pid");
  int64_t pid = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (ec != std::errc() || end != text.data() + text.size() || pid < 1 || pid > 4194304) {
    return api_error(ErrorCode::kProcessNotFound, "process " + std::string(text.substr(0, 16)) + " not found");
  }
  return pid;
}

ApiResult<std::shared_ptr<Process>> find_process(Deps& d, const RequestContext& ctx) {
  API_TRY(int64_t pid, pid_param(ctx));
  return d.sandboxes.process(ctx.principal.tenant, ctx.params.get("sandbox_id"), pid);
}

ApiResult<bool> base64_query(const RequestContext& ctx) {
  auto e = ctx.query.get("encoding");
  if (!e || *e == "utf-8") return false;
  if (*e == "base64") return true;
  return api_error(ErrorCode::kInvalidParameter, "encoding must be utf-8 or base64").with_field("encoding");
}

// --- handlers -------------------------------------------------------------------------------------------

ApiResult<HttpResponse> stream_command(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto existing, d.sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  (void)existing;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  API_TRY(auto request, parse_run_command(body, CommandBody::kStream));
  API_TRY(auto process, d.sandboxes.start(ctx.principal.tenant, ctx.params.get("sandbox_id"), request, ProcessKind::kStream));
  ProcessEventSource::Options options;
  options.emit_start = true;
  options.kill_on_cancel = true;
  options.format = format_for(ctx, request.base64_output);
  return stream_response(std::make_shared<ProcessEventSource>(process, options, d.timers), options.format);
}

ApiResult<HttpResponse> start_process(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto existing, d.sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  (void)existing;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  API_TRY(auto request, parse_run_command(body, CommandBody::kStart));
  API_TRY(auto process, d.sandboxes.start(ctx.principal.tenant, ctx.params.get("sandbox_id"), request,
                                          ProcessKind::kBackground));
  HttpResponse r = json_response(201, process_json(*process));
  r.with_header("Location", "/v1/sandboxes/" + std::string(ctx.params.get("sandbox_id")) + "/processes/" +
                                std::to_string(std::max<uint32_t>(process->pid(), 1)));
  return r;
}

ApiResult<HttpResponse> list_processes(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"state"})) return *error;
  auto state = ctx.query.get("state");
  if (state && *state != "running" && *state != "exited") {
    return api_error(ErrorCode::kInvalidParameter, "state must be running or exited").with_field("state");
  }
  API_TRY(auto list, d.sandboxes.processes(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  nlohmann::json items = nlohmann::json::array();
  for (auto& p : list) {
    if (state && (*state == "running") == p->exited()) continue;
    items.push_back(process_json(*p));
  }
  return json_response(200, {{"processes", std::move(items)}});
}

ApiResult<HttpResponse> get_process(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto process, find_process(d, ctx));
  return json_response(200, process_json(*process));
}

ApiResult<HttpResponse> wait_process(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"timeout"})) return *error;
  API_TRY(double seconds, wait_timeout_seconds(ctx.query));
  API_TRY(auto process, find_process(d, ctx));
  if (process->exited() || seconds == 0) return json_response(200, process_json(*process));
  HttpResponse r;
  Timers& timers = d.timers;
  r.deferred = [process, &timers, seconds](std::function<void(HttpResponse)> done) {
    struct State {
      std::atomic<bool> fired{false};
      std::atomic<uint64_t> timer{0};
    };
    auto state = std::make_shared<State>();
    auto finish = [state, process, done, &timers] {
      if (state->fired.exchange(true)) return;
      if (uint64_t t = state->timer.exchange(0)) timers.cancel(t);
      done(json_response(200, process_json(*process)));
    };
    state->timer = timers.after(std::chrono::milliseconds(std::llround(seconds * 1000)), finish);
    // notify() fires on output too: re-arm until the process has ended.
    auto watch = std::make_shared<std::function<void()>>();
    *watch = [process, finish, state, weak = std::weak_ptr<std::function<void()>>(watch)] {
      if (state->fired) return;
      if (process->exited()) return finish();
      if (auto again = weak.lock()) process->notify(process->buffer().end, [again] { (*again)(); });
    };
    // The watcher keeps itself alive through the process's waiter list until it fires.
    process->notify(process->buffer().end, [watch] { (*watch)(); });
  };
  return r;
}

ApiResult<HttpResponse> process_output(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"offset", "follow", "encoding"})) return *error;
  API_TRY(auto offset, ctx.query.integer("offset", 0, 9007199254740991));
  API_TRY(auto follow, ctx.query.boolean("follow"));
  API_TRY(bool base64, base64_query(ctx));
  if (auto last = ctx.request.header("Last-Event-ID")) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(last->data(), last->data() + last->size(), v);
    if (ec != std::errc() || end != last->data() + last->size() || v < 0) {
      return api_error(ErrorCode::kInvalidParameter, "Last-Event-ID must be a byte offset").with_field("Last-Event-ID");
    }
    offset = v;
  }
  API_TRY(auto process, find_process(d, ctx));
  ProcessEventSource::Options options;
  options.offset = offset ? static_cast<uint64_t>(*offset) : process->buffer().start;
  options.follow = follow.value_or(true);
  options.format = format_for(ctx, base64);
  return stream_response(std::make_shared<ProcessEventSource>(process, options, d.timers), options.format);
}

// Raw bytes (application/octet-stream) go to the process piece by piece as they arrive: the daemon
// holds at most two pieces, and a process that reads slowly slows the client (backpressure through
// the agent connection). A JSON body is read whole (at most 1 MiB).
ApiResult<HttpResponse> stream_stdin(Process& process, BlockingBodyReader& body) {
  if (!process.stdin_open()) return api_error(ErrorCode::kStdinClosed, "the process's stdin is closed");
  while (true) {
    API_TRY(auto piece, body.next());
    if (piece.empty()) break;
    if (auto sent = process.send_stdin(piece, false); !sent.ok()) {
      if (process.exited()) return api_error(ErrorCode::kProcessNotRunning, "the process has exited");
      return api_error(ErrorCode::kStdinClosed, "stdin: " + sent.error().message);
    }
  }
  return json_response(200, {{"bytes_written", body.bytes_read()}, {"stdin_open", process.stdin_open()}});
}

ApiResult<HttpResponse> send_stdin(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto process, find_process(d, ctx));
  std::string data;
  bool close = false;
  auto type = ctx.request.header("Content-Type");
  BlockingBodyReader reader(*ctx.body);  // the route streams its body (BodyKind::kStream)
  if (type && is_json_media_type(*type)) {
    auto text = reader.read_all(kDefaultBodyLimit);
    if (!text.ok() && text.error().code == ErrorCode::kPayloadTooLarge) {
      return api_error(ErrorCode::kPayloadTooLarge, "a JSON body is at most 1 MiB; send raw bytes as application/octet-stream")
          .with_details({{"limit_bytes", kDefaultBodyLimit}});
    }
    if (!text.ok()) return text.error();
    API_TRY(auto body, parse_json_object(text.value()));
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (it.key() != "data" && it.key() != "encoding" && it.key() != "close") return bad_field(it.key(), "is not a known field");
    }
    if (!body.contains("data") || !body["data"].is_string()) return bad_field("data", "must be a string");
    std::string encoding = "utf-8";
    if (body.contains("encoding")) {
      if (!body["encoding"].is_string() || (body["encoding"] != "utf-8" && body["encoding"] != "base64")) {
        return bad_field("encoding", "must be utf-8 or base64");
      }
      encoding = body["encoding"].get<std::string>();
    }
    if (body.contains("close")) {
      if (!body["close"].is_boolean()) return bad_field("close", "must be a boolean");
      close = body["close"].get<bool>();
    }
    data = body["data"].get<std::string>();
    if (encoding == "base64") {
      auto decoded = base64_decode(data);
      if (!decoded) return bad_field("data", "is not valid base64");
      data = std::move(*decoded);
    }
  } else if (type && type->starts_with("application/octet-stream")) {
    return stream_stdin(*process, reader);
  } else {
    return api_error(ErrorCode::kUnsupportedMediaType, "send application/json or application/octet-stream");
  }
  if (!process->stdin_open()) {
    return api_error(ErrorCode::kStdinClosed, "the process's stdin is closed");
  }
  if (auto sent = process->send_stdin(data, close); !sent.ok()) {
    if (process->exited()) return api_error(ErrorCode::kProcessNotRunning, "the process has exited");
    return api_error(ErrorCode::kStdinClosed, "stdin: " + sent.error().message);
  }
  return json_response(200, {{"bytes_written", data.size()}, {"stdin_open", process->stdin_open()}});
}

ApiResult<HttpResponse> close_stdin(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto process, find_process(d, ctx));
  (void)process->close_stdin();
  return json_response(200, process_json(*process));
}

ApiResult<HttpResponse> signal_process(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto process, find_process(d, ctx));
  API_TRY(auto body, parse_json_object(ctx.request.body));
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "signal" && it.key() != "process_group") return bad_field(it.key(), "is not a known field");
  }
  if (!body.contains("signal") || !body["signal"].is_string()) return bad_field("signal", "must be a signal name such as SIGTERM");
  int sig = signal_number(body["signal"].get<std::string>());
  if (!sig) return bad_field("signal", "must be one of SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGKILL, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCONT, SIGSTOP, SIGTSTP, SIGWINCH");
  bool group = true;
  if (body.contains("process_group")) {
    if (!body["process_group"].is_boolean()) return bad_field("process_group", "must be a boolean");
    group = body["process_group"].get<bool>();
  }
  if (process->exited()) return api_error(ErrorCode::kProcessNotRunning, "the process has exited");
  if (auto sent = process->signal(sig, group); !sent.ok()) {
    return api_error(ErrorCode::kAgentError, "signal: " + sent.error().message);
  }
  return json_response(200, process_json(*process));
}

ApiResult<HttpResponse> resize_process(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto process, find_process(d, ctx));
  API_TRY(auto body, parse_json_object(ctx.request.body));
  int64_t size[2] = {0, 0};
  const char* names[2] = {"cols", "rows"};
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "cols" && it.key() != "rows") return bad_field(it.key(), "is not a known field");
  }
  for (int i = 0; i < 2; ++i) {
    if (!body.contains(names[i]) || !body[names[i]].is_number_integer()) return bad_field(names[i], "must be an integer from 1 to 1000");
    size[i] = body[names[i]].get<int64_t>();
    if (size[i] < 1 || size[i] > 1000) return bad_field(names[i], "must be an integer from 1 to 1000");
  }
  if (!process->spec().pty) return api_error(ErrorCode::kNotATty, "the process has no pseudo-terminal");
  if (process->exited()) return api_error(ErrorCode::kProcessNotRunning, "the process has exited");
  (void)process->resize(static_cast<uint16_t>(size[0]), static_cast<uint16_t>(size[1]));
  return json_response(200, process_json(*process));
}

// --- WebSocket attach -----------------------------------------------------------------------------------

// Bytes out as binary frames (channel byte + data), control as JSON text frames (the contract's
// attachProcess). Output is read from the process's ring at the peer's pace: a peer with more than
// kHighWater queued is not sent more until it drains (and then gets a `gap` if it fell behind).
class AttachSession final : public WebSocketHandler, public std::enable_shared_from_this<AttachSession> {
 public:
  static constexpr size_t kHighWater = 256 * 1024;

  AttachSession(std::shared_ptr<Process> process, uint64_t offset) : process_(std::move(process)), offset_(offset) {}

  void on_open(std::shared_ptr<WebSocketPeer> peer) override {
    {
      std::lock_guard guard(mu_);
      peer_ = peer;
    }
    peer->send(nlohmann::json({{"type", "attached"}, {"pid", std::max<uint32_t>(process_->pid(), 1)}, {"offset", offset_}})
                   .dump(),
               false);
    pump();
  }

  void on_message(std::string data, bool binary) override {
    if (binary) {
      if (data.empty() || data[0] != 0) return fail(1008, "invalid_frame", "binary frames from the client carry channel 0 (stdin)");
      if (!process_->stdin_open()) return send_error("stdin_closed", "the process's stdin is closed");
      if (data.size() > 1 && !process_->send_stdin(std::string_view(data).substr(1), false).ok()) {
        send_error("stdin_closed", "the process's stdin is closed");
      }
      return;
    }
    auto msg = nlohmann::json::parse(data, nullptr, false);
    if (msg.is_discarded() || !msg.is_object() || !msg.contains("type") || !msg["type"].is_string()) {
      return fail(1008, "invalid_frame", "control frames are JSON objects with a type");
    }
    std::string type = msg["type"].get<std::string>();
    if (type == "resize") {
      auto cols = msg.value("cols", 0), rows = msg.value("rows", 0);
      if (cols < 1 || cols > 1000 || rows < 1 || rows > 1000) return fail(1008, "invalid_frame", "resize needs cols and rows from 1 to 1000");
      (void)process_->resize(static_cast<uint16_t>(cols), static_cast<uint16_t>(rows));
    } else if (type == "signal") {
      int sig = msg.contains("signal") && msg["signal"].is_string() ? signal_number(msg["signal"].get<std::string>()) : 0;
      if (!sig) return fail(1008, "invalid_frame", "signal needs a signal name");
      (void)process_->signal(sig);
    } else if (type == "close_stdin") {
      (void)process_->close_stdin();
    } else {
      fail(1008, "invalid_frame", "unknown control type " + type.substr(0, 40));
    }
  }

  void on_writable() override { pump(); }

  void on_close() override {
    std::lock_guard guard(mu_);
    closed_ = true;
    peer_.reset();
    if (token_) process_->cancel_notify(std::exchange(token_, 0));
  }

 private:
  void send_error(const std::string& code, const std::string& message) {
    std::shared_ptr<WebSocketPeer> peer;
    {
      std::lock_guard guard(mu_);
      peer = peer_;
    }
    if (peer) peer->send(nlohmann::json({{"type", "error"}, {"error", {{"code", code}, {"message", message}}}}).dump(), false);
  }
  void fail(uint16_t code, const std::string& error_code, const std::string& message) {
    send_error(error_code, message);
    std::lock_guard guard(mu_);
    if (peer_) peer_->close(code, message.substr(0, 100));
  }

  // Sends what the ring has for this peer while it has room; then waits for output or room.
  void pump() {
    std::unique_lock lock(mu_);
    if (closed_ || !peer_ || done_) return;
    auto peer = peer_;
    while (peer->buffered() < kHighWater) {
      auto read = process_->read(offset_, 64 * 1024);
      if (read.gap_length) {
        peer->send(nlohmann::json({{"type", "gap"}, {"offset", read.gap_offset}, {"length", read.gap_length}}).dump(), false);
      }
      for (auto& c : read.chunks) {
        std::string frame(1, static_cast<char>(c.stream == 2 ? 2 : 1));
        frame += c.data;
        peer->send(std::move(frame), true);
      }
      offset_ = read.next;
      if (read.ended) {
        done_ = true;
        peer->send(exit_event_json(*process_).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), false);
        peer->close(1000, "process exited");
        return;
      }
      if (read.chunks.empty() && !read.gap_length) {
        uint64_t at = offset_;
        auto weak = weak_from_this();
        lock.unlock();
        uint64_t token = process_->notify(at, [weak] {
          if (auto self = weak.lock()) self->pump();
        });
        lock.lock();
        if (token) token_ = token;
        return;
      }
    }
    // Full: on_writable() resumes once the peer drains.
  }

  std::shared_ptr<Process> process_;
  std::mutex mu_;  // guards everything below
  std::shared_ptr<WebSocketPeer> peer_;
  uint64_t offset_;
  uint64_t token_ = 0;
  bool closed_ = false, done_ = false;
};

ApiResult<HttpResponse> attach_process(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"offset"})) return *error;
  API_TRY(auto offset, ctx.query.integer("offset", 0, 9007199254740991));
  auto upgrade = ctx.request.header("Upgrade");
  if (!upgrade || !ascii_iequals(*upgrade, "websocket")) {
    return api_error(ErrorCode::kUpgradeRequired, "this route needs a WebSocket upgrade (Upgrade: websocket)")
        .with_header("Upgrade", "websocket");
  }
  API_TRY(auto process, find_process(d, ctx));
  HttpResponse r;
  r.status = 101;
  r.websocket = std::make_shared<AttachSession>(process, offset ? static_cast<uint64_t>(*offset) : process->buffer().start);
  if (auto protocols = ctx.request.header("Sec-WebSocket-Protocol");
      protocols && protocols->find("airlock.attach.v1") != std::string_view::npos) {
    r.websocket_protocol = "airlock.attach.v1";
  }
  return r;
}

}  // namespace

void add_process_routes(Router& router, SandboxManager& sandboxes, Timers& timers, IdempotencyStore& idempotency) {
  auto deps = std::make_shared<Deps>(Deps{sandboxes, timers});
  auto route = [&](std::string method, std::string pattern, BodyKind body, bool blocking,
                   ApiResult<HttpResponse> (*fn)(Deps&, const RequestContext&), size_t limit = kDefaultBodyLimit) {
    Route r{std::move(method), std::move(pattern), Access::kTenant, body, limit,
            [deps, fn](const RequestContext& ctx) { return fn(*deps, ctx); }};
    r.blocking = blocking;
    router.add(std::move(r));
  };
  const std::string base = "/v1/sandboxes/{sandbox_id}";
  route("POST", base + "/commands/stream", BodyKind::kJson, true, stream_command);
  {  // Idempotency-Key: a retry returns the process already started (idempotency.h)
    Route r{"POST", base + "/processes", Access::kTenant, BodyKind::kJson, kDefaultBodyLimit,
            with_idempotency(idempotency, start_process_operation(),
                             [deps](const RequestContext& ctx) { return start_process(*deps, ctx); })};
    r.blocking = true;
    router.add(std::move(r));
  }
  route("GET", base + "/processes", BodyKind::kNone, false, list_processes);
  route("GET", base + "/processes/{pid}", BodyKind::kNone, false, get_process);
  route("GET", base + "/processes/{pid}/wait", BodyKind::kNone, false, wait_process);
  route("GET", base + "/processes/{pid}/output", BodyKind::kNone, false, process_output);
  route("POST", base + "/processes/{pid}/stdin", BodyKind::kStream, true, send_stdin, kRawStdinLimit);
  route("POST", base + "/processes/{pid}/stdin/close", BodyKind::kNone, true, close_stdin);
  route("POST", base + "/processes/{pid}/signal", BodyKind::kJson, true, signal_process);
  route("POST", base + "/processes/{pid}/resize", BodyKind::kJson, true, resize_process);
  route("GET", base + "/processes/{pid}/attach", BodyKind::kNone, false, attach_process);
}

}  // namespace airlock::daemon
