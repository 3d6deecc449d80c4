// Where `airlock` finds the daemon and its key: URL forms, and the order flags > environment >
// config file > default. The environment and the file system are injected.
#include "cli/client_config.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <string>

namespace airlock::cli {
namespace {

struct Host {
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> files;
  std::vector<std::string> reads;

  EnvLookup lookup() {
    return [this](const char* name) -> const char* {
      auto it = env.find(name);
      return it == env.end() ? nullptr : it->second.c_str();
    };
  }
  FileReader reader() {
    return [this](const std::string& path) -> Result<std::string> {
      reads.push_back(path);
      auto it = files.find(path);
      if (it == files.end()) return sys_error("open " + path, ENOENT);
      return it->second;
    };
  }
  Result<ClientConfig> resolve(const GlobalOptions& flags = {}) { return resolve_client_config(flags, lookup(), reader()); }
};

TEST(DaemonUrl, TcpForms) {
  auto a = parse_daemon_url("http://127.0.0.1:7070");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->kind, DaemonEndpoint::Kind::kTcp);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7070);
  EXPECT_EQ(a->host_header(), "127.0.0.1:7070");

  auto b = parse_daemon_url("http://localhost:8080/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "localhost");
  EXPECT_EQ(b->port, 8080);

  auto c = parse_daemon_url("http://[::1]:9000");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 9000);
  EXPECT_EQ(c->host_header(), "[::1]:9000");

  auto d = parse_daemon_url("http://example.org");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 80);
}

TEST(DaemonUrl, UnixForms) {
  for (const char* text : {"unix:/run/airlockd.sock", "unix:///run/airlockd.sock"}) {
    auto e = parse_daemon_url(text);
    ASSERT_TRUE(e.ok()) << text;
    EXPECT_EQ(e->kind, DaemonEndpoint::Kind::kUnix);
    EXPECT_EQ(e->unix_path, "/run/airlockd.sock");
    EXPECT_EQ(e->describe(), "unix:/run/airlockd.sock");
  }
  auto relative = parse_daemon_url("unix:data/airlockd.sock");
  ASSERT_TRUE(relative.ok());
  EXPECT_EQ(relative->unix_path, "data/airlockd.sock");
}

TEST(DaemonUrl, RefusesWhatItCannotHonour) {
  for (const char* text : {"", "127.0.0.1:7070", "https://host:7070", "ftp://host", "http://", "http://:7070",
                           "http://host:", "http://host:0", "http://host:65536", "http://host:70x", "http://host:7070/api",
                           "http://user@host:7070", "http://::1:7070", "http://[::1", "http://[::1]x", "unix:",
                           "unix://host/sock"}) {
    auto e = parse_daemon_url(text);
    EXPECT_FALSE(e.ok()) << text;
    if (!e.ok()) {
      EXPECT_NE(e.error().message.find("invalid daemon url"), std::string::npos) << e.error().message;
    }
  }
}

TEST(ClientConfig, DefaultWithoutAnything) {
  Host host;
  auto config = host.resolve();
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->endpoint.describe(), "http://127.0.0.1:7070");
  EXPECT_EQ(config->api_key, "");
}

TEST(ClientConfig, ConfigFileUnderHome) {
  Host host;
  host.env["HOME"] = "/home/u";
  host.files["/home/u/.config/airlock/config.json"] = R"({"url": "unix:/run/a.sock", "api_key": "alk_file", "future": 1})";
  auto config = host.resolve();
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->endpoint.unix_path, "/run/a.sock");
  EXPECT_EQ(config->api_key, "alk_file");
}

TEST(ClientConfig, EnvironmentBeatsFileAndFlagsBeatEnvironment) {
  Host host;
  host.env["HOME"] = "/home/u";
  host.env["AIRLOCK_URL"] = "http://10.0.0.1:1";
  host.files["/home/u/.config/airlock/config.json"] = R"({"url": "http://file:2", "api_key": "alk_file"})";
  auto config = host.resolve();
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->endpoint.host, "10.0.0.1");
  EXPECT_EQ(config->api_key, "alk_file");  // the file still fills what the environment left out

  host.env["AIRLOCK_API_KEY"] = "alk_env";
  GlobalOptions flags;
  flags.url = "http://flag:3";
  config = host.resolve(flags);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->endpoint.host, "flag");
  EXPECT_EQ(config->api_key, "alk_env");

  flags.api_key = "alk_flag";
  host.reads.clear();
  config = host.resolve(flags);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->api_key, "alk_flag");
  EXPECT_TRUE(host.reads.empty()) << "the file is not read when flags say everything";
}

TEST(ClientConfig, ExplicitConfigPath) {
  Host host;
  host.env["HOME"] = "/home/u";
  host.env["AIRLOCK_CONFIG"] = "/etc/airlock.json";
  host.files["/etc/airlock.json"] = R"({"api_key": "alk_x"})";
  auto config = host.resolve();
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->api_key, "alk_x");

  host.files.clear();  // a missing file named explicitly is an error, not a silent default
  config = host.resolve();
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.error().message.find("config file"), std::string::npos);
}

TEST(ClientConfig, BadFiles) {
  Host host;
  host.env["HOME"] = "/home/u";
  const std::string path = "/home/u/.config/airlock/config.json";
  for (const char* text : {"not json", "[1]", R"({"url": 5})", R"({"api_key": null})"}) {
    host.files[path] = text;
    auto config = host.resolve();
    EXPECT_FALSE(config.ok()) << text;
  }
  host.files[path] = R"({"url": "nope"})";
  EXPECT_FALSE(host.resolve().ok());
}

TEST(ClientConfig, KeyWithControlCharactersIsRefused) {
  Host host;
  GlobalOptions flags;
  flags.api_key = "alk_x\r\nX-Evil: 1";
  EXPECT_FALSE(host.resolve(flags).ok());
}

TEST(GlobalOptions, TakenFromTheFrontOnly) {
  std::vector<std::string> args = {"--url", "http://h:1", "--api-key=alk_k", "exec", "--url", "x"};
  GlobalOptions options;
  ASSERT_TRUE(take_leading_global_options(args, options).ok());
  EXPECT_EQ(options.url, "http://h:1");
  EXPECT_EQ(options.api_key, "alk_k");
  EXPECT_EQ(args, (std::vector<std::string>{"exec", "--url", "x"}));

  std::vector<std::string> missing = {"--url"};
  GlobalOptions other;
  EXPECT_FALSE(take_leading_global_options(missing, other).ok());

  std::vector<std::string> none = {"run", "--", "true"};
  ASSERT_TRUE(take_leading_global_options(none, other).ok());
  EXPECT_EQ(none.size(), 3u);
}

}  // namespace
}  // namespace airlock::cli
