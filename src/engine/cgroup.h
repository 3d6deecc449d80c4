// Per-sandbox cgroups on cgroup v1, v2, or a hybrid of both. Every cgroup Airlock makes is a child of
// the cgroup our own process is in (per controller), so we never touch cgroups we were not given.
//
//   TRY(auto roots, CgroupRoots::detect());              // once per process
//   TRY(auto cg, Cgroup::create(roots, "airlock-12", limits));
//   TRY_STATUS(cg.add_process(pid));                      // or before exec, from the parent
//   ...
//   TRY(auto st, cg.stats());
//   TRY_STATUS(cg.destroy());                             // kills what is left, removes the directories
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace airlock {

struct CgroupLimits {
  uint64_t memory_bytes = 0;    // 0 = unlimited; with a limit, swap is off (the limit is real memory)
  uint64_t cpu_millicores = 0;  // 1000 = one CPU; 0 = unlimited
  uint64_t max_pids = 0;        // 0 = unlimited
};

struct CgroupStats {
  uint64_t memory_peak_bytes = 0;
  uint64_t cpu_usage_ns = 0;
  uint64_t oom_kills = 0;
};

enum class CgroupVersion { v1, v2 };

// Controllers a sandbox's cgroup uses, as bits.
enum CgroupController : unsigned {
  kCgroupMemory = 1u << 0,   // required
  kCgroupCpu = 1u << 1,      // required
  kCgroupPids = 1u << 2,     // required
  kCgroupCpuacct = 1u << 3,  // v1, only without a v2 tree: cpu usage
  kCgroupFreezer = 1u << 4,  // v1, only without a v2 tree: kill_all without cgroup.kill
};

// One hierarchy a sandbox's cgroup lives in: a v1 hierarchy (one or more co-mounted controllers) or
// the v2 tree. The v2 tree is used whenever it is mounted, even with no controllers (hybrid hosts), as
// systemd does: its cgroup.kill ends every process however it forked in one write, and its cpu.stat
// counts cpu time, so v1 freezer and cpuacct are not needed there.
struct CgroupHierarchy {
  CgroupVersion version = CgroupVersion::v1;
  unsigned controllers = 0;  // CgroupController bits served by this hierarchy
  std::string own_dir;       // our own cgroup in it, e.g. /sys/fs/cgroup/memory/process_api/ab12
};

// mkdir/rmdir on the cgroup filesystem; empty = the real syscalls. Tests pass ones that also create
// (or remove) the knob files cgroupfs would, so a temp dir can stand in for /sys/fs/cgroup while the
// real path stays strict (knobs are opened without O_CREAT). Each returns 0 or an errno value.
struct CgroupDirOps {
  std::function<int(const std::string& dir)> make_dir;
  std::function<int(const std::string& dir)> remove_dir;
};

// Where our own process sits, per controller, and which version provides each controller.
class CgroupRoots {
 public:
  // Reads /proc/self/cgroup, /proc/self/mountinfo and (with a v2 tree) our cgroup.controllers, once.
  static Result<CgroupRoots> detect();
  // The same from given texts; path_prefix is prepended to every mount point (a temp dir for tests).
  static Result<CgroupRoots> from_files(std::string_view proc_self_cgroup, std::string_view mountinfo,
                                        std::string path_prefix, CgroupDirOps ops = {});

  // The v2 tree (when mounted) comes first, then v1 hierarchies; each appears once.
  const std::vector<CgroupHierarchy>& hierarchies() const { return hierarchies_; }
  const CgroupDirOps& dir_ops() const { return ops_; }
  // Which version serves a controller; only meaningful for the ones hierarchies() lists.
  CgroupVersion version_of(CgroupController controller) const;

 private:
  std::vector<CgroupHierarchy> hierarchies_;
  CgroupDirOps ops_;
};

// One sandbox's cgroup: a directory named `name` in each hierarchy of CgroupRoots.
// Move-only. The destructor does NOT destroy (the caller decides: a sandbox may outlive the daemon);
// a moved-from Cgroup is inert.
class Cgroup {
 public:
  // name: one path component such as "airlock-12". A cgroup of that name left by a killed run is
  // destroyed first. On failure everything made so far is removed.
  static Result<Cgroup> create(const CgroupRoots& roots, const std::string& name,
                               const CgroupLimits& limits);
  // The directories of `name` that exist (for collecting leftovers); ENOENT if none does.
  static Result<Cgroup> open_existing(const CgroupRoots& roots, const std::string& name);

  Cgroup(Cgroup&& other) noexcept;
  Cgroup& operator=(Cgroup&& other) noexcept;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  ~Cgroup() = default;

  // Moves pid into the cgroup in every hierarchy.
  Status add_process(pid_t pid);
  // v1: memory.max_usage_in_bytes, memory.oom_control oom_kill, cpuacct.usage;
  // v2: memory.peak, memory.events oom_kill, cpu.stat usage_usec. Missing files count as 0.
  Result<CgroupStats> stats() const;
  // SIGKILLs every process in it and its descendants, however they forked: cgroup.kill when the v2
  // tree has it; otherwise freeze (v1 freezer or cgroup.freeze), SIGKILL each pid, thaw, until empty.
  Status kill_all();
  // kill_all, wait (at most ~2 s) until empty, remove every directory (and any sub-cgroups the
  // sandbox made). Already-gone directories are fine; idempotent.
  Status destroy();

  const std::string& name() const { return name_; }
  std::vector<std::string> paths() const;  // diagnostics and tests

 private:
  struct Dir {
    CgroupVersion version;
    unsigned controllers;
    std::string path;
  };
  Cgroup(std::string name, CgroupDirOps ops) : name_(std::move(name)), ops_(std::move(ops)) {}
  Status make_dir(const CgroupHierarchy& hierarchy);
  Status kill_by_signal();

  std::string name_;
  std::vector<Dir> dirs_;  // empty once destroyed or moved from
  CgroupDirOps ops_;
};

// Names of child cgroups of our own cgroup (in any hierarchy) that start with prefix, sorted; for
// collecting leftovers of killed runs.
Result<std::vector<std::string>> list_cgroups(const CgroupRoots& roots, std::string_view prefix);

}  // namespace airlock
