// The mount plan: every filesystem step of building a sandbox root, as data.
// The parent builds and validates the plan (it may allocate and fail); the child, between
// clone and exec, only walks it with async-signal-safe syscalls (execute_mount_op).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace airlock {

enum class MountOpKind {
  kMount,      // mount(source, target, fstype, flags, data)
  kMoveFd,     // move_mount(fd, "", AT_FDCWD, target): attach a tree the parent prepared
  kBind,       // mount(source, target, MS_BIND | flags)
  kSetAttr,    // mount_setattr(target, attr_set/attr_clr [, AT_RECURSIVE])
  kMkdir,      // mkdir(target, mode); EEXIST is fine
  kMkfile,     // open(target, O_CREAT) as a bind target
  kSymlink,    // symlink(source, target)
  kWriteFile,  // write data to an existing file (e.g. a sysctl of the sandbox's own namespaces)
  kPivotRoot,  // chdir(target); pivot_root(".", "."); umount2(".", MNT_DETACH); chdir("/")
};

struct MountOp {
  MountOpKind kind = MountOpKind::kMount;
  std::string source;
  std::string target;
  std::string fstype;
  std::string data;
  unsigned long flags = 0;  // mount(2) MS_* flags
  uint64_t attr_set = 0;    // MOUNT_ATTR_* for kSetAttr
  uint64_t attr_clr = 0;
  bool recursive = false;
  int fd = -1;              // kMoveFd
  mode_t mode = 0755;
  bool optional = false;    // a failure is tolerated (and the plan goes on)

  std::string describe() const;  // "mount proc on /proc", for error messages and debug logs
};

struct MountPlanInput {
  std::string stage_dir;        // host directory where the private tmpfs goes (in the child's mount ns)
  uint64_t disk_bytes = 0;      // size of the writable layer
  uint64_t shm_bytes = 0;       // size of /dev/shm
  int skeleton_fd = -1;         // idmapped detached tree: lower layer of "/"
  int usr_fd = -1;              // idmapped detached tree: lower layer of "/usr"
  struct Volume {
    int fd = -1;                // detached tree of the host path (flags already set by the parent)
    std::string dest;           // inside the sandbox
    bool is_file = false;
  };
  std::vector<Volume> volumes;
};

struct MountPlan {
  std::vector<MountOp> ops;
};

// Paths masked in /proc and /sys as OCI runtimes do: files get /dev/null bound over them,
// directories an empty read-only tmpfs. Exposed for tests and docs.
const std::vector<std::string>& masked_paths();
// Paths made read-only inside the sandbox's /proc.
const std::vector<std::string>& read_only_paths();

Result<MountPlan> plan_mounts(const MountPlanInput& input);

// Executes one op. Async-signal-safe: no allocation, no exceptions; returns 0 or an errno.
int execute_mount_op(const MountOp& op);

}  // namespace airlock
