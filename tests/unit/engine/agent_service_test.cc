// Service sandboxes end to end: Engine::create with IoOptions::service, airlock-init --agent as
// PID 1, and AgentClient over the agent socket. Needs root (namespaces, cgroups); skipped otherwise.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include <gtest/gtest.h>

#include "engine/agent_client.h"
#include "engine/sandbox.h"

namespace airlock {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

EngineConfig test_config() {
  EngineConfig config;
  if (const char* dir = std::getenv("AIRLOCK_DATA_DIR"); dir && *dir) config.data_dir = dir;
  if (const char* dir = std::getenv("AIRLOCK_RUN_DIR"); dir && *dir) config.run_dir = dir;
  if (const char* init = std::getenv("AIRLOCK_INIT"); init && *init) {
    config.init_path = init;
  } else {
    // unit_tests sits next to airlock-init in the build directory.
    config.init_path = (fs::read_symlink("/proc/self/exe").parent_path() / "airlock-init").string();
  }
  return config;
}

class AgentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    auto engine = Engine::open(test_config());
    ASSERT_TRUE(engine.ok()) << engine.error().describe();
    engine_.emplace(std::move(*engine));
    SandboxSpec spec;  // no argv: a service sandbox
    IoOptions io;
    io.service = true;
    auto box = engine_->create(spec, io);
    ASSERT_TRUE(box.ok()) << box.error().describe();
    box_ = std::move(*box);
    auto client = AgentClient::connect(box_.agent_socket_path());
    ASSERT_TRUE(client.ok()) << client.error().describe();
    client_.emplace(std::move(*client));
  }
  // The Sandbox destroys everything it made, whatever the test did (a failed ASSERT included).
  void TearDown() override {
    client_.reset();
    box_.destroy();
  }

  AgentRunResult run(std::vector<std::string> argv, std::string_view input = {}) {
    auto result = client_->run(argv, {}, input, 20s);
    EXPECT_TRUE(result.ok()) << result.error().describe();
    return result.ok() ? *result : AgentRunResult{};
  }

  std::optional<Engine> engine_;
  Sandbox box_;
  std::optional<AgentClient> client_;
};

