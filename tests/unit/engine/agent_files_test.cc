// The agent's file and watch messages end to end: a real service sandbox (Engine::create with
// IoOptions::service, airlock-init --agent as PID 1) driven through AgentClient. Needs root
// (namespaces, cgroups); skipped otherwise. Escape attempts are named for the attack they try.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "engine/agent_client.h"
#include "engine/sandbox.h"

namespace airlock {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace proto = protocol::agent;
using Kind = AgentWatchEvent::Kind;

EngineConfig test_config() {
  EngineConfig config;
  if (const char* dir = std::getenv("AIRLOCK_DATA_DIR"); dir && *dir) config.data_dir = dir;
  if (const char* dir = std::getenv("AIRLOCK_RUN_DIR"); dir && *dir) config.run_dir = dir;
  if (const char* init = std::getenv("AIRLOCK_INIT"); init && *init) {
    config.init_path = init;
  } else {
    config.init_path = (fs::read_symlink("/proc/self/exe").parent_path() / "airlock-init").string();
  }
  return config;
}

std::string pattern(size_t size, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

std::string host_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class AgentFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    auto engine = Engine::open(test_config());
    ASSERT_TRUE(engine.ok()) << engine.error().describe();
    engine_.emplace(std::move(*engine));
    SandboxSpec spec;
    IoOptions io;
    io.service = true;
    auto box = engine_->create(spec, io);
    ASSERT_TRUE(box.ok()) << box.error().describe();
    box_ = std::move(*box);
    connect();
  }
  void TearDown() override {
    client_.reset();
    box_.destroy();
    if (!host_dir_.empty()) fs::remove_all(host_dir_);
  }

  void connect() {
    client_.reset();
    auto client = AgentClient::connect(box_.agent_socket_path());
    ASSERT_TRUE(client.ok()) << client.error().describe();
    client_.emplace(std::move(*client));
  }

  AgentRunResult sh(const std::string& script) {
    auto result = client_->run({"sh", "-c", script}, {}, {}, 60s);
    EXPECT_TRUE(result.ok()) << result.error().describe();
    return result.ok() ? *result : AgentRunResult{};
  }

  void write(const std::string& path, std::string_view data, uint32_t mode = 0644,
             uint32_t options = proto::kWriteCreate | proto::kWriteTruncate, uint64_t offset = 0) {
    auto r = client_->write_file(path, data, mode, options, offset);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    EXPECT_EQ(*r, data.size());
  }
  std::string read(const std::string& path) {
    auto r = client_->read_file(path);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    return r.ok() ? *r : std::string("<read failed>");
  }
  int read_errno(const std::string& path) {
    auto r = client_->read_file(path);
    return r.ok() ? 0 : r.error().errnum;
  }
  AgentFileInfo stat(const std::string& path) {
    auto r = client_->stat(path);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    return r.ok() ? *r : AgentFileInfo{};
  }
  int stat_errno(const std::string& path) {
    auto r = client_->stat(path);
    return r.ok() ? 0 : r.error().errnum;
  }
  void mkdir(const std::string& path, uint32_t mode = 0755, bool parents = true) {
    auto r = client_->mkdir(path, mode, parents);
    ASSERT_TRUE(r.ok()) << r.error().describe();
  }
  std::map<std::string, AgentFileInfo> list(const std::string& path, uint32_t depth) {
    auto r = client_->list(path, depth);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    std::map<std::string, AgentFileInfo> out;
    if (r.ok()) {
      for (auto& e : *r) EXPECT_TRUE(out.emplace(e.path, e.info).second) << "listed twice: " << e.path;
    }
    return out;
  }

  // Skips other events until `kind` for `path` arrives; false if it does not within 10 s.
  bool saw(uint32_t watch, Kind kind, const std::string& path, std::vector<std::string>* log = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto e = client_->next_watch_event(watch, 500ms);
      if (!e.ok()) {
        ADD_FAILURE() << e.error().describe();
        return false;
      }
      if (!*e) continue;
      if (log) log->push_back(std::to_string(static_cast<int>((*e)->kind)) + ":" + (*e)->path);
      if ((*e)->kind == kind && (*e)->path == path) return true;
      if ((*e)->kind == Kind::kEnded) return false;
    }
    return false;
  }

  // A host directory with a marker file the sandbox must never read or change.
  void make_host_marker() {
    char tmpl[] = "/tmp/airlock-escape-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    host_dir_ = tmpl;
    std::ofstream(host_dir_ + "/marker") << kSecret;
  }
  static constexpr const char* kSecret = "HOST-SECRET-0123456789";

  std::optional<Engine> engine_;
  Sandbox box_;
  std::optional<AgentClient> client_;
  std::string host_dir_;
};

