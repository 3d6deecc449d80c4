#include "engine/mount_plan.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "common/units.h"
#include "engine/spec.h"

namespace airlock {
namespace {

// Device nodes the sandbox gets, bound from the host's /dev (a user namespace cannot mknod).
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};

MountOp op(MountOpKind kind, std::string target) {
  MountOp o;
  o.kind = kind;
  o.target = std::move(target);
  return o;
}

MountOp mount_op(std::string source, std::string target, std::string fstype, unsigned long flags, std::string data) {
  MountOp o = op(MountOpKind::kMount, std::move(target));
  o.source = std::move(source);
  o.fstype = std::move(fstype);
  o.flags = flags;
  o.data = std::move(data);
  return o;
}

MountOp mkdir_op(std::string target, mode_t mode = 0755) {
  MountOp o = op(MountOpKind::kMkdir, std::move(target));
  o.mode = mode;
  return o;
}

MountOp setattr_op(std::string target, uint64_t set, bool recursive, bool optional = false) {
  MountOp o = op(MountOpKind::kSetAttr, std::move(target));
  o.attr_set = set;
  o.recursive = recursive;
  o.optional = optional;
  return o;
}

MountOp bind_op(std::string source, std::string target, bool optional = false) {
  MountOp o = op(MountOpKind::kBind, std::move(target));
  o.source = std::move(source);
  o.flags = MS_BIND;
  o.optional = optional;
  return o;
}

MountOp symlink_op(std::string link_target, std::string path) {
  MountOp o = op(MountOpKind::kSymlink, std::move(path));
  o.source = std::move(link_target);
  return o;
}

bool is_masked_dir(const std::string& path) {
  static const char* kDirs[] = {"/proc/acpi", "/proc/asound", "/proc/scsi", "/proc/driver",
                                "/sys/firmware", "/sys/devices/virtual/powercap", "/sys/kernel/debug",
                                "/sys/kernel/tracing", "/sys/kernel/security"};
  return std::find(std::begin(kDirs), std::end(kDirs), path) != std::end(kDirs);
}

// Masked directories all get a bind of one shared empty read-only tmpfs (`empty_dir`): one
// superblock per sandbox instead of one per masked directory.
void add_masks(std::vector<MountOp>& ops, const std::string& root, const std::string& prefix,
               const std::string& empty_dir) {
  for (const auto& path : masked_paths()) {
    if (path.rfind(prefix, 0) != 0) continue;
    if (is_masked_dir(path)) {
      ops.push_back(bind_op(empty_dir, root + path, /*optional=*/true));  // not every kernel has every directory
    } else {
      ops.push_back(bind_op("/dev/null", root + path, /*optional=*/true));
    }
  }
}

}  // namespace

const std::vector<std::string>& masked_paths() {
  static const std::vector<std::string> kPaths = {
      "/proc/acpi", "/proc/asound", "/proc/driver", "/proc/scsi", "/proc/kcore", "/proc/keys",
      "/proc/key-users", "/proc/kallsyms", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
      "/proc/sched_debug", "/proc/kpagecount", "/proc/kpageflags", "/proc/kpagecgroup", "/proc/vmallocinfo",
      "/proc/config.gz", "/sys/firmware", "/sys/devices/virtual/powercap", "/sys/kernel/debug",
      "/sys/kernel/tracing", "/sys/kernel/security"};
  return kPaths;
}

const std::vector<std::string>& read_only_paths() {
  static const std::vector<std::string> kPaths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                  "/proc/sysrq-trigger"};
  return kPaths;
}

std::string MountOp::describe() const {
  switch (kind) {
    case MountOpKind::kMount: return "mount " + fstype + " on " + target;
    case MountOpKind::kMoveFd: return "attach prepared tree on " + target;
    case MountOpKind::kBind: return "bind " + source + " on " + target;
    case MountOpKind::kSetAttr: return "set mount attributes of " + target;
    case MountOpKind::kMkdir: return "mkdir " + target;
    case MountOpKind::kMkfile: return "create " + target;
    case MountOpKind::kSymlink: return "symlink " + target + " -> " + source;
    case MountOpKind::kWriteFile: return "write " + target;
    case MountOpKind::kPivotRoot: return "pivot_root into " + target;
  }
  return "unknown step";
}

