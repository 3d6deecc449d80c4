#include "engine/spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/fs.h"
#include "engine/capabilities.h"
#include "engine/seccomp_program.h"

namespace airlock {
namespace {

// Steps of the child, reported as (step, errno) when one fails. Mount plan op i is 1000 + i.
enum ChildStep : int32_t {
  kWaitForParent = 1,
  kSetGroups,
  kSetIds,
  kCgroupNamespace,
  kTimeNamespace,
  kHostname,
  kLoopback,
  kRlimits,
  kStdio,
  kCapabilities,
  kNoNewPrivs,
  kParentDeathSignal,
  kParentGone,
  kSeccomp,
  kExec,
  kMountPlanBase = 1000,
};

struct ChildReport {
  int32_t step;
  int32_t err;
};

const char* step_name(int32_t step) {
  switch (step) {
    case kWaitForParent: return "wait for parent";
    case kSetGroups: return "setgroups";
    case kSetIds: return "become root of the user namespace";
    case kCgroupNamespace: return "unshare cgroup namespace";
    case kTimeNamespace: return "unshare time namespace";
    case kHostname: return "sethostname";
    case kLoopback: return "bring up loopback";
    case kRlimits: return "setrlimit";
    case kStdio: return "set up stdio";
    case kCapabilities: return "drop capabilities";
    case kNoNewPrivs: return "set no_new_privs";
    case kParentDeathSignal: return "set parent death signal";
    case kParentGone: return "parent exited";
    case kSeccomp: return "install seccomp filter";
    case kExec: return "exec airlock-init";
    default: return "setup";
  }
}

// Everything the child needs, precomputed so that the child never allocates.
struct ChildContext {
  const SpawnRequest* request;
  int sync_fd;    // read end: one byte from the parent means "ids mapped, cgroup joined, go"
  int report_fd;  // write end (CLOEXEC): a ChildReport on failure, EOF on successful exec
  char* const* argv;
  char* const* envp;
  int last_cap;
  sock_fprog filter;
};

[[noreturn]] void fail(const ChildContext& ctx, int32_t step, int err) {
  ChildReport report{step, err};
  ssize_t ignored = ::write(ctx.report_fd, &report, sizeof report);
  (void)ignored;
  ::_exit(125);
}

int bring_up_loopback() {
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return errno;
  struct ifreq ifr = {};
  std::memcpy(ifr.ifr_name, "lo", 3);
  int rc = ::ioctl(sock, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    rc = ::ioctl(sock, SIOCSIFFLAGS, &ifr);
  }
  int err = rc == 0 ? 0 : errno;
  ::close(sock);
  return err;
}

int move_fd(int from, int to) {
  if (from == to) return ::fcntl(to, F_SETFD, 0) == 0 ? 0 : errno;
  return ::dup2(from, to) == to ? 0 : errno;
}

// Returns fd itself if it is above 3, else a close-on-exec copy above 3 (-1 stays -1).
int lift_fd(int fd) {
  if (fd < 0 || fd > 3) return fd;
  return ::fcntl(fd, F_DUPFD_CLOEXEC, 4);
}

int open_null_at(int target) {
  int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return errno;
  int err = move_fd(fd, target);
  ::close(fd);
  return err;
}

// Between clone and exec: async-signal-safe calls only; every failure goes to the parent.
[[noreturn]] void child_main(const ChildContext& ctx) {
  const SpawnRequest& req = *ctx.request;
  char go = 0;
  ssize_t got;
  do {
    got = ::read(ctx.sync_fd, &go, 1);
  } while (got < 0 && errno == EINTR);
  if (got != 1) fail(ctx, kWaitForParent, got < 0 ? errno : EPIPE);

  // Drop the host root's supplementary groups, then become uid/gid 0 of our own namespace
  // (host ids base..base+65535): from here on nothing we do is privileged outside it.
  // Raw syscalls: glibc's wrappers apply a credential change to every thread of the process
  // (setxid broadcast over the thread list), and this child of a multithreaded parent inherited
  // that list without the threads: it would wait forever on one caught mid-creation or exit.
  if (::syscall(SYS_setgroups, 0, nullptr) != 0) fail(ctx, kSetGroups, errno);
  if (::syscall(SYS_setresgid, 0, 0, 0) != 0 || ::syscall(SYS_setresuid, 0, 0, 0) != 0) fail(ctx, kSetIds, errno);

  // The parent has put us in the sandbox cgroup: make it our cgroup namespace's root, so
  // /proc/self/cgroup reveals nothing of the host's hierarchy.
  if (::unshare(CLONE_NEWCGROUP) != 0) fail(ctx, kCgroupNamespace, errno);
  // Time namespace where the kernel has it: init (exec'd next) lands in it.
  if (::unshare(CLONE_NEWTIME) != 0 && errno != EINVAL) fail(ctx, kTimeNamespace, errno);

  const auto& ops = req.plan->ops;
  for (size_t i = 0; i < ops.size(); ++i) {
    int err = execute_mount_op(ops[i]);
    if (err != 0 && !ops[i].optional) fail(ctx, kMountPlanBase + static_cast<int32_t>(i), err);
  }

  if (::sethostname(req.hostname.data(), req.hostname.size()) != 0) fail(ctx, kHostname, errno);
  if (int err = bring_up_loopback()) fail(ctx, kLoopback, err);
  struct rlimit no_core = {0, 0};  // a crash inside must not hand a core file to the host's handler
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0) fail(ctx, kRlimits, errno);

