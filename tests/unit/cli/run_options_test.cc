// `airlock run` argument parsing: defaults, every flag, and the errors a user sees (each must be
// an error, not a silently different sandbox). The host environment is injected.
#include "cli/run_options.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace airlock::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kUsageLine = "usage: airlock run [OPTIONS] -- COMMAND [ARG...]";

// A fake host environment; lookups of anything else return nullptr (unset).
class FakeHostEnv {
 public:
  FakeHostEnv() = default;
  explicit FakeHostEnv(std::initializer_list<std::pair<const std::string, std::string>> vars) : vars_(vars) {}
  EnvLookup lookup() const {
    return [this](const char* key) -> const char* {
      auto it = vars_.find(key);
      return it == vars_.end() ? nullptr : it->second.c_str();
    };
  }

 private:
  std::map<std::string, std::string> vars_;
};

RunRequest parse_ok(const std::vector<std::string>& args, const FakeHostEnv& env = FakeHostEnv()) {
  auto r = parse_run_args(args, env.lookup());
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? std::move(r).value() : RunRequest{};
}

// Expects an error whose message contains `needle`.
std::string parse_error(const std::vector<std::string>& args, const std::string& needle,
                        const FakeHostEnv& env = FakeHostEnv()) {
  auto r = parse_run_args(args, env.lookup());
  if (r.ok()) {
    ADD_FAILURE() << "accepted; expected an error containing \"" << needle << "\"";
    return "";
  }
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << "message: " << r.error().message;
  EXPECT_FALSE(r.error().message.empty());
  return r.error().message;
}

std::vector<std::string> with_command(std::vector<std::string> options) {
  options.push_back("--");
  options.push_back("true");
  return options;
}

// --- defaults -------------------------------------------------------------------------------------

TEST(RunOptions, Defaults) {
  RunRequest req = parse_ok({"--", "echo", "hi"}, FakeHostEnv({{"TERM", "screen"}}));
  const SandboxSpec& spec = req.spec;
  EXPECT_EQ(spec.argv, (std::vector<std::string>{"echo", "hi"}));
  EXPECT_EQ(spec.image, "host");
  EXPECT_EQ(spec.limits.memory_bytes, 512ULL << 20);
  EXPECT_EQ(spec.limits.cpu_millicores, 1000u);
  EXPECT_EQ(spec.limits.max_pids, 256u);
  EXPECT_EQ(spec.limits.disk_bytes, 1ULL << 30);
  EXPECT_EQ(spec.workdir, "/root");
  EXPECT_EQ(spec.uid, 0u);
  EXPECT_EQ(spec.gid, 0u);
  EXPECT_FALSE(spec.timeout.has_value());
  EXPECT_FALSE(spec.forward_stdin);
  EXPECT_FALSE(spec.tty);
  EXPECT_FALSE(spec.drop_all_caps);
  EXPECT_TRUE(spec.volumes.empty());
  EXPECT_FALSE(req.json);
  EXPECT_FALSE(req.help);
  // No TERM without -t, even though the host has one.
  EXPECT_EQ(spec.env, (std::vector<std::string>{kPath, "HOME=/root", "LANG=C.UTF-8"}));
}

TEST(RunOptions, ArgumentsAfterDashDashAreTheCommandVerbatim) {
  RunRequest req = parse_ok({"--memory", "1G", "--", "sh", "-c", "echo $0", "--memory", "2G", "--", "--help"});
  EXPECT_EQ(req.spec.argv, (std::vector<std::string>{"sh", "-c", "echo $0", "--memory", "2G", "--", "--help"}));
  EXPECT_EQ(req.spec.limits.memory_bytes, 1ULL << 30);
  EXPECT_FALSE(req.help);
}

// --- each flag ------------------------------------------------------------------------------------

TEST(RunOptions, ResourceFlags) {
  RunRequest req = parse_ok(with_command({"--memory", "256M", "--cpus", "0.5", "--pids", "64", "--disk", "2G"}));
  EXPECT_EQ(req.spec.limits.memory_bytes, 256ULL << 20);
  EXPECT_EQ(req.spec.limits.cpu_millicores, 500u);
  EXPECT_EQ(req.spec.limits.max_pids, 64u);
  EXPECT_EQ(req.spec.limits.disk_bytes, 2ULL << 30);
}

