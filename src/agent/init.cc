// airlock-init: PID 1 inside every sandbox. It starts the command, reaps every zombie,
// forwards signals, reports the command's fate to the host over fd 3, and exits with the
// command's status (which takes the rest of the pid namespace down with it).
//
// Usage (built by the engine, never by users):
//   airlock-init --uid N --gid N --workdir DIR [--tty ROWS COLS] [--cap-drop-all] -- CMD [ARG...]
//
// Freestanding: no libc (see sys.h for why), no allocation, no exceptions.
#include <asm-generic/errno.h>
#include <asm/ioctls.h>
#include <asm/signal.h>
#include <asm/termios.h>
#include <linux/capability.h>
#include <linux/fcntl.h>
#include <linux/prctl.h>
#include <linux/signalfd.h>
#include <linux/uio.h>

#include "agent/agent_mode.h"
#include "agent/command.h"
#include "agent/sys.h"
#include "protocol/init_messages.h"

// The compiler may emit calls to these for struct copies and zeroing.
extern "C" void* memset(void* dst, int c, unsigned long n) {
  auto* d = static_cast<unsigned char*>(dst);
  while (n--) *d++ = static_cast<unsigned char>(c);
  return dst;
}
extern "C" void* memcpy(void* dst, const void* src, unsigned long n) {
  auto* d = static_cast<unsigned char*>(dst);
  auto* s = static_cast<const unsigned char*>(src);
  while (n--) *d++ = *s++;
  return dst;
}

namespace {

using namespace airlock::agent;
using airlock::protocol::InitMessage;
using airlock::protocol::InitMessageKind;
constexpr int kControlFd = airlock::protocol::kInitControlFd;
constexpr int kMaxSignal = 64;
constexpr int kSocketLevel = 1;   // SOL_SOCKET
constexpr int kScmRights = 1;     // SCM_RIGHTS
constexpr int kMsgNoSignal = 0x4000;

// ---- options ----------------------------------------------------------------------------------
struct Options {
  unsigned uid = 0, gid = 0;
  const char* workdir = "/";
  bool tty = false;
  unsigned short rows = 24, cols = 80;
  bool cap_drop_all = false;
  bool agent = false;  // --agent: serve the agent protocol on fd 3 instead of running argv
  char** argv = nullptr;
};

bool parse_uint(const char* s, unsigned long max, unsigned long* out) {
  if (!s || !*s) return false;
  unsigned long v = 0;
  for (; *s; ++s) {
    if (*s < '0' || *s > '9') return false;
    v = v * 10 + static_cast<unsigned long>(*s - '0');
    if (v > max) return false;
  }
  *out = v;
  return true;
}

bool parse_args(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    unsigned long v, w;
    if (equal(argv[i], "--")) {
      if (i + 1 >= argc || o->agent) return false;
      o->argv = argv + i + 1;
      return true;
    } else if (equal(argv[i], "--uid") && i + 1 < argc && parse_uint(argv[i + 1], 65535, &v)) {
      o->uid = static_cast<unsigned>(v), ++i;
    } else if (equal(argv[i], "--gid") && i + 1 < argc && parse_uint(argv[i + 1], 65535, &v)) {
      o->gid = static_cast<unsigned>(v), ++i;
    } else if (equal(argv[i], "--workdir") && i + 1 < argc) {
      o->workdir = argv[++i];
    } else if (equal(argv[i], "--tty") && i + 2 < argc && parse_uint(argv[i + 1], 65535, &v) &&
               parse_uint(argv[i + 2], 65535, &w)) {
      o->tty = true, o->rows = static_cast<unsigned short>(v), o->cols = static_cast<unsigned short>(w), i += 2;
    } else if (equal(argv[i], "--cap-drop-all")) {
      o->cap_drop_all = true;
    } else if (equal(argv[i], "--agent")) {
      o->agent = true;
    } else {
      return false;
    }
  }
  return o->agent && !o->tty;  // agent mode has no command; its processes ask for their own tty
}

