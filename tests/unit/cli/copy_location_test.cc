// `airlock cp` operands: which side is the sandbox, and the cp-like naming of destinations.
#include "cli/copy_location.h"

#include <gtest/gtest.h>

namespace airlock::cli {
namespace {

TEST(CopyLocation, SandboxSide) {
  auto a = parse_copy_location("sb-4f3k9q2m7x1c8v5b:/tmp/x");
  EXPECT_TRUE(a.remote);
  EXPECT_EQ(a.sandbox_id, "sb-4f3k9q2m7x1c8v5b");
  EXPECT_EQ(a.path, "/tmp/x");

  auto b = parse_copy_location("sb-1:rel/path:with:colons");
  EXPECT_TRUE(b.remote);
  EXPECT_EQ(b.sandbox_id, "sb-1");
  EXPECT_EQ(b.path, "rel/path:with:colons");

  auto c = parse_copy_location("sb-1:");
  EXPECT_TRUE(c.remote);
  EXPECT_EQ(c.path, ".");  // the sandbox's workdir
}

TEST(CopyLocation, LocalSide) {
  for (const char* text : {"./local.txt", "/abs/path", "plain", "./a:b", "dir/a:b", ":leading", "/x:y"}) {
    auto l = parse_copy_location(text);
    EXPECT_FALSE(l.remote) << text;
    EXPECT_EQ(l.path, text);
  }
}

TEST(CopyLocation, Components) {
  EXPECT_EQ(last_component("a/b"), "b");
  EXPECT_EQ(last_component("a/b///"), "b");
  EXPECT_EQ(last_component("b"), "b");
  EXPECT_EQ(last_component("/"), "");
  EXPECT_EQ(last_component("."), ".");
  EXPECT_EQ(last_component("/tmp/."), ".");
  EXPECT_TRUE(names_contents_only("dir/."));
  EXPECT_TRUE(names_contents_only("."));
  EXPECT_TRUE(names_contents_only(".."));
  EXPECT_TRUE(names_contents_only("/"));
  EXPECT_FALSE(names_contents_only("dir"));
  EXPECT_FALSE(names_contents_only("dir/"));
  EXPECT_EQ(join_path("/tmp", "x"), "/tmp/x");
  EXPECT_EQ(join_path("/tmp/", "x"), "/tmp/x");
  EXPECT_EQ(join_path("/", "x"), "/x");
  EXPECT_EQ(join_path("", "x"), "x");
}

}  // namespace
}  // namespace airlock::cli