// ---- read and write ------------------------------------------------------------------------------
TEST_F(AgentFilesTest, EveryByteValueRoundTrips) {
  std::string all;
  for (int round = 0; round < 3; ++round)
    for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  write("/tmp/bytes", all);
  EXPECT_EQ(read("/tmp/bytes"), all);
  EXPECT_EQ(stat("/tmp/bytes").size, all.size());
  // The same bytes as a process inside sees them.
  EXPECT_EQ(sh("od -An -tx1 -v /tmp/bytes | tr -d ' \\n' | head -c 32").stdout_data,
            "000102030405060708090a0b0c0d0e0f");
}

TEST_F(AgentFilesTest, FiveMegabytesStreamInOrderedChunksWithEndOnTheLast) {
  const std::string data = pattern(5u << 20, 7);
  write("/tmp/five", data);
  EXPECT_EQ(stat("/tmp/five").size, data.size());

  auto id = client_->read_start("/tmp/five");
  ASSERT_TRUE(id.ok()) << id.error().describe();
  std::string got;
  uint64_t expected_offset = 0;
  size_t chunks = 0;
  for (;;) {
    auto chunk = client_->read_next(*id, 10s);
    ASSERT_TRUE(chunk.ok()) << chunk.error().describe();
    ASSERT_TRUE(chunk->has_value()) << "timed out";
    const AgentFileChunk& c = **chunk;
    EXPECT_EQ(c.offset, expected_offset);
    EXPECT_LE(c.data.size(), proto::kMaxChunk);
    expected_offset += c.data.size();
    got += c.data;
    ++chunks;
    if (c.end) break;
    EXPECT_FALSE(c.data.empty()) << "only the last chunk may be empty";
  }
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "content differs";
  EXPECT_GE(chunks, data.size() / proto::kMaxChunk);
  EXPECT_FALSE(client_->read_next(*id, 100ms).ok()) << "the id is spent after `end`";

  // Offset and limit.
  auto part = client_->read_file("/tmp/five", 1000, 70000);
  ASSERT_TRUE(part.ok()) << part.error().describe();
  EXPECT_TRUE(*part == data.substr(1000, 70000));
  auto tail = client_->read_file("/tmp/five", data.size() - 10, 1000);
  ASSERT_TRUE(tail.ok());
  EXPECT_TRUE(*tail == data.substr(data.size() - 10));
  auto past = client_->read_file("/tmp/five", data.size() + 5);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(*past, "");
}

TEST_F(AgentFilesTest, WritesLandAtTheirOffsets) {
  write("/tmp/off", "hello world");
  write("/tmp/off", "HELLO", 0644, 0, 0);  // no create, no truncate: overwrite in place
  EXPECT_EQ(read("/tmp/off"), "HELLO world");
  write("/tmp/off", "XYZ", 0644, 0, 14);  // past the end: a hole of zeros
  EXPECT_EQ(read("/tmp/off"), std::string("HELLO world\0\0\0XYZ", 17));
  // A large write at an offset, split into several frames by the client.
  std::string big = pattern(300000, 3);
  write("/tmp/off", big, 0644, 0, 5);
  std::string expect = "HELLO" + big;
  EXPECT_TRUE(read("/tmp/off") == expect);
}

TEST_F(AgentFilesTest, CreateAndTruncateOptions) {
  auto missing = client_->write_file("/tmp/nofile", "x", 0644, 0);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().errnum, ENOENT);
  EXPECT_EQ(stat_errno("/tmp/nofile"), ENOENT);

  write("/tmp/mode", "abcdef", 0640, proto::kWriteCreate);
  EXPECT_EQ(stat("/tmp/mode").mode, 0640u);
  write("/tmp/wide", "", 0777, proto::kWriteCreate);  // no umask on top of the mode asked for
  EXPECT_EQ(stat("/tmp/wide").mode, 0777u);
  EXPECT_EQ(stat("/tmp/wide").size, 0u);

  write("/tmp/mode", "XY", 0600, proto::kWriteCreate);  // exists: no truncate, mode kept
  EXPECT_EQ(read("/tmp/mode"), "XYcdef");
  EXPECT_EQ(stat("/tmp/mode").mode, 0640u);
  write("/tmp/mode", "Z", 0600, proto::kWriteTruncate);
  EXPECT_EQ(read("/tmp/mode"), "Z");

  auto dir = client_->write_file("/tmp", "x", 0644, proto::kWriteCreate);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().errnum, EISDIR);
  EXPECT_EQ(read_errno("/tmp"), EISDIR);
  EXPECT_EQ(read_errno("/dev/zero"), EINVAL) << "a device is not a file to transfer";
  EXPECT_EQ(read_errno("/tmp/missing"), ENOENT);
  EXPECT_TRUE(client_->connected());
}