// ---- messages to the host ---------------------------------------------------------------------
struct MessageHeader {  // struct user_msghdr
  void* name;
  int name_len;
  struct iovec* iov;
  unsigned long iov_len;
  void* control;
  unsigned long control_len;
  unsigned flags;
};
struct FdControl {  // one cmsghdr carrying one fd, padded as CMSG_SPACE(sizeof(int))
  unsigned long len;
  int level;
  int type;
  int fd;
  int pad;
};

void send_message(InitMessageKind kind, int a, int b, int fd_to_pass = -1) {
  InitMessage msg;
  msg.kind = static_cast<unsigned>(kind);
  msg.a = a;
  msg.b = b;
  struct iovec iov = {&msg, sizeof msg};
  FdControl control = {sizeof(unsigned long) + 2 * sizeof(int) + sizeof(int), kSocketLevel, kScmRights, fd_to_pass, 0};
  MessageHeader hdr = {nullptr, 0, &iov, 1, nullptr, 0, 0};
  if (fd_to_pass >= 0) {
    hdr.control = &control;
    hdr.control_len = sizeof control;
  }
  while (sys::sendmsg(kControlFd, &hdr, kMsgNoSignal) == -EINTR) {
  }
}

// ---- the command ------------------------------------------------------------------------------
[[noreturn]] void fail_command(int report_fd, long err, int code) {
  int e = static_cast<int>(err);
  sys::write(report_fd, &e, sizeof e);
  sys::exit(code);
}

// The command's side of the fork: reports a failure to start as an errno on report_fd.
[[noreturn]] void run_command(const Options& o, char** envp, int slave, int report_fd) {
  reset_signals();
  sys::setsid();  // own session: kill(-pgid) reaches its group; no terminal of ours to steal
  if (o.tty) {
    if (sys::ioctl(slave, TIOCSCTTY, 0) < 0) say(Text().add("cannot set the controlling terminal"));
    sys::dup2(slave, 0), sys::dup2(slave, 1), sys::dup2(slave, 2);
  }
  // Only fds 0-2 reach the command (the report pipe is close-on-exec).
  sys::close_range(3, static_cast<unsigned>(report_fd - 1));
  sys::close_range(static_cast<unsigned>(report_fd + 1), ~0U);

  if (long r = enter_workdir(o.workdir)) {
    say(Text().add("workdir ").add(o.workdir).add(": ").add(error_text(r)));
    fail_command(report_fd, r, 126);
  }
  long err = switch_user(o.uid, o.gid, o.cap_drop_all);
  if (err) {
    say(Text().add("cannot switch to the requested user: ").add(error_text(err)));
    fail_command(report_fd, err, 126);
  }
  err = exec_command(o.argv, envp);
  if (err == ENOENT)
    say(Text().add(o.argv[0]).add(": command not found"));
  else
    say(Text().add(o.argv[0]).add(": ").add(error_text(err)));
  fail_command(report_fd, err, err == ENOENT ? 127 : 126);
}

