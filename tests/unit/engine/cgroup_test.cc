#include "engine/cgroup.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "common/fs.h"

namespace airlock {
namespace {

namespace fs = std::filesystem;

// --- fixed inputs -------------------------------------------------------------------------------

// This development host: v1 controllers, memory nested, an empty v2 tree at /sys/fs/cgroup/unified.
constexpr std::string_view kHybridCgroup =
    "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n"
    "4:memory:/process_api/68311944009b0487b0920301120cbd13\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";
constexpr std::string_view kHybridMountsV1 =
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n";
constexpr std::string_view kHybridMountV2 =
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
constexpr std::string_view kMemoryOwn = "/sys/fs/cgroup/memory/process_api/68311944009b0487b0920301120cbd13";

// A desktop with pure cgroup v2, our shell in a session scope.
constexpr std::string_view kV2Cgroup = "0::/user.slice/user-1000.slice/session-2.scope\n";
constexpr std::string_view kV2Mounts =
    "26 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
    "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";
constexpr std::string_view kV2Own = "/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope";

std::string hybrid_mounts() { return std::string(kHybridMountsV1) + std::string(kHybridMountV2); }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put(const std::string& path, std::string_view text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::trunc) << text;
}

// --- a temp dir standing in for /sys/fs/cgroup --------------------------------------------------

class FakeTree {
 public:
  FakeTree() {
    char tmpl[] = "/tmp/airlock-cgroup-test-XXXXXX";
    root_ = ::mkdtemp(tmpl);
  }
  ~FakeTree() { fs::remove_all(root_); }
  const std::string& root() const { return root_; }
  std::string at(std::string_view p) const { return root_ + std::string(p); }

  // What cgroupfs does on mkdir/rmdir: knob files appear with the directory (minus `missing`, to
  // play an older kernel or a failing step) and go with it.
  CgroupDirOps ops() {
    return CgroupDirOps{
        [this](const std::string& dir) {
          if (::mkdir(dir.c_str(), 0755) != 0) return errno;
          for (const char* knob : knobs_for(dir))
            if (!missing_.count(knob)) put(dir + "/" + knob, "");
          return 0;
        },
        [](const std::string& dir) {
          if (!fs::exists(dir)) return ENOENT;
          fs::remove_all(dir);
          return 0;
        }};
  }
  std::set<std::string> missing_;

 private:
  static std::vector<const char*> knobs_for(const std::string& dir) {
    std::vector<const char*> k = {"cgroup.procs"};
    auto in = [&](const char* h) { return dir.find(h) != std::string::npos; };
    if (in("/cgroup/memory/")) k.insert(k.end(), {"memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
                                                  "memory.swappiness", "memory.max_usage_in_bytes",
                                                  "memory.oom_control"});
    else if (in("/cgroup/cpu/")) k.insert(k.end(), {"cpu.cfs_period_us", "cpu.cfs_quota_us"});
    else if (in("/cgroup/cpuacct/")) k.insert(k.end(), {"cpuacct.usage"});
    else if (in("/cgroup/pids/")) k.insert(k.end(), {"pids.max"});
    else if (in("/cgroup/freezer/")) k.insert(k.end(), {"freezer.state"});
    else k.insert(k.end(), {"cgroup.kill", "cgroup.freeze", "cgroup.events", "cgroup.subtree_control",
                            "cpu.stat", "memory.max", "memory.swap.max", "memory.peak", "memory.events",
                            "cpu.max", "pids.max"});  // v2
    return k;
  }
  std::string root_;
};

Result<CgroupRoots> fake_hybrid(FakeTree& t, bool with_v2 = true) {
  for (const char* d : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/pids",
                        "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/unified"})
    fs::create_directories(t.at(d));
  fs::create_directories(t.at(kMemoryOwn));
  put(t.at("/sys/fs/cgroup/unified/cgroup.controllers"), "hugetlb\n");
  return CgroupRoots::from_files(kHybridCgroup, with_v2 ? hybrid_mounts() : std::string(kHybridMountsV1),
                                 t.root(), t.ops());
}

