#include "daemon/process.h"

#include <string.h>

#include <algorithm>
#include <csignal>

namespace airlock::daemon {

namespace proto = protocol::agent;

namespace {

constexpr uint64_t kWindow = proto::kInitialWindow;
constexpr uint64_t kGrantStep = kWindow / 4;  // credit is sent in steps of at least this much

std::string errno_name(uint32_t e) {
  const char* name = ::strerrorname_np(static_cast<int>(e));
  return name ? name : "E" + std::to_string(e);
}

}  // namespace

std::string_view kind_name(ProcessKind kind) {
  switch (kind) {
    case ProcessKind::kRun: return "run";
    case ProcessKind::kStream: return "stream";
    case ProcessKind::kBackground: return "background";
  }
  return "background";
}

Process::Process(uint32_t id, ProcessSpec spec, UnixMillis now, std::shared_ptr<AgentConnection> conn)
    : id_(id),
      spec_(std::move(spec)),
      started_at_(now),
      conn_(std::move(conn)),
      stdin_open_(true),  // every process starts with stdin open; launch() closes it unless asked
      granted_(kWindow),
      out_tail_(spec_.max_output),
      err_tail_(spec_.max_output) {}

// ---- agent events (hub thread) ------------------------------------------------------------------------

AgentSink::Verdict Process::on_message(const proto::Message& m) {
  std::vector<std::function<void()>> wake;
  Verdict verdict = Verdict::kMore;
  uint64_t credit = 0;
  bool quiet = false;  // no blocking waiter needs this change
  {
    std::lock_guard guard(mu_);
    switch (m.type) {
      case proto::Type::kStarted:
        if (started_) return Verdict::kViolation;
        started_ = true;
        pid_ = m.started.pid;
        // A run's only waiter sleeps until the end (see wait_started): waking it now would cost
        // a thread switch per command for nothing.
        if (spec_.kind == ProcessKind::kRun) quiet = true;
        break;
      case proto::Type::kExecFailed: {
        if (started_) return Verdict::kViolation;
        started_ = true;
        uint32_t e = m.exec_failed.errnum;
        finish_locked({"failed_to_start", e == ENOENT ? 127 : 126, 0,
                       "cannot execute " + spec_.argv.at(0).substr(0, 512) + ": " + errno_name(e), unix_millis_now()});
        verdict = Verdict::kDone;
        break;
      }
      case proto::Type::kError:
        if (!started_) {  // the Exec itself was refused (bad cwd, id in use...)
          started_ = true;
          std::string text(proto::to_string_view(m.error.message));
          finish_locked({"failed_to_start", 126, 0, errno_name(m.error.code) + ": " + text.substr(0, 1024),
                         unix_millis_now()});
          verdict = Verdict::kDone;
        }
        // A probe after a restart (see SandboxManager::adopt_processes) found it gone: its Exited
        // went to the daemon that died.
        else if (m.error.code == ESRCH && !end_) {
          finish_locked({"exited", 255, 0, "it ended while the daemon was down; its exit status was lost",
                         unix_millis_now()});
          verdict = Verdict::kDone;
        }
        // Otherwise about a Stdin/Signal that raced with the exit: nothing to do.
        break;
      case proto::Type::kOutput: {
        if (!started_ || end_) return Verdict::kViolation;
        uint32_t n = m.output.data.size;
        if (end_offset_ + n > granted_) return Verdict::kViolation;  // beyond the window it was given
        std::string data(reinterpret_cast<const char*>(m.output.data.data), n);
        int stream = static_cast<int>(m.output.stream);
        if (spec_.kind == ProcessKind::kRun) (stream == 2 ? err_tail_ : out_tail_).append(data);
        if (on_output_) on_output_(pid_, stream, data);
        ring_.push_back({end_offset_, stream, std::move(data)});
        ring_size_ += n;
        end_offset_ += n;
        while (ring_size_ > spec_.ring_bytes) {  // drop the oldest bytes (a chunk may be cut)
          OutputChunk& front = ring_.front();
          size_t excess = ring_size_ - spec_.ring_bytes;
          if (front.data.size() <= excess) {
            ring_size_ -= front.data.size();
            ring_.pop_front();
          } else {
            front.data.erase(0, excess);
            front.offset += excess;
            ring_size_ -= excess;
          }
        }
        start_offset_ = ring_.empty() ? end_offset_ : ring_.front().offset;
        // Background and run: the daemon takes everything, so the process never waits on it.
        if ((spec_.kind != ProcessKind::kStream || released_) && end_offset_ + kWindow - granted_ >= kGrantStep) {
          credit = end_offset_ + kWindow - granted_;
          granted_ += credit;
        }
        break;
      }
      case proto::Type::kExited: {
        if (!started_ || end_) return Verdict::kViolation;
        const auto& x = m.exited;
        ProcessEnd e;
        e.ended_at = unix_millis_now();
        if (x.reason == 1) {
          e.reason = "timeout";
          e.exit_code = 124;
          e.signal = SIGKILL;
        } else if (x.code < 0) {
          e.reason = "signaled";
          e.signal = static_cast<int>(x.signal);
          e.exit_code = std::min(255, 128 + e.signal);
        } else {
          e.reason = "exited";
          e.exit_code = x.code;
        }
        finish_locked(std::move(e));
        verdict = Verdict::kDone;
        break;
      }
      default:
        return Verdict::kViolation;
    }
    if (!quiet) cv_.notify_all();
    wake_locked(wake);
  }
  if (credit) grant(credit);
  for (auto& fn : wake) fn();
  return verdict;
}

void Process::on_disconnect(const Error& why) {
  std::vector<std::function<void()>> wake;
  {
    std::lock_guard guard(mu_);
    if (!started_) {
      started_ = true;
      finish_locked({"failed_to_start", 126, 0, "the agent connection was lost: " + why.message, unix_millis_now()});
    }
    // A started process keeps running in the sandbox; the manager reconnects and re-registers it.
    cv_.notify_all();
    wake_locked(wake);
  }
  for (auto& fn : wake) fn();
}

void Process::finish_locked(ProcessEnd end) {
  if (end_) return;
  end_ = std::move(end);
  stdin_open_ = false;
  if (on_end_) {
    auto fn = std::move(on_end_);
    on_end_ = nullptr;
    pending_end_ = [this, fn = std::move(fn)] { fn(*this); };
  }
}

void Process::wake_locked(std::vector<std::function<void()>>& out) {
  if (pending_end_) out.push_back(std::exchange(pending_end_, nullptr));
  for (auto& [token, fn] : waiters_) out.push_back(std::move(fn));
  waiters_.clear();
}

void Process::grant(uint64_t bytes) {
  std::shared_ptr<AgentConnection> conn;
  {
    std::lock_guard guard(mu_);
    conn = conn_;
  }
  if (!conn) return;
  while (bytes > 0) {
    uint32_t step = static_cast<uint32_t>(std::min<uint64_t>(bytes, 1u << 30));
    proto::Message m{};
    m.type = proto::Type::kCredit;
    m.id = id_;
    m.credit = {step};
    auto frame = proto::encode_frame(m);
    if (frame.ok()) conn->send_control(std::move(frame).value());
    bytes -= step;
  }
}

// ---- state --------------------------------------------------------------------------------------------

uint32_t Process::pid() const {
  std::lock_guard guard(mu_);
  return pid_;
}
bool Process::started() const {
  std::lock_guard guard(mu_);
  return started_;
}
bool Process::exited() const {
  std::lock_guard guard(mu_);
  return end_.has_value();
}
std::optional<ProcessEnd> Process::end() const {
  std::lock_guard guard(mu_);
  return end_;
}
bool Process::stdin_open() const {
  std::lock_guard guard(mu_);
  return stdin_open_;
}
Process::BufferInfo Process::buffer() const {
  std::lock_guard guard(mu_);
  return {start_offset_, end_offset_};
}

bool Process::wait_started(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (spec_.kind == ProcessKind::kRun) {
    // The caller waits for the end next: sleep until the end, or the timeout, and only then ask
    // whether it started. One wake-up per short command instead of two (Started, then Exited).
    cv_.wait_for(lock, timeout, [&] { return end_.has_value(); });
    return started_;
  }
  return cv_.wait_for(lock, timeout, [&] { return started_; });
}

bool Process::wait_exit(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return end_.has_value(); });
}