int open_pty(const Options& o, int* slave_out) {
  long master = sys::openat(AT_FDCWD, "/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return -1;
  int unlock = 0;
  if (sys::ioctl(static_cast<int>(master), TIOCSPTLCK, reinterpret_cast<long>(&unlock)) < 0) return -1;
  struct winsize ws = {o.rows, o.cols, 0, 0};
  sys::ioctl(static_cast<int>(master), TIOCSWINSZ, reinterpret_cast<long>(&ws));
  long slave = sys::ioctl(static_cast<int>(master), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) return -1;
  *slave_out = static_cast<int>(slave);
  return static_cast<int>(master);
}

extern "C" void restore_rt();
__asm__(
    ".text\n"
    "restore_rt:\n"
    "  mov $15, %eax\n"  // rt_sigreturn
    "  syscall\n");

void noop_handler(int) {}

int init_main(int argc, char** argv, char** envp) {
  // Not dumpable: the workload cannot ptrace us or open /proc/1/{exe,mem,fd} (we hold the
  // control socket to the host and run as root of the namespace).
  sys::prctl(PR_SET_DUMPABLE, 0);

  Options o;
  if (!parse_args(argc, argv, &o)) {
    say(Text().add("airlock-init: bad arguments"));
    return 125;
  }

  // Every signal we may forward gets a handler (PID 1 drops signals left at SIG_DFL) and is
  // blocked, so that it arrives through the signalfd instead.
  unsigned long all = ~0UL;
  sys::sigprocmask(SIG_BLOCK, &all, nullptr);
  struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    unsigned long mask;
  } act = {noop_handler, 0x04000000 /* SA_RESTORER */, restore_rt, ~0UL};
  for (int sig = 1; sig <= kMaxSignal; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sys::sigaction(sig, &act, nullptr);
  }
  long sfd = sys::signalfd(-1, &all, O_CLOEXEC);
  if (sfd < 0) {
    say(Text().add("airlock-init: signalfd: ").add(error_text(-sfd)));
    return 125;
  }
  if (o.agent) return run_agent(AgentOptions{o.uid, o.gid, o.workdir, o.cap_drop_all}, static_cast<int>(sfd));

  int slave = -1;
  if (o.tty) {
    int master = open_pty(o, &slave);
    if (master < 0) {
      say(Text().add("cannot allocate a terminal"));
      return 125;
    }
    send_message(InitMessageKind::kPtyMaster, 0, 0, master);
    sys::close(master);
  }

  int report[2];
  if (sys::pipe2(report, O_CLOEXEC) < 0) return 125;
  long child = sys::fork();
  if (child < 0) {
    say(Text().add("cannot start the command: ").add(error_text(-child)));
    send_message(InitMessageKind::kExecFailed, static_cast<int>(-child), 0);
    return 126;
  }
  if (child == 0) {
    sys::close(report[0]);
    run_command(o, envp, slave, report[1]);
  }
  sys::close(report[1]);
  if (slave >= 0) sys::close(slave);
  int exec_errno = 0;
  long n;
  do {
    n = sys::read(report[0], &exec_errno, sizeof exec_errno);
  } while (n == -EINTR);
  sys::close(report[0]);
  if (n == sizeof exec_errno)
    send_message(InitMessageKind::kExecFailed, exec_errno, 0);
  else
    send_message(InitMessageKind::kStarted, static_cast<int>(child), 0);

  // Reap everything; forward everything else to the command; leave when the command does.
  for (;;) {
    struct signalfd_siginfo info;
    long got = sys::read(static_cast<int>(sfd), &info, sizeof info);
    if (got == -EINTR) continue;
    if (got != sizeof info) return 125;
    int sig = static_cast<int>(info.ssi_signo);
    if (sig != SIGCHLD) {
      sys::kill(static_cast<int>(child), sig);
      continue;
    }
    int status;
    long pid;
    while ((pid = sys::wait4(-1, &status, 1 /* WNOHANG */)) > 0) {
      if (pid != child) continue;
      int term = status & 0x7f;
      if (term == 0) {
        int code = (status >> 8) & 0xff;
        if (exec_errno == 0) send_message(InitMessageKind::kExited, code, 0);
        return code;
      }
      if (term != 0x7f) {  // killed by a signal (0x7f would mean stopped)
        send_message(InitMessageKind::kExited, -1, term);
        return 128 + term;
      }
    }
  }
}

}  // namespace

extern "C" [[noreturn]] void start_c(long* sp) {
  int argc = static_cast<int>(sp[0]);
  char** argv = reinterpret_cast<char**>(sp + 1);
  char** envp = argv + argc + 1;
  sys::exit(init_main(argc, argv, envp));
}

__asm__(
    ".text\n"
    ".global _start\n"
    "_start:\n"
    "  xor %rbp, %rbp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call start_c\n"
    "  hlt\n");
