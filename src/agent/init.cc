// airlock-init: PID 1 inside every sandbox. It starts the command, reaps every zombie,
// forwards signals, reports the command's fate to the host over fd 3, and exits with the
// command's status (which takes the rest of the pid namespace down with it).
//
// Usage (built by the engine, never by users):
//   airlock-init --uid N --gid N --workdir DIR [--tty ROWS COLS] [--cap-drop-all] -- CMD [ARG...]
//
// Kept small and static: no exceptions, no iostreams, no allocation after start-up.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "protocol/init_messages.h"

extern char** environ;

namespace {

using airlock::protocol::InitMessage;
using airlock::protocol::InitMessageKind;
constexpr int kControlFd = airlock::protocol::kInitControlFd;

struct Options {
  uid_t uid = 0;
  gid_t gid = 0;
  const char* workdir = "/";
  bool tty = false;
  unsigned short rows = 24, cols = 80;
  bool cap_drop_all = false;
  char** argv = nullptr;
};

void say(const char* a, const char* b = "", const char* c = "", const char* d = "") {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "airlock: %s%s%s%s\n", a, b, c, d);
  if (n > 0) {
    ssize_t ignored = write(STDERR_FILENO, buf, static_cast<size_t>(n) < sizeof buf ? n : sizeof buf - 1);
    (void)ignored;
  }
}

bool parse_uint(const char* s, unsigned long max, unsigned long* out) {
  if (!s || !*s) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || v > max) return false;
  *out = v;
  return true;
}

bool parse_args(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    unsigned long v;
    if (!strcmp(argv[i], "--")) {
      if (i + 1 >= argc) return false;
      o->argv = argv + i + 1;
      return true;
    } else if (!strcmp(argv[i], "--uid") && i + 1 < argc && parse_uint(argv[i + 1], 65535, &v)) {
      o->uid = static_cast<uid_t>(v), ++i;
    } else if (!strcmp(argv[i], "--gid") && i + 1 < argc && parse_uint(argv[i + 1], 65535, &v)) {
      o->gid = static_cast<gid_t>(v), ++i;
    } else if (!strcmp(argv[i], "--workdir") && i + 1 < argc) {
      o->workdir = argv[++i];
    } else if (!strcmp(argv[i], "--tty") && i + 2 < argc) {
      unsigned long r, c;
      if (!parse_uint(argv[i + 1], 65535, &r) || !parse_uint(argv[i + 2], 65535, &c)) return false;
      o->tty = true, o->rows = static_cast<unsigned short>(r), o->cols = static_cast<unsigned short>(c), i += 2;
    } else if (!strcmp(argv[i], "--cap-drop-all")) {
      o->cap_drop_all = true;
    } else {
      return false;
    }
  }
  return false;
}

void send_message(InitMessageKind kind, int a, int b, int fd_to_pass = -1) {
  InitMessage msg;
  msg.kind = static_cast<uint32_t>(kind);
  msg.a = a;
  msg.b = b;
  struct iovec iov = {&msg, sizeof msg};
  struct msghdr hdr = {};
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd_to_pass >= 0) {
    memset(control, 0, sizeof control);
    hdr.msg_control = control;
    hdr.msg_controllen = sizeof control;
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&hdr);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd_to_pass, sizeof(int));
  }
  while (sendmsg(kControlFd, &hdr, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

// mkdir -p for the working directory (as root, before privileges are dropped).
void make_workdir(const char* path) {
  char buf[4096];
  size_t len = strlen(path);
  if (len >= sizeof buf) return;
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; ++i) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char saved = buf[i];
      buf[i] = '\0';
      mkdir(buf, 0755);
      buf[i] = saved;
    }
  }
}

int drop_bounding_set() {
  for (int cap = 0; cap <= 63; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  }
  return 0;
}

int clear_capabilities() {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  return syscall(SYS_capset, &header, data) == 0 ? 0 : errno;
}

