// The engine's front door: Engine::create turns a SandboxSpec into a running sandbox whose
// PID 1 is airlock-init running the command; Sandbox owns everything it made and removes it.
//
// Service sandboxes (IoOptions::service) run no command: init is the agent and serves the agent
// protocol (docs/PROTOCOL.md, AgentClient) on a unix socket the engine binds on the host. They
// have no parent-death signal, so they can outlive their creator once it calls detach().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "engine/cgroup.h"
#include "engine/id_range.h"
#include "engine/spec.h"

namespace airlock {

struct EngineConfig {
  std::string data_dir = "/var/lib/airlock";  // templates (shared, read-only layers)
  std::string run_dir = "/run/airlock";       // id-range locks, mount staging point
  std::string init_path;                      // the airlock-init binary
};

struct IoOptions {
  bool stdin_pipe = false;  // otherwise the sandbox's stdin is /dev/null
  bool tty = false;         // init allocates a pty inside and sends us its master
  unsigned short rows = 24;
  unsigned short cols = 80;
  // Service sandbox: init runs `--agent` on a listening unix socket bound (0600) at
  // agent_socket_path, by default <run_dir>/sandboxes/<name>/agent.sock (directory 0700).
  // spec.argv may be empty; stdin_pipe and tty are ignored (each Exec asks for its own).
  bool service = false;
  std::string agent_socket_path;  // setting it implies service
};

// What is left of a Sandbox after detach(): enough to find it again and to destroy it.
// Whoever holds this holds the sandbox's id-range lock, so no other airlock process reuses its
// host ids and Engine::collect_leftovers() elsewhere leaves its cgroup alone. If the holder
// dies, the kernel drops that lock: a daemon must re-take it on start (ARCHITECTURE.md) before
// anything collects leftovers, or the sandbox is collected as one.
struct DetachedSandbox {
  std::string name;
  pid_t init_pid = -1;
  std::string agent_socket_path;
  IdRange ids;
};

class Sandbox {
 public:
  Sandbox() = default;
  Sandbox(Sandbox&& other) noexcept { *this = std::move(other); }
  Sandbox& operator=(Sandbox&& other) noexcept;  // the moved-from Sandbox owns nothing
  ~Sandbox() { destroy(); }

  const std::string& name() const { return name_; }
  pid_t init_pid() const { return init_pid_; }
  int pidfd() const { return pidfd_.get(); }
  int control_fd() const { return control_.get(); }  // messages from init (hostile: validate)
  UniqueFd& stdin_fd() { return stdin_; }            // host ends; invalid when not used
  UniqueFd& stdout_fd() { return stdout_; }
  UniqueFd& stderr_fd() { return stderr_; }
  uint32_t host_id_base() const { return ids_.host_base(); }
  const ResourceLimits& limits() const { return limits_; }

  Status signal(int sig) const;          // to init, which forwards it to the command
  Status kill();                         // every process in the sandbox, however it forked
  std::optional<int> try_wait();         // init's wait status once it has exited
  Result<CgroupStats> stats() const;
  void destroy();                        // idempotent: kill, reap, remove cgroup, release ids
  const std::string& agent_socket_path() const { return agent_socket_path_; }  // service only
  // Lets go of the sandbox without destroying it: this Sandbox then owns nothing. Cleanup becomes
  // the caller's: Engine::destroy_detached(), with the returned record or with (name, init pid)
  // after the record's holder is gone. Init stays our child until we exit: whoever destroys it
  // in this process reaps it (destroy_detached does).
  DetachedSandbox detach();

 private:
  friend class Engine;
  std::string name_;
  pid_t init_pid_ = -1;
  bool reaped_ = false;
  UniqueFd pidfd_;
  UniqueFd control_;
  UniqueFd stdin_, stdout_, stderr_;
  std::optional<Cgroup> cgroup_;
  IdRange ids_;
  ResourceLimits limits_;
  std::string agent_socket_path_;
  std::string agent_dir_;  // the directory we made for the socket, removed with it
};

class Engine {
 public:
  static Result<Engine> open(EngineConfig config);
  Result<Sandbox> create(const SandboxSpec& spec, const IoOptions& io);
  // Removes cgroups and id ranges left by a run that was killed before it could clean up.
  void collect_leftovers();
  // Destroys a detached service sandbox: takes its id-range lock (EBUSY while someone else holds
  // it), kills everything in its cgroup, reaps init if it is our child, removes the cgroup, the
  // default socket directory <run_dir>/sandboxes/<name>, and releases the id range.
  Status destroy_detached(const std::string& name, pid_t init_pid);
  Status destroy_detached(DetachedSandbox sandbox);  // with the lock already held
  // <run_dir>/sandboxes/<name>/agent.sock
  std::string default_agent_socket_path(const std::string& name) const;

 private:
  Engine(EngineConfig config, CgroupRoots roots, UniqueFd init_fd)
      : config_(std::move(config)), roots_(std::move(roots)), ids_(config_.run_dir + "/ids"),
        init_fd_(std::move(init_fd)) {}
  EngineConfig config_;
  CgroupRoots roots_;
  IdRangeAllocator ids_;
  // Where the next allocation starts looking: after the last range taken, so a long-lived owner
  // (airlockd) does not re-probe every busy lock on each create. Starts at pid % count, so that
  // concurrent one-shot CLIs spread out.
  uint32_t next_hint_ = 0;
  bool hint_set_ = false;
  Status destroy_detached_with(const std::string& name, pid_t init_pid, IdRange ids);
  UniqueFd init_fd_;
};

}  // namespace airlock
