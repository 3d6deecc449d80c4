// airlock-init --agent: one event loop over the listening socket (fd 3), the current connection,
// the signalfd, every process's pipes and every watch's inotify fd. See agent_mode.h and
// docs/PROTOCOL.md. File requests are handled in files.cc, watches in watch.cc; this file
// dispatches to them and gives their streams a turn in each pass of the loop.
//
// Memory is static and bounded: a frame-sized input buffer, an output buffer, and a stdin buffer
// per process slot. Backpressure: a process's stdout/stderr is read only while it has credit
// (Credit frames from the host) and the output buffer has room for a whole frame, so a process
// whose host is slow, or absent, blocks on its full pipe, and nothing accumulates in init. File
// reads, listings and watches follow the same rule (see files.h, watch.h).
#include <asm-generic/errno.h>
#include <asm/ioctls.h>
#include <asm/termios.h>
#include <linux/fcntl.h>
#include <linux/signalfd.h>

#include "agent/agent_mode.h"
#include "agent/command.h"
#include "agent/files.h"
#include "agent/outbox.h"
#include "agent/sys.h"
#include "agent/sys_socket.h"
#include "agent/watch.h"
#include "protocol/agent_protocol.h"

namespace airlock::agent {
namespace {

namespace proto = airlock::protocol::agent;
using proto::Message;
using proto::Type;

constexpr int kListenFd = 3;
constexpr int kMaxProcesses = 64;
constexpr unsigned kStdinBuffer = 64 * 1024;      // per process; a Stdin frame waits when it is full
constexpr unsigned kInBuffer = proto::kMaxFrame + 16 * 1024;
constexpr uint32_t kMaxCredit = 1u << 30;
constexpr short kPollIn = 0x1, kPollOut = 0x4, kPollErr = 0x8, kPollHup = 0x10;
constexpr int kMsgNoSignal = 0x4000, kMsgDontWait = 0x40;
constexpr int kSockNonblock = 04000, kSockCloexec = 02000000;
constexpr int kClockMonotonic = 1;

struct Process {
  uint32_t id = 0;  // 0: free slot
  int pid = 0;
  bool tty = false;
  int in_fd = -1;              // stdin pipe, or the pty master (then also out_fd[0])
  int out_fd[2] = {-1, -1};    // stdout, stderr read ends; -1 once at EOF
  bool close_stdin = false;    // CloseStdin arrived: close in_fd once the buffer is written
  unsigned stdin_start = 0, stdin_end = 0;
  uint32_t credit = 0;         // Output bytes the host can take now
  uint64_t deadline_ms = 0;    // 0: no timeout
  bool timed_out = false;
  bool reaped = false;
  int status = 0;
  uint64_t exit_queued_at = 0;  // out_queued_ once its Exited was queued; 0: not queued
};

struct Agent {
  AgentOptions options;
  int signal_fd = -1;
  int conn = -1;
  bool hello_done = false;
  uint8_t* in;  // kInBuffer bytes
  unsigned in_len = 0;
  Outbox out;
  FileService* files;
  WatchService* watches;
  Process procs[kMaxProcesses];
  uint8_t (*stdin_buf)[kStdinBuffer];  // one per slot
  char* strings;  // Exec scratch: NUL-terminated copies of argv/env/cwd for the child
  char** argv;
  char** envp;
};

// The buffers are separate zero-filled arrays so that they land in .bss (costing nothing in the
// binary, and only the pages touched at run time).
uint8_t g_in[kInBuffer];
uint8_t g_out[Outbox::kSize];
// Zero-filled too (free slots): .bss, and no constructor has to run.
constinit FileService g_files{};
constinit WatchService g_watches{};
uint8_t g_stdin[kMaxProcesses][kStdinBuffer];
char g_strings[proto::kMaxArgvBytes + proto::kMaxEnvBytes + 2 * 1025 + proto::kMaxPath + 1];
char* g_argv[proto::kMaxArgs + 1];
char* g_envp[proto::kMaxEnv + 1];

constinit Agent g_agent{{}, -1, -1, false, g_in, 0, Outbox{g_out}, &g_files, &g_watches, {}, g_stdin, g_strings,
                        g_argv, g_envp};

// The stack a spawned child runs on until its exec. One is enough: init is single-threaded and
// stays suspended while the child uses it (CLONE_VFORK). .bss: only the pages touched cost memory.
alignas(16) uint8_t g_child_stack[64 * 1024];

}  // namespace

// clone(CLONE_VM | CLONE_VFORK | SIGCHLD) with the child on `stack_top`, calling fn(arg), which
// must not return (it execs or exits). Returns the child's pid or -errno, once the child has
// exec'd or exited. glibc's posix_spawn does the same; the agent has no libc, hence the assembly.
// The plain clone syscall needs no namespace flag, so the sandbox's seccomp filter allows it.
extern "C" long airlock_clone_vfork(void (*fn)(void*), void* arg, void* stack_top);
__asm__(
    ".pushsection .text\n"
    ".type airlock_clone_vfork, @function\n"
    "airlock_clone_vfork:\n"
    "  and $-16, %rdx\n"
    "  sub $16, %rdx\n"
    "  mov %rsi, 0(%rdx)\n"     // arg, popped by the child
    "  mov %rdi, 8(%rdx)\n"     // fn, popped by the child
    "  mov %rdx, %rsi\n"        // the child's stack
    "  mov $0x4111, %edi\n"     // CLONE_VM | CLONE_VFORK | SIGCHLD
    "  xor %edx, %edx\n"        // parent_tid
    "  xor %r10d, %r10d\n"      // child_tid
    "  xor %r8d, %r8d\n"        // tls
    "  mov $56, %eax\n"         // __NR_clone
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    "  xor %ebp, %ebp\n"        // the child: a fresh stack, 16-byte aligned before the call
    "  pop %rdi\n"
    "  pop %rax\n"
    "  call *%rax\n"
    "  hlt\n"
    "1:\n"
    "  ret\n"
    ".size airlock_clone_vfork, .-airlock_clone_vfork\n"
    ".popsection\n");

namespace {

long clone_vfork(void (*fn)(void*), void* arg, uint8_t* stack_top) { return airlock_clone_vfork(fn, arg, stack_top); }

uint64_t now_ms() {
  sys::Timespec ts{0, 0};
  sys::clock_gettime(kClockMonotonic, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

void close_fd(int& fd) {
  if (fd >= 0) sys::close(fd);
  fd = -1;
}

void set_nonblocking(int fd) {
  long flags = sys::fcntl(fd, F_GETFL);
  if (flags >= 0) sys::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// ---- sending -------------------------------------------------------------------------------------
unsigned out_free(const Agent& a) { return a.out.free(); }
bool queue(Agent& a, const Message& m) { return a.out.queue(m); }

void reply_error(Agent& a, uint32_t id, uint32_t code, const char* text) {
  Message m{};
  m.type = Type::kError;
  m.id = id;
  m.error = {code, {text, static_cast<uint32_t>(length(text))}};
  queue(a, m);
}

void drop_connection(Agent& a) {
  close_fd(a.conn);
  a.hello_done = false;
  a.in_len = 0;
  // An Exited that never left init is sent again to the next connection.
  for (Process& p : a.procs)
    if (p.id && p.exit_queued_at > a.out.flushed) p.exit_queued_at = 0;
  a.out.reset();
  // Reads, listings and watches belong to the host that asked: they end with its connection.
  a.files->reset();
  a.watches->reset();
}

void flush(Agent& a) {
  while (a.conn >= 0 && a.out.len > 0) {
    long n = sys::send(a.conn, a.out.buf + a.out.start, a.out.len, kMsgNoSignal | kMsgDontWait);
    if (n == -EINTR) continue;
    if (n == -EAGAIN) return;
    if (n <= 0) return drop_connection(a);
    a.out.sent(static_cast<unsigned>(n));
  }
}

// ---- processes -----------------------------------------------------------------------------------
Process* find(Agent& a, uint32_t id) {
  for (Process& p : a.procs)
    if (p.id == id) return &p;
  return nullptr;
}

void free_slot(Process& p) {
  if (p.in_fd >= 0 && p.in_fd != p.out_fd[0]) sys::close(p.in_fd);
  close_fd(p.out_fd[0]);
  close_fd(p.out_fd[1]);
  p = Process{};
}

int open_pty(unsigned short rows, unsigned short cols, int* slave_out) {
  long master = sys::openat(AT_FDCWD, "/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return static_cast<int>(master);
  int m = static_cast<int>(master);
  int unlock = 0;
  long r = sys::ioctl(m, TIOCSPTLCK, reinterpret_cast<long>(&unlock));
  struct winsize ws = {rows, cols, 0, 0};
  if (r >= 0) r = sys::ioctl(m, TIOCSWINSZ, reinterpret_cast<long>(&ws));
  long slave = r < 0 ? r : sys::ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    sys::close(m);
    return static_cast<int>(slave);
  }
  *slave_out = static_cast<int>(slave);
  return m;
}

// Copies the Exec's strings into NUL-terminated form in a.strings; the child uses them.
const char* prepare_exec(Agent& a, const proto::Exec& e) {
  char* p = a.strings;
  auto copy = [&p](proto::Str s) {
    char* start = p;
    for (uint32_t i = 0; i < s.size; ++i) *p++ = s.data[i];
    *p++ = 0;
    return start;
  };
  unsigned n = 0;
  for (proto::Str s : e.argv) a.argv[n++] = copy(s);
  a.argv[n] = nullptr;
  n = 0;
  for (proto::Str s : e.env) a.envp[n++] = copy(s);
  a.envp[n] = nullptr;
  return e.cwd.size ? copy(e.cwd) : a.options.workdir;
}

// What the child of a spawn needs. It lives on init's stack: the child shares init's memory
// (CLONE_VM) and init is suspended until the child has exec'd or exited (CLONE_VFORK), so the
// child reads it in place and reports a failure by writing `err` (no pipe needed).
struct Spawn {
  Agent* agent;
  const proto::Exec* exec;
  const char* cwd;
  int* stdio;  // [3]: the child's fds 0-2
  volatile long err;  // 0, or the errno that stopped the child before its exec
};

[[noreturn]] void fail_child(Spawn& s, long err, int code) {
  s.err = err;
  sys::exit(code);
}

// The process's side of the spawn: the same steps as the one-shot command (init.cc). It runs on
// g_child_stack in init's address space while init waits, so it writes nothing of init's but
// Spawn::err; everything else it changes (signal dispositions, fds, cwd, ids) is its own.
[[noreturn]] void run_child(void* arg) {
  Spawn& s = *static_cast<Spawn*>(arg);
  const proto::Exec& e = *s.exec;
  reset_signals();
  sys::setsid();  // own session and process group: a timeout kills the whole group
  if (e.options & proto::kExecTty) sys::ioctl(s.stdio[0], TIOCSCTTY, 0);
  for (int i = 0; i < 3; ++i) sys::dup2(s.stdio[i], i);
  // Only 0-2 reach the process: not the listening socket, the connection or other processes'
  // pipes (every fd of init is close-on-exec as well; this also covers one that is not).
  sys::close_range(3, ~0U);
  if (long r = enter_workdir(s.cwd)) {
    say(Text().add("workdir ").add(s.cwd).add(": ").add(error_text(r)));
    fail_child(s, r, 126);
  }
  if (long err = switch_user(e.uid, e.gid, s.agent->options.cap_drop_all)) {
    say(Text().add("cannot switch to the requested user: ").add(error_text(err)));
    fail_child(s, err, 126);
  }
  long err = exec_command(s.agent->argv, s.agent->envp);
  if (err == ENOENT)
    say(Text().add(s.agent->argv[0]).add(": command not found"));
  else
    say(Text().add(s.agent->argv[0]).add(": ").add(error_text(err)));
  fail_child(s, err, err == ENOENT ? 127 : 126);
}

void start_process(Agent& a, uint32_t id, const proto::Exec& e) {
  if (find(a, id)) return reply_error(a, id, EEXIST, "process id in use");
  Process* slot = find(a, 0);
  if (!slot) return reply_error(a, id, EAGAIN, "too many processes");
  const char* cwd = prepare_exec(a, e);
  bool tty = e.options & proto::kExecTty;

  // ours[i] stays in init, theirs[i] becomes the process's fd i.
  int ours[3] = {-1, -1, -1}, theirs[3] = {-1, -1, -1};
  long err = 0;
  if (tty) {
    int slave = -1;
    int master = open_pty(e.rows, e.cols, &slave);
    if (master < 0) err = -master;
    else ours[0] = master, theirs[0] = theirs[1] = theirs[2] = slave;
  } else {
    for (int i = 0; i < 3 && !err; ++i) {
      int fds[2];
      err = -sys::pipe2(fds, O_CLOEXEC);
      if (err) break;
      ours[i] = i == 0 ? fds[1] : fds[0];
      theirs[i] = i == 0 ? fds[0] : fds[1];
    }
  }
  // vfork-style: no copy of init's page tables and no copy-on-write faults afterwards (fork
  // cost ~50 us more per command on this VM), and init learns the outcome of the exec without a
  // report pipe, since it resumes only once the child has exec'd or exited.
  Spawn spawn{&a, &e, cwd, theirs, 0};
  long pid = err ? 0 : clone_vfork(run_child, &spawn, g_child_stack + sizeof g_child_stack);
  if (pid < 0) err = -pid;

  for (int i = 0; i < 3; ++i)
    if (theirs[i] >= 0 && (i == 0 || theirs[i] != theirs[0])) sys::close(theirs[i]);
  if (!err && spawn.err) err = spawn.err > 0 && spawn.err <= 4095 ? spawn.err : EIO;
  if (err) {  // the child, if any, exits by itself and is reaped as a stranger
    for (int& fd : ours) close_fd(fd);
    Message m{};
    m.type = Type::kExecFailed;
    m.id = id;
    m.exec_failed.errnum = static_cast<uint32_t>(err);
    queue(a, m);
    return;
  }
  Process& p = *slot;
  p = Process{};
  p.id = id;
  p.pid = static_cast<int>(pid);
  p.tty = tty;
  p.in_fd = ours[0];
  p.out_fd[0] = tty ? ours[0] : ours[1];
  p.out_fd[1] = tty ? -1 : ours[2];
  // Fresh pipes (or the pty master) have no other status flag to keep: one F_SETFL suffices.
  for (int fd : ours)
    if (fd >= 0) sys::fcntl(fd, F_SETFL, O_NONBLOCK);
  p.credit = proto::kInitialWindow;
  if (e.timeout_ms) p.deadline_ms = now_ms() + e.timeout_ms;
  Message m{};
  m.type = Type::kStarted;
  m.id = id;
  m.started.pid = static_cast<uint32_t>(pid);
  queue(a, m);
}

void reap(Agent& a) {
  int status;
  long pid;
  while ((pid = sys::wait4(-1, &status, 1 /* WNOHANG */)) > 0) {
    for (Process& p : a.procs) {
      if (p.id && !p.reaped && p.pid == pid && (status & 0x7f) != 0x7f) {
        p.reaped = true;
        p.status = status;
      }
    }
  }
}

void enforce_timeouts(Agent& a) {
  uint64_t now = now_ms();
  for (Process& p : a.procs) {
    if (!p.id || p.reaped || !p.deadline_ms || now < p.deadline_ms) continue;
    sys::kill(-p.pid, 9 /* SIGKILL */);  // its process group (setsid in the child)
    sys::kill(p.pid, 9);
    p.timed_out = true;
    p.deadline_ms = 0;
  }
}

// Reads one chunk of a process's output into an Output frame, within its credit.
void pump_output(Agent& a, Process& p, int stream) {
  int& fd = p.out_fd[stream];
  uint32_t want = p.credit < proto::kMaxChunk ? p.credit : proto::kMaxChunk;
  if (fd < 0 || want == 0 || !a.out.room_for_output()) return;
  static uint8_t chunk[proto::kMaxChunk];
  long n = sys::read(fd, chunk, want);
  if (n == -EAGAIN || n == -EINTR) return;
  if (n <= 0) {  // EOF; EIO is a pty's EOF (no slave left)
    if (fd == p.in_fd) p.in_fd = -1;
    close_fd(fd);
    return;
  }
  Message m{};
  m.type = Type::kOutput;
  m.id = p.id;
  m.output = {stream == 0 ? proto::kStdout : proto::kStderr, {chunk, static_cast<uint32_t>(n)}};
  if (queue(a, m)) p.credit -= static_cast<uint32_t>(n);
}

void pump_stdin(Process& p, uint8_t* buf) {
  while (p.in_fd >= 0 && p.stdin_start < p.stdin_end) {
    long n = sys::write(p.in_fd, buf + p.stdin_start, p.stdin_end - p.stdin_start);
    if (n == -EINTR) continue;
    if (n == -EAGAIN) return;
    if (n <= 0) {  // the process closed its stdin: what it did not read is dropped
      p.stdin_start = p.stdin_end = 0;
      if (!p.tty) close_fd(p.in_fd);
      return;
    }
    p.stdin_start += static_cast<unsigned>(n);
  }
  p.stdin_start = p.stdin_end = 0;
  if (p.close_stdin && !p.tty) close_fd(p.in_fd);
}

// A process is over once it is reaped and its output pipes have reached EOF (so every Output
// precedes its Exited). Exited goes to the connection; the slot is freed once it has left init.
void finish_processes(Agent& a) {
  for (Process& p : a.procs) {
    if (!p.id || !p.reaped || p.out_fd[0] >= 0 || p.out_fd[1] >= 0) continue;
    if (p.exit_queued_at) {
      if (a.out.flushed >= p.exit_queued_at) free_slot(p);
      continue;
    }
    if (a.conn < 0 || !a.hello_done || out_free(a) < kReplyReserve) continue;
    Message m{};
    m.type = Type::kExited;
    m.id = p.id;
    int term = p.status & 0x7f;
    m.exited.code = term ? -1 : (p.status >> 8) & 0xff;
    m.exited.signal = static_cast<uint32_t>(term);
    m.exited.reason = p.timed_out ? proto::kExitTimeout : proto::kExitNormal;
    if (queue(a, m)) p.exit_queued_at = a.out.queued;
  }
}

// ---- requests ------------------------------------------------------------------------------------
enum class Handled { kDone, kWait, kDrop };

Handled handle(Agent& a, const Message& m) {
  if (!a.hello_done && m.type != Type::kHello) return Handled::kDrop;
  Process* p = m.type == Type::kHello || m.type == Type::kExec ? nullptr : find(a, m.id);
  Message r{};
  r.id = m.id;
  switch (m.type) {
    case Type::kHello:
      if (m.hello.min_version > proto::kVersion) return Handled::kDrop;
      r.type = Type::kHelloAck;
      r.hello_ack = {proto::kVersion, proto::kCapExec | proto::kCapTty | proto::kCapFiles | proto::kCapWatch};
      queue(a, r);
      a.hello_done = true;
      return Handled::kDone;
    case Type::kPing: {
      uint32_t running = 0;
      for (const Process& q : a.procs) running += q.id && !q.reaped;
      r.type = Type::kPong;
      r.pong.processes = running;
      queue(a, r);
      return Handled::kDone;
    }
    case Type::kExec: start_process(a, m.id, m.exec); return Handled::kDone;
    case Type::kCredit:
      if (p) p->credit = m.credit.bytes >= kMaxCredit - p->credit ? kMaxCredit : p->credit + m.credit.bytes;
      else a.files->credit(m.id, m.credit.bytes);
      return Handled::kDone;  // a late Credit for a finished process or read is harmless
    case Type::kFileRead:
    case Type::kFileWrite:
    case Type::kFileList:
    case Type::kFileStat:
    case Type::kFileMkdir:
    case Type::kFileRemove:
    case Type::kFileRename: a.files->handle(a.out, m); return Handled::kDone;
    case Type::kWatchStart: a.watches->start(a.out, m.id, m.watch_start); return Handled::kDone;
    case Type::kWatchStop: a.watches->stop(a.out, m.id); return Handled::kDone;
    default: break;
  }
  if (p && p->reaped && m.type == Type::kCloseStdin) return Handled::kDone;  // nothing left to close
  if (!p || p->reaped) {
    reply_error(a, m.id, ESRCH, "no such process");
    return Handled::kDone;
  }
  unsigned idx = static_cast<unsigned>(p - a.procs);
  switch (m.type) {
    case Type::kStdin: {
      if (p->in_fd < 0 || p->close_stdin) {
        reply_error(a, m.id, EPIPE, "stdin is closed");
        return Handled::kDone;
      }
      uint8_t* buf = a.stdin_buf[idx];
      if (p->stdin_start > 0) {  // compact
        for (unsigned i = p->stdin_start; i < p->stdin_end; ++i) buf[i - p->stdin_start] = buf[i];
        p->stdin_end -= p->stdin_start;
        p->stdin_start = 0;
      }
      // Full: wait (reading no more frames) until the process takes some. The protocol has no
      // stdin credit yet, so this is where a host that floods stdin is slowed down.
      if (kStdinBuffer - p->stdin_end < m.input.data.size) return Handled::kWait;
      for (uint32_t i = 0; i < m.input.data.size; ++i) buf[p->stdin_end++] = m.input.data.data[i];
      pump_stdin(*p, buf);
      return Handled::kDone;
    }
    case Type::kCloseStdin:
      p->close_stdin = true;
      if (p->stdin_end == p->stdin_start && !p->tty) close_fd(p->in_fd);
      return Handled::kDone;
    case Type::kSignal:
      // kFlagGroup: the whole process group (each process is a session leader: setsid), so that
      // `sh -c` children go too; the process itself as well, should it have left its group.
      if (m.flags & proto::kFlagGroup) sys::kill(-p->pid, static_cast<int>(m.signal.number));
      sys::kill(p->pid, static_cast<int>(m.signal.number));
      return Handled::kDone;
    case Type::kResize:
      if (p->tty) {
        struct winsize ws = {m.resize.rows, m.resize.cols, 0, 0};
        sys::ioctl(p->in_fd, TIOCSWINSZ, reinterpret_cast<long>(&ws));
      }
      return Handled::kDone;
    default: return Handled::kDrop;  // the decoder lets nothing else through in this direction
  }
}

// Decodes and handles every whole frame in the input buffer; any decoding error drops the
// connection (the host will reconnect).
void handle_input(Agent& a) {
  unsigned start = 0;
  while (a.conn >= 0 && a.in_len - start >= proto::kHeaderSize) {
    proto::FrameHeader h;
    proto::WireError e = proto::parse_header(a.in + start, a.in_len - start, proto::Direction::kToAgent, h);
    if (e != proto::WireError::kOk) return drop_connection(a);
    unsigned size = proto::kHeaderSize + h.payload_size;
    if (a.in_len - start < size) break;
    Message m;
    if (proto::decode_frame(a.in + start, size, proto::Direction::kToAgent, m) != proto::WireError::kOk)
      return drop_connection(a);
    if (out_free(a) < proto::kMaxFrame) break;  // the host must read our replies first
    Handled done = handle(a, m);
    if (done == Handled::kDrop) return drop_connection(a);
    if (done == Handled::kWait) break;
    start += size;
  }
  if (a.conn < 0 || start == 0) return;
  for (unsigned i = start; i < a.in_len; ++i) a.in[i - start] = a.in[i];
  a.in_len -= start;
}

void accept_connection(Agent& a) {
  long fd = sys::accept4(kListenFd, kSockNonblock | kSockCloexec);
  if (fd < 0) return;
  drop_connection(a);  // a new connection replaces the old one: a restarted host comes back
  a.conn = static_cast<int>(fd);
  // A new host has taken nothing yet: every process gets a fresh window.
  for (Process& p : a.procs)
    if (p.id) p.credit = proto::kInitialWindow;
}

void read_signals(Agent& a) {
  struct signalfd_siginfo info[8];
  long got = sys::read(a.signal_fd, info, sizeof info);
  // SIGCHLD reaps; everything else (a host's SIGTERM included) is ignored: init leaves only by
  // SIGKILL, so that a long-lived sandbox outlives whoever started it.
  if (got > 0) reap(a);
}

}  // namespace

int run_agent(const AgentOptions& options, int signal_fd) {
  Agent& a = g_agent;
  a.options = options;
  a.signal_fd = signal_fd;
  set_nonblocking(kListenFd);
  enum Kind : uint8_t { kSignals, kListen, kConn, kStdout, kStderr, kStdinFd, kWatchFd };
  constexpr unsigned kMaxPollFds = 3 + 3 * kMaxProcesses + WatchService::kMaxWatches;
  static sys::PollFd fds[kMaxPollFds];
  static uint8_t kinds[kMaxPollFds];
  static uint8_t slots[kMaxPollFds];
  for (;;) {
    unsigned n = 0;
    auto add = [&](int fd, short events, Kind kind, int slot) {
      fds[n] = {fd, events, 0};
      kinds[n] = kind;
      slots[n++] = static_cast<uint8_t>(slot);
    };
    add(signal_fd, kPollIn, kSignals, 0);
    add(kListenFd, kPollIn, kListen, 0);
    if (a.conn >= 0) {
      short ev = static_cast<short>((a.in_len < kInBuffer ? kPollIn : 0) | (a.out.len ? kPollOut : 0));
      add(a.conn, ev, kConn, 0);
    }
    uint64_t deadline = 0;
    bool can_send = a.conn >= 0 && a.hello_done && a.out.room_for_output();
    bool can_stream = can_send && a.out.room_for_stream();
    for (int i = 0; i < kMaxProcesses; ++i) {
      Process& p = a.procs[i];
      if (!p.id) continue;
      for (int s = 0; s < 2; ++s)
        if (p.out_fd[s] >= 0 && can_send && p.credit > 0) add(p.out_fd[s], kPollIn, s ? kStderr : kStdout, i);
      if (p.in_fd >= 0 && p.stdin_end > p.stdin_start) add(p.in_fd, kPollOut, kStdinFd, i);
      if (p.deadline_ms && !p.reaped && (!deadline || p.deadline_ms < deadline)) deadline = p.deadline_ms;
    }
    for (unsigned i = 0; i < WatchService::kMaxWatches && can_stream; ++i)
      if (int fd = a.watches->poll_fd(i); fd >= 0) add(fd, kPollIn, kWatchFd, static_cast<int>(i));
    sys::Timespec timeout{0, 0};
    sys::Timespec* wait = nullptr;
    if (can_stream && (a.files->has_work() || a.watches->has_work())) {
      wait = &timeout;  // a stream can go on now: look at the fds, but do not sleep
    } else if (deadline) {
      uint64_t now = now_ms(), left = deadline > now ? deadline - now : 0;
      timeout = {static_cast<long>(left / 1000), static_cast<long>(left % 1000) * 1000000};
      wait = &timeout;
    }
    long ready = sys::ppoll(fds, n, wait);
    if (ready < 0 && ready != -EINTR) continue;

    for (unsigned i = 0; ready > 0 && i < n; ++i) {
      if (!fds[i].revents) continue;
      Process& p = a.procs[slots[i]];
      switch (kinds[i]) {
        case kSignals: read_signals(a); break;
        case kListen: accept_connection(a); break;
        case kConn:
          if (fds[i].fd != a.conn) break;
          if (fds[i].revents & kPollOut) flush(a);
          if (a.conn >= 0 && (fds[i].revents & (kPollIn | kPollHup | kPollErr))) {
            if (a.in_len == kInBuffer) {  // stalled on a full buffer: only a hang-up gets here
              if (fds[i].revents & (kPollHup | kPollErr)) drop_connection(a);
              break;
            }
            long got = sys::read(a.conn, a.in + a.in_len, kInBuffer - a.in_len);
            if (got > 0) a.in_len += static_cast<unsigned>(got);
            else if (got != -EAGAIN && got != -EINTR) drop_connection(a);
          }
          break;
        case kStdout:
        case kStderr: {
          int s = kinds[i] == kStderr;
          if (p.out_fd[s] == fds[i].fd) pump_output(a, p, s);
          break;
        }
        case kStdinFd:
          if (p.in_fd == fds[i].fd) pump_stdin(p, a.stdin_buf[slots[i]]);
          break;
        case kWatchFd:
          if (a.watches->poll_fd(slots[i]) == fds[i].fd) a.watches->readable(slots[i]);
          break;
      }
    }
    enforce_timeouts(a);
    if (a.conn >= 0) handle_input(a);
    // File streams and watches after the processes: each gets one bounded step per pass.
    if (a.conn >= 0 && a.hello_done) {
      a.files->pump(a.out);
      a.watches->pump(a.out);
    }
    finish_processes(a);
    flush(a);
    finish_processes(a);  // frees the slots whose Exited has just left
  }
}

}  // namespace airlock::agent