uint64_t Process::notify(uint64_t since_offset, std::function<void()> fn) {
  {
    std::lock_guard guard(mu_);
    if (since_offset >= end_offset_ && !end_) {
      uint64_t token = next_token_++;
      waiters_.emplace_back(token, std::move(fn));
      return token;
    }
  }
  fn();
  return 0;
}

void Process::cancel_notify(uint64_t token) {
  std::lock_guard guard(mu_);
  std::erase_if(waiters_, [token](const auto& w) { return w.first == token; });
}

Process::Read Process::read(uint64_t offset, size_t max_bytes) const {
  std::lock_guard guard(mu_);
  Read r;
  if (offset < start_offset_) {
    r.gap_offset = offset;
    r.gap_length = start_offset_ - offset;
    offset = start_offset_;
  }
  offset = std::min(offset, end_offset_);
  size_t taken = 0;
  for (const auto& chunk : ring_) {
    uint64_t chunk_end = chunk.offset + chunk.data.size();
    if (chunk_end <= offset) continue;
    if (taken >= max_bytes) break;
    size_t skip = static_cast<size_t>(offset - chunk.offset);
    size_t len = std::min(chunk.data.size() - skip, max_bytes - taken);
    r.chunks.push_back({offset, chunk.stream, chunk.data.substr(skip, len)});
    offset += len;
    taken += len;
  }
  r.next = offset;
  r.ended = end_.has_value() && offset >= end_offset_;
  return r;
}