Result<MountPlan> plan_mounts(const MountPlanInput& in) {
  if (in.stage_dir.empty() || in.stage_dir[0] != '/') return plain_error("mount plan: stage dir must be absolute");
  if (in.skeleton_fd < 0 || in.usr_fd < 0) return plain_error("mount plan: template layers are not open");
  if (in.disk_bytes < kMinDiskBytes) return plain_error("mount plan: writable layer too small");
  // tmpfs reads size=0 as "unlimited": a zero here would be a /dev/shm without bound.
  if (in.shm_bytes == 0) return plain_error("mount plan: /dev/shm needs a size");

  const std::string& s = in.stage_dir;
  const std::string root = s + "/root";
  std::vector<MountOp> ops;

  // 1. Our mounts must never propagate anywhere, and the host's never into us.
  ops.push_back(mount_op("", "/", "", MS_REC | MS_PRIVATE, ""));

  // 2. The private writable layer: one size-limited tmpfs holds both uppers, so --disk bounds
  //    everything the sandbox can write (ENOSPC inside; the host disk is untouched).
  uint64_t inodes = std::clamp<uint64_t>(in.disk_bytes / 4096, 16384, 4u << 20);
  ops.push_back(mount_op("airlock", s, "tmpfs", MS_NOSUID | MS_NODEV,
                         "size=" + std::to_string(in.disk_bytes) + ",nr_inodes=" + std::to_string(inodes) + ",mode=0755"));
  for (const char* dir : {"lower", "upper", "work", "usr-lower", "usr-upper", "usr-work", "root"})
    ops.push_back(mkdir_op(s + "/" + dir));

  // 3. Template layers: idmapped by the parent so the shared host copy looks root-owned inside.
  //    They are only ever overlay lowers: even a sandbox that regained mount rights could not
  //    write through them, since overlay sends every write to the private upper layer.
  MountOp skeleton = op(MountOpKind::kMoveFd, s + "/lower");
  skeleton.fd = in.skeleton_fd;
  ops.push_back(skeleton);
  MountOp usr = op(MountOpKind::kMoveFd, s + "/usr-lower");
  usr.fd = in.usr_fd;
  ops.push_back(usr);
  ops.push_back(mount_op("overlay", root, "overlay", MS_NOSUID | MS_NODEV,
                         "lowerdir=" + s + "/lower,upperdir=" + s + "/upper,workdir=" + s + "/work,userxattr"));
  // The host's /usr is read-only inside (as the host template promises); being an overlay lower
  // as well, it stays untouched even if a sandbox managed to remount this mount read-write.
  ops.push_back(mount_op("overlay", root + "/usr", "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV,
                         "lowerdir=" + s + "/usr-lower,upperdir=" + s + "/usr-upper,workdir=" + s + "/usr-work,userxattr"));

  // An empty, read-only directory to bind over masked directories (see add_masks).
  const std::string empty = s + "/empty";
  ops.push_back(mkdir_op(empty, 0555));
  ops.push_back(mount_op("empty", empty, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,nr_inodes=1,mode=0555"));

  // 4. /proc of the sandbox's own pid namespace; nested user namespaces off; sensitive paths
  //    masked or read-only (kcore, keys, sysrq-trigger, /proc/sys ...).
  ops.push_back(mount_op("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""));
  MountOp no_userns = op(MountOpKind::kWriteFile, root + "/proc/sys/user/max_user_namespaces");
  no_userns.data = "0";
  ops.push_back(no_userns);
  add_masks(ops, root, "/proc/", empty);
  for (const auto& path : read_only_paths()) {
    MountOp self_bind = bind_op(root + path, root + path, /*optional=*/true);
    self_bind.flags |= MS_REC;
    ops.push_back(self_bind);
    ops.push_back(setattr_op(root + path, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                             /*recursive=*/true, /*optional=*/true));
  }

  // 5. /sys read-only with firmware and friends masked (optional: some hosts refuse sysfs in a
  //    user namespace; /sys then stays an empty directory).
  MountOp sysfs = mount_op("sysfs", root + "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  sysfs.optional = true;
  ops.push_back(sysfs);
  add_masks(ops, root, "/sys/", empty);

  // 6. A minimal /dev: six host device nodes, a private devpts, a size-limited /dev/shm.
  const std::string dev = root + "/dev";
  ops.push_back(mount_op("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536,nr_inodes=64"));
  for (const char* name : kDevices) {
    ops.push_back(op(MountOpKind::kMkfile, dev + "/" + name));
    ops.push_back(bind_op(std::string("/dev/") + name, dev + "/" + name));
    ops.push_back(setattr_op(dev + "/" + name, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false));
  }
  ops.push_back(mkdir_op(dev + "/pts"));
  ops.push_back(mount_op("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                         "newinstance,ptmxmode=0666,mode=0620,gid=5"));
  ops.push_back(symlink_op("pts/ptmx", dev + "/ptmx"));
  ops.push_back(mkdir_op(dev + "/shm", 01777));
  ops.push_back(mount_op("shm", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV,
                         "mode=1777,size=" + std::to_string(in.shm_bytes) + ",nr_inodes=4096"));
  ops.push_back(mkdir_op(dev + "/mqueue"));
  MountOp mqueue = mount_op("mqueue", dev + "/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  mqueue.optional = true;
  ops.push_back(mqueue);
  ops.push_back(symlink_op("/proc/self/fd", dev + "/fd"));
  ops.push_back(symlink_op("/proc/self/fd/0", dev + "/stdin"));
  ops.push_back(symlink_op("/proc/self/fd/1", dev + "/stdout"));
  ops.push_back(symlink_op("/proc/self/fd/2", dev + "/stderr"));
  ops.push_back(setattr_op(dev, MOUNT_ATTR_RDONLY, false));

  // 7. Switch roots; the old root (with the whole host tree) is detached, not just hidden.
  ops.push_back(op(MountOpKind::kPivotRoot, root));

  // 8. Volumes, resolved only inside the new root: a symlink in the image can never point a
  //    volume at a host path, because the host tree is no longer reachable.
  for (const auto& volume : in.volumes) {
    if (volume.fd < 0) return plain_error("mount plan: volume " + volume.dest + " is not open");
    TRY_STATUS(validate_sandbox_path(volume.dest, "volume destination"));
    std::string prefix;
    size_t start = 1;
    while (start < volume.dest.size()) {
      size_t end = volume.dest.find('/', start);
      if (end == std::string::npos) end = volume.dest.size();
      std::string part = volume.dest.substr(start, end - start);
      start = end + 1;
      if (part.empty() || part == ".") continue;
      prefix += "/" + part;
      bool last = start > volume.dest.size();
      if (last && volume.is_file)
        ops.push_back(op(MountOpKind::kMkfile, prefix));
      else
        ops.push_back(mkdir_op(prefix));
    }
    if (prefix.empty()) return plain_error("mount plan: volume destination resolves to /");
    MountOp attach = op(MountOpKind::kMoveFd, prefix);
    attach.fd = volume.fd;
    ops.push_back(attach);
  }
  return MountPlan{std::move(ops)};
}

int execute_mount_op(const MountOp& o) {
  int rc = 0;
  switch (o.kind) {
    case MountOpKind::kMount:
      rc = ::mount(o.source.empty() ? nullptr : o.source.c_str(), o.target.c_str(),
                   o.fstype.empty() ? nullptr : o.fstype.c_str(), o.flags, o.data.empty() ? nullptr : o.data.c_str());
      break;
    case MountOpKind::kMoveFd:
      rc = static_cast<int>(::syscall(SYS_move_mount, o.fd, "", AT_FDCWD, o.target.c_str(), MOVE_MOUNT_F_EMPTY_PATH));
      break;
    case MountOpKind::kBind:
      rc = ::mount(o.source.c_str(), o.target.c_str(), nullptr, o.flags, nullptr);
      break;
    case MountOpKind::kSetAttr: {
      struct mount_attr attr = {};
      attr.attr_set = o.attr_set;
      attr.attr_clr = o.attr_clr;
      rc = static_cast<int>(::syscall(SYS_mount_setattr, AT_FDCWD, o.target.c_str(),
                                      o.recursive ? AT_RECURSIVE : 0, &attr, sizeof attr));
      break;
    }
    case MountOpKind::kMkdir:
      rc = ::mkdir(o.target.c_str(), o.mode);
      if (rc != 0 && errno == EEXIST) rc = 0;
      else if (rc == 0) rc = ::chmod(o.target.c_str(), o.mode);
      break;
    case MountOpKind::kMkfile: {
      int fd = ::open(o.target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
      if (fd < 0) return errno;
      ::close(fd);
      break;
    }
    case MountOpKind::kSymlink:
      rc = ::symlink(o.source.c_str(), o.target.c_str());
      break;
    case MountOpKind::kWriteFile: {
      int fd = ::open(o.target.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
      if (fd < 0) return errno;
      ssize_t n = ::write(fd, o.data.data(), o.data.size());
      int saved = errno;
      ::close(fd);
      if (n != static_cast<ssize_t>(o.data.size())) return n < 0 ? saved : EIO;
      break;
    }
    case MountOpKind::kPivotRoot:
      if (::chdir(o.target.c_str()) != 0) return errno;
      if (::syscall(SYS_pivot_root, ".", ".") != 0) return errno;
      if (::umount2(".", MNT_DETACH) != 0) return errno;
      rc = ::chdir("/");
      break;
  }
  return rc == 0 ? 0 : errno;
}

}  // namespace airlock