Result<CgroupRoots> fake_v2(FakeTree& t, std::string_view controllers = "cpuset cpu io memory pids\n") {
  put(t.at(kV2Own) + "/cgroup.controllers", controllers);
  put(t.at(kV2Own) + "/cgroup.subtree_control", "");
  return CgroupRoots::from_files(kV2Cgroup, kV2Mounts, t.root(), t.ops());
}

constexpr CgroupLimits kLimits{256u << 20, 1500, 64};

// --- detection ----------------------------------------------------------------------------------

TEST(CgroupRootsTest, HybridUsesV1ControllersAndTheEmptyV2TreeForKilling) {
  FakeTree t;
  auto roots = fake_hybrid(t);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  const auto& h = roots->hierarchies();
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].version, CgroupVersion::v2);
  EXPECT_EQ(h[0].controllers, 0u);
  EXPECT_EQ(h[0].own_dir, t.at("/sys/fs/cgroup/unified"));
  EXPECT_EQ(h[1].own_dir, t.at(kMemoryOwn));  // nested: our memory cgroup is not the root
  EXPECT_EQ(h[1].controllers, unsigned{kCgroupMemory});
  EXPECT_EQ(h[2].own_dir, t.at("/sys/fs/cgroup/cpu"));
  EXPECT_EQ(h[3].own_dir, t.at("/sys/fs/cgroup/pids"));
  EXPECT_EQ(roots->version_of(kCgroupMemory), CgroupVersion::v1);
}

TEST(CgroupRootsTest, HybridWithoutV2TreeAddsFreezerFirstAndCpuacct) {
  FakeTree t;
  auto roots = fake_hybrid(t, /*with_v2=*/false);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  const auto& h = roots->hierarchies();
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h[0].controllers, unsigned{kCgroupFreezer});
  for (const auto& x : h) EXPECT_EQ(x.version, CgroupVersion::v1);
  EXPECT_TRUE(std::any_of(h.begin(), h.end(), [](auto& x) { return x.controllers == kCgroupCpuacct; }));
}

TEST(CgroupRootsTest, CoMountedCpuCpuacctShareOneDirectory) {
  auto roots = CgroupRoots::from_files(
      "3:cpu,cpuacct:/a\n2:memory:/a\n1:pids:/a\n",
      "1 0 8:1 / / rw - ext4 /dev/sda rw\n"
      "2 1 0:2 / /cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
      "3 1 0:3 /a /cg/memory rw - cgroup cgroup rw,memory\n"  // mount root is our cgroup itself
      "4 1 0:4 / /cg/pids rw - cgroup cgroup rw,pids\n",
      "");
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  const auto& h = roots->hierarchies();
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].own_dir, "/cg/memory");
  EXPECT_EQ(h[1].own_dir, "/cg/cpu,cpuacct/a");
  EXPECT_EQ(h[1].controllers, unsigned{kCgroupCpu | kCgroupCpuacct});
}

TEST(CgroupRootsTest, PureV2NestedOwnCgroup) {
  FakeTree t;
  auto roots = fake_v2(t);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  ASSERT_EQ(roots->hierarchies().size(), 1u);
  const CgroupHierarchy& h = roots->hierarchies()[0];
  EXPECT_EQ(h.version, CgroupVersion::v2);
  EXPECT_EQ(h.own_dir, t.at(kV2Own));
  EXPECT_EQ(h.controllers, unsigned{kCgroupMemory | kCgroupCpu | kCgroupPids});
}

TEST(CgroupRootsTest, MissingControllerIsAClearError) {
  FakeTree t;
  auto roots = fake_v2(t, "cpu io pids\n");
  ASSERT_FALSE(roots.ok());
  EXPECT_NE(roots.error().message.find("memory"), std::string::npos) << roots.error().message;
  EXPECT_NE(roots.error().message.find("cgroup.controllers"), std::string::npos) << roots.error().message;

  // memory is bound to v1 but that hierarchy is not mounted: unusable in v2 too.
  std::string mounts = hybrid_mounts();
  mounts.erase(mounts.find("35 31"), mounts.find("37 31") - mounts.find("35 31"));
  auto hybrid = CgroupRoots::from_files(kHybridCgroup, mounts, t.root());
  ASSERT_FALSE(hybrid.ok());
  EXPECT_NE(hybrid.error().message.find("memory"), std::string::npos) << hybrid.error().message;
  EXPECT_NE(hybrid.error().message.find("not mounted"), std::string::npos) << hybrid.error().message;
}