// ---- list and stat -------------------------------------------------------------------------------
TEST_F(AgentFilesTest, ListDepthOneAndRecursive) {
  mkdir("/t/d/e", 0755);
  ASSERT_TRUE(client_->mkdir("/t/d", 0750, true).ok());  // exists: fine with parents
  ASSERT_EQ(sh("chmod 0750 /t/d && ln -s /t/d /t/l && ln -s /nowhere /t/dangling").exit_code, 0);
  write("/t/a", "abc", 0600);
  write("/t/d/b", "bbbbb", 0644);
  write("/t/d/e/f", "f", 0644);

  auto top = list("/t", 1);
  EXPECT_EQ(top.size(), 4u);
  ASSERT_TRUE(top.count("a") && top.count("d") && top.count("l") && top.count("dangling"));
  EXPECT_EQ(top["a"].kind, proto::kKindFile);
  EXPECT_EQ(top["a"].size, 3u);
  EXPECT_EQ(top["a"].mode, 0600u);
  EXPECT_EQ(top["d"].kind, proto::kKindDir);
  EXPECT_EQ(top["d"].mode, 0750u);
  EXPECT_EQ(top["l"].kind, proto::kKindSymlink);
  EXPECT_EQ(top["dangling"].kind, proto::kKindSymlink);

  auto all = list("/t", 32);
  std::set<std::string> names;
  for (auto& [path, info] : all) names.insert(path);
  EXPECT_EQ(names, (std::set<std::string>{"a", "d", "d/b", "d/e", "d/e/f", "l", "dangling"}))
      << "the symlinked directory must not be entered";
  EXPECT_EQ(all["d/b"].size, 5u);
  EXPECT_EQ(all["d/e"].kind, proto::kKindDir);

  auto two = list("/t", 2);
  EXPECT_TRUE(two.count("d/e"));
  EXPECT_FALSE(two.count("d/e/f"));

  // Listing through the symlink itself (the path named) is fine.
  auto via_link = list("/t/l", 1);
  EXPECT_TRUE(via_link.count("b"));

  auto file = client_->list("/t/a", 1);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().errnum, ENOTDIR);
  auto gone = client_->list("/t/missing", 1);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().errnum, ENOENT);
}

TEST_F(AgentFilesTest, ListStopsAtTheEntryCap) {
  ASSERT_EQ(sh("mkdir /many && cd /many && seq 1 100005 | xargs touch").exit_code, 0);
  auto r = client_->list("/many", 1, 60s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().errnum, E2BIG);
  EXPECT_TRUE(client_->connected());
  EXPECT_EQ(sh("echo alive").stdout_data, "alive\n");
}