// The command's side of the fork. Reports exec failure as an errno on `report_fd`.
[[noreturn]] void run_command(const Options& o, int slave, int report_fd, const sigset_t& original_mask) {
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
  sigprocmask(SIG_SETMASK, &original_mask, nullptr);
  setsid();  // own session: no terminal of ours to steal, and kill(-pgid) reaches its group
  if (o.tty) {
    if (ioctl(slave, TIOCSCTTY, 0) != 0) say("cannot set controlling terminal: ", strerror(errno));
    dup2(slave, 0), dup2(slave, 1), dup2(slave, 2);
  }
  // Only fds 0-2 reach the command (the report pipe is close-on-exec).
  syscall(SYS_close_range, 3, report_fd - 1, 0);
  syscall(SYS_close_range, report_fd + 1, ~0U, 0);

  int err = 0;
  if (chdir(o.workdir) != 0) {
    make_workdir(o.workdir);
    if (chdir(o.workdir) != 0) err = errno;
  }
  if (err) {
    say("workdir ", o.workdir, ": ", strerror(err));
    ssize_t ignored = write(report_fd, &err, sizeof err);
    (void)ignored;
    _exit(126);
  }
  if (o.uid != 0 || o.cap_drop_all) {
    // A non-root user, or root with --cap-drop ALL, keeps no capability at all, and cannot
    // regain one by exec (empty bounding set; setuid binaries are void under no_new_privs).
    if ((err = drop_bounding_set()) == 0) {
      if (setgroups(0, nullptr) != 0 || setresgid(o.gid, o.gid, o.gid) != 0 || setresuid(o.uid, o.uid, o.uid) != 0)
        err = errno;
      else
        err = clear_capabilities();
    }
  } else if (setgroups(0, nullptr) != 0 || setresgid(o.gid, o.gid, o.gid) != 0) {
    err = errno;
  }
  if (err) {
    say("cannot switch to the requested user: ", strerror(err));
    ssize_t ignored = write(report_fd, &err, sizeof err);
    (void)ignored;
    _exit(126);
  }
  execvp(o.argv[0], o.argv);
  err = errno;
  if (err == ENOENT)
    say(o.argv[0], ": command not found");
  else
    say(o.argv[0], ": ", strerror(err));
  ssize_t ignored = write(report_fd, &err, sizeof err);
  (void)ignored;
  _exit(err == ENOENT ? 127 : 126);
}

int open_pty(const Options& o, int* slave_out) {
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return -1;
  int unlock = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) != 0) return -1;
  struct winsize ws = {o.rows, o.cols, 0, 0};
  ioctl(master, TIOCSWINSZ, &ws);
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) return -1;
  *slave_out = slave;
  return master;
}

}  // namespace

int main(int argc, char** argv) {
  // Not dumpable: the workload cannot ptrace us or open /proc/1/{exe,mem,fd} (we hold the
  // control socket to the host and run as root of the namespace).
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  Options o;
  if (!parse_args(argc, argv, &o)) {
    say("airlock-init: bad arguments");
    return 125;
  }

  // Every signal we may forward gets a handler (PID 1 drops signals left at SIG_DFL) and is
  // blocked, so it arrives through the signalfd instead.
  sigset_t all, original;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &original);
  struct sigaction noop = {};
  noop.sa_handler = [](int) {};
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &noop, nullptr);
  }
  int sfd = signalfd(-1, &all, SFD_CLOEXEC);
  if (sfd < 0) {
    say("airlock-init: signalfd: ", strerror(errno));
    return 125;
  }

  int slave = -1;
  if (o.tty) {
    int master = open_pty(o, &slave);
    if (master < 0) {
      say("cannot allocate a terminal: ", strerror(errno));
      return 125;
    }
    send_message(InitMessageKind::kPtyMaster, 0, 0, master);
    close(master);
  }

  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return 125;
  pid_t child = fork();
  if (child < 0) {
    say("cannot start the command: ", strerror(errno));
    send_message(InitMessageKind::kExecFailed, errno, 0);
    return 126;
  }
  if (child == 0) {
    close(report[0]);
    run_command(o, slave, report[1], original);
  }
  close(report[1]);
  if (slave >= 0) close(slave);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(report[0], &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == sizeof exec_errno) {
    send_message(InitMessageKind::kExecFailed, exec_errno, 0);
  } else {
    send_message(InitMessageKind::kStarted, child, 0);
  }

  // Reap everything; forward everything else to the command; leave when the command does.
  for (;;) {
    struct signalfd_siginfo info;
    ssize_t got = read(sfd, &info, sizeof info);
    if (got != sizeof info) {
      if (got < 0 && errno == EINTR) continue;
      return 125;
    }
    int sig = static_cast<int>(info.ssi_signo);
    if (sig != SIGCHLD) {
      kill(child, sig);
      continue;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid != child) continue;
      if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        if (exec_errno == 0) send_message(InitMessageKind::kExited, code, 0);
        return code;
      }
      if (WIFSIGNALED(status)) {
        int term = WTERMSIG(status);
        send_message(InitMessageKind::kExited, -1, term);
        return 128 + term;
      }
    }
  }
}