TEST(RunOptions, Timeout) {
  EXPECT_EQ(parse_ok(with_command({"--timeout", "30s"})).spec.timeout, std::chrono::milliseconds(30'000));
  EXPECT_EQ(parse_ok(with_command({"--timeout", "1m30s"})).spec.timeout, std::chrono::milliseconds(90'000));
  EXPECT_EQ(parse_ok(with_command({"--timeout", "500ms"})).spec.timeout, std::chrono::milliseconds(500));
}

TEST(RunOptions, BooleanFlags) {
  RunRequest req = parse_ok(with_command({"-i", "--json", "--cap-drop", "ALL"}));
  EXPECT_TRUE(req.spec.forward_stdin);
  EXPECT_TRUE(req.json);
  EXPECT_TRUE(req.spec.drop_all_caps);
  EXPECT_FALSE(req.spec.tty);
  EXPECT_TRUE(parse_ok(with_command({"--interactive"})).spec.forward_stdin);
  EXPECT_TRUE(parse_ok(with_command({"--cap-drop", "all"})).spec.drop_all_caps);
  EXPECT_EQ(parse_ok(with_command({"--net", "none"})).spec.network, NetworkMode::kNone);
}

TEST(RunOptions, TtyAddsTermFromTheHost) {
  RunRequest req = parse_ok(with_command({"-t"}), FakeHostEnv({{"TERM", "screen-256color"}}));
  EXPECT_TRUE(req.spec.tty);
  EXPECT_EQ(req.spec.env, (std::vector<std::string>{kPath, "HOME=/root", "LANG=C.UTF-8", "TERM=screen-256color"}));
  RunRequest no_host_term = parse_ok(with_command({"--tty"}));
  EXPECT_EQ(no_host_term.spec.env.back(), "TERM=xterm-256color");
}

TEST(RunOptions, Workdir) {
  EXPECT_EQ(parse_ok(with_command({"-w", "/srv"})).spec.workdir, "/srv");
  EXPECT_EQ(parse_ok(with_command({"--workdir", "/tmp"})).spec.workdir, "/tmp");
}

TEST(RunOptions, EnvOverrideKeepsOrderAndNewKeysAreAppended) {
  RunRequest req = parse_ok(with_command({"-e", "FOO=bar", "-e", "HOME=/work", "--env", "X=a=b", "-e", "EMPTY="}));
  EXPECT_EQ(req.spec.env,
            (std::vector<std::string>{kPath, "HOME=/work", "LANG=C.UTF-8", "FOO=bar", "X=a=b", "EMPTY="}));
}

TEST(RunOptions, EnvKeyAloneCopiesTheHostValue) {
  FakeHostEnv host({{"API_TOKEN", "s3cret"}, {"LANG", "de_DE.UTF-8"}});
  RunRequest req = parse_ok(with_command({"-e", "API_TOKEN", "-e", "LANG"}), host);
  EXPECT_EQ(req.spec.env, (std::vector<std::string>{kPath, "HOME=/root", "LANG=de_DE.UTF-8", "API_TOKEN=s3cret"}));
}

TEST(RunOptions, EnvKeyAloneIsSkippedWhenUnsetOnTheHost) {
  RunRequest req = parse_ok(with_command({"-e", "NOT_SET", "-e", "A=1"}));
  EXPECT_EQ(req.spec.env, (std::vector<std::string>{kPath, "HOME=/root", "LANG=C.UTF-8", "A=1"}));
}

TEST(RunOptions, EnvWithoutKeyIsRefused) {
  parse_error(with_command({"-e", "=value"}), "invalid --env \"=value\"");
  parse_error(with_command({"-e", ""}), "invalid --env");
}

TEST(RunOptions, UserSetsGidAndHome) {
  RunRequest req = parse_ok(with_command({"--user", "1000"}));
  EXPECT_EQ(req.spec.uid, 1000u);
  EXPECT_EQ(req.spec.gid, 1000u);
  EXPECT_EQ(req.spec.workdir, "/home/user");  // /root is 0700 and root's
  EXPECT_EQ(req.spec.env[1], "HOME=/home/user");

  req = parse_ok(with_command({"--user", "1000:5"}));
  EXPECT_EQ(req.spec.uid, 1000u);
  EXPECT_EQ(req.spec.gid, 5u);

  req = parse_ok(with_command({"--user", "1234"}));
  EXPECT_EQ(req.spec.workdir, "/tmp");
  EXPECT_EQ(req.spec.env[1], "HOME=/tmp");

  req = parse_ok(with_command({"--user", "0:0"}));
  EXPECT_EQ(req.spec.workdir, "/root");
}

TEST(RunOptions, ExplicitWorkdirWinsOverTheUsersHome) {
  EXPECT_EQ(parse_ok(with_command({"--user", "1000", "-w", "/srv"})).spec.workdir, "/srv");
  EXPECT_EQ(parse_ok(with_command({"-w", "/root", "--user", "1000"})).spec.workdir, "/root");
}

TEST(RunOptions, BadUserIsRefused) {
  for (const char* user : {"65536", "1000:65536", "abc", "1000:", ":5", "-1", "1000:5:6"})
    parse_error(with_command({"--user", user}), "invalid --user");
}

// --- volumes --------------------------------------------------------------------------------------

class RunOptionsVolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-run-options-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    char resolved[PATH_MAX];
    ASSERT_NE(::realpath(tmpl, resolved), nullptr);
    dir_ = resolved;
    ASSERT_TRUE(fs::create_directory(dir_ + "/data"));
    fs::create_directory_symlink(dir_ + "/data", dir_ + "/link");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string dir_;
};

TEST_F(RunOptionsVolumeTest, ReadWriteByDefaultAndWithRw) {
  RunRequest req = parse_ok(with_command({"-v", dir_ + "/data:/data", "--volume", dir_ + "/data:/other:rw"}));
  ASSERT_EQ(req.spec.volumes.size(), 2u);
  EXPECT_EQ(req.spec.volumes[0].host_path, dir_ + "/data");
  EXPECT_EQ(req.spec.volumes[0].dest, "/data");
  EXPECT_FALSE(req.spec.volumes[0].read_only);
  EXPECT_EQ(req.spec.volumes[1].dest, "/other");
  EXPECT_FALSE(req.spec.volumes[1].read_only);
}

TEST_F(RunOptionsVolumeTest, ReadOnlySuffix) {
  RunRequest req = parse_ok(with_command({"-v", dir_ + "/data:/data:ro"}));
  ASSERT_EQ(req.spec.volumes.size(), 1u);
  EXPECT_EQ(req.spec.volumes[0].dest, "/data");
  EXPECT_TRUE(req.spec.volumes[0].read_only);
}

TEST_F(RunOptionsVolumeTest, SourceIsResolvedToItsRealPath) {
  // The symlink and the ".." are resolved now, on the host, by the operator's own path rules.
  RunRequest req = parse_ok(with_command({"-v", dir_ + "/link:/a", "-v", dir_ + "/data/../data/./:/b"}));
  ASSERT_EQ(req.spec.volumes.size(), 2u);
  EXPECT_EQ(req.spec.volumes[0].host_path, dir_ + "/data");
  EXPECT_EQ(req.spec.volumes[1].host_path, dir_ + "/data");
}

TEST_F(RunOptionsVolumeTest, RelativeSourceIsResolvedAgainstTheCurrentDirectory) {
  char cwd[PATH_MAX];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(::chdir(dir_.c_str()), 0);
  auto r = parse_run_args(with_command({"-v", "data:/data"}), FakeHostEnv().lookup());
  ASSERT_EQ(::chdir(cwd), 0);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->spec.volumes[0].host_path, dir_ + "/data");
}

TEST_F(RunOptionsVolumeTest, MissingSourceIsRefused) {
  auto r = parse_run_args(with_command({"-v", dir_ + "/missing:/data"}), FakeHostEnv().lookup());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().errnum, ENOENT);
  EXPECT_NE(r.error().message.find("invalid volume: source " + dir_ + "/missing"), std::string::npos)
      << r.error().message;
}

TEST_F(RunOptionsVolumeTest, MalformedVolumesAreRefused) {
  parse_error(with_command({"-v", dir_ + "/data"}), "expected HOST:DEST[:ro]");
  parse_error(with_command({"-v", ":/data"}), "expected HOST:DEST[:ro]");
  parse_error(with_command({"-v", dir_ + "/data:"}), "expected HOST:DEST[:ro]");
  parse_error(with_command({"-v", dir_ + "/data:/data:rx"}), "only :ro or :rw");
  parse_error(with_command({"-v", dir_ + "/data:/data:ro:ro"}), "only :ro or :rw");
}

TEST_F(RunOptionsVolumeTest, DestinationRulesOfTheSpecApply) {
  parse_error(with_command({"-v", dir_ + "/data:data"}), "must be an absolute path");
  parse_error(with_command({"-v", dir_ + "/data:/x/../etc"}), "must not contain \"..\"");
  parse_error(with_command({"-v", dir_ + "/data:/proc/sys"}), "reserved by the sandbox");
  parse_error(with_command({"-v", dir_ + "/data:/"}), "cannot mount over /");
}

// --- errors ---------------------------------------------------------------------------------------

TEST(RunOptions, UnknownFlagIsRefusedWithUsage) {
  std::string message = parse_error(with_command({"--bogus"}), "--bogus");
  EXPECT_NE(message.find(kUsageLine), std::string::npos) << message;
}

TEST(RunOptions, MissingDashDashIsRefused) {
  std::string message = parse_error({"--memory", "1G"}, "missing \"--\" before the command");
  EXPECT_NE(message.find(kUsageLine), std::string::npos) << message;
  parse_error({}, "missing \"--\"");
}

TEST(RunOptions, CommandWithoutDashDashSaysDashDashIsMissing) {
  // `airlock run echo hi` is the usual way to forget "--": the user must be told that, not
  // "The following arguments were not expected: hi echo" (CLI11's words, in reverse order).
  std::string message = parse_error({"echo", "hi"}, "missing \"--\"");
  EXPECT_EQ(message.find("hi echo"), std::string::npos) << message;
}

TEST(RunOptions, NothingAfterDashDashIsRefused) {
  std::string message = parse_error({"--"}, "no command after \"--\"");
  EXPECT_NE(message.find(kUsageLine), std::string::npos) << message;
  parse_error({"--memory", "1G", "--"}, "no command after \"--\"");
}

TEST(RunOptions, BadSizesNameTheFlag) {
  parse_error(with_command({"--memory", "12Q"}), "--memory: invalid size \"12Q\"");
  parse_error(with_command({"--disk", "lots"}), "--disk: invalid size \"lots\"");
  parse_error(with_command({"--cpus", "1,5"}), "--cpus: invalid CPU count \"1,5\"");
  parse_error(with_command({"--pids", "many"}), "invalid --pids \"many\"");
  parse_error(with_command({"--timeout", "5x"}), "--timeout: invalid duration \"5x\"");
}

TEST(RunOptions, ZeroLimitsAreRefused) {
  parse_error(with_command({"--memory", "0"}), "--memory must be positive");
  parse_error(with_command({"--cpus", "0"}), "--cpus must be positive");
  parse_error(with_command({"--cpus", "0.0001"}), "--cpus must be positive");  // rounds to 0 millicores
  parse_error(with_command({"--disk", "0"}), "--disk must be positive");
  parse_error(with_command({"--pids", "0"}), "--pids must be positive");
  parse_error(with_command({"--timeout", "0s"}), "--timeout must be positive");
  parse_error(with_command({"--timeout", "0"}), "--timeout must be positive");
}

TEST(RunOptions, NegativeLimitsAreRefused) {
  parse_error(with_command({"--memory", "-1"}), "--memory");
  parse_error(with_command({"--memory", "-512M"}), "--memory");
  parse_error(with_command({"--cpus", "-1"}), "--cpus");
  parse_error(with_command({"--disk", "-1G"}), "--disk");
  parse_error(with_command({"--pids", "-1"}), "--pids");
  parse_error(with_command({"--timeout", "-1s"}), "--timeout");
}

TEST(RunOptions, LimitsBelowTheEngineMinimumAreRefused) {
  parse_error(with_command({"--memory", "1M"}), "--memory must be at least 4M");
  parse_error(with_command({"--disk", "512K"}), "--disk must be at least 1M");
  parse_error(with_command({"--pids", "1"}), "--pids must be at least 2");
  parse_error(with_command({"--cpus", "0.005"}), "--cpus must be at least 0.01");
}

TEST(RunOptions, OnlyTheNoneNetworkExists) {
  parse_error(with_command({"--net", "host"}), "unsupported --net \"host\"");
  parse_error(with_command({"--net", "bridge"}), "unsupported --net");
}

TEST(RunOptions, CapDropOnlyAcceptsAll) {
  parse_error(with_command({"--cap-drop", "SOME"}), "unsupported --cap-drop \"SOME\"");
  parse_error(with_command({"--cap-drop", "CAP_SYS_ADMIN"}), "unsupported --cap-drop");
}

TEST(RunOptions, UnknownImageIsRefused) {
  parse_error(with_command({"--image", "alpine"}), "unknown image \"alpine\"");
  EXPECT_EQ(parse_ok(with_command({"--image", "host"})).spec.image, "host");
}

TEST(RunOptions, RelativeWorkdirIsRefused) { parse_error(with_command({"-w", "src"}), "--workdir must be an absolute path"); }

TEST(RunOptions, RepeatedSingleValueFlagIsRefused) {
  // Silently keeping one of two --memory values would run with a limit the user did not mean.
  parse_error(with_command({"--memory", "1G", "--memory", "2G"}), "--memory");
}

// --- help -----------------------------------------------------------------------------------------

TEST(RunOptions, HelpSetsHelpWithText) {
  for (const char* flag : {"--help", "-h"}) {
    auto r = parse_run_args({flag}, FakeHostEnv().lookup());
    ASSERT_TRUE(r.ok()) << flag << ": " << r.error().message;
    EXPECT_TRUE(r->help) << flag;
    EXPECT_FALSE(r->help_text.empty()) << flag;
    for (const char* option : {"--memory", "--cpus", "--pids", "--disk", "--timeout", "--volume", "--env", "--user"})
      EXPECT_NE(r->help_text.find(option), std::string::npos) << option << " missing from help";
    EXPECT_NE(r->help_text.find(kUsageLine), std::string::npos);
  }
}

TEST(RunOptions, HelpWinsOverAMissingCommand) {
  auto r = parse_run_args({"--memory", "1G", "--help"}, FakeHostEnv().lookup());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->help);
}

}  // namespace
}  // namespace airlock::cli