// `ip netns add` binds a namespace file: its mountinfo root is "net:[ino]", not a path. A daemon
// started with `nsenter --net=/run/netns/x` sees such lines and must still find its cgroups.
TEST(CgroupRootsTest, NamespaceFileMountsAreSkipped) {
  FakeTree t;
  for (const char* d : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/pids",
                        "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/unified"})
    fs::create_directories(t.at(d));
  fs::create_directories(t.at(kMemoryOwn));
  put(t.at("/sys/fs/cgroup/unified/cgroup.controllers"), "hugetlb\n");
  std::string mounts = "44 43 0:4 net:[4026532557] /run/netns/alt-d rw shared:2 - nsfs nsfs rw\n" + hybrid_mounts();
  auto roots = CgroupRoots::from_files(kHybridCgroup, mounts, t.root(), t.ops());
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  EXPECT_EQ(roots->hierarchies().size(), 4u);
}

TEST(CgroupRootsTest, GarbageInputIsAClearError) {
  for (std::string_view bad : {"", "hello world\n", "x:memory:/a\n", "4:memory:relative\n"}) {
    auto roots = CgroupRoots::from_files(bad, hybrid_mounts(), "/nonexistent");
    ASSERT_FALSE(roots.ok()) << bad;
    EXPECT_NE(roots.error().message.find("/proc/self/cgroup"), std::string::npos) << roots.error().message;
  }
  for (std::string_view bad : {"", "garbage\n", "1 2 3 4 5 6 7 8 9 10\n"}) {
    auto roots = CgroupRoots::from_files(kHybridCgroup, bad, "/nonexistent");
    ASSERT_FALSE(roots.ok()) << bad;
    EXPECT_NE(roots.error().message.find("mountinfo"), std::string::npos) << roots.error().message;
  }
}

// --- limits and stats on a fake tree ------------------------------------------------------------

TEST(CgroupFakeTreeTest, V2WritesLimitsAndEnablesControllers) {
  FakeTree t;
  auto roots = fake_v2(t);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  auto cg = Cgroup::create(*roots, "airlock-7", kLimits);
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  const std::string dir = t.at(kV2Own) + "/airlock-7";
  ASSERT_EQ(cg->paths(), std::vector<std::string>{dir});
  EXPECT_EQ(slurp(t.at(kV2Own) + "/cgroup.subtree_control"), "+memory +cpu +pids");
  EXPECT_EQ(slurp(dir + "/memory.max"), "268435456");
  EXPECT_EQ(slurp(dir + "/memory.swap.max"), "0");
  EXPECT_EQ(slurp(dir + "/cpu.max"), "150000 100000");
  EXPECT_EQ(slurp(dir + "/pids.max"), "64");
  ASSERT_TRUE(cg->add_process(4242).ok());
  EXPECT_EQ(slurp(dir + "/cgroup.procs"), "4242");
}

TEST(CgroupFakeTreeTest, V2WithoutSwapAccountingAndUnlimited) {
  FakeTree t;
  t.missing_ = {"memory.swap.max"};
  auto roots = fake_v2(t);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  auto cg = Cgroup::create(*roots, "airlock-8", kLimits);
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  auto unlimited = Cgroup::create(*roots, "airlock-9", CgroupLimits{});
  ASSERT_TRUE(unlimited.ok()) << unlimited.error().message;
  EXPECT_EQ(slurp(unlimited->paths()[0] + "/memory.max"), "");  // fresh cgroups default to "max"
  EXPECT_EQ(slurp(unlimited->paths()[0] + "/cpu.max"), "");
}

