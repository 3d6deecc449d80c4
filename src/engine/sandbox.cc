#include "engine/sandbox.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <signal.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "common/cleanup.h"
#include "common/fs.h"
#include "engine/capabilities.h"
#include "engine/host_template.h"
#include "engine/mount_plan.h"
#include "engine/spawn.h"

namespace airlock {
namespace {

constexpr const char* kCgroupPrefix = "airlock-";

// The id-range index in a sandbox name ("airlock-17" -> 17); nullopt for any other name (such as
// "airlock-bench-4242", which belongs to someone else and must never be collected).
std::optional<uint32_t> sandbox_index(std::string_view name) {
  if (!name.starts_with(kCgroupPrefix)) return std::nullopt;
  name.remove_prefix(std::strlen(kCgroupPrefix));
  if (name.empty() || name.size() > 5) return std::nullopt;
  uint32_t index = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
    index = index * 10 + static_cast<uint32_t>(c - '0');
  }
  if (index >= kIdRangeCount) return std::nullopt;
  return index;
}

// A detached copy of a host tree (open_tree(OPEN_TREE_CLONE)); the child attaches it.
Result<UniqueFd> clone_tree(const std::string& path, bool recursive) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
  UniqueFd fd(static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, path.c_str(), flags)));
  if (!fd) return sys_error("clone mount tree " + path);
  return fd;
}

