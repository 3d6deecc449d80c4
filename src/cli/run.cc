// `airlock run`: one sandbox, one command, no daemon. Creates the sandbox through the engine,
// relays stdio (pipes, or a pty with -t), forwards signals, enforces --timeout, then reports
// how the command ended and removes everything the sandbox made.
#include "cli/run.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <climits>
#include <optional>
#include <string>

#include "cli/run_options.h"
#include "common/units.h"
#include "engine/sandbox.h"
#include "protocol/init_messages.h"

namespace airlock::cli {
namespace {

constexpr int kExitTimeout = 124;
constexpr int kExitAirlockError = 125;
constexpr int kExitKilled = 137;

void message(const std::string& text) { std::fprintf(stderr, "airlock: %s\n", text.c_str()); }

std::string engine_path_near_self(const char* name) {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return name;
  self[n] = '\0';
  std::string dir(self);
  dir.resize(dir.rfind('/'));
  std::string sibling = dir + "/" + name;
  if (::access(sibling.c_str(), X_OK) == 0) return sibling;
  std::string libexec = dir + "/../libexec/airlock/" + name;
  if (::access(libexec.c_str(), X_OK) == 0) return libexec;
  return sibling;
}

EngineConfig engine_config() {
  EngineConfig config;
  if (const char* dir = std::getenv("AIRLOCK_DATA_DIR"); dir && *dir) config.data_dir = dir;
  if (const char* dir = std::getenv("AIRLOCK_RUN_DIR"); dir && *dir) config.run_dir = dir;
  const char* init = std::getenv("AIRLOCK_INIT");
  config.init_path = init && *init ? init : engine_path_near_self("airlock-init");
  return config;
}

// Puts the user's terminal in raw mode for -t and restores it on every way out.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (!::isatty(fd) || ::tcgetattr(fd, &saved_) != 0) return;
    struct termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
  }

 private:
  int fd_;
  struct termios saved_ = {};
  bool active_ = false;
};

// What init told us, validated: init lives inside the sandbox and is not trusted.
struct InitReport {
  bool started = false;
  int exec_errno = 0;
  std::optional<int> exit_code;
  int term_signal = 0;
  UniqueFd pty_master;
  bool protocol_violation = false;
};

// Reads one frame; returns false when the socket is closed or misbehaves (then we stop reading).
bool read_init_message(int fd, InitReport& report) {
  protocol::InitMessage msg;
  struct iovec iov = {&msg, sizeof msg};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  struct msghdr hdr = {};
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  hdr.msg_control = control;
  hdr.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(fd, &hdr, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  if (n <= 0) return false;
  // Collect any passed fds first so that none leaks, whatever the verdict on the frame.
  std::vector<UniqueFd> fds;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&hdr); c; c = CMSG_NXTHDR(&hdr, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int passed;
      std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(passed);
    }
  }
  bool valid = n == static_cast<ssize_t>(sizeof msg) && !(hdr.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
               msg.magic == protocol::kInitMagic;
  auto kind = static_cast<protocol::InitMessageKind>(msg.kind);
  if (valid && kind == protocol::InitMessageKind::kPtyMaster) {
    struct stat st;
    valid = fds.size() == 1 && !report.pty_master && ::fstat(fds[0].get(), &st) == 0 && S_ISCHR(st.st_mode);
    if (valid) report.pty_master = std::move(fds[0]);
  } else if (valid && fds.empty() && kind == protocol::InitMessageKind::kStarted) {
    report.started = true;
  } else if (valid && fds.empty() && kind == protocol::InitMessageKind::kExecFailed && msg.a > 0 && msg.a < 4096) {
    report.exec_errno = msg.a;
  } else if (valid && fds.empty() && kind == protocol::InitMessageKind::kExited && !report.exit_code &&
             ((msg.a >= 0 && msg.a <= 255 && msg.b == 0) || (msg.a == -1 && msg.b > 0 && msg.b < 65))) {
    report.exit_code = msg.a;
    report.term_signal = msg.b;
  } else {
    valid = false;
  }
  if (!valid) report.protocol_violation = true;
  return valid;
}

