// SandboxNetworks against the real kernel, inside a network namespace of the test's own (so the
// host's interfaces and rules are never touched): bridge, veth pair, addresses, nftables rules,
// DNS answers, policy updates and teardown. Needs root (skipped otherwise).
#include "network/sandbox_networks.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "network/netlink.h"
#include "network/netns.h"

namespace airlock::net {
namespace {

// Runs `fn` on a thread of its own in a fresh network namespace (threads may unshare theirs).
void in_fresh_netns(const std::function<void()>& fn) {
  std::thread t([&] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    fn();
  });
  t.join();
}

std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// A stand-in sandbox: a child in a network namespace of its own, waiting to be killed.
struct FakeSandbox {
  pid_t pid = -1;
  UniqueFd pidfd;
  FakeSandbox() {
    int ready[2];
    if (::pipe(ready) != 0) return;
    pid = ::fork();
    if (pid == 0) {
      ::close(ready[0]);
      if (::unshare(CLONE_NEWNET) != 0) ::_exit(1);
      char c = 'r';
      (void)!::write(ready[1], &c, 1);
      ::pause();
      ::_exit(0);
    }
    ::close(ready[1]);
    char c;
    (void)!::read(ready[0], &c, 1);
    ::close(ready[0]);
    pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  }
  ~FakeSandbox() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  std::string in_ns(const std::string& command) const {
    return run("nsenter -t " + std::to_string(pid) + " -n " + command + " 2>&1");
  }
};

class SandboxNetworksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    if (::access("/usr/sbin/nft", X_OK) != 0) GTEST_SKIP() << "needs nft (nftables) to inspect the rules";
  }
  static SandboxNetworksOptions options(const std::string& state_dir) {
    SandboxNetworksOptions o;
    o.config.table = "airlock_t";
    o.state_dir = state_dir;
    return o;
  }
  std::string state_dir_ = [] {
    char tmpl[] = "/tmp/airlock-net-test-XXXXXX";
    return std::string(::mkdtemp(tmpl));
  }();
  void TearDown() override { run("rm -rf " + state_dir_); }
};

std::string nft_list() { return run("nft list ruleset 2>&1"); }

TEST_F(SandboxNetworksTest, AttachGivesTheSandboxItsAddressesAndRulesAndDetachRemovesThem) {
  in_fresh_netns([&] {
    auto started = SandboxNetworks::start(options(state_dir_));
    ASSERT_TRUE(started.ok()) << started.error().describe();
    auto& networks = *started.value();
    // The host side: the bridge with the gateways, forwarding turned on (a fresh namespace has it off).
    std::string bridge = run("ip -br addr show airlock0 2>&1");
    EXPECT_NE(bridge.find("10.213.0.1/16"), std::string::npos) << bridge;
    EXPECT_NE(bridge.find("fd00:a1c0:7e57::1/64"), std::string::npos) << bridge;
    EXPECT_EQ(run("cat /proc/sys/net/ipv4/ip_forward"), "1\n");

    FakeSandbox sb;
    ASSERT_TRUE(sb.pidfd.valid());
    EgressPolicy policy;
    policy.mode = EgressMode::kAllow;
    policy.allow_out.push_back(parse_destination("*.pypi.test").value());
    ASSERT_TRUE(networks.attach(7, sb.pidfd.get(), "sb-test", policy).ok());

    std::string inside = sb.in_ns("ip -br addr show eth0");
    EXPECT_NE(inside.find("10.213.0.9/32"), std::string::npos) << inside;  // pool + 2 + index
    EXPECT_NE(inside.find("fd00:a1c0:7e57::9/128"), std::string::npos) << inside;
    EXPECT_NE(sb.in_ns("ip route").find("default via 10.213.0.1 dev eth0"), std::string::npos);
    // The host does not forward IPv6 here: no IPv6 default route (connections fail at once, not late).
    EXPECT_EQ(sb.in_ns("ip -6 route").find("default"), std::string::npos) << sb.in_ns("ip -6 route");
    std::string port = run("ip -d link show alv7 2>&1");
    EXPECT_NE(port.find("master airlock0"), std::string::npos) << port;
    EXPECT_NE(port.find("isolated on"), std::string::npos) << port;
    std::string rules = nft_list();
    EXPECT_NE(rules.find("chain sb_7_out"), std::string::npos);
    EXPECT_NE(rules.find("10.213.0.9 : jump sb_7_out"), std::string::npos) << rules;
    EXPECT_NE(rules.find("\"alv7\" . 10.213.0.9"), std::string::npos) << rules;

    // DNS: an allowed name's answers land in the sandbox's set; a refused one's never do.
    auto lookup = networks.judge(*IpAddress::parse("10.213.0.9"), "files.pypi.test");
    ASSERT_TRUE(lookup.has_value());
    EXPECT_EQ(lookup->sandbox_id, "sb-test");
    EXPECT_FALSE(lookup->rules.refuse);
    EXPECT_FALSE(networks.judge(*IpAddress::parse("10.213.0.10"), "files.pypi.test").has_value());  // nobody there
    EXPECT_FALSE(networks.admit("sb-other", *IpAddress::parse("10.213.0.9"), "files.pypi.test",
                                {*IpAddress::parse("203.0.113.66")}, 60).ok());  // not that sandbox's answers
    // A name no allow rule names (mode allow: it resolves) opens nothing beyond what `allow` opens.
    EXPECT_TRUE(networks.admit("sb-test", *IpAddress::parse("10.213.0.9"), "evil.test",
                               {*IpAddress::parse("203.0.113.66")}, 60).ok());
    ASSERT_TRUE(networks.admit("sb-test", *IpAddress::parse("10.213.0.9"), "files.pypi.test",
                               {*IpAddress::parse("203.0.113.10")}, 60).ok());
    EXPECT_EQ(run("nft list set inet airlock_t sb_7_dns4 2>&1").find("203.0.113.66"), std::string::npos);
    EXPECT_NE(run("nft list set inet airlock_t sb_7_dns4 2>&1").find("203.0.113.10"), std::string::npos);

    // An update keeps the answers of names still allowed and drops the others; a new generation.
    EgressPolicy narrower;
    narrower.mode = EgressMode::kAllow;
    narrower.allow_out.push_back(parse_destination("other.test").value());
    ASSERT_TRUE(networks.update(7, sb.pidfd.get(), "sb-test", narrower).ok());
    EXPECT_EQ(run("nft list set inet airlock_t sb_7_dns4 2>&1").find("203.0.113.10"), std::string::npos);
    ASSERT_TRUE(networks.update(7, sb.pidfd.get(), "sb-test", policy).ok());
    EXPECT_NE(run("nft list set inet airlock_t sb_7_dns4 2>&1").find("203.0.113.10"), std::string::npos);

    ASSERT_TRUE(networks.detach(7).ok());
    EXPECT_NE(run("ip link show alv7 2>&1").find("does not exist"), std::string::npos);
    EXPECT_EQ(sb.in_ns("ip link show eth0").find("state"), std::string::npos);  // gone inside too
    rules = nft_list();
    EXPECT_EQ(rules.find("sb_7"), std::string::npos) << rules;
    EXPECT_EQ(rules.find("alv7"), std::string::npos) << rules;
    EXPECT_TRUE(networks.detach(7).ok());  // idempotent

    EXPECT_TRUE(networks.shutdown());
    EXPECT_EQ(nft_list().find("airlock_t"), std::string::npos);
    EXPECT_NE(run("ip link show airlock0 2>&1").find("does not exist"), std::string::npos);
    EXPECT_EQ(run("cat /proc/sys/net/ipv4/ip_forward"), "0\n");  // as it was
  });
}