TEST(CgroupFakeTreeTest, V1WritesLimitsInEachHierarchy) {
  FakeTree t;
  auto roots = fake_hybrid(t);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  auto cg = Cgroup::create(*roots, "airlock-7", kLimits);
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  const std::string mem = t.at(kMemoryOwn) + "/airlock-7";
  EXPECT_EQ(cg->paths(), (std::vector<std::string>{t.at("/sys/fs/cgroup/unified/airlock-7"), mem,
                                                   t.at("/sys/fs/cgroup/cpu/airlock-7"),
                                                   t.at("/sys/fs/cgroup/pids/airlock-7")}));
  EXPECT_EQ(slurp(mem + "/memory.limit_in_bytes"), "268435456");
  EXPECT_EQ(slurp(mem + "/memory.memsw.limit_in_bytes"), "268435456");
  EXPECT_EQ(slurp(mem + "/memory.swappiness"), "0");
  EXPECT_EQ(slurp(t.at("/sys/fs/cgroup/cpu/airlock-7/cpu.cfs_period_us")), "100000");
  EXPECT_EQ(slurp(t.at("/sys/fs/cgroup/cpu/airlock-7/cpu.cfs_quota_us")), "150000");
  EXPECT_EQ(slurp(t.at("/sys/fs/cgroup/pids/airlock-7/pids.max")), "64");
  ASSERT_TRUE(cg->add_process(4242).ok());
  for (const std::string& p : cg->paths()) EXPECT_EQ(slurp(p + "/cgroup.procs"), "4242") << p;
}

TEST(CgroupFakeTreeTest, FailedStepRemovesEverythingMade) {
  FakeTree t;
  t.missing_ = {"pids.max"};
  auto roots = fake_hybrid(t);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  auto cg = Cgroup::create(*roots, "airlock-7", kLimits);
  ASSERT_FALSE(cg.ok());
  EXPECT_NE(cg.error().message.find("create cgroup airlock-7"), std::string::npos) << cg.error().message;
  EXPECT_NE(cg.error().message.find("pids.max"), std::string::npos) << cg.error().message;
  for (const auto& h : roots->hierarchies()) EXPECT_FALSE(fs::exists(h.own_dir + "/airlock-7")) << h.own_dir;
}

TEST(CgroupFakeTreeTest, LeftoverIsReplacedNotReused) {
  FakeTree t;
  auto roots = fake_hybrid(t);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  const std::string mem = t.at(kMemoryOwn) + "/airlock-7";
  ASSERT_EQ(roots->dir_ops().make_dir(mem), 0);
  put(mem + "/memory.oom_control", "oom_kill 9\n");  // stale counters of the killed run
  auto cg = Cgroup::create(*roots, "airlock-7", kLimits);
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  auto st = cg->stats();
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->oom_kills, 0u);
}

TEST(CgroupFakeTreeTest, StatsV1) {
  FakeTree t;
  auto roots = fake_hybrid(t, /*with_v2=*/false);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  auto cg = Cgroup::create(*roots, "airlock-7", kLimits);
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  const std::string mem = t.at(kMemoryOwn) + "/airlock-7";
  put(mem + "/memory.max_usage_in_bytes", "67108864\n");
  put(mem + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
  put(t.at("/sys/fs/cgroup/cpuacct/airlock-7/cpuacct.usage"), "123456789\n");
  auto st = cg->stats();
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->memory_peak_bytes, 67108864u);
  EXPECT_EQ(st->oom_kills, 3u);
  EXPECT_EQ(st->cpu_usage_ns, 123456789u);
  // Without cgroup.kill: freezer + SIGKILL loop over an empty cgroup, then removal.
  ASSERT_TRUE(cg->destroy().ok());
  EXPECT_FALSE(fs::exists(t.at("/sys/fs/cgroup/freezer/airlock-7")));
}

