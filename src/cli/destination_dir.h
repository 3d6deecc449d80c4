// A local directory filled from a sandbox by `airlock cp -r`, built so that nothing the sandbox
// says can put a byte outside it. Names come from the sandbox, which is not trusted:
//   - every name is one plain component (no '/', not "." or "..", not empty, no NUL);
//   - everything is created relative to an open directory fd (openat/mkdirat/renameat), and
//     subdirectories are opened with O_NOFOLLOW, so a symlink already in the destination (or one
//     the copy itself just made) is never followed to a directory elsewhere;
//   - files are written to a fresh temporary name (O_EXCL) and renamed over the target, which
//     replaces a symlink of that name instead of writing through it (and leaves no partial file).
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "common/unique_fd.h"

namespace airlock::cli {

// OK when name is a single safe path component.
Status check_entry_name(std::string_view name);

// A file being written; renamed into place by commit(), removed if never committed.
class PendingFile {
 public:
  PendingFile(int dir_fd, std::string temp_name, std::string name, UniqueFd fd)
      : dir_fd_(dir_fd), temp_name_(std::move(temp_name)), name_(std::move(name)), fd_(std::move(fd)) {}
  PendingFile(PendingFile&& other) noexcept;
  PendingFile& operator=(PendingFile&&) = delete;
  PendingFile(const PendingFile&) = delete;
  ~PendingFile();
  int fd() const { return fd_.get(); }
  Status commit();

 private:
  int dir_fd_;  // borrowed from the DestinationDir, which outlives this
  std::string temp_name_;
  std::string name_;
  UniqueFd fd_;
  bool done_ = false;
};

class DestinationDir {
 public:
  // Opens an existing local directory chosen by the user (a symlink to a directory is fine here:
  // the user named it).
  static Result<DestinationDir> open(const std::string& path);
  // Creates (or reuses) the subdirectory `name` and opens it without following symlinks.
  Result<DestinationDir> subdir(std::string_view name, unsigned mode) const;
  // Starts writing the file `name` (permissions mode & 0777, minus the umask).
  Result<PendingFile> create_file(std::string_view name, unsigned mode) const;
  // Creates the symlink `name` -> target (replacing what has that name). The link is made, never
  // followed.
  Status create_symlink(std::string_view name, const std::string& target) const;
  const std::string& path() const { return path_; }

 private:
  DestinationDir(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;  // for messages
};

}  // namespace airlock::cli
