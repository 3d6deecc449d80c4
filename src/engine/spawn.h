// Spawning the sandbox's first process: clone into fresh namespaces, let the parent map ids
// and place the child in its cgroup, then (in the child) execute the mount plan, drop
// privileges, install seccomp and exec airlock-init as PID 1.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "engine/mount_plan.h"

namespace airlock {

struct SpawnRequest {
  const MountPlan* plan = nullptr;
  int init_fd = -1;                      // O_PATH fd of the airlock-init binary
  std::vector<std::string> init_argv;
  std::vector<std::string> init_env;     // becomes the command's environment
  uint64_t keep_caps = 0;                // init's capability set (it narrows further for the command)
  int stdin_fd = -1;                     // -1: /dev/null opened inside the sandbox
  int stdout_fd = -1;                    // -1: /dev/null inside
  int stderr_fd = -1;
  int control_fd = -1;                   // child end of the init control socket, or the agent's
                                         // listening socket (service sandboxes); becomes fd 3
  // SIGKILL the sandbox when the creating thread dies (one-shot runs). Service sandboxes leave it
  // off: they must outlive the process that created them.
  bool parent_death_signal = true;
  uint32_t host_id_base = 0;             // sandbox ids 0..65535 map to base..base+65535
  uint32_t id_count = 65536;
  std::string hostname = "sandbox";
  // Runs in the parent after the id maps are written and before the child may go on:
  // join the cgroup, idmap the template layers (they need the child's user namespace).
  std::function<Status(pid_t pid, int userns_fd)> before_go;
};

struct SpawnedChild {
  pid_t pid = -1;
  UniqueFd pidfd;
};

// Returns once airlock-init has been exec'd (or with the step and errno that stopped the child).
Result<SpawnedChild> spawn_sandbox(const SpawnRequest& request);

}  // namespace airlock