TEST(CgroupFakeTreeTest, StatsV2AndHybridCpuFromV2Tree) {
  FakeTree t;
  auto roots = fake_v2(t);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  auto cg = Cgroup::create(*roots, "airlock-7", kLimits);
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  const std::string dir = cg->paths()[0];
  put(dir + "/memory.peak", "1048576\n");
  put(dir + "/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n");
  put(dir + "/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
  auto st = cg->stats();
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->memory_peak_bytes, 1048576u);
  EXPECT_EQ(st->oom_kills, 2u);
  EXPECT_EQ(st->cpu_usage_ns, 1500000u);

  FakeTree h;
  auto hybrid = fake_hybrid(h);
  ASSERT_TRUE(hybrid.ok()) << hybrid.error().message;
  auto hcg = Cgroup::create(*hybrid, "airlock-7", kLimits);
  ASSERT_TRUE(hcg.ok()) << hcg.error().message;
  put(h.at("/sys/fs/cgroup/unified/airlock-7/cpu.stat"), "usage_usec 42\n");
  put(h.at(kMemoryOwn) + "/airlock-7/memory.max_usage_in_bytes", "4096\n");
  auto hst = hcg->stats();
  ASSERT_TRUE(hst.ok()) << hst.error().message;
  EXPECT_EQ(hst->cpu_usage_ns, 42000u);
  EXPECT_EQ(hst->memory_peak_bytes, 4096u);
}

TEST(CgroupFakeTreeTest, ListDestroyOpenExistingAndNames) {
  FakeTree t;
  auto roots = fake_hybrid(t);
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  auto a = Cgroup::create(*roots, "airlock-1", kLimits);
  auto b = Cgroup::create(*roots, "airlock-2", kLimits);
  ASSERT_TRUE(a.ok() && b.ok());
  fs::create_directories(t.at("/sys/fs/cgroup/cpu/other"));
  auto names = list_cgroups(*roots, "airlock-");
  ASSERT_TRUE(names.ok()) << names.error().message;
  EXPECT_EQ(*names, (std::vector<std::string>{"airlock-1", "airlock-2"}));

  auto reopened = Cgroup::open_existing(*roots, "airlock-2");
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  EXPECT_EQ(reopened->paths(), b->paths());
  ASSERT_TRUE(reopened->destroy().ok());
  ASSERT_TRUE(reopened->destroy().ok());  // idempotent
  for (const std::string& p : b->paths()) EXPECT_FALSE(fs::exists(p)) << p;
  EXPECT_EQ(list_cgroups(*roots, "airlock-").value(), std::vector<std::string>{"airlock-1"});
  EXPECT_EQ(Cgroup::open_existing(*roots, "airlock-2").error().errnum, ENOENT);

  Cgroup moved = std::move(*a);
  EXPECT_TRUE(a->paths().empty());  // moved-from is inert
  EXPECT_TRUE(a->destroy().ok());
  EXPECT_EQ(moved.paths().size(), 4u);

  for (std::string bad : {"", "../evil", "a/b", ".hidden", "x y"})
    EXPECT_EQ(Cgroup::create(*roots, bad, kLimits).error().errnum, EINVAL) << bad;
}

// --- the real cgroup filesystem of this machine -------------------------------------------------

