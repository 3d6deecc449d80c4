// Reading CreateSandboxRequest, SetTimeoutRequest and RunCommandRequest: defaults, ranges, the field
// named in each 400, and the 422s.
#include "daemon/sandbox_request.h"

#include <gtest/gtest.h>

namespace airlock::daemon {
namespace {

using nlohmann::json;

TEST(CreateSandboxRequest, Defaults) {
  auto s = parse_create_sandbox(json::object());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->template_name, "host");
  EXPECT_EQ(s->cpu_millis, 1000);
  EXPECT_EQ(s->memory_mb, 512);
  EXPECT_EQ(s->timeout, 300);
  EXPECT_EQ(s->workdir, "/root");
  EXPECT_FALSE(s->idle_timeout.has_value());
}

TEST(CreateSandboxRequest, Fields) {
  auto s = parse_create_sandbox(json{{"cpu", 0.5}, {"memory_mb", 64}, {"env", {{"A", "1"}}},
                                     {"metadata", {{"z", "1"}, {"a", "2"}}}, {"idle_timeout", nullptr},
                                     {"network", {{"mode", "none"}}}, {"command", nullptr}});
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->cpu_millis, 500);
  EXPECT_EQ(s->memory_mb, 64);
  ASSERT_EQ(s->env.size(), 1u);
  ASSERT_EQ(s->metadata.size(), 2u);
  EXPECT_EQ(s->metadata[0].first, "a");  // sorted
}

TEST(CreateSandboxRequest, NamesTheBadField) {
  struct Case {
    json body;
    std::string field;
    ErrorCode code = ErrorCode::kInvalidField;
  };
  for (const auto& c : std::vector<Case>{
           {{{"memory_mb", 3}}, "memory_mb"},
           {{{"memory_mb", 4.5}}, "memory_mb"},
           {{{"cpu", 2000}}, "cpu"},
           {{{"env", {{"9X", "y"}}}}, "env.9X"},
           {{{"metadata", {{"k", 1}}}}, "metadata.k"},
           {{{"workdir", "tmp"}}, "workdir"},
           {{{"unknown", true}}, "unknown"},
           {{{"template", "alpine"}}, "template", ErrorCode::kUnknownTemplate},
       }) {
    auto s = parse_create_sandbox(c.body);
    ASSERT_FALSE(s.ok()) << c.body.dump();
    EXPECT_EQ(s.error().field, c.field) << c.body.dump();
    EXPECT_EQ(s.error().code, c.code) << c.body.dump();
  }
}

TEST(SetTimeoutRequest, ExactlyOne) {
  EXPECT_TRUE(parse_set_timeout(json{{"timeout", 5}}).ok());
  EXPECT_TRUE(parse_set_timeout(json{{"extend_by", 5}}).ok());
  EXPECT_FALSE(parse_set_timeout(json::object()).ok());
  EXPECT_FALSE(parse_set_timeout(json{{"timeout", 5}, {"extend_by", 5}}).ok());
}

TEST(RunCommandRequest, ShellAndArgv) {
  auto r = parse_run_command(json{{"cmd", "echo hi"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->argv, (std::vector<std::string>{"/bin/sh", "-c", "echo hi"}));
  EXPECT_EQ(r->timeout.count(), 60000);
  EXPECT_EQ(r->max_output_bytes, size_t{1} << 20);
  r = parse_run_command(json{{"argv", {"ls", "-l"}}, {"timeout", 0.25}, {"user", "7:8"}, {"stdin", "aGk="},
                             {"stdin_encoding", "base64"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->argv.size(), 2u);
  EXPECT_EQ(r->timeout.count(), 250);
  EXPECT_EQ(r->uid, 7u);
  EXPECT_EQ(r->gid, 8u);
  EXPECT_EQ(r->stdin_data, "hi");
}

TEST(RunCommandRequest, Errors) {
  EXPECT_EQ(parse_run_command(json::object()).error().field, "cmd");
  EXPECT_EQ(parse_run_command(json{{"cmd", "x"}, {"argv", {"x"}}}).error().field, "argv");
  EXPECT_EQ(parse_run_command(json{{"argv", {"x", 1}}}).error().field, "argv[1]");
  EXPECT_EQ(parse_run_command(json{{"cmd", "x"}, {"timeout", -1}}).error().field, "timeout");
  EXPECT_EQ(parse_run_command(json{{"cmd", "x"}, {"user", "nobody"}}).error().code, ErrorCode::kUnknownUser);
  EXPECT_EQ(parse_run_command(json{{"cmd", "x"}, {"user", "99999"}}).error().code, ErrorCode::kUnknownUser);
  EXPECT_EQ(parse_run_command(json{{"cmd", "x"}, {"user", "A B"}}).error().code, ErrorCode::kInvalidField);
}

}  // namespace
}  // namespace airlock::daemon
