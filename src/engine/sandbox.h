// The engine's front door: Engine::create turns a SandboxSpec into a running sandbox whose
// PID 1 is airlock-init running the command; Sandbox owns everything it made and removes it.
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
};

class Engine {
 public:
  static Result<Engine> open(EngineConfig config);
  Result<Sandbox> create(const SandboxSpec& spec, const IoOptions& io);
  // Removes cgroups and id ranges left by a run that was killed before it could clean up.
  void collect_leftovers();

 private:
  Engine(EngineConfig config, CgroupRoots roots, UniqueFd init_fd)
      : config_(std::move(config)), roots_(std::move(roots)), ids_(config_.run_dir + "/ids"),
        init_fd_(std::move(init_fd)) {}
  EngineConfig config_;
  CgroupRoots roots_;
  IdRangeAllocator ids_;
  UniqueFd init_fd_;
};

}  // namespace airlock