TEST_F(AgentFilesTest, StatReportsKindsWithoutFollowingSymlinks) {
  write("/tmp/s-file", "12345", 0604);
  mkdir("/tmp/s-dir", 0711);
  ASSERT_EQ(sh("ln -s /tmp/s-dir /tmp/s-link && ln -s /nowhere /tmp/s-dangling && mkfifo /tmp/s-fifo").exit_code, 0);
  AgentFileInfo f = stat("/tmp/s-file");
  EXPECT_EQ(f.kind, proto::kKindFile);
  EXPECT_EQ(f.size, 5u);
  EXPECT_EQ(f.mode, 0604u);
  EXPECT_GT(f.mtime_ns, int64_t{1'500'000'000} * 1'000'000'000);
  EXPECT_EQ(stat("/tmp/s-dir").kind, proto::kKindDir);
  EXPECT_EQ(stat("/tmp/s-dir").mode, 0711u);
  EXPECT_EQ(stat("/tmp/s-link").kind, proto::kKindSymlink);
  EXPECT_EQ(stat("/tmp/s-dangling").kind, proto::kKindSymlink);
  EXPECT_EQ(stat("/tmp/s-fifo").kind, proto::kKindOther);
  EXPECT_EQ(stat("/tmp/s-link/").kind, proto::kKindSymlink) << "a trailing slash is cut, not followed";
  EXPECT_EQ(stat("/").kind, proto::kKindDir);
  EXPECT_EQ(stat_errno("/tmp/none"), ENOENT);
  EXPECT_EQ(stat_errno("/tmp/none/deeper"), ENOENT);
  EXPECT_EQ(stat_errno("/tmp/s-file/x"), ENOTDIR);
}

// ---- mkdir, remove, rename -------------------------------------------------------------------------
TEST_F(AgentFilesTest, MkdirWithAndWithoutParents) {
  auto no_parent = client_->mkdir("/m/a/b", 0755, false);
  ASSERT_FALSE(no_parent.ok());
  EXPECT_EQ(no_parent.error().errnum, ENOENT);
  mkdir("/m/a/b", 0700, true);
  EXPECT_EQ(stat("/m/a/b").kind, proto::kKindDir);
  EXPECT_EQ(stat("/m/a/b").mode, 0700u);
  EXPECT_EQ(stat("/m/a").mode, 0755u);
  mkdir("/m/a/b", 0700, true);  // mkdir -p: existing is fine
  auto again = client_->mkdir("/m/a/b", 0700, false);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().errnum, EEXIST);
  mkdir("/m/a/c", 0750, false);
  EXPECT_EQ(stat("/m/a/c").mode, 0750u);
  write("/m/file", "x");
  auto over_file = client_->mkdir("/m/file", 0755, true);
  ASSERT_FALSE(over_file.ok());
  EXPECT_EQ(over_file.error().errnum, EEXIST);
  auto under_file = client_->mkdir("/m/file/sub", 0755, true);
  ASSERT_FALSE(under_file.ok());
  EXPECT_EQ(under_file.error().errnum, ENOTDIR);
  mkdir("//m//x/./y/", 0755, true);
  EXPECT_EQ(stat("/m/x/y").kind, proto::kKindDir);
  EXPECT_FALSE(client_->mkdir("/", 0755, false).ok());
  EXPECT_TRUE(client_->mkdir("/", 0755, true).ok());
}

TEST_F(AgentFilesTest, RecursiveRemoveDoesNotFollowASymlinkOutOfTheTree) {
  mkdir("/keep/inner");
  write("/keep/precious", "treasure");
  write("/keep/inner/also", "kept");
  mkdir("/rt/x/y/z");
  write("/rt/x/y/z/file", "1");
  write("/rt/top", "2");
  ASSERT_EQ(sh("ln -s /keep /rt/link-dir && ln -s /keep/precious /rt/x/link-file && ln -s ../../keep /rt/x/rel")
                .exit_code, 0);

  auto not_empty = client_->remove("/rt", false);
  ASSERT_FALSE(not_empty.ok());
  EXPECT_EQ(not_empty.error().errnum, ENOTEMPTY);

  auto removed = client_->remove("/rt", true);
  ASSERT_TRUE(removed.ok()) << removed.error().describe();
  EXPECT_EQ(*removed, 9u);  // x, x/y, x/y/z, x/y/z/file, x/link-file, x/rel, top, link-dir and /rt
  EXPECT_EQ(stat_errno("/rt"), ENOENT);
  EXPECT_EQ(read("/keep/precious"), "treasure");
  EXPECT_EQ(read("/keep/inner/also"), "kept");

  // A symlink alone: the link goes, its target stays.
  ASSERT_EQ(sh("ln -s /keep /keep-link").exit_code, 0);
  ASSERT_TRUE(client_->remove("/keep-link", true).ok());
  EXPECT_EQ(stat_errno("/keep-link"), ENOENT);
  EXPECT_EQ(read("/keep/precious"), "treasure");
  // A file, an empty directory.
  ASSERT_TRUE(client_->remove("/keep/precious", false).ok());
  EXPECT_EQ(stat_errno("/keep/precious"), ENOENT);
  auto gone = client_->remove("/keep/precious", false);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().errnum, ENOENT);
}

TEST_F(AgentFilesTest, RemovingTheRootOrAMountIsRefused) {
  for (const char* path : {"/", "//", "/tmp/..", "/tmp/../..", "/."}) {
    for (bool recursive : {false, true}) {
      auto r = client_->remove(path, recursive);
      ASSERT_FALSE(r.ok()) << path;
      EXPECT_TRUE(r.error().errnum == EBUSY || r.error().errnum == EPERM || r.error().errnum == EINVAL)
          << path << ": " << r.error().describe();
    }
  }
  for (const char* mount : {"/proc", "/dev", "/dev/shm"}) {
    auto r = client_->remove(mount, true);
    ASSERT_FALSE(r.ok()) << mount;
    EXPECT_EQ(r.error().errnum, EBUSY) << mount;
  }
  // The sandbox is whole.
  EXPECT_EQ(sh("echo still here && ls /bin/sh").stdout_data, "still here\n/bin/sh\n");
  EXPECT_EQ(stat("/proc/1").kind, proto::kKindDir);
}

