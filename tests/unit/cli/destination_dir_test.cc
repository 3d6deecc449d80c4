// `airlock cp -r` from a hostile sandbox: names that try to climb out of the destination, and
// symlinks (planted in the destination, or sent by the sandbox) that try to redirect writes.
#include "cli/destination_dir.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace airlock::cli {
namespace {

namespace fs = std::filesystem;

class DestinationDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/airlock-cp-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    fs::create_directory(root_ / "dest");
    fs::create_directory(root_ / "outside");
  }
  void TearDown() override { fs::remove_all(root_); }

  static std::string read(const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void write(PendingFile& f, const std::string& data) {
    ASSERT_EQ(::write(f.fd(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  }
  bool outside_empty() const { return fs::is_empty(root_ / "outside"); }

  fs::path root_;
};

TEST(CheckEntryName, RejectsEverythingButOneComponent) {
  for (const char* bad : {"", ".", "..", "a/b", "/etc", "../x", "x/", "/"}) EXPECT_FALSE(check_entry_name(bad).ok()) << bad;
  EXPECT_FALSE(check_entry_name(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(check_entry_name(std::string(256, 'a')).ok());
  for (const char* good : {"a", ".hidden", "..x", "x..", "with space", "a:b", "\xc3\xa9"}) EXPECT_TRUE(check_entry_name(good).ok()) << good;
}

TEST_F(DestinationDirTest, PathTraversalNamesAreRefused) {
  auto dest = DestinationDir::open(root_ / "dest");
  ASSERT_TRUE(dest.ok());
  EXPECT_FALSE(dest->create_file("../outside/pwned", 0644).ok());
  EXPECT_FALSE(dest->create_file("/tmp/pwned", 0644).ok());
  EXPECT_FALSE(dest->subdir("..", 0755).ok());
  EXPECT_FALSE(dest->subdir("a/../../outside", 0755).ok());
  EXPECT_FALSE(dest->create_symlink("../x", "y").ok());
  EXPECT_TRUE(outside_empty());
}

TEST_F(DestinationDirTest, PlantedSymlinkToFileIsReplacedNotWrittenThrough) {
  std::ofstream(root_ / "outside" / "victim") << "original";
  fs::create_symlink(root_ / "outside" / "victim", root_ / "dest" / "f");
  auto dest = DestinationDir::open(root_ / "dest");
  ASSERT_TRUE(dest.ok());
  auto file = dest->create_file("f", 0644);
  ASSERT_TRUE(file.ok()) << file.error().message;
  write(*file, "new");
  ASSERT_TRUE(file->commit().ok());
  EXPECT_EQ(read(root_ / "outside" / "victim"), "original");
  EXPECT_FALSE(fs::is_symlink(root_ / "dest" / "f"));
  EXPECT_EQ(read(root_ / "dest" / "f"), "new");
}

TEST_F(DestinationDirTest, SymlinkToDirectoryIsNeverEntered) {
  fs::create_directory_symlink(root_ / "outside", root_ / "dest" / "d");
  auto dest = DestinationDir::open(root_ / "dest");
  ASSERT_TRUE(dest.ok());
  auto sub = dest->subdir("d", 0755);
  EXPECT_FALSE(sub.ok());
  EXPECT_TRUE(outside_empty());
}

TEST_F(DestinationDirTest, SymlinkSentByTheSandboxThenUsedAsDirectory) {
  // The sandbox lists "d -> /outside" and then a directory "d" with files: the link is made, and
  // the directory of the same name is refused instead of followed.
  auto dest = DestinationDir::open(root_ / "dest");
  ASSERT_TRUE(dest.ok());
  ASSERT_TRUE(dest->create_symlink("d", (root_ / "outside").string()).ok());
  EXPECT_FALSE(dest->subdir("d", 0755).ok());
  EXPECT_TRUE(outside_empty());
}

TEST_F(DestinationDirTest, UncommittedFileLeavesNothing) {
  auto dest = DestinationDir::open(root_ / "dest");
  ASSERT_TRUE(dest.ok());
  {
    auto file = dest->create_file("partial", 0644);
    ASSERT_TRUE(file.ok());
    write(*file, "half");
  }
  EXPECT_TRUE(fs::is_empty(root_ / "dest"));
}

TEST_F(DestinationDirTest, NestedDirectoriesAndModes) {
  auto dest = DestinationDir::open(root_ / "dest");
  ASSERT_TRUE(dest.ok());
  auto a = dest->subdir("a", 0755);
  ASSERT_TRUE(a.ok());
  auto again = dest->subdir("a", 0755);  // an existing directory is reused
  ASSERT_TRUE(again.ok());
  auto file = a->create_file("run.sh", 0755);
  ASSERT_TRUE(file.ok());
  write(*file, "#!/bin/sh\n");
  ASSERT_TRUE(file->commit().ok());
  struct stat st;
  ASSERT_EQ(::stat((root_ / "dest" / "a" / "run.sh").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
}

}  // namespace
}  // namespace airlock::cli