TEST_F(AgentServiceTest, EchoHelloReachesStdout) {
  auto r = run({"echo", "hello"});
  EXPECT_EQ(r.stdout_data, "hello\n");
  EXPECT_EQ(r.stderr_data, "");
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(AgentServiceTest, StderrIsSeparateFromStdout) {
  auto r = run({"sh", "-c", "echo out; echo err >&2"});
  EXPECT_EQ(r.stdout_data, "out\n");
  EXPECT_EQ(r.stderr_data, "err\n");
}

TEST_F(AgentServiceTest, ExitCodePassesThrough) { EXPECT_EQ(run({"sh", "-c", "exit 7"}).exit_code, 7); }

TEST_F(AgentServiceTest, CatEchoesStdin) {
  auto r = run({"cat"}, "some input\nand more\n");
  EXPECT_EQ(r.stdout_data, "some input\nand more\n");
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(AgentServiceTest, MissingCommandIsExecFailed) {
  auto r = run({"no-such-command-here"});
  EXPECT_EQ(r.exec_errno, static_cast<uint32_t>(ENOENT));
  EXPECT_EQ(r.exit_code, 127);
  // The connection is still good afterwards.
  EXPECT_EQ(run({"echo", "ok"}).stdout_data, "ok\n");
}

TEST_F(AgentServiceTest, TwoProcessesRunAtOnce) {
  AgentExecRequest slow, fast;
  slow.argv = {"sh", "-c", "sleep 0.5; echo slow"};
  fast.argv = {"sh", "-c", "echo fast"};
  auto a = client_->exec(slow);
  ASSERT_TRUE(a.ok()) << a.error().describe();
  auto b = client_->exec(fast);
  ASSERT_TRUE(b.ok()) << b.error().describe();
  ASSERT_NE(a->id, b->id);
  std::map<uint32_t, std::string> out;
  std::vector<uint32_t> exit_order;
  while (exit_order.size() < 2) {
    auto e = client_->next_event(10s);
    ASSERT_TRUE(e.ok()) << e.error().describe();
    ASSERT_TRUE(e->has_value()) << "timed out";
    if ((*e)->kind == AgentEvent::Kind::kOutput) out[(*e)->id] += (*e)->data;
    if ((*e)->kind == AgentEvent::Kind::kExited) exit_order.push_back((*e)->id);
  }
  EXPECT_EQ(out[a->id], "slow\n");
  EXPECT_EQ(out[b->id], "fast\n");
  EXPECT_EQ(exit_order, (std::vector<uint32_t>{b->id, a->id}));
}

// 40 times the initial window: completes only if credit keeps flowing; the client refuses (and
// the test fails on) any Output beyond the credit it granted.
TEST_F(AgentServiceTest, TenMegabytesFlowWithinCredit) {
  auto r = run({"head", "-c", "10485760", "/dev/zero"});
  EXPECT_EQ(r.stdout_data.size(), 10485760u);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(client_->connected());
}

TEST_F(AgentServiceTest, TimeoutKillsTheProcess) {
  AgentExecRequest req;
  req.argv = {"sleep", "100"};
  req.timeout_ms = 300;
  auto started = client_->exec(req);
  ASSERT_TRUE(started.ok()) << started.error().describe();
  auto begin = std::chrono::steady_clock::now();
  for (;;) {
    auto e = client_->next_event(10s);
    ASSERT_TRUE(e.ok()) << e.error().describe();
    ASSERT_TRUE(e->has_value()) << "timed out";
    if ((*e)->kind != AgentEvent::Kind::kExited) continue;
    EXPECT_TRUE((*e)->timed_out);
    EXPECT_EQ((*e)->signal, static_cast<uint32_t>(SIGKILL));
    break;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 5s);
}

TEST_F(AgentServiceTest, ProcessSurvivesAReconnect) {
  AgentExecRequest req;
  req.argv = {"sh", "-c", "sleep 2; echo later"};
  auto started = client_->exec(req);
  ASSERT_TRUE(started.ok()) << started.error().describe();
  client_.reset();  // the "daemon" goes away

  auto again = AgentClient::connect(box_.agent_socket_path());
  ASSERT_TRUE(again.ok()) << again.error().describe();
  client_.emplace(std::move(*again));
  client_->adopt(started->id);
  auto running = client_->ping();
  ASSERT_TRUE(running.ok()) << running.error().describe();
  EXPECT_EQ(*running, 1u);
  std::string out;
  for (;;) {
    auto e = client_->next_event(10s);
    ASSERT_TRUE(e.ok()) << e.error().describe();
    ASSERT_TRUE(e->has_value()) << "timed out";
    ASSERT_EQ((*e)->id, started->id);
    if ((*e)->kind == AgentEvent::Kind::kOutput) out += (*e)->data;
    if ((*e)->kind == AgentEvent::Kind::kExited) {
      EXPECT_EQ((*e)->code, 0);
      break;
    }
  }
  EXPECT_EQ(out, "later\n");
  EXPECT_EQ(run({"echo", "still here"}).stdout_data, "still here\n");
}

std::vector<std::string> cgroup_dirs(const std::string& name) {
  std::vector<std::string> dirs;
  auto roots = CgroupRoots::detect();
  if (!roots.ok()) return dirs;
  for (const auto& h : roots->hierarchies()) dirs.push_back(h.own_dir + "/" + name);
  return dirs;
}

void expect_nothing_left(const EngineConfig& config, const std::string& name, pid_t init_pid,
                         const std::string& socket) {
  EXPECT_NE(::kill(init_pid, 0), 0) << "init still exists";
  for (const auto& dir : cgroup_dirs(name)) EXPECT_FALSE(fs::exists(dir)) << dir;
  EXPECT_FALSE(fs::exists(socket));
  EXPECT_FALSE(fs::exists(fs::path(socket).parent_path()));
  std::string index = name.substr(name.find('-') + 1);
  EXPECT_FALSE(fs::exists(config.run_dir + "/ids/" + index + ".lock"));
}

TEST_F(AgentServiceTest, DestroyDetachedLeavesNothing) {
  AgentExecRequest req;
  req.argv = {"sleep", "100"};
  ASSERT_TRUE(client_->exec(req).ok());
  client_.reset();
  DetachedSandbox detached = box_.detach();
  ASSERT_GT(detached.init_pid, 0);
  EXPECT_EQ(::kill(detached.init_pid, 0), 0) << "detach must not kill the sandbox";
  EXPECT_TRUE(fs::exists(detached.agent_socket_path));
  std::string name = detached.name, socket = detached.agent_socket_path;
  pid_t pid = detached.init_pid;
  auto destroyed = engine_->destroy_detached(std::move(detached));
  EXPECT_TRUE(destroyed.ok()) << destroyed.error().describe();
  expect_nothing_left(test_config(), name, pid, socket);
}

TEST_F(AgentServiceTest, DestroyDetachedByNameAfterTheHolderIsGone) {
  client_.reset();
  std::string name, socket;
  pid_t pid;
  {
    DetachedSandbox detached = box_.detach();  // dropped at the end of the scope: lock released
    name = detached.name, socket = detached.agent_socket_path, pid = detached.init_pid;
  }
  // Leftover collection (what every `airlock run` does first) must not take a service sandbox
  // whose owner is merely away: its range lock is free, but the daemon will reconcile it.
  engine_->collect_leftovers();
  auto client = AgentClient::connect(socket);  // the sandbox lives on without its holder
  ASSERT_TRUE(client.ok()) << client.error().describe();
  client->close();
  auto destroyed = engine_->destroy_detached(name, pid);
  EXPECT_TRUE(destroyed.ok()) << destroyed.error().describe();
  expect_nothing_left(test_config(), name, pid, socket);
}

}  // namespace
}  // namespace airlock