// One direction of stdio between the user and the sandbox. Reads only when it has room and
// writes only when poll says the target can take bytes, so a reader or writer that stalls on
// one side never stalls the supervisor (deadline, signals, the other streams go on).
class Relay {
 public:
  static constexpr size_t kCapacity = 64 * 1024;
  Relay(int from, int to) : from_(from), to_(to) {}

  bool wants_read() const { return from_ >= 0 && !eof_ && pending() < kCapacity; }
  bool wants_write() const { return to_ >= 0 && pending() > 0 && !broken_; }
  bool finished() const { return (eof_ || from_ < 0) && (pending() == 0 || broken_ || to_ < 0); }
  bool eof() const { return eof_; }
  // Whether what reached `to` so far ends a line (true when nothing was written).
  bool ends_with_newline() const { return ends_with_newline_; }
  int from() const { return from_; }
  int to() const { return to_; }

  void on_readable() {
    char chunk[kCapacity];
    ssize_t n = ::read(from_, chunk, kCapacity - pending());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {  // EOF, or EIO from a pty master whose slave side is gone
      eof_ = true;
      return;
    }
    if (broken_ || to_ < 0) return;  // keep draining so the sandbox never blocks on us
    if (offset_ > 0) {  // drop what was already delivered: the buffer never exceeds kCapacity
      buffer_.erase(0, offset_);
      offset_ = 0;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }

  void on_writable() {
    // At most PIPE_BUF per write: a pipe that polled writable takes that much without
    // blocking even when the fd is one of ours in blocking mode (we never change the
    // O_NONBLOCK flag of the user's stdio: it is shared with the calling shell).
    size_t n = std::min<size_t>(pending(), PIPE_BUF);
    ssize_t w = ::write(to_, buffer_.data() + offset_, n);
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) broken_ = true;
      return;
    }
    if (w > 0) ends_with_newline_ = buffer_[offset_ + static_cast<size_t>(w) - 1] == '\n';
    offset_ += static_cast<size_t>(w);
    if (offset_ == buffer_.size()) buffer_.clear(), offset_ = 0;
  }

 private:
  size_t pending() const { return buffer_.size() - offset_; }
  int from_;
  int to_;
  std::string buffer_;
  size_t offset_ = 0;
  bool eof_ = false;
  bool broken_ = false;
  bool ends_with_newline_ = true;
};

void set_nonblocking(int fd) {
  if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

const char* signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  static thread_local char buf[32];
  std::snprintf(buf, sizeof buf, "SIG%s", abbrev ? abbrev : "UNKNOWN");
  return buf;
}

struct Outcome {
  int exit_code = 0;
  int signal = 0;
  std::string reason = "exited";
};