Status set_tree_attrs(int fd, uint64_t set, int userns_fd, std::string_view what) {
  struct mount_attr attr = {};
  attr.attr_set = set;
  if (userns_fd >= 0) {
    attr.attr_set |= MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(userns_fd);
  }
  if (::syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
    return sys_error("set attributes of " + std::string(what));
  return {};
}

struct Pipe {
  UniqueFd read, write;
};

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return sys_error("pipe");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

bool is_service(const IoOptions& io) { return io.service || !io.agent_socket_path.empty(); }

std::vector<std::string> init_arguments(const SandboxSpec& spec, const IoOptions& io) {
  std::vector<std::string> args = {"airlock-init", "--uid", std::to_string(spec.uid), "--gid",
                                   std::to_string(spec.gid), "--workdir", spec.workdir};
  if (is_service(io)) {
    if (spec.drop_all_caps) args.push_back("--cap-drop-all");
    args.push_back("--agent");
    return args;
  }
  if (io.tty) {
    args.insert(args.end(), {"--tty", std::to_string(io.rows), std::to_string(io.cols)});
  }
  if (spec.drop_all_caps) args.push_back("--cap-drop-all");
  args.push_back("--");
  args.insert(args.end(), spec.argv.begin(), spec.argv.end());
  return args;
}

Result<UniqueFd> open_init_binary(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd) return sys_error("open airlock-init at " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return sys_error("stat " + path);
  if (!S_ISREG(st.st_mode)) return plain_error("airlock-init at " + path + " is not a regular file");
  // The sandbox must not be able to rewrite the binary it runs as PID 1 (cf. CVE-2019-5736):
  // it runs as an unprivileged host uid, so the file must not be writable by "others".
  if (st.st_mode & S_IWOTH) return plain_error("airlock-init at " + path + " is world-writable; refusing to use it");
  return fd;
}

// The agent's listening socket, bound before the clone so that it exists (and accepts into the
// backlog) before init runs. Only root reaches it: its directory is 0700 and the socket 0600.
Result<UniqueFd> listen_agent_socket(const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return plain_error("agent socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("agent socket");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("remove stale " + path);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return sys_error("bind " + path);
  if (::chmod(path.c_str(), 0600) != 0 || ::listen(fd.get(), 8) != 0) {
    int err = errno;
    ::unlink(path.c_str());
    return sys_error("listen on " + path, err);
  }
  return fd;
}

void remove_agent_socket(const std::string& path, const std::string& dir) {
  if (!path.empty()) ::unlink(path.c_str());
  if (!dir.empty()) ::rmdir(dir.c_str());
}

std::string parent_dir(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Sandbox& Sandbox::operator=(Sandbox&& other) noexcept {
  if (this == &other) return *this;
  destroy();
  name_ = std::move(other.name_);
  init_pid_ = std::exchange(other.init_pid_, -1);
  reaped_ = std::exchange(other.reaped_, false);
  pidfd_ = std::move(other.pidfd_);
  control_ = std::move(other.control_);
  stdin_ = std::move(other.stdin_);
  stdout_ = std::move(other.stdout_);
  stderr_ = std::move(other.stderr_);
  cgroup_ = std::move(other.cgroup_);
  other.cgroup_.reset();
  ids_ = std::move(other.ids_);
  limits_ = other.limits_;
  agent_socket_path_ = std::move(other.agent_socket_path_);
  agent_dir_ = std::move(other.agent_dir_);
  other.agent_socket_path_.clear();
  other.agent_dir_.clear();
  return *this;
}

Status Sandbox::signal(int sig) const {
  if (!pidfd_ || reaped_) return plain_error("sandbox has exited");
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) != 0 && errno != ESRCH)
    return sys_error("signal sandbox init");
  return {};
}

Status Sandbox::kill() {
  // SIGKILL to the pid namespace's init takes every process of the namespace with it;
  // the cgroup kill is a second net for anything that might have escaped the namespace.
  if (pidfd_ && !reaped_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  if (cgroup_) return cgroup_->kill_all();
  return {};
}

std::optional<int> Sandbox::try_wait() {
  if (reaped_ || init_pid_ <= 0) return std::nullopt;
  int status = 0;
  pid_t r = ::waitpid(init_pid_, &status, WNOHANG);
  if (r == init_pid_) {
    reaped_ = true;
    return status;
  }
  if (r < 0 && errno == ECHILD) {
    // Someone else reaped it (SIGCHLD ignored by our caller?): it is gone, its status unknown.
    reaped_ = true;
    return W_EXITCODE(125, 0);
  }
  return std::nullopt;
}

Result<CgroupStats> Sandbox::stats() const {
  if (!cgroup_) return plain_error("sandbox has no cgroup");
  return cgroup_->stats();
}

void Sandbox::destroy() {
  if (init_pid_ > 0 && !reaped_) {
    (void)kill();
    ::waitpid(init_pid_, nullptr, 0);
    reaped_ = true;
  }
  if (cgroup_) {
    (void)cgroup_->destroy();
    cgroup_.reset();
  }
  ids_.release();
  pidfd_.reset();
  control_.reset();
  stdin_.reset();
  stdout_.reset();
  stderr_.reset();
  remove_agent_socket(agent_socket_path_, agent_dir_);
  agent_socket_path_.clear();
  agent_dir_.clear();
}

DetachedSandbox Sandbox::detach() {
  DetachedSandbox out{std::move(name_), init_pid_, std::move(agent_socket_path_), std::move(ids_)};
  name_.clear();
  init_pid_ = -1;
  reaped_ = false;
  cgroup_.reset();  // ~Cgroup removes nothing: the directories stay with the sandbox
  pidfd_.reset();
  control_.reset();
  stdin_.reset();
  stdout_.reset();
  stderr_.reset();
  agent_socket_path_.clear();
  agent_dir_.clear();
  return out;
}

std::string Engine::default_agent_socket_path(const std::string& name) const {
  return config_.run_dir + "/sandboxes/" + name + "/agent.sock";
}

Status Engine::destroy_detached(const std::string& name, pid_t init_pid) {
  auto index = sandbox_index(name);
  if (!index) return plain_error("not a sandbox name: " + name);
  // Holding the lock proves nobody else manages the sandbox (nor will start one on its ids).
  TRY(auto ids, ids_.try_acquire(*index));
  return destroy_detached_with(name, init_pid, std::move(ids));
}

Status Engine::destroy_detached(DetachedSandbox sandbox) {
  if (!sandbox.ids.held()) return plain_error("detached sandbox " + sandbox.name + " holds no id range");
  return destroy_detached_with(sandbox.name, sandbox.init_pid, std::move(sandbox.ids));
}

Status Engine::destroy_detached_with(const std::string& name, pid_t init_pid, IdRange ids) {
  auto cgroup = Cgroup::open_existing(roots_, name);
  Status result;
  if (cgroup.ok()) result = cgroup->kill_all();
  else if (cgroup.error().errnum != ENOENT) result = std::move(cgroup).error();
  // init_pid only serves to reap init when it is our child (the cgroup kill has reached it);
  // it is never signalled, so a stale pid cannot hit an unrelated process.
  if (init_pid > 0 && ::waitpid(init_pid, nullptr, WNOHANG) == 0) {
    // Our child, still exiting (it cannot be a reused pid before we reap it): wait on its pidfd
    // rather than polling with sleeps, which cost a fixed 10 ms per destroy.
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, init_pid, 0)));
    if (pidfd) {
      struct pollfd p = {pidfd.get(), POLLIN, 0};
      (void)::poll(&p, 1, 2000);
    }
    for (int i = 0; i < 200 && ::waitpid(init_pid, nullptr, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (cgroup.ok()) {
    Status removed = cgroup->destroy();
    if (result.ok() && !removed.ok()) result = std::move(removed);
  }
  std::string socket = default_agent_socket_path(name);
  remove_agent_socket(socket, parent_dir(socket));
  ids.release();
  if (!result.ok()) return std::move(result).error().with_context("destroy sandbox " + name);
  return {};
}

Result<Engine> Engine::open(EngineConfig config) {
  // The child mounts its private tmpfs on run_dir/mnt after it has become an unprivileged
  // host uid, so it must be able to traverse there (it lists nothing: 0711).
  TRY_STATUS(make_dirs(config.run_dir + "/mnt", 0711));
  if (::chmod(config.run_dir.c_str(), 0711) != 0 || ::chmod((config.run_dir + "/mnt").c_str(), 0711) != 0)
    return sys_error("chmod " + config.run_dir);
  TRY_STATUS(make_dirs(config.data_dir, 0755));
  TRY(auto init_fd, open_init_binary(config.init_path));
  TRY(auto roots, CgroupRoots::detect());
  return Engine(std::move(config), std::move(roots), std::move(init_fd));
}

void Engine::collect_leftovers() {
  auto names = list_cgroups(roots_, kCgroupPrefix);
  if (!names.ok()) return;
  for (const auto& name : *names) {
    auto index = sandbox_index(name);
    if (!index) continue;  // not one of ours
    // A service sandbox (its agent socket directory exists) belongs to whoever runs service
    // sandboxes (airlockd), even while that owner is down and its range lock is free: the owner
    // reconciles it on start. Only one-shot leftovers are ours to collect.
    struct stat st;
    if (::stat((config_.run_dir + "/sandboxes/" + name).c_str(), &st) == 0) continue;
    // Holding the range's lock proves its owner is gone: a live run never lets go of it.
    auto range = ids_.try_acquire(*index);
    if (!range.ok()) continue;
    if (auto cgroup = Cgroup::open_existing(roots_, name); cgroup.ok()) (void)cgroup->destroy();
  }
}

Result<Sandbox> Engine::create(const SandboxSpec& spec, const IoOptions& io) {
  const bool service = is_service(io);
  TRY_STATUS(validate(spec, !service));
  Sandbox box;
  box.limits_ = spec.limits;

  if (!hint_set_) {
    next_hint_ = static_cast<uint32_t>(::getpid()) % kIdRangeCount;
    hint_set_ = true;
  }
  TRY(box.ids_, ids_.allocate(next_hint_));
  next_hint_ = (box.ids_.index() + 1) % kIdRangeCount;
  box.name_ = kCgroupPrefix + std::to_string(box.ids_.index());
  TRY(auto tmpl, ensure_host_template(config_.data_dir));

  CgroupLimits limits{spec.limits.memory_bytes, spec.limits.cpu_millicores, spec.limits.max_pids};
  TRY(auto cgroup, Cgroup::create(roots_, box.name_, limits));
  box.cgroup_.emplace(std::move(cgroup));  // from here, ~Sandbox removes it on any failure

  TRY(auto skeleton, clone_tree(tmpl.skeleton_dir, false));
  TRY(auto usr, clone_tree(tmpl.usr_dir, false));
  std::vector<UniqueFd> volume_fds;
  MountPlanInput input;
  input.stage_dir = config_.run_dir + "/mnt";
  input.disk_bytes = spec.limits.disk_bytes;
  input.shm_bytes = std::min<uint64_t>(64ULL << 20, spec.limits.memory_bytes);
  input.skeleton_fd = skeleton.get();
  input.usr_fd = usr.get();
  for (const auto& volume : spec.volumes) {
    struct stat st;
    if (::stat(volume.host_path.c_str(), &st) != 0) return sys_error("volume " + volume.host_path);
    TRY(auto fd, clone_tree(volume.host_path, true));
    // Volumes are plain binds (no idmap): files keep their host owners, and the sandbox writes
    // as its own unprivileged host ids. nosuid/nodev stop smuggled setuid files and devices.
    uint64_t attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (volume.read_only ? MOUNT_ATTR_RDONLY : 0);
    TRY_STATUS(set_tree_attrs(fd.get(), attrs, -1, "volume " + volume.host_path));
    input.volumes.push_back({fd.get(), volume.dest, S_ISREG(st.st_mode)});
    volume_fds.push_back(std::move(fd));
  }
  TRY(auto plan, plan_mounts(input));

  Pipe in, out, err;
  UniqueFd control_host, control_child;
  if (service) {
    // fd 3 is the agent's listening socket; stdio is /dev/null (each Exec gets its own pipes).
    std::string path = io.agent_socket_path.empty() ? default_agent_socket_path(box.name_) : io.agent_socket_path;
    std::string dir = parent_dir(path);
    bool made_dir = ::access(dir.c_str(), F_OK) != 0;
    TRY_STATUS(make_dirs(dir, 0700));
    if (made_dir || io.agent_socket_path.empty()) box.agent_dir_ = dir;
    TRY(control_child, listen_agent_socket(path));
    box.agent_socket_path_ = path;  // from here, ~Sandbox removes it on any failure
  } else {
    if (io.stdin_pipe) {
      TRY(in, make_pipe());
    }
    if (!io.tty) {
      TRY(out, make_pipe());
      TRY(err, make_pipe());
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return sys_error("socketpair");
    control_host.reset(sv[0]);
    control_child.reset(sv[1]);
  }

  SpawnRequest req;
  req.plan = &plan;
  req.init_fd = init_fd_.get();
  req.init_argv = init_arguments(spec, io);
  req.init_env = spec.env;
  req.keep_caps = caps::default_root_set();
  req.stdin_fd = in.read.get();
  req.stdout_fd = out.write.get();
  req.stderr_fd = err.write.get();
  req.control_fd = control_child.get();
  req.host_id_base = box.ids_.host_base();
  req.id_count = kIdRangeSize;
  req.parent_death_signal = !service;
  Cgroup* cg = &*box.cgroup_;
  req.before_go = [&](pid_t pid, int userns_fd) -> Status {
    TRY_CTX(cg->add_process(pid), "join cgroup");
    constexpr uint64_t kLayerAttrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    TRY_STATUS(set_tree_attrs(skeleton.get(), kLayerAttrs, userns_fd, "template layer " + tmpl.skeleton_dir));
    TRY_STATUS(set_tree_attrs(usr.get(), kLayerAttrs, userns_fd, "template layer " + tmpl.usr_dir));
    return {};
  };
  TRY(auto child, spawn_sandbox(req));

  box.init_pid_ = child.pid;
  box.pidfd_ = std::move(child.pidfd);
  box.control_ = std::move(control_host);
  box.stdin_ = std::move(in.write);
  box.stdout_ = std::move(out.read);
  box.stderr_ = std::move(err.read);
  return box;
}

}  // namespace airlock
