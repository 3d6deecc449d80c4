// The mount plan is data, so its security properties are checked here without mounting anything:
// what is mounted, with which options, and above all in which order relative to pivot_root.
#include "engine/mount_plan.h"

#include <linux/mount.h>
#include <sys/mount.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "engine/spec.h"

namespace airlock {
namespace {

const std::string kStage = "/run/airlock/mnt";
const std::string kRoot = kStage + "/root";
constexpr size_t kNone = static_cast<size_t>(-1);
constexpr int kSkeletonFd = 10;
constexpr int kUsrFd = 11;

MountPlanInput base_input() {
  MountPlanInput in;
  in.stage_dir = kStage;
  in.disk_bytes = 1ULL << 30;
  in.shm_bytes = 64ULL << 20;
  in.skeleton_fd = kSkeletonFd;
  in.usr_fd = kUsrFd;
  return in;
}

std::vector<MountOp> plan_ops(const MountPlanInput& in) {
  auto plan = plan_mounts(in);
  EXPECT_TRUE(plan.ok()) << plan.error().message;
  return plan.ok() ? plan->ops : std::vector<MountOp>{};
}

size_t find_op(const std::vector<MountOp>& ops, const std::function<bool(const MountOp&)>& match) {
  for (size_t i = 0; i < ops.size(); ++i)
    if (match(ops[i])) return i;
  return kNone;
}

size_t find_mount(const std::vector<MountOp>& ops, const std::string& fstype, const std::string& target) {
  return find_op(ops, [&](const MountOp& o) {
    return o.kind == MountOpKind::kMount && o.fstype == fstype && o.target == target;
  });
}

size_t find_kind(const std::vector<MountOp>& ops, MountOpKind kind, const std::string& target) {
  return find_op(ops, [&](const MountOp& o) { return o.kind == kind && o.target == target; });
}

size_t pivot_index(const std::vector<MountOp>& ops) {
  size_t count = std::count_if(ops.begin(), ops.end(), [](const MountOp& o) { return o.kind == MountOpKind::kPivotRoot; });
  EXPECT_EQ(count, 1u) << "expected exactly one pivot_root";
  return find_op(ops, [](const MountOp& o) { return o.kind == MountOpKind::kPivotRoot; });
}

std::vector<std::string> split_options(const std::string& data) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= data.size()) {
    size_t end = data.find(',', start);
    if (end == std::string::npos) end = data.size();
    out.push_back(data.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool has_option(const std::string& data, const std::string& option) {
  auto options = split_options(data);
  return std::find(options.begin(), options.end(), option) != options.end();
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// --- the host side: private propagation, writable layer, template layers --------------------------

TEST(MountPlan, FirstOpMakesTheWholeTreePrivate) {
  auto ops = plan_ops(base_input());
  ASSERT_FALSE(ops.empty());
  const MountOp& first = ops[0];
  EXPECT_EQ(first.kind, MountOpKind::kMount);
  EXPECT_EQ(first.target, "/");
  EXPECT_EQ(first.flags, static_cast<unsigned long>(MS_REC | MS_PRIVATE));
  EXPECT_TRUE(first.source.empty());
  EXPECT_TRUE(first.fstype.empty());
  EXPECT_FALSE(first.optional);
}

TEST(MountPlan, WritableLayerIsATmpfsOfExactlyTheDiskSize) {
  for (uint64_t disk : {kMinDiskBytes, uint64_t{5} << 20, uint64_t{1} << 30}) {
    MountPlanInput in = base_input();
    in.disk_bytes = disk;
    auto ops = plan_ops(in);
    size_t tmpfs = find_mount(ops, "tmpfs", kStage);
    ASSERT_NE(tmpfs, kNone) << "no tmpfs on the stage dir";
    EXPECT_TRUE(has_option(ops[tmpfs].data, "size=" + std::to_string(disk))) << ops[tmpfs].data;
    EXPECT_EQ(ops[tmpfs].flags & (MS_NOSUID | MS_NODEV), static_cast<unsigned long>(MS_NOSUID | MS_NODEV));
    EXPECT_FALSE(ops[tmpfs].optional);
    // Every directory the overlays write to lives on that tmpfs, so it is created after it.
    for (const char* dir : {"upper", "work", "usr-upper", "usr-work", "lower", "usr-lower", "root"}) {
      size_t mkdir = find_kind(ops, MountOpKind::kMkdir, kStage + "/" + dir);
      ASSERT_NE(mkdir, kNone) << dir;
      EXPECT_GT(mkdir, tmpfs) << dir << " is created before the tmpfs (it would be on the host disk)";
    }
  }
}

TEST(MountPlan, TemplateLayersAreAttachedFromTheGivenFds) {
  auto ops = plan_ops(base_input());
  size_t lower = find_kind(ops, MountOpKind::kMoveFd, kStage + "/lower");
  size_t usr_lower = find_kind(ops, MountOpKind::kMoveFd, kStage + "/usr-lower");
  ASSERT_NE(lower, kNone);
  ASSERT_NE(usr_lower, kNone);
  EXPECT_EQ(ops[lower].fd, kSkeletonFd);
  EXPECT_EQ(ops[usr_lower].fd, kUsrFd);
}

TEST(MountPlan, OverlaysUseTheStageDirAndUserxattr) {
  auto ops = plan_ops(base_input());
  size_t root = find_mount(ops, "overlay", kRoot);
  size_t usr = find_mount(ops, "overlay", kRoot + "/usr");
  ASSERT_NE(root, kNone);
  ASSERT_NE(usr, kNone);
  EXPECT_LT(root, usr) << "/usr overlay must sit on top of the root overlay";

  auto root_options = split_options(ops[root].data);
  EXPECT_EQ(root_options, (std::vector<std::string>{"lowerdir=" + kStage + "/lower", "upperdir=" + kStage + "/upper",
                                                    "workdir=" + kStage + "/work", "userxattr"}));
  auto usr_options = split_options(ops[usr].data);
  EXPECT_EQ(usr_options, (std::vector<std::string>{"lowerdir=" + kStage + "/usr-lower", "upperdir=" + kStage + "/usr-upper",
                                                   "workdir=" + kStage + "/usr-work", "userxattr"}));
  for (size_t i : {root, usr}) {
    EXPECT_EQ(ops[i].flags & (MS_NOSUID | MS_NODEV), static_cast<unsigned long>(MS_NOSUID | MS_NODEV));
    EXPECT_FALSE(ops[i].optional);
  }
  // The lower layers must be in place before the overlays that use them.
  EXPECT_LT(find_kind(ops, MountOpKind::kMoveFd, kStage + "/lower"), root);
  EXPECT_LT(find_kind(ops, MountOpKind::kMoveFd, kStage + "/usr-lower"), usr);
}

// --- /proc and /sys -------------------------------------------------------------------------------

TEST(MountPlan, ProcIsMountedOnTheNewRootBeforePivot) {
  auto ops = plan_ops(base_input());
  size_t proc = find_mount(ops, "proc", kRoot + "/proc");
  ASSERT_NE(proc, kNone);
  EXPECT_LT(proc, pivot_index(ops));
  EXPECT_GT(proc, find_mount(ops, "overlay", kRoot)) << "proc would be hidden under the root overlay";
  EXPECT_EQ(ops[proc].flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC),
            static_cast<unsigned long>(MS_NOSUID | MS_NODEV | MS_NOEXEC));
  EXPECT_FALSE(ops[proc].optional);
}

TEST(MountPlan, MaskedPathsIncludeTheKnownKernelLeaks) {
  const auto& masked = masked_paths();
  for (const char* path : {"/proc/kcore", "/proc/keys", "/proc/kallsyms", "/proc/timer_list", "/proc/sched_debug",
                           "/proc/acpi", "/proc/scsi", "/sys/firmware", "/sys/kernel/debug"})
    EXPECT_NE(std::find(masked.begin(), masked.end(), path), masked.end()) << path << " is not masked";
  for (const auto& path : masked)
    EXPECT_TRUE(starts_with(path, "/proc/") || starts_with(path, "/sys/")) << path;
}

TEST(MountPlan, EveryMaskedPathIsCoveredBeforePivotAndAfterItsFilesystem) {
  auto ops = plan_ops(base_input());
  size_t pivot = pivot_index(ops);
  size_t proc = find_mount(ops, "proc", kRoot + "/proc");
  size_t sys = find_mount(ops, "sysfs", kRoot + "/sys");
  ASSERT_NE(proc, kNone);
  ASSERT_NE(sys, kNone);
  for (const auto& path : masked_paths()) {
    size_t mask = find_op(ops, [&](const MountOp& o) {
      if (o.target != kRoot + path) return false;
      bool null_bind = o.kind == MountOpKind::kBind && o.source == "/dev/null";
      bool empty_bind = o.kind == MountOpKind::kBind && o.source == kStage + "/empty";
      return null_bind || empty_bind;
    });
    ASSERT_NE(mask, kNone) << path << " is not masked";
    EXPECT_LT(mask, pivot) << path << " is masked after pivot_root";
    // A mask placed before its filesystem is mounted would be hidden under it.
    EXPECT_GT(mask, starts_with(path, "/proc/") ? proc : sys) << path << " is masked before its filesystem exists";
  }
}

TEST(MountPlan, MaskKindMatchesFileOrDirectory) {
  // Binding /dev/null over a directory (or a tmpfs over a file) fails, and the mask is optional:
  // the wrong kind would silently leave the path exposed.
  auto ops = plan_ops(base_input());
  auto kind_at = [&](const std::string& path) {
    size_t i = find_op(ops, [&](const MountOp& o) {
      return o.target == kRoot + path && (o.kind == MountOpKind::kBind || o.kind == MountOpKind::kMount);
    });
    return i == kNone ? std::string("none") : ops[i].kind == MountOpKind::kBind ? ops[i].source : ops[i].fstype;
  };
  for (const char* file : {"/proc/kcore", "/proc/keys", "/proc/kallsyms", "/proc/sched_debug", "/proc/config.gz"})
    EXPECT_EQ(kind_at(file), "/dev/null") << file;
  for (const char* dir : {"/proc/acpi", "/proc/asound", "/proc/scsi", "/proc/driver", "/sys/firmware",
                          "/sys/kernel/debug", "/sys/kernel/security"})
    EXPECT_EQ(kind_at(dir), kStage + "/empty") << dir;
}

TEST(MountPlan, MaskedDirectoriesShareOneEmptyReadOnlyTmpfs) {
  // The bind source must be an empty tmpfs mounted read-only before the first mask uses it:
  // a writable or populated source would let the sandbox plant files under /proc or /sys.
  auto ops = plan_ops(base_input());
  size_t empty = find_mount(ops, "tmpfs", kStage + "/empty");
  ASSERT_NE(empty, kNone);
  EXPECT_TRUE(ops[empty].flags & MS_RDONLY);
  EXPECT_TRUE(has_option(ops[empty].data, "size=0")) << ops[empty].data;
  size_t first_use = find_op(ops, [](const MountOp& o) { return o.kind == MountOpKind::kBind && o.source == kStage + "/empty"; });
  ASSERT_NE(first_use, kNone);
  EXPECT_LT(empty, first_use);
}

TEST(MountPlan, ReadOnlyPathsGetARecursiveReadOnlySetattrBeforePivot) {
  const auto& ro = read_only_paths();
  for (const char* path : {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"})
    EXPECT_NE(std::find(ro.begin(), ro.end(), path), ro.end()) << path << " is not read-only";

  auto ops = plan_ops(base_input());
  size_t pivot = pivot_index(ops);
  size_t proc = find_mount(ops, "proc", kRoot + "/proc");
  for (const auto& path : ro) {
    size_t bind = find_op(ops, [&](const MountOp& o) {
      return o.kind == MountOpKind::kBind && o.source == kRoot + path && o.target == kRoot + path;
    });
    size_t attr = find_kind(ops, MountOpKind::kSetAttr, kRoot + path);
    ASSERT_NE(bind, kNone) << path << ": no self bind (setattr needs a mount of its own)";
    ASSERT_NE(attr, kNone) << path;
    EXPECT_TRUE(ops[bind].flags & MS_REC) << path;
    EXPECT_TRUE(ops[attr].attr_set & MOUNT_ATTR_RDONLY) << path;
    EXPECT_TRUE(ops[attr].recursive) << path;
    EXPECT_EQ(ops[attr].attr_clr & MOUNT_ATTR_RDONLY, 0u) << path;
    EXPECT_GT(bind, proc) << path;
    EXPECT_GT(attr, bind) << path;
    EXPECT_LT(attr, pivot) << path;
  }
}

TEST(MountPlan, MaxUserNamespacesIsWrittenZeroWhileProcSysIsStillWritable) {
  auto ops = plan_ops(base_input());
  size_t write = find_kind(ops, MountOpKind::kWriteFile, kRoot + "/proc/sys/user/max_user_namespaces");
  ASSERT_NE(write, kNone);
  EXPECT_EQ(ops[write].data, "0");
  EXPECT_FALSE(ops[write].optional) << "nested user namespaces must not silently stay enabled";
  EXPECT_GT(write, find_mount(ops, "proc", kRoot + "/proc"));
  size_t ro = find_kind(ops, MountOpKind::kSetAttr, kRoot + "/proc/sys");
  ASSERT_NE(ro, kNone);
  EXPECT_LT(write, ro);
  EXPECT_LT(write, pivot_index(ops));
}

// --- /dev -----------------------------------------------------------------------------------------

TEST(MountPlan, DevGetsExactlySixHostDevices) {
  auto ops = plan_ops(base_input());
  const std::string dev = kRoot + "/dev";
  size_t dev_tmpfs = find_mount(ops, "tmpfs", dev);
  ASSERT_NE(dev_tmpfs, kNone);
  std::set<std::string> bound;
  for (size_t i = 0; i < ops.size(); ++i) {
    const MountOp& o = ops[i];
    if (o.kind != MountOpKind::kBind || !starts_with(o.target, dev + "/")) continue;
    std::string name = o.target.substr(dev.size() + 1);
    EXPECT_EQ(o.source, "/dev/" + name) << "device " << name << " bound from " << o.source;
    EXPECT_FALSE(o.optional) << name;
    EXPECT_GT(i, dev_tmpfs) << name << " bound before /dev's tmpfs (it would land on the overlay)";
    size_t target_file = find_kind(ops, MountOpKind::kMkfile, o.target);
    EXPECT_LT(target_file, i) << name << " has no bind target created first";
    size_t attr = find_kind(ops, MountOpKind::kSetAttr, o.target);
    ASSERT_NE(attr, kNone) << name;
    EXPECT_TRUE(ops[attr].attr_set & MOUNT_ATTR_NOEXEC) << name;
    EXPECT_TRUE(ops[attr].attr_set & MOUNT_ATTR_NOSUID) << name;
    bound.insert(name);
  }
  EXPECT_EQ(bound, (std::set<std::string>{"null", "zero", "full", "random", "urandom", "tty"}));
}

TEST(MountPlan, DevptsIsANewInstance) {
  auto ops = plan_ops(base_input());
  size_t pts = find_mount(ops, "devpts", kRoot + "/dev/pts");
  ASSERT_NE(pts, kNone);
  // Without newinstance the sandbox would share (and could open) the host's terminals.
  EXPECT_TRUE(has_option(ops[pts].data, "newinstance")) << ops[pts].data;
  EXPECT_TRUE(has_option(ops[pts].data, "ptmxmode=0666")) << ops[pts].data;
  EXPECT_LT(find_kind(ops, MountOpKind::kMkdir, kRoot + "/dev/pts"), pts);
  size_t ptmx = find_kind(ops, MountOpKind::kSymlink, kRoot + "/dev/ptmx");
  ASSERT_NE(ptmx, kNone);
  EXPECT_EQ(ops[ptmx].source, "pts/ptmx");
}

TEST(MountPlan, ShmIsATmpfsOfTheRequestedSize) {
  for (uint64_t shm : {uint64_t{4} << 20, uint64_t{64} << 20}) {
    MountPlanInput in = base_input();
    in.shm_bytes = shm;
    auto ops = plan_ops(in);
    size_t i = find_mount(ops, "tmpfs", kRoot + "/dev/shm");
    ASSERT_NE(i, kNone);
    EXPECT_TRUE(has_option(ops[i].data, "size=" + std::to_string(shm))) << ops[i].data;
    EXPECT_EQ(ops[i].flags & (MS_NOSUID | MS_NODEV), static_cast<unsigned long>(MS_NOSUID | MS_NODEV));
  }
}

TEST(MountPlan, ZeroShmSizeIsAnErrorNotAnUnlimitedTmpfs) {
  // tmpfs reads size=0 as "no limit": a plan built from a zero-initialised input would give the
  // sandbox an unbounded /dev/shm. plan_mounts checks disk_bytes for the same reason.
  MountPlanInput in = base_input();
  in.shm_bytes = 0;
  auto plan = plan_mounts(in);
  if (plan.ok()) {
    size_t i = find_mount(plan->ops, "tmpfs", kRoot + "/dev/shm");
    ASSERT_NE(i, kNone);
    ADD_FAILURE() << "shm_bytes = 0 accepted; /dev/shm is mounted with \"" << plan->ops[i].data
                  << "\", which tmpfs treats as unlimited";
  }
}

TEST(MountPlan, DevIsMadeReadOnlyAfterItIsPopulated) {
  auto ops = plan_ops(base_input());
  const std::string dev = kRoot + "/dev";
  size_t ro = find_kind(ops, MountOpKind::kSetAttr, dev);
  ASSERT_NE(ro, kNone);
  EXPECT_TRUE(ops[ro].attr_set & MOUNT_ATTR_RDONLY);
  EXPECT_FALSE(ops[ro].recursive) << "a recursive read-only would also freeze /dev/shm and /dev/pts";
  EXPECT_FALSE(ops[ro].optional);
  for (size_t i = 0; i < ops.size(); ++i) {
    if (i != ro && starts_with(ops[i].target, dev + "/")) {
      EXPECT_LT(i, ro) << ops[i].describe() << " runs after /dev is read-only";
    }
  }
  EXPECT_LT(ro, pivot_index(ops));
}

// --- pivot_root and volumes -----------------------------------------------------------------------

TEST(MountPlan, PivotRootComesAfterEveryHostSideStep) {
  MountPlanInput in = base_input();
  in.volumes.push_back({20, "/data", false});
  auto ops = plan_ops(in);
  size_t pivot = pivot_index(ops);
  ASSERT_NE(pivot, kNone);
  EXPECT_EQ(ops[pivot].target, kRoot);
  EXPECT_FALSE(ops[pivot].optional);
  for (size_t i = 0; i < pivot; ++i) {
    // Before pivot_root we act on the host's tree: everything must stay under the stage dir.
    if (i == 0) continue;  // making "/" private
    EXPECT_TRUE(starts_with(ops[i].target, kStage + "/") || ops[i].target == kStage)
        << ops[i].describe() << " touches the host outside the stage dir";
  }
  for (size_t i = pivot + 1; i < ops.size(); ++i) {
    MountOpKind k = ops[i].kind;
    EXPECT_TRUE(k == MountOpKind::kMkdir || k == MountOpKind::kMkfile || k == MountOpKind::kMoveFd)
        << ops[i].describe() << " runs after pivot_root";
    EXPECT_FALSE(starts_with(ops[i].target, kStage)) << ops[i].describe() << " uses a host path after pivot_root";
  }
}

TEST(MountPlan, WithoutVolumesPivotRootIsTheLastStep) {
  auto ops = plan_ops(base_input());
  ASSERT_FALSE(ops.empty());
  EXPECT_EQ(ops.back().kind, MountOpKind::kPivotRoot);
}

TEST(MountPlan, VolumesComeAfterPivotAndCreateEachComponent) {
  MountPlanInput in = base_input();
  in.volumes.push_back({20, "/data/in/deep", false});
  in.volumes.push_back({21, "/etc/app.conf", true});
  auto ops = plan_ops(in);
  size_t pivot = pivot_index(ops);
  ASSERT_NE(pivot, kNone);
  std::vector<std::string> after;
  for (size_t i = pivot + 1; i < ops.size(); ++i) {
    const MountOp& o = ops[i];
    std::string step = o.kind == MountOpKind::kMkdir    ? "mkdir "
                       : o.kind == MountOpKind::kMkfile ? "mkfile "
                       : o.kind == MountOpKind::kMoveFd ? "attach(" + std::to_string(o.fd) + ") "
                                                        : "other ";
    after.push_back(step + o.target);
  }
  EXPECT_EQ(after, (std::vector<std::string>{"mkdir /data", "mkdir /data/in", "mkdir /data/in/deep",
                                             "attach(20) /data/in/deep", "mkdir /etc", "mkfile /etc/app.conf",
                                             "attach(21) /etc/app.conf"}));
}

TEST(MountPlan, VolumeDestIsNormalised) {
  MountPlanInput in = base_input();
  in.volumes.push_back({20, "//srv/./a//b/", false});
  auto ops = plan_ops(in);
  size_t pivot = pivot_index(ops);
  std::vector<std::string> after;
  for (size_t i = pivot + 1; i < ops.size(); ++i) after.push_back(ops[i].target);
  EXPECT_EQ(after, (std::vector<std::string>{"/srv", "/srv/a", "/srv/a/b", "/srv/a/b"}));
  ASSERT_FALSE(ops.empty());
  EXPECT_EQ(ops.back().kind, MountOpKind::kMoveFd);
}

// --- invalid inputs -------------------------------------------------------------------------------

void expect_plan_error(const MountPlanInput& in, const std::string& needle) {
  auto plan = plan_mounts(in);
  ASSERT_FALSE(plan.ok()) << "accepted; expected an error containing \"" << needle << "\"";
  EXPECT_NE(plan.error().message.find(needle), std::string::npos) << plan.error().message;
}

TEST(MountPlan, StageDirMustBeAbsolute) {
  MountPlanInput in = base_input();
  in.stage_dir = "run/airlock/mnt";
  expect_plan_error(in, "stage dir must be absolute");
  in.stage_dir = "";
  expect_plan_error(in, "stage dir must be absolute");
}

TEST(MountPlan, TemplateFdsMustBeOpen) {
  MountPlanInput in = base_input();
  in.skeleton_fd = -1;
  expect_plan_error(in, "template layers are not open");
  in = base_input();
  in.usr_fd = -1;
  expect_plan_error(in, "template layers are not open");
}

TEST(MountPlan, TinyDiskIsRefused) {
  MountPlanInput in = base_input();
  in.disk_bytes = kMinDiskBytes - 1;
  expect_plan_error(in, "writable layer too small");
  in.disk_bytes = 0;  // tmpfs would read size=0 as unlimited
  expect_plan_error(in, "writable layer too small");
}

TEST(MountPlan, VolumeFdMustBeOpen) {
  MountPlanInput in = base_input();
  in.volumes.push_back({-1, "/data", false});
  expect_plan_error(in, "volume /data is not open");
}

TEST(MountPlan, VolumeDestWithDotDotIsRefused) {
  for (const char* dest : {"/data/../../etc", "/..", "/a/.."}) {
    MountPlanInput in = base_input();
    in.volumes.push_back({20, dest, false});
    expect_plan_error(in, "must not contain \"..\"");
  }
}

TEST(MountPlan, VolumeDestMustBeAbsoluteAndNotRoot) {
  MountPlanInput in = base_input();
  in.volumes.push_back({20, "data", false});
  expect_plan_error(in, "must be an absolute path");
  for (const char* dest : {"/", "/.", "//./"}) {
    in = base_input();
    in.volumes.push_back({20, dest, false});
    expect_plan_error(in, "resolves to /");
  }
}

TEST(MountPlan, ABadSecondVolumeFailsTheWholePlan) {
  MountPlanInput in = base_input();
  in.volumes.push_back({20, "/ok", false});
  in.volumes.push_back({21, "/x/../y", false});
  EXPECT_FALSE(plan_mounts(in).ok());
}

// --- describe() -----------------------------------------------------------------------------------

TEST(MountPlan, DescribeNamesTheStepAndItsTarget) {
  MountOp o;
  o.kind = MountOpKind::kMount;
  o.fstype = "proc";
  o.target = "/r/proc";
  EXPECT_EQ(o.describe(), "mount proc on /r/proc");
  o = MountOp{};
  o.kind = MountOpKind::kBind;
  o.source = "/dev/null";
  o.target = "/r/proc/kcore";
  EXPECT_EQ(o.describe(), "bind /dev/null on /r/proc/kcore");
  o = MountOp{};
  o.kind = MountOpKind::kSymlink;
  o.source = "pts/ptmx";
  o.target = "/r/dev/ptmx";
  EXPECT_EQ(o.describe(), "symlink /r/dev/ptmx -> pts/ptmx");
  o = MountOp{};
  o.kind = MountOpKind::kPivotRoot;
  o.target = "/r";
  EXPECT_EQ(o.describe(), "pivot_root into /r");
}

TEST(MountPlan, EveryPlannedStepHasADistinctiveDescription) {
  MountPlanInput in = base_input();
  in.volumes.push_back({20, "/data", false});
  in.volumes.push_back({21, "/etc/app.conf", true});
  auto ops = plan_ops(in);
  std::set<MountOpKind> kinds;
  for (const auto& o : ops) {
    std::string text = o.describe();
    EXPECT_NE(text, "unknown step");
    EXPECT_NE(text.find(o.target), std::string::npos) << "\"" << text << "\" does not name its target";
    kinds.insert(o.kind);
  }
  // The plan exercises every kind of step, so every describe() branch above was checked.
  EXPECT_EQ(kinds.size(), 9u);
  EXPECT_NE(ops[find_kind(ops, MountOpKind::kWriteFile, kRoot + "/proc/sys/user/max_user_namespaces")].describe().find("write"),
            std::string::npos);
  EXPECT_NE(ops[find_kind(ops, MountOpKind::kMkfile, "/etc/app.conf")].describe().find("create"), std::string::npos);
  EXPECT_NE(ops[find_kind(ops, MountOpKind::kMkdir, "/data")].describe().find("mkdir"), std::string::npos);
  EXPECT_NE(ops[find_kind(ops, MountOpKind::kSetAttr, kRoot + "/dev")].describe().find("attributes"),
            std::string::npos);
  EXPECT_NE(ops[find_kind(ops, MountOpKind::kMoveFd, "/data")].describe().find("attach"), std::string::npos);
}

}  // namespace
}  // namespace airlock