void Process::consumed(uint64_t offset) {
  uint64_t credit = 0;
  {
    std::lock_guard guard(mu_);
    if (spec_.kind != ProcessKind::kStream || end_) return;
    offset = std::min(offset, end_offset_);
    if (offset + kWindow >= granted_ + kGrantStep) {
      credit = offset + kWindow - granted_;
      granted_ += credit;
    }
  }
  if (credit) grant(credit);
}

void Process::release() {
  uint64_t credit = 0;
  {
    std::lock_guard guard(mu_);
    if (released_ || end_) return;
    released_ = true;
    credit = end_offset_ + kWindow - granted_;
    granted_ += credit;
  }
  if (credit) grant(credit);
}

CommandOutcome Process::outcome() {
  std::lock_guard guard(mu_);
  CommandOutcome o;
  o.process_id = id_;
  o.pid = pid_;
  if (end_) {
    o.exit_code = end_->exit_code;
    o.signal = end_->signal;
    o.timed_out = end_->reason == "timeout";
  }
  o.stdout_bytes = out_tail_.total();
  o.stderr_bytes = err_tail_.total();
  o.stdout_truncated = out_tail_.truncated();
  o.stderr_truncated = err_tail_.truncated();
  o.stdout_tail = out_tail_.take();
  o.stderr_tail = err_tail_.take();
  return o;
}

// ---- control ------------------------------------------------------------------------------------------

void Process::set_connection(std::shared_ptr<AgentConnection> conn) {
  std::lock_guard guard(mu_);
  conn_ = std::move(conn);
  // The agent starts every process with a fresh window on a new connection.
  granted_ = end_offset_ + kWindow;
}

Status Process::send_stdin(std::string_view data, bool close_after) {
  std::shared_ptr<AgentConnection> conn;
  {
    std::lock_guard guard(mu_);
    if (!stdin_open_) return Error{EPIPE, "stdin is closed"};
    conn = conn_;
  }
  if (!conn) return Error{EPIPE, "agent connection is closed"};
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), proto::kMaxChunk);
    proto::Message m{};
    m.type = proto::Type::kStdin;
    m.id = id_;
    m.input = {reinterpret_cast<const uint8_t*>(data.data()), static_cast<uint32_t>(n)};
    TRY_STATUS(conn->send(m));
    data.remove_prefix(n);
  }
  if (close_after) return close_stdin();
  return {};
}

Status Process::close_stdin() {
  std::shared_ptr<AgentConnection> conn;
  {
    std::lock_guard guard(mu_);
    if (!stdin_open_) return {};
    stdin_open_ = false;
    if (end_) return {};
    conn = conn_;
  }
  if (!conn) return {};
  proto::Message m{};
  m.type = proto::Type::kCloseStdin;
  m.id = id_;
  return conn->send(m);
}

Status Process::signal(int sig, bool process_group) {
  std::shared_ptr<AgentConnection> conn;
  {
    std::lock_guard guard(mu_);
    if (end_) return {};
    conn = conn_;
  }
  if (!conn) return Error{EPIPE, "agent connection is closed"};
  proto::Message m{};
  m.type = proto::Type::kSignal;
  m.flags = process_group ? proto::kFlagGroup : 0;
  m.id = id_;
  m.signal = {static_cast<uint32_t>(sig)};
  return conn->send(m);
}

Status Process::resize(uint16_t cols, uint16_t rows) {
  std::shared_ptr<AgentConnection> conn;
  {
    std::lock_guard guard(mu_);
    if (end_) return {};
    conn = conn_;
  }
  if (!conn) return Error{EPIPE, "agent connection is closed"};
  proto::Message m{};
  m.type = proto::Type::kResize;
  m.id = id_;
  m.resize = {rows, cols};
  return conn->send(m);
}

void Process::mark_sandbox_stopped(UnixMillis now) {
  std::vector<std::function<void()>> wake;
  {
    std::lock_guard guard(mu_);
    started_ = true;
    finish_locked({"sandbox_stopped", 137, SIGKILL, std::nullopt, now});
    cv_.notify_all();
    wake_locked(wake);
  }
  for (auto& fn : wake) fn();
}

void Process::restore(uint32_t pid, std::optional<ProcessEnd> end, bool stdin_open) {
  std::lock_guard guard(mu_);
  started_ = true;
  pid_ = pid;
  stdin_open_ = stdin_open;
  if (end) finish_locked(std::move(*end));
}

void Process::on_output(std::function<void(uint32_t, int, std::string_view)> fn) {
  std::lock_guard guard(mu_);
  on_output_ = std::move(fn);
}

void Process::on_end(std::function<void(Process&)> fn) {
  std::lock_guard guard(mu_);
  on_end_ = std::move(fn);
}

}  // namespace airlock::daemon
