// validate() is the one gate every SandboxSpec passes (CLI, daemon, OCI): one test per rule,
// each checking both that the bad value is refused and that the message names the field.
#include "engine/spec.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace airlock {
namespace {

namespace fs = std::filesystem;

SandboxSpec valid_spec() {
  SandboxSpec spec;
  spec.argv = {"/bin/true"};
  spec.env = default_environment(0, false, nullptr);
  return spec;
}

// Expects validate() to refuse the spec with a message containing `needle`.
void expect_invalid(const SandboxSpec& spec, const std::string& needle) {
  Status s = validate(spec);
  ASSERT_FALSE(s.ok()) << "accepted; expected an error containing \"" << needle << "\"";
  EXPECT_NE(s.error().message.find(needle), std::string::npos) << "message: " << s.error().message;
}

void expect_valid(const SandboxSpec& spec) {
  Status s = validate(spec);
  EXPECT_TRUE(s.ok()) << s.error().message;
}

// A real host directory and file for volume sources; removed at the end of the test.
class SpecVolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-spec-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = dir_ + "/file";
    FILE* f = std::fopen(file_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  SandboxSpec with_volume(std::string host, std::string dest, bool read_only = false) {
    SandboxSpec spec = valid_spec();
    spec.volumes.push_back(VolumeSpec{std::move(host), std::move(dest), read_only});
    return spec;
  }

  std::string dir_;
  std::string file_;
};

// --- command and image ----------------------------------------------------------------------------

TEST(SpecValidate, DefaultsWithACommandAreValid) { expect_valid(valid_spec()); }

TEST(SpecValidate, EmptyArgvIsRefused) {
  SandboxSpec spec = valid_spec();
  spec.argv.clear();
  expect_invalid(spec, "no command");
}

TEST(SpecValidate, EmptyCommandNameIsRefused) {
  SandboxSpec spec = valid_spec();
  spec.argv = {""};
  expect_invalid(spec, "empty string");
}

TEST(SpecValidate, NulInAnArgumentIsRefused) {
  SandboxSpec spec = valid_spec();
  spec.argv = {"echo", std::string("a\0b", 3)};
  expect_invalid(spec, "NUL");
}

TEST(SpecValidate, UnknownImageIsRefused) {
  SandboxSpec spec = valid_spec();
  spec.image = "alpine";
  expect_invalid(spec, "unknown image \"alpine\"");
}

// --- limits: the minimum passes, one below it fails -----------------------------------------------

TEST(SpecValidate, MemoryBelowMinimumIsRefused) {
  SandboxSpec spec = valid_spec();
  spec.limits.memory_bytes = kMinMemoryBytes;
  expect_valid(spec);
  spec.limits.memory_bytes = kMinMemoryBytes - 1;
  expect_invalid(spec, "--memory must be at least 4M");
  spec.limits.memory_bytes = 0;
  expect_invalid(spec, "--memory");
}

TEST(SpecValidate, DiskBelowMinimumIsRefused) {
  SandboxSpec spec = valid_spec();
  spec.limits.disk_bytes = kMinDiskBytes;
  expect_valid(spec);
  spec.limits.disk_bytes = kMinDiskBytes - 1;
  expect_invalid(spec, "--disk must be at least 1M");
}

TEST(SpecValidate, PidsBelowMinimumOrAboveKernelMaxAreRefused) {
  SandboxSpec spec = valid_spec();
  spec.limits.max_pids = kMinPids;
  expect_valid(spec);
  spec.limits.max_pids = kMinPids - 1;
  expect_invalid(spec, "--pids must be at least 2");
  spec.limits.max_pids = 0;
  expect_invalid(spec, "--pids");
  spec.limits.max_pids = 4'194'304;
  expect_valid(spec);
  spec.limits.max_pids = 4'194'305;
  expect_invalid(spec, "--pids is larger");
}

TEST(SpecValidate, CpuBelowMinimumIsRefused) {
  SandboxSpec spec = valid_spec();
  spec.limits.cpu_millicores = kMinCpuMillicores;
  expect_valid(spec);
  spec.limits.cpu_millicores = kMinCpuMillicores - 1;
  expect_invalid(spec, "--cpus must be at least 0.01");
}

TEST(SpecValidate, NonPositiveTimeoutIsRefused) {
  SandboxSpec spec = valid_spec();
  spec.timeout = std::chrono::milliseconds(1);
  expect_valid(spec);
  spec.timeout = std::chrono::milliseconds(0);
  expect_invalid(spec, "--timeout must be positive");
  spec.timeout = std::chrono::milliseconds(-5);
  expect_invalid(spec, "--timeout must be positive");
}

// --- workdir, ids, environment --------------------------------------------------------------------

TEST(SpecValidate, RelativeWorkdirIsRefused) {
  SandboxSpec spec = valid_spec();
  spec.workdir = "root";
  expect_invalid(spec, "invalid workdir: --workdir must be an absolute path");
  spec.workdir = "";
  expect_invalid(spec, "--workdir must be an absolute path");
}

TEST(SpecValidate, WorkdirWithDotDotIsRefused) {
  SandboxSpec spec = valid_spec();
  for (const char* dir : {"/..", "/root/..", "/root/../etc", "/a/b/../../..", "/../x"}) {
    spec.workdir = dir;
    expect_invalid(spec, "must not contain \"..\"");
  }
  // ".." only counts as a whole component.
  for (const char* dir : {"/root/..foo", "/root/foo..", "/...", "/", "/home/user"}) {
    spec.workdir = dir;
    expect_valid(spec);
  }
}

TEST(SpecValidate, IdsOutsideTheNamespaceAreRefused) {
  SandboxSpec spec = valid_spec();
  spec.uid = 65535;
  spec.gid = 65535;
  expect_valid(spec);
  spec.uid = 65536;
  expect_invalid(spec, "--user ids must be between 0 and 65535");
  spec.uid = 0;
  spec.gid = 65536;
  expect_invalid(spec, "--user ids must be between 0 and 65535");
  spec.gid = UINT32_MAX;
  expect_invalid(spec, "--user");
}

TEST(SpecValidate, EnvironmentEntriesNeedAKeyAndAnEquals) {
  SandboxSpec spec = valid_spec();
  spec.env.push_back("NOEQUALS");
  expect_invalid(spec, "invalid environment entry \"NOEQUALS\"");
  spec.env.back() = "=value";
  expect_invalid(spec, "invalid environment entry \"=value\"");
  spec.env.back() = "EMPTY=";
  expect_valid(spec);
  spec.env.back() = "A==b";
  expect_valid(spec);
  spec.env.back() = std::string("A=b\0c", 5);
  expect_invalid(spec, "NUL");
}

// --- volumes --------------------------------------------------------------------------------------

TEST_F(SpecVolumeTest, DirectoryAndFileVolumesAreValid) {
  expect_valid(with_volume(dir_, "/data"));
  expect_valid(with_volume(dir_, "/data/nested/deeper", /*read_only=*/true));
  expect_valid(with_volume(file_, "/etc/app.conf"));
  expect_valid(with_volume(dir_, "/procfs"));  // only /proc itself and below are reserved
  expect_valid(with_volume(dir_, "/devices"));
}

TEST_F(SpecVolumeTest, RelativeDestIsRefused) {
  expect_invalid(with_volume(dir_, "data"), "invalid volume: volume destination must be an absolute path");
  expect_invalid(with_volume(dir_, ""), "must be an absolute path");
}

TEST_F(SpecVolumeTest, DestWithDotDotIsRefused) {
  expect_invalid(with_volume(dir_, "/data/../etc"), "must not contain \"..\"");
  expect_invalid(with_volume(dir_, "/proc/.."), "must not contain \"..\"");
  expect_invalid(with_volume(dir_, "/.."), "must not contain \"..\"");
}

TEST_F(SpecVolumeTest, DestRootIsRefused) {
  for (const char* dest : {"/", "//", "/.", "/./", "///."})
    expect_invalid(with_volume(dir_, dest), "cannot mount over /");
}

TEST_F(SpecVolumeTest, DestUnderProcDevSysIsRefused) {
  for (const char* dest : {"/proc", "/proc/", "/proc/sys", "/proc/self/ns", "//proc", "/./proc", "/proc/./sys/kernel"})
    expect_invalid(with_volume(dir_, dest), "reserved by the sandbox (/proc)");
  for (const char* dest : {"/dev", "/dev/shm", "/dev/pts/", "/dev/./null"})
    expect_invalid(with_volume(dir_, dest), "reserved by the sandbox (/dev)");
  for (const char* dest : {"/sys", "/sys/fs/cgroup", "//sys//kernel"})
    expect_invalid(with_volume(dir_, dest), "reserved by the sandbox (/sys)");
}

TEST_F(SpecVolumeTest, NonexistentHostPathIsRefusedWithErrno) {
  SandboxSpec spec = with_volume(dir_ + "/missing", "/data");
  Status s = validate(spec);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().errnum, ENOENT);
  EXPECT_NE(s.error().message.find(dir_ + "/missing"), std::string::npos) << s.error().message;
}