  // stdio: only fds 0-2 and the control socket (3) survive into init. First lift every fd we
  // still need out of 0-3, so that filling 0-3 cannot clobber one of them.
  int init_fd = lift_fd(req.init_fd), stdin_fd = lift_fd(req.stdin_fd), stdout_fd = lift_fd(req.stdout_fd);
  int stderr_fd = lift_fd(req.stderr_fd), control_fd = lift_fd(req.control_fd);
  int report_fd = lift_fd(ctx.report_fd), sync_fd = lift_fd(ctx.sync_fd);
  if (report_fd < 0 || init_fd < 0 || control_fd < 0 || sync_fd < 0) fail(ctx, kStdio, EBADF);
  ChildContext lifted = ctx;
  lifted.report_fd = report_fd;
  int err = 0;
  if (!err) err = stdin_fd >= 0 ? move_fd(stdin_fd, 0) : open_null_at(0);
  if (!err) err = stdout_fd >= 0 ? move_fd(stdout_fd, 1) : open_null_at(1);
  if (!err) err = stderr_fd >= 0 ? move_fd(stderr_fd, 2) : open_null_at(2);
  if (!err) err = move_fd(control_fd, 3);
  if (err) fail(lifted, kStdio, err);

  if (int cap_err = caps::restrict_to(req.keep_caps, ctx.last_cap)) fail(lifted, kCapabilities, cap_err);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(lifted, kNoNewPrivs, errno);
  if (req.parent_death_signal) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail(lifted, kParentDeathSignal, errno);
    // If the parent died before the line above, no signal will come: check by hand.
    struct pollfd parent_alive = {sync_fd, 0, 0};
    if (::poll(&parent_alive, 1, 0) > 0 && (parent_alive.revents & (POLLHUP | POLLERR)))
      fail(lifted, kParentGone, EPIPE);
  }

  // Every other inherited fd (template trees, volume trees, host pipes) is marked close-on-exec:
  // the sandbox starts with 0-3 only. init_fd and report_fd stay usable until the exec itself.
  if (::syscall(SYS_close_range, 4U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) fail(lifted, kStdio, errno);

  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &ctx.filter) != 0) fail(lifted, kSeccomp, errno);
  ::syscall(SYS_execveat, init_fd, "", ctx.argv, ctx.envp, AT_EMPTY_PATH);
  fail(lifted, kExec, errno);
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

Status write_id_maps(pid_t pid, uint32_t base, uint32_t count) {
  std::string line = "0 " + std::to_string(base) + " " + std::to_string(count) + "\n";
  std::string proc = "/proc/" + std::to_string(pid);
  TRY_CTX(write_file(proc + "/uid_map", line), "map uids");
  TRY_CTX(write_file(proc + "/gid_map", line), "map gids");
  return {};
}

}  // namespace

Result<SpawnedChild> spawn_sandbox(const SpawnRequest& req) {
  if (!req.plan || req.init_fd < 0 || req.control_fd < 3) return plain_error("spawn: incomplete request");

  int sync[2], report[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) return sys_error("pipe");
  UniqueFd sync_read(sync[0]), sync_write(sync[1]);
  if (::pipe2(report, O_CLOEXEC) != 0) return sys_error("pipe");
  UniqueFd report_read(report[0]), report_write(report[1]);

  auto argv = c_strings(req.init_argv);
  auto envp = c_strings(req.init_env);
  auto program = seccomp::sandbox_program();
  ChildContext ctx{&req, sync_read.get(), report_write.get(), argv.data(), envp.data(), caps::last_cap(),
                   sock_fprog{program.length, const_cast<sock_filter*>(program.filter)}};

  int pidfd = -1;
  unsigned long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
                        CLONE_PIDFD | SIGCHLD;
  long rc = ::syscall(SYS_clone, flags, nullptr, &pidfd, nullptr, nullptr);
  if (rc < 0) return sys_error("clone sandbox namespaces");
  if (rc == 0) child_main(ctx);

  SpawnedChild child{static_cast<pid_t>(rc), UniqueFd(pidfd)};
  sync_read.reset();
  report_write.reset();
  auto abandon = [&child](Error error) -> Error {
    ::syscall(SYS_pidfd_send_signal, child.pidfd.get(), SIGKILL, nullptr, 0);
    ::waitpid(child.pid, nullptr, 0);
    return error;
  };

  if (auto mapped = write_id_maps(child.pid, req.host_id_base, req.id_count); !mapped.ok())
    return abandon(std::move(mapped).error());
  if (req.before_go) {
    UniqueFd userns(::open(("/proc/" + std::to_string(child.pid) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
    if (!userns) return abandon(sys_error("open user namespace"));
    if (auto ready = req.before_go(child.pid, userns.get()); !ready.ok()) return abandon(std::move(ready).error());
  }
  if (::write(sync_write.get(), "g", 1) != 1) return abandon(sys_error("release child"));

  ChildReport failure{};
  ssize_t n;
  do {
    n = ::read(report_read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return child;  // the report pipe closed on exec: airlock-init is running
  ::waitpid(child.pid, nullptr, 0);
  if (n != sizeof failure) return plain_error("sandbox setup: child exited without a report");
  std::string what = failure.step >= kMountPlanBase &&
                             static_cast<size_t>(failure.step - kMountPlanBase) < req.plan->ops.size()
                         ? req.plan->ops[failure.step - kMountPlanBase].describe()
                         : step_name(failure.step);
  return sys_error("sandbox setup: " + what, failure.err);
}

}  // namespace airlock
