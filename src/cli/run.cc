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

// Copies what is available from `from` to `to`; returns false at EOF or error on `from`.
bool pump(int from, int to, bool* to_broken) {
  char buf[65536];
  ssize_t n = ::read(from, buf, sizeof buf);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) return false;
  if (*to_broken || to < 0) return true;  // keep draining so the sandbox never blocks on us
  for (ssize_t off = 0; off < n;) {
    ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {to, POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      *to_broken = true;
      return true;
    }
    off += w;
  }
  return true;
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
  bool out_broken = false, err_broken = false, in_broken = false;
  bool stdin_open = spec.forward_stdin;
  bool control_open = true;
  bool timed_out = false;
  std::optional<int> init_status;

  for (;;) {
    struct pollfd fds[8];
    int n = 0;
    auto add = [&](int fd, short events) -> int {
      if (fd < 0) return -1;
      fds[n] = {fd, events, 0};
      return n++;
    };
    int i_exit = init_status ? -1 : add(box.pidfd(), POLLIN);
    int i_ctl = control_open ? add(box.control_fd(), POLLIN) : -1;
    int i_out = add(box.stdout_fd().get(), POLLIN);
    int i_err = add(box.stderr_fd().get(), POLLIN);
    int i_pty = add(report.pty_master.get(), POLLIN);
    int stdin_target = spec.tty ? report.pty_master.get() : box.stdin_fd().get();
    int i_in = stdin_open && stdin_target >= 0 ? add(STDIN_FILENO, POLLIN) : -1;
    int i_sig = add(sigfd.get(), POLLIN);
    int i_timer = add(timer.get(), POLLIN);
    // Done when init has exited and every output stream is drained.
    if (init_status && i_out < 0 && i_err < 0 && i_pty < 0) break;
    if (::poll(fds, static_cast<nfds_t>(n), init_status ? 200 : -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto ready = [&](int i) { return i >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)); };
    if (ready(i_ctl) && !read_init_message(box.control_fd(), report)) control_open = false;
    if (ready(i_out) && !pump(box.stdout_fd().get(), STDOUT_FILENO, &out_broken)) box.stdout_fd().reset();
    if (ready(i_err) && !pump(box.stderr_fd().get(), STDERR_FILENO, &err_broken)) box.stderr_fd().reset();
    if (ready(i_pty) && !pump(report.pty_master.get(), STDOUT_FILENO, &out_broken)) report.pty_master.reset();
    if (ready(i_in) && !pump(STDIN_FILENO, stdin_target, &in_broken)) {
      stdin_open = false;
      if (spec.tty) {
        // End of our input: send the terminal's EOF character once.
        char eot = 4;
        if (report.pty_master) (void)!::write(report.pty_master.get(), &eot, 1);
      } else {
        box.stdin_fd().reset();
      }
    }
    if (ready(i_sig)) {
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
    if (ready(i_timer) && !init_status) {
      timed_out = true;
      (void)box.kill();
      timer.reset();
    }
    if (ready(i_exit)) {
      init_status = box.try_wait();
      // Drain what init sent before it died (its last words are the exit report).
      while (control_open && read_init_message(box.control_fd(), report) && !report.exit_code) {
        struct pollfd p = {box.control_fd(), POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) break;
      }
      control_open = false;
      box.stdin_fd().reset();
      stdin_open = false;
    }
  }
  raw.reset();

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