// A forked child that waits for "go" on a pipe, so the parent can put it in a cgroup first.
// Killed and reaped however the test ends.
class Child {
 public:
  template <typename Body>
  explicit Child(Body body) {
    int go[2];
    if (::pipe2(go, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(go[1]);
      char c;
      if (::read(go[0], &c, 1) != 1) ::_exit(120);
      ::_exit(body());
    }
    ::close(go[0]);
    go_ = go[1];
  }
  ~Child() {
    if (go_ >= 0) ::close(go_);
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  pid_t pid() const { return pid_; }
  void go() {
    (void)!::write(go_, "x", 1);
    ::close(std::exchange(go_, -1));
  }
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int go_ = -1;
  bool reaped_ = false;
};

// Destroys the cgroup when the test ends, even after a failed ASSERT.
struct DestroyAtExit {
  Cgroup* cg;
  ~DestroyAtExit() {
    if (cg) (void)cg->destroy();
  }
};

class RealCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    auto roots = CgroupRoots::detect();
    if (!roots.ok()) GTEST_SKIP() << "no usable cgroup filesystem: " << roots.error().message;
    roots_.emplace(std::move(roots).value());
  }
  std::string name(std::string_view tag) {
    return "airlock-test-" + std::to_string(::getpid()) + "-" + std::string(tag);
  }
  // The same host with the v2 tree hidden: exercises the v1 freezer path of kill_all.
  std::optional<CgroupRoots> roots_without_v2() {
    std::string mounts, line;
    std::istringstream in(read_file("/proc/self/mountinfo", 16 << 20).value());
    while (std::getline(in, line))
      if (line.find(" - cgroup2 ") == std::string::npos) mounts += line + "\n";
    auto roots = CgroupRoots::from_files(read_file("/proc/self/cgroup").value(), mounts, "");
    if (!roots.ok()) return std::nullopt;
    for (const auto& h : roots->hierarchies())
      if (h.controllers & kCgroupFreezer) return std::move(roots).value();
    return std::nullopt;
  }
  std::optional<CgroupRoots> roots_;
};

void expect_gone(const Cgroup& cg, const std::vector<std::string>& paths, const CgroupRoots& roots) {
  for (const std::string& p : paths) EXPECT_FALSE(fs::exists(p)) << p;
  auto names = list_cgroups(roots, cg.name());
  ASSERT_TRUE(names.ok()) << names.error().message;
  EXPECT_TRUE(names->empty());
}

TEST_F(RealCgroupTest, CreatedOnlyBeneathOurOwnCgroups) {
  auto cg = Cgroup::create(*roots_, name("where"), kLimits);
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  DestroyAtExit cleanup{&*cg};
  const auto& h = roots_->hierarchies();
  const auto paths = cg->paths();
  ASSERT_EQ(paths.size(), h.size());
  for (size_t i = 0; i < h.size(); ++i) EXPECT_EQ(paths[i], h[i].own_dir + "/" + cg->name());
  // Our memory cgroup (nested on this host) is where the sandbox's memory cgroup goes.
  std::istringstream in(read_file("/proc/self/cgroup").value());
  for (std::string line; std::getline(in, line);) {
    if (line.find(":memory:") == std::string::npos) continue;
    std::string own = line.substr(line.rfind(':') + 1);
    if (own == "/") continue;
    EXPECT_TRUE(std::any_of(paths.begin(), paths.end(), [&](const std::string& p) {
      return p.find(own + "/" + cg->name()) != std::string::npos;
    })) << own;
  }
  auto names = list_cgroups(*roots_, cg->name());
  ASSERT_TRUE(names.ok()) << names.error().message;
  EXPECT_EQ(*names, std::vector<std::string>{cg->name()});
  ASSERT_TRUE(cg->destroy().ok());
  expect_gone(*cg, paths, *roots_);
}

TEST_F(RealCgroupTest, MemoryLimitOomKillsChild) {
  auto cg = Cgroup::create(*roots_, name("oom"), CgroupLimits{64u << 20, 0, 16});
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  DestroyAtExit cleanup{&*cg};
  Child child([] {
    const size_t size = 200u << 20;
    auto* p = static_cast<char*>(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p == MAP_FAILED) return 3;
    for (size_t i = 0; i < size; i += 4096) p[i] = 1;
    return 0;
  });
  ASSERT_TRUE(cg->add_process(child.pid()).ok());
  child.go();
  int status = child.wait();
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  auto st = cg->stats();
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_GE(st->oom_kills, 1u);
  EXPECT_GT(st->memory_peak_bytes, 32u << 20);
  EXPECT_LE(st->memory_peak_bytes, 65u << 20);
  auto paths = cg->paths();
  ASSERT_TRUE(cg->destroy().ok());
  expect_gone(*cg, paths, *roots_);
}