TEST_F(AgentFilesTest, RenameWithAndWithoutNoReplace) {
  mkdir("/r");
  write("/r/a", "A");
  write("/r/b", "B");
  auto refused = client_->rename("/r/a", "/r/b", true);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().errnum, EEXIST);
  EXPECT_EQ(read("/r/a"), "A");
  EXPECT_EQ(read("/r/b"), "B");
  ASSERT_TRUE(client_->rename("/r/a", "/r/b", false).ok());
  EXPECT_EQ(read("/r/b"), "A");
  EXPECT_EQ(stat_errno("/r/a"), ENOENT);
  ASSERT_TRUE(client_->rename("/r/b", "/r/c", true).ok());  // no-replace onto nothing: fine
  EXPECT_EQ(read("/r/c"), "A");

  // The host's atomic replace: a temp file next to the target, then rename over it.
  write("/r/target", "old");
  write("/r/.target.tmp", "new contents", 0600);
  ASSERT_TRUE(client_->rename("/r/.target.tmp", "/r/target").ok());
  EXPECT_EQ(read("/r/target"), "new contents");
  EXPECT_EQ(stat("/r/target").mode, 0600u);

  auto missing = client_->rename("/r/none", "/r/x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().errnum, ENOENT);
  EXPECT_FALSE(client_->rename("/", "/r/root").ok());
}

// ---- watches -----------------------------------------------------------------------------------------
TEST_F(AgentFilesTest, WatchReportsCreateModifyRemove) {
  mkdir("/w");
  auto watch = client_->watch_start("/w", false);
  ASSERT_TRUE(watch.ok()) << watch.error().describe();
  std::vector<std::string> log;
  write("/w/f", "one");
  EXPECT_TRUE(saw(*watch, Kind::kCreated, "f", &log));
  write("/w/f", "two", 0644, 0, 3);
  EXPECT_TRUE(saw(*watch, Kind::kModified, "f", &log));
  ASSERT_TRUE(client_->remove("/w/f").ok());
  EXPECT_TRUE(saw(*watch, Kind::kRemoved, "f", &log));
  ASSERT_EQ(sh("echo x > /w/by-process && mv /w/by-process /w/moved").exit_code, 0);
  EXPECT_TRUE(saw(*watch, Kind::kCreated, "by-process", &log));
  EXPECT_TRUE(saw(*watch, Kind::kRemoved, "by-process", &log));
  EXPECT_TRUE(saw(*watch, Kind::kCreated, "moved", &log));

  ASSERT_TRUE(client_->watch_stop(*watch).ok());
  auto after = client_->next_watch_event(*watch, 100ms);
  EXPECT_FALSE(after.ok()) << "a stopped watch is gone";
  auto twice = client_->watch_stop(*watch);
  EXPECT_FALSE(twice.ok());
}

TEST_F(AgentFilesTest, RecursiveWatchFollowsNewSubdirectories) {
  mkdir("/w2/old");
  auto watch = client_->watch_start("/w2", true);
  ASSERT_TRUE(watch.ok()) << watch.error().describe();
  write("/w2/old/a", "a");
  EXPECT_TRUE(saw(*watch, Kind::kCreated, "old/a"));
  mkdir("/w2/sub", 0755, false);
  EXPECT_TRUE(saw(*watch, Kind::kCreated, "sub"));
  write("/w2/sub/g", "g");
  EXPECT_TRUE(saw(*watch, Kind::kCreated, "sub/g"));
  // A tree made faster than the agent can add watches: found by the scan of each new directory.
  ASSERT_EQ(sh("mkdir -p /w2/n1/n2/n3 && echo x > /w2/n1/n2/n3/h").exit_code, 0);
  EXPECT_TRUE(saw(*watch, Kind::kCreated, "n1/n2/n3/h"));
  write("/w2/n1/n2/n3/h", "more", 0644, 0, 2);
  EXPECT_TRUE(saw(*watch, Kind::kModified, "n1/n2/n3/h"));
  // Moved away: no longer watched under its old name; moved back under a new one: watched.
  ASSERT_EQ(sh("mv /w2/n1 /tmp/n1-away").exit_code, 0);
  EXPECT_TRUE(saw(*watch, Kind::kRemoved, "n1"));
  ASSERT_EQ(sh("echo y > /tmp/n1-away/outside && mv /tmp/n1-away /w2/back && echo z > /w2/back/inside").exit_code,
            0);
  std::vector<std::string> log;
  EXPECT_TRUE(saw(*watch, Kind::kCreated, "back/inside", &log));
  for (const auto& line : log) EXPECT_EQ(line.find("n1/outside"), std::string::npos) << line;

  // Not recursive: only the top level.
  mkdir("/w3/sub");
  auto flat = client_->watch_start("/w3", false);
  ASSERT_TRUE(flat.ok());
  write("/w3/sub/deep", "d");
  write("/w3/top", "t");
  log.clear();
  EXPECT_TRUE(saw(*flat, Kind::kCreated, "top", &log));
  for (const auto& line : log) EXPECT_EQ(line.find("deep"), std::string::npos) << line;
}