int supervise(Sandbox& box, const SandboxSpec& spec, bool json, std::chrono::steady_clock::time_point t0) {
  sigset_t forwarded;
  ::sigemptyset(&forwarded);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT})
    ::sigaddset(&forwarded, sig);
  ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
  UniqueFd sigfd(::signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK));
  UniqueFd timer;
  if (spec.timeout) {
    timer.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    auto ms = spec.timeout->count();
    struct itimerspec its = {};
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (ms % 1000) * 1'000'000;
    ::timerfd_settime(timer.get(), 0, &its, nullptr);
  }

  std::optional<RawTerminal> raw;
  if (spec.tty) raw.emplace(STDIN_FILENO);
  InitReport report;
  bool control_open = true;
  bool timed_out = false;
  bool eot_sent = false;
  std::optional<int> init_status;
  std::optional<std::chrono::steady_clock::time_point> gave_up_at;

  // Sandbox-side fds are ours alone: non-blocking. The pty relays start once init sends the master.
  set_nonblocking(box.stdout_fd().get());
  set_nonblocking(box.stderr_fd().get());
  set_nonblocking(box.stdin_fd().get());
  std::optional<Relay> out, err, in, pty_out;
  if (!spec.tty) {
    out.emplace(box.stdout_fd().get(), STDOUT_FILENO);
    err.emplace(box.stderr_fd().get(), STDERR_FILENO);
    if (spec.forward_stdin) in.emplace(STDIN_FILENO, box.stdin_fd().get());
  }

  for (;;) {
    if (spec.tty && report.pty_master && !pty_out) {
      set_nonblocking(report.pty_master.get());
      pty_out.emplace(report.pty_master.get(), STDOUT_FILENO);
      in.emplace(STDIN_FILENO, report.pty_master.get());
    }
    // The stdin relay ends with the sandbox's stdin: EOF on ours closes theirs.
    if (in && in->eof() && in->finished()) {
      if (!spec.tty && box.stdin_fd()) {
        box.stdin_fd().reset();
      } else if (spec.tty && !eot_sent && report.pty_master) {
        char eot = 4;  // the terminal's end-of-input character, once
        eot_sent = ::write(report.pty_master.get(), &eot, 1) == 1;
      }
    }

    bool outputs_done = (!out || out->finished()) && (!err || err->finished()) &&
                        (!spec.tty || !pty_out || pty_out->finished());
    if (init_status && (outputs_done || (gave_up_at && std::chrono::steady_clock::now() > *gave_up_at))) break;

    struct pollfd fds[12];
    int n = 0;
    auto add = [&](int fd, short events) -> int {
      if (fd < 0) return -1;
      fds[n] = {fd, events, 0};
      return n++;
    };
    struct Slot {
      Relay* relay;
      int read_index;
      int write_index;
    } slots[4];
    int slot_count = 0;
    for (auto* relay : {out ? &*out : nullptr, err ? &*err : nullptr, pty_out ? &*pty_out : nullptr,
                        in && !init_status ? &*in : nullptr}) {
      if (!relay) continue;
      slots[slot_count++] = {relay, relay->wants_read() ? add(relay->from(), POLLIN) : -1,
                             relay->wants_write() ? add(relay->to(), POLLOUT) : -1};
    }
    int i_exit = init_status ? -1 : add(box.pidfd(), POLLIN);
    int i_ctl = control_open ? add(box.control_fd(), POLLIN) : -1;
    int i_sig = add(sigfd.get(), POLLIN);
    int i_timer = add(timer.get(), POLLIN);
    if (::poll(fds, static_cast<nfds_t>(n), init_status ? 100 : -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto ready = [&](int i, short mask) { return i >= 0 && (fds[i].revents & (mask | POLLHUP | POLLERR | POLLNVAL)); };
    if (ready(i_ctl, POLLIN) && !read_init_message(box.control_fd(), report)) control_open = false;
    for (int k = 0; k < slot_count; ++k) {
      if (ready(slots[k].read_index, POLLIN)) slots[k].relay->on_readable();
      if (ready(slots[k].write_index, POLLOUT)) slots[k].relay->on_writable();
    }
    if (ready(i_sig, POLLIN)) {
      struct signalfd_siginfo info;
      while (::read(sigfd.get(), &info, sizeof info) == sizeof info) {
        int sig = static_cast<int>(info.ssi_signo);
        if (sig == SIGWINCH) {
          struct winsize ws;
          if (report.pty_master && ::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
            ::ioctl(report.pty_master.get(), TIOCSWINSZ, &ws);
        } else if (!init_status) {
          (void)box.signal(sig);
        }
      }
    }
    if (ready(i_timer, POLLIN) && !init_status) {
      timed_out = true;
      (void)box.kill();
      timer.reset();
    }
    if (ready(i_exit, POLLIN)) {
      init_status = box.try_wait();
      // Drain what init sent before it died (its last words are the exit report).
      while (control_open && read_init_message(box.control_fd(), report) && !report.exit_code) {
        struct pollfd p = {box.control_fd(), POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) break;
      }
      control_open = false;
      box.stdin_fd().reset();
      // Every process of the sandbox is gone, so what is left in its pipes is bounded. A command
      // that ended on its own waits for our reader, however slow (like cat); after a timeout we
      // deliver what the reader takes within a second and drop the rest.
      if (timed_out) gave_up_at = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    }
  }
  raw.reset();
  // Our messages and summary are always lines of their own, even after unterminated output.
  if (err && !err->ends_with_newline()) std::fputc('\n', stderr);

  auto wall = std::chrono::steady_clock::now() - t0;
  auto stats = box.stats();
  Outcome outcome;
  uint64_t oom_kills = stats.ok() ? stats->oom_kills : 0;
  if (timed_out) {
    outcome = {kExitTimeout, SIGKILL, "timeout"};
    message("timed out after " + format_duration(*spec.timeout) + "; killed every process in the sandbox");
  } else if (oom_kills > 0 && (report.term_signal == SIGKILL || !report.exit_code)) {
    outcome = {kExitKilled, SIGKILL, "oom"};
    message("killed: out of memory (limit " + format_size(spec.limits.memory_bytes) + ")");
  } else if (report.exit_code && *report.exit_code >= 0) {
    outcome = {*report.exit_code, 0, "exited"};
  } else if (report.exit_code) {
    outcome = {128 + report.term_signal, report.term_signal, report.term_signal == SIGKILL ? "killed" : "exited"};
    if (report.term_signal == SIGKILL) message("killed: the command received SIGKILL");
  } else if (init_status && WIFEXITED(*init_status)) {
    // No exit report (exec failure, or init misbehaved): init's own status stands.
    outcome = {WEXITSTATUS(*init_status), 0, "exited"};
  } else if (init_status && WIFSIGNALED(*init_status)) {
    int sig = WTERMSIG(*init_status);
    outcome = {128 + sig, sig, sig == SIGKILL ? "killed" : "exited"};
    message(std::string("killed: the sandbox's init received ") + signal_name(sig));
  } else {
    outcome = {kExitAirlockError, 0, "error"};
    message("lost track of the sandbox");
  }
  if (report.protocol_violation) message("warning: ignored malformed messages from the sandbox's init");

  if (json) {
    nlohmann::json line = {
        {"exit_code", outcome.exit_code},
        {"signal", outcome.signal ? nlohmann::json(signal_name(outcome.signal)) : nlohmann::json(nullptr)},
        {"reason", outcome.reason},
        {"wall_time_ms", std::chrono::duration<double, std::milli>(wall).count()},
        {"cpu_time_ms", stats.ok() ? stats->cpu_usage_ns / 1e6 : 0.0},
        {"peak_memory_bytes", stats.ok() ? stats->memory_peak_bytes : 0},
        {"oom_kills", oom_kills},
    };
    std::fprintf(stderr, "%s\n", line.dump().c_str());
  }
  return outcome.exit_code;
}

}  // namespace

int run_verb(const std::vector<std::string>& args) {
  auto t0 = std::chrono::steady_clock::now();
  auto request = parse_run_args(args, [](const char* key) -> const char* { return std::getenv(key); });
  if (!request.ok()) {
    message(request.error().message);
    return kExitAirlockError;
  }
  if (request->help) {
    std::fputs(request->help_text.c_str(), stdout);
    return 0;
  }
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill us mid-cleanup

  auto engine = Engine::open(engine_config());
  if (!engine.ok()) {
    message(engine.error().message);
    return kExitAirlockError;
  }
  engine->collect_leftovers();

  IoOptions io;
  io.stdin_pipe = request->spec.forward_stdin && !request->spec.tty;
  io.tty = request->spec.tty;
  struct winsize ws;
  if (io.tty && ::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
    io.rows = ws.ws_row;
    io.cols = ws.ws_col;
  }
  if (io.tty) request->spec.forward_stdin = true;  // a terminal is interactive by nature
  auto box = engine->create(request->spec, io);
  if (!box.ok()) {
    message(box.error().message);
    return kExitAirlockError;
  }
  int code = supervise(*box, request->spec, request->json, t0);
  box->destroy();
  return code;
}

}  // namespace airlock::cli