TEST_F(RealCgroupTest, ForkBombHitsPidsMax) {
  auto cg = Cgroup::create(*roots_, name("bomb"), CgroupLimits{0, 0, 16});
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  DestroyAtExit cleanup{&*cg};
  Child child([] {
    for (int i = 0; i < 100; ++i) {
      pid_t p = ::fork();
      if (p == 0) {
        ::pause();
        ::_exit(0);
      }
      if (p < 0) return errno == EAGAIN ? i : 200;  // forks that succeeded before EAGAIN
    }
    return 100;
  });
  ASSERT_TRUE(cg->add_process(child.pid()).ok());
  child.go();
  int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 15);  // 16 = the child and its 15 children
  auto paths = cg->paths();
  ASSERT_TRUE(cg->destroy().ok()) << "the 15 orphans pausing in it must be killed";
  expect_gone(*cg, paths, *roots_);
}

// setsid + double fork + SIGTERM ignored: the grandchild has escaped its session and parent.
void kill_all_reaches_daemonized_grandchild(const CgroupRoots& roots, const std::string& name) {
  auto cg = Cgroup::create(roots, name, CgroupLimits{0, 0, 64});
  ASSERT_TRUE(cg.ok()) << cg.error().message;
  DestroyAtExit cleanup{&*cg};
  int report[2];
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  Child child([&] {
    ::setsid();
    pid_t mid = ::fork();
    if (mid == 0) {
      if (::fork() == 0) {
        ::signal(SIGTERM, SIG_IGN);
        pid_t me = ::getpid();
        (void)!::write(report[1], &me, sizeof me);
        for (;;) ::pause();
      }
      ::_exit(0);
    }
    int st;
    ::waitpid(mid, &st, 0);
    return 0;
  });
  ::close(report[1]);
  ASSERT_TRUE(cg->add_process(child.pid()).ok());
  child.go();
  pid_t grandchild = 0;
  ASSERT_EQ(::read(report[0], &grandchild, sizeof grandchild), static_cast<ssize_t>(sizeof grandchild));
  ::close(report[0]);
  EXPECT_EQ(WEXITSTATUS(child.wait()), 0);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, grandchild, 0));
  ASSERT_GE(pidfd, 0);
  ::kill(grandchild, SIGTERM);
  pollfd pfd{pidfd, POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 20), 0) << "SIGTERM is ignored, the grandchild lives on";
  ASSERT_TRUE(cg->kill_all().ok());
  EXPECT_EQ(::poll(&pfd, 1, 2000), 1) << "grandchild " << grandchild << " survived kill_all";
  ::close(pidfd);
  auto paths = cg->paths();
  ASSERT_TRUE(cg->destroy().ok());
  expect_gone(*cg, paths, roots);
}

TEST_F(RealCgroupTest, KillAllReachesDaemonizedGrandchild) {
  kill_all_reaches_daemonized_grandchild(*roots_, name("kill"));
}

TEST_F(RealCgroupTest, KillAllWithV1FreezerReachesDaemonizedGrandchild) {
  auto v1 = roots_without_v2();
  if (!v1) GTEST_SKIP() << "no v1 freezer hierarchy";
  kill_all_reaches_daemonized_grandchild(*v1, name("freeze"));
}

TEST_F(RealCgroupTest, LeftoverWithProcessIsKilledAndReplaced) {
  auto first = Cgroup::create(*roots_, name("left"), kLimits);
  ASSERT_TRUE(first.ok()) << first.error().message;
  DestroyAtExit cleanup1{&*first};
  Child sleeper([] {
    for (;;) ::pause();
    return 0;
  });
  ASSERT_TRUE(first->add_process(sleeper.pid()).ok());
  // A new run with the same name, as after a daemon crash: the old cgroup must go, with its process.
  auto second = Cgroup::create(*roots_, name("left"), kLimits);
  ASSERT_TRUE(second.ok()) << second.error().message;
  DestroyAtExit cleanup2{&*second};
  int status = sleeper.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  auto paths = second->paths();
  ASSERT_TRUE(second->destroy().ok());
  expect_gone(*second, paths, *roots_);
}

}  // namespace
}  // namespace airlock