TEST_F(SandboxNetworksTest, ANoInterfacePolicyTouchesNothingAndShutdownKeepsWhatSandboxesUse) {
  in_fresh_netns([&] {
    auto started = SandboxNetworks::start(options(state_dir_));
    ASSERT_TRUE(started.ok()) << started.error().describe();
    auto& networks = *started.value();
    FakeSandbox quiet, talker;
    ASSERT_TRUE(networks.attach(3, quiet.pidfd.get(), "sb-quiet", EgressPolicy{}).ok());
    EXPECT_EQ(quiet.in_ns("ip -br link").find("eth0"), std::string::npos);
    EXPECT_EQ(networks.attached(), 0u);

    EgressPolicy allow;
    allow.mode = EgressMode::kAllow;
    ASSERT_TRUE(networks.attach(4, talker.pidfd.get(), "sb-talker", allow).ok());
    EXPECT_FALSE(networks.attach(4, talker.pidfd.get(), "sb-talker", allow).ok());  // twice: refused
    EXPECT_FALSE(networks.shutdown());  // a sandbox still uses the bridge
    EXPECT_NE(run("ip link show airlock0 2>&1").find("airlock0"), std::string::npos);

    // A restarted daemon rebuilds the tables and adopts the surviving pair.
    auto again = SandboxNetworks::start(options(state_dir_));
    ASSERT_TRUE(again.ok()) << again.error().describe();
    EXPECT_EQ(nft_list().find("sb_4_out"), std::string::npos);  // rebuilt empty...
    ASSERT_TRUE(again.value()->adopt(4, talker.pidfd.get(), "sb-talker", allow).ok());
    EXPECT_NE(nft_list().find("sb_4_out"), std::string::npos);  // ...then the sandbox is back
    EXPECT_NE(run("ip -d link show alv4 2>&1").find("master airlock0"), std::string::npos);
    // Going to `none` removes the interface.
    ASSERT_TRUE(again.value()->update(4, talker.pidfd.get(), "sb-talker", EgressPolicy{}).ok());
    EXPECT_EQ(talker.in_ns("ip -br link").find("eth0"), std::string::npos);
    EXPECT_TRUE(again.value()->shutdown());
    EXPECT_EQ(run("cat /proc/sys/net/ipv4/ip_forward"), "0\n");
  });
}

}  // namespace
}  // namespace airlock::net