TEST_F(AgentFilesTest, WatchEndsWhenItsDirectoryGoes) {
  mkdir("/w4");
  auto watch = client_->watch_start("/w4", true);
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(client_->remove("/w4", true).ok());
  bool ended = false;
  for (int i = 0; i < 20 && !ended; ++i) {
    auto e = client_->next_watch_event(*watch, 500ms);
    ASSERT_TRUE(e.ok()) << e.error().describe();
    if (*e && (*e)->kind == Kind::kEnded) {
      ended = true;
      EXPECT_EQ((*e)->errnum, static_cast<uint32_t>(ENOENT));
    }
  }
  EXPECT_TRUE(ended);
  auto missing = client_->watch_start("/w4", false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().errnum, ENOENT);
  write("/w5", "file");
  auto not_dir = client_->watch_start("/w5", false);
  ASSERT_FALSE(not_dir.ok());
  EXPECT_EQ(not_dir.error().errnum, ENOTDIR);
}

TEST_F(AgentFilesTest, WatchSlotsAreLimited) {
  mkdir("/ws");
  std::vector<uint32_t> ids;
  for (int i = 0; i < 16; ++i) {
    auto w = client_->watch_start("/ws", false);
    ASSERT_TRUE(w.ok()) << i << ": " << w.error().describe();
    ids.push_back(*w);
  }
  auto extra = client_->watch_start("/ws", false);
  ASSERT_FALSE(extra.ok());
  EXPECT_EQ(extra.error().errnum, EBUSY);
  ASSERT_TRUE(client_->watch_stop(ids[0]).ok());
  EXPECT_TRUE(client_->watch_start("/ws", false).ok());
}

// ---- flow control ------------------------------------------------------------------------------------
// While a 50 MiB read streams (and the reader is deliberately slow), a process's output keeps
// flowing: it finishes long before the read does.
TEST_F(AgentFilesTest, LargeReadDoesNotStarveProcessOutput) {
  constexpr uint64_t kSize = 50u << 20;
  ASSERT_EQ(sh("head -c 52428800 /dev/zero > /tmp/big").exit_code, 0);
  auto read = client_->read_start("/tmp/big");
  ASSERT_TRUE(read.ok()) << read.error().describe();
  AgentExecRequest req;
  req.argv = {"sh", "-c", "i=0; while [ $i -lt 10 ]; do echo line$i; i=$((i+1)); sleep 0.02; done"};
  auto proc = client_->exec(req);
  ASSERT_TRUE(proc.ok()) << proc.error().describe();

  uint64_t received = 0, at_exit = 0, expected_offset = 0;
  std::string output;
  bool exited = false, ended = false;
  while (!ended) {
    auto chunk = client_->read_next(*read, 10s);
    ASSERT_TRUE(chunk.ok()) << chunk.error().describe();
    ASSERT_TRUE(chunk->has_value()) << "read stalled at " << received;
    ASSERT_EQ((*chunk)->offset, expected_offset);
    ASSERT_EQ((*chunk)->data.find_first_not_of('\0'), std::string::npos);
    expected_offset += (*chunk)->data.size();
    received += (*chunk)->data.size();
    ended = (*chunk)->end;
    std::this_thread::sleep_for(3ms);  // a slow reader: the read takes 3 s or more
    for (;;) {
      auto e = client_->next_event(0ms);
      ASSERT_TRUE(e.ok()) << e.error().describe();
      if (!*e) break;
      ASSERT_EQ((*e)->id, proc->id);
      if ((*e)->kind == AgentEvent::Kind::kOutput) {
        output += (*e)->data;
        ASSERT_TRUE(client_->credit(proc->id, static_cast<uint32_t>((*e)->data.size())).ok());
      } else if ((*e)->kind == AgentEvent::Kind::kExited) {
        exited = true;
        at_exit = received;
      }
    }
  }
  EXPECT_EQ(received, kSize);
  EXPECT_TRUE(exited) << "the process's Exited never came while the read streamed";
  EXPECT_LT(at_exit, kSize / 2) << "process output waited for the read";
  EXPECT_NE(output.find("line9\n"), std::string::npos) << output;
}