TEST_F(SpecVolumeTest, RelativeHostPathIsRefused) {
  // Even if it happens to resolve from the current directory: the engine must not depend on cwd.
  expect_invalid(with_volume("tmp", "/data"), "host path must be absolute");
  expect_invalid(with_volume(".", "/data"), "host path must be absolute");
  expect_invalid(with_volume("", "/data"), "host path must be absolute");
}

TEST_F(SpecVolumeTest, HostPathThatIsNeitherFileNorDirectoryIsRefused) {
  expect_invalid(with_volume("/dev/null", "/data"), "neither a directory nor a regular file");
}

TEST_F(SpecVolumeTest, EveryVolumeIsChecked) {
  SandboxSpec spec = with_volume(dir_, "/data");
  spec.volumes.push_back(VolumeSpec{dir_, "/proc/sys", false});
  expect_invalid(spec, "reserved");
}

// --- environment helpers --------------------------------------------------------------------------

TEST(DefaultEnvironment, RootWithoutTty) {
  std::vector<std::string> env = default_environment(0, false, "xterm");
  ASSERT_EQ(env.size(), 3u);
  EXPECT_EQ(env[0], "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  EXPECT_EQ(env[1], "HOME=/root");
  EXPECT_EQ(env[2], "LANG=C.UTF-8");
}

TEST(DefaultEnvironment, HomeFollowsTheUser) {
  EXPECT_EQ(default_environment(1000, false, nullptr)[1], "HOME=/home/user");
  EXPECT_EQ(default_environment(1001, false, nullptr)[1], "HOME=/tmp");
  EXPECT_EQ(default_environment(65535, false, nullptr)[1], "HOME=/tmp");
}

TEST(DefaultEnvironment, TermOnlyWithTty) {
  std::vector<std::string> env = default_environment(0, true, "screen-256color");
  ASSERT_EQ(env.size(), 4u);
  EXPECT_EQ(env[3], "TERM=screen-256color");
  EXPECT_EQ(default_environment(0, true, nullptr)[3], "TERM=xterm-256color");
  EXPECT_EQ(default_environment(0, true, "")[3], "TERM=xterm-256color");
  for (const auto& entry : default_environment(0, false, "screen")) EXPECT_NE(entry.rfind("TERM=", 0), 0u) << entry;
}

TEST(MergeEnvironment, OverrideReplacesInPlaceAndNewKeysAreAppended) {
  std::vector<std::string> base = {"PATH=/bin", "HOME=/root", "LANG=C.UTF-8"};
  std::vector<std::string> merged = merge_environment(base, {"NEW=1", "HOME=/work", "OTHER=2"});
  EXPECT_EQ(merged, (std::vector<std::string>{"PATH=/bin", "HOME=/work", "LANG=C.UTF-8", "NEW=1", "OTHER=2"}));
}

TEST(MergeEnvironment, LaterOverrideWins) {
  std::vector<std::string> merged = merge_environment({"A=0"}, {"B=1", "A=2", "B=3", "A=4"});
  EXPECT_EQ(merged, (std::vector<std::string>{"A=4", "B=3"}));
}

TEST(MergeEnvironment, KeysMatchWholeNamesOnly) {
  // "PATH" must not replace "PATHEXT=..." nor "P" replace "PATH=...".
  std::vector<std::string> merged = merge_environment({"PATHEXT=x", "PATH=/bin"}, {"PATH=/usr/bin", "P=1"});
  EXPECT_EQ(merged, (std::vector<std::string>{"PATHEXT=x", "PATH=/usr/bin", "P=1"}));
}

TEST(MergeEnvironment, EmptyValuesAndValuesWithEquals) {
  std::vector<std::string> merged = merge_environment({"A=1", "B=2"}, {"A=", "B=x=y"});
  EXPECT_EQ(merged, (std::vector<std::string>{"A=", "B=x=y"}));
}

}  // namespace
}  // namespace airlock