// Eight reads at once have far more credit (8 x 256 KiB) than the agent's send buffer holds:
// they keep it full, and still a process's output gets through while they stream.
TEST_F(AgentFilesTest, ManyReadsDoNotCrowdOutProcessOutput) {
  constexpr uint64_t kSize = 4u << 20;
  ASSERT_EQ(sh("head -c 4194304 /dev/zero > /tmp/four").exit_code, 0);
  std::vector<uint32_t> reads;
  for (int i = 0; i < 8; ++i) {
    auto id = client_->read_start("/tmp/four");
    ASSERT_TRUE(id.ok()) << id.error().describe();
    reads.push_back(*id);
  }
  std::this_thread::sleep_for(200ms);  // every window used: the send buffer is full
  AgentExecRequest req;
  req.argv = {"sh", "-c", "i=0; while [ $i -lt 10 ]; do echo line$i; i=$((i+1)); sleep 0.02; done"};
  auto proc = client_->exec(req);
  ASSERT_TRUE(proc.ok()) << proc.error().describe();
  std::vector<uint64_t> got(reads.size(), 0);
  std::vector<bool> ended(reads.size(), false);
  uint64_t total = 0, at_exit = 0;
  bool exited = false;
  std::string output;
  while (std::count(ended.begin(), ended.end(), false) > 0) {
    for (size_t i = 0; i < reads.size(); ++i) {
      if (ended[i]) continue;
      auto chunk = client_->read_next(reads[i], 10s);
      ASSERT_TRUE(chunk.ok()) << chunk.error().describe();
      ASSERT_TRUE(chunk->has_value()) << "read " << i << " stalled at " << got[i];
      got[i] += (*chunk)->data.size();
      total += (*chunk)->data.size();
      ended[i] = (*chunk)->end;
      ASSERT_LE(got[i], kSize);
      std::this_thread::sleep_for(1ms);
    }
    for (;;) {
      auto e = client_->next_event(0ms);
      ASSERT_TRUE(e.ok()) << e.error().describe();
      if (!*e) break;
      if ((*e)->kind == AgentEvent::Kind::kOutput) {
        output += (*e)->data;
        ASSERT_TRUE(client_->credit(proc->id, static_cast<uint32_t>((*e)->data.size())).ok());
      } else if ((*e)->kind == AgentEvent::Kind::kExited && !exited) {
        exited = true;
        at_exit = total;
      }
    }
  }
  EXPECT_TRUE(exited) << "the process's Exited never came while the reads streamed";
  EXPECT_EQ(total, kSize * reads.size());
  EXPECT_LT(at_exit, kSize * reads.size() / 2) << "process output waited for the reads";
  EXPECT_NE(output.find("line9\n"), std::string::npos) << output;
}

TEST_F(AgentFilesTest, ConcurrentStreamsAreLimitedAndFreedByAReconnect) {
  write("/tmp/s", std::string(1u << 20, 'x'));
  std::vector<uint32_t> reads;
  for (int i = 0; i < 8; ++i) {  // each stalls once its window is used: nobody takes its chunks
    auto id = client_->read_start("/tmp/s");
    ASSERT_TRUE(id.ok());
    reads.push_back(*id);
  }
  auto ninth = client_->read_file("/tmp/s", 0, 10);
  ASSERT_FALSE(ninth.ok());
  EXPECT_EQ(ninth.error().errnum, EBUSY);
  // Small requests still work meanwhile.
  EXPECT_EQ(stat("/tmp/s").size, 1u << 20);
  // One read finished frees its slot.
  std::string all;
  for (;;) {
    auto c = client_->read_next(reads[0], 10s);
    ASSERT_TRUE(c.ok() && c->has_value());
    all += (*c)->data;
    if ((*c)->end) break;
  }
  EXPECT_EQ(all.size(), 1u << 20);
  EXPECT_TRUE(client_->read_file("/tmp/s", 0, 10).ok());
  // A new connection: the old host's streams are gone.
  connect();
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(client_->read_file("/tmp/s", 0, 10).ok()) << i;
}

// ---- escape attempts -----------------------------------------------------------------------------------
TEST_F(AgentFilesTest, DotDotPathsStayInsideTheSandbox) {
  make_host_marker();
  // The decoder takes any absolute path; ".." at the root stays at the root, inside.
  auto inside = client_->read_file("/etc/hostname");
  auto dotdot = client_->read_file("/../../../etc/hostname");
  ASSERT_EQ(inside.ok(), dotdot.ok());
  if (inside.ok()) {
    EXPECT_EQ(*inside, *dotdot);
  }
  auto shadow = client_->read_file("/../../etc/shadow");
  auto shadow_inside = client_->read_file("/etc/shadow");
  ASSERT_EQ(shadow.ok(), shadow_inside.ok());
  if (shadow.ok()) {
    EXPECT_EQ(*shadow, *shadow_inside);
  }
  EXPECT_EQ(read_errno("/../../.." + host_dir_ + "/marker"), ENOENT);
  EXPECT_EQ(read_errno(host_dir_ + "/marker"), ENOENT);
  EXPECT_EQ(stat_errno("/.." + host_dir_), ENOENT);
  // A relative path never leaves the client: the encoder refuses it.
  auto relative = client_->read_file("etc/passwd");
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.error().errnum, EPROTO);
  EXPECT_TRUE(client_->connected());
}

TEST_F(AgentFilesTest, SymlinkToRootOrProcRootReachesOnlySandboxFiles) {
  make_host_marker();
  const std::string marker = host_dir_ + "/marker";
  ASSERT_EQ(sh("mkdir -p /esc && ln -s / /esc/root && ln -s /proc/1/root /esc/proc1 && "
               "ln -s /proc/self/root /esc/self && ln -s /proc/1/cwd /esc/cwd && ln -s ../../.. /esc/up")
                .exit_code, 0);
  // The sandbox has its own file at the marker's path: every trick finds that one, or nothing.
  mkdir(host_dir_);
  write(marker, "sandbox-side");
  for (const std::string prefix :
       {"", "/esc/root", "/esc/proc1", "/esc/self", "/esc/cwd", "/esc/up", "/proc/1/root", "/proc/self/root",
        "/proc/1/cwd", "/esc/root/proc/1/root", "/esc/up/esc/root"}) {
    auto r = client_->read_file(prefix + marker);
    if (r.ok()) {
      EXPECT_EQ(*r, "sandbox-side") << prefix;
    }
    auto listed = client_->list(prefix + host_dir_, 1);
    if (listed.ok()) {
      for (const auto& e : *listed) {
        if (e.path == "marker") EXPECT_EQ(e.info.size, 12u) << prefix;  // "sandbox-side"
        else EXPECT_EQ(e.path.rfind("made-", 0), 0u) << prefix << ": " << e.path;
      }
    }
    // Writing through the link changes the sandbox's file or nothing, never the host's.
    auto w = client_->write_file(prefix + marker, "PWNED", 0644, proto::kWriteCreate | proto::kWriteTruncate);
    (void)w;
    auto mk = client_->mkdir(prefix + host_dir_ + "/made-" + std::to_string(prefix.size()), 0755, true);
    (void)mk;
    write(marker, "sandbox-side");
  }
  EXPECT_EQ(host_file(marker), kSecret);
  EXPECT_EQ(std::distance(fs::directory_iterator(host_dir_), fs::directory_iterator{}), 1)
      << "nothing was created in the host directory";
}

// procfs magic links lead to what a process holds, and init holds host objects (its stdio are
// host pipes, its exe the host's airlock-init): the agent never follows them.
TEST_F(AgentFilesTest, ProcMagicLinksToHostObjectsAreRefused) {
  std::string init_before = host_file(test_config().init_path);
  ASSERT_FALSE(init_before.empty());
  ASSERT_EQ(sh("ln -s /proc/1/exe /exe-link && ln -s /proc/1/fd /fd-link").exit_code, 0);
  for (const char* path : {"/proc/1/exe", "/proc/self/exe", "/exe-link", "/proc/1/fd/0", "/proc/1/fd/1",
                           "/proc/1/fd/2", "/proc/self/fd/2", "/fd-link/1", "/dev/stdout", "/dev/fd/1"}) {
    auto r = client_->read_file(path, 0, 1 << 20);
    EXPECT_FALSE(r.ok()) << path;
    if (r.ok()) {
      EXPECT_NE(*r, init_before.substr(0, r->size())) << path << ": host binary read";
    }
    auto w = client_->write_file(path, "PWNED", 0644, proto::kWriteTruncate);
    EXPECT_FALSE(w.ok()) << path;
    auto l = client_->list(std::string(path) + "/..", 1);
    (void)l;
  }
  auto through = client_->list("/proc/1/root/", 1);
  EXPECT_FALSE(through.ok()) << "/proc/1/root is a magic link too";
  EXPECT_EQ(host_file(test_config().init_path), init_before);
  EXPECT_TRUE(client_->connected());
}

}  // namespace
}  // namespace airlock
