// DirWalk: a depth-first walk of a directory tree that can stop after any entry and go on later
// (FileList and a recursive FileRemove run a few hundred entries per turn of the event loop).
//
// Memory is fixed: one fd per open level, one getdents buffer, one relative-path buffer. It
// never follows a symlink: subdirectories are opened relative to their parent's fd with
// O_NOFOLLOW | O_DIRECTORY, so a symlink to a directory (inside or outside the tree) is an
// entry, not a place to go. Zero-initialised = idle, so a static array of walks costs only .bss.
// Freestanding (see sys.h).
#pragma once

#include <stdint.h>

namespace airlock::agent {

struct DirEntry {
  const char* name;  // NUL-terminated; valid until the next call on the walk
  unsigned name_len;
  uint8_t type;      // DT_* from getdents (DT_UNKNOWN: ask statx)
  int64_t next_off;  // where the directory goes on after this entry (lseek)
};

inline constexpr uint8_t kDtUnknown = 0, kDtDir = 4;

// The next record of a getdents64 buffer at `pos` (advanced past it), "." and ".." skipped:
// 1 with `e` filled, 0 at the buffer's end, -EIO for a malformed record.
long next_dirent(const uint8_t* buf, unsigned len, unsigned& pos, DirEntry& e);

class DirWalk {
 public:
  static constexpr unsigned kMaxLevels = 64;              // open directories, the root included
  static constexpr unsigned kPathSize = kMaxLevels * 256;  // relative path of the deepest level

  // Takes `root_fd` (an open directory). rewind: coming back from a subdirectory, read the
  // directory again from its start rather than from where the walk left it (for removal: what
  // was removed is gone, and offsets into a changed directory are not to be trusted).
  void start(int root_fd, bool rewind);
  void stop();  // closes every fd; the walk is idle again
  bool active() const { return levels_ > 0; }

  // The next entry of the current directory ("." and ".." skipped): 1 with `e` filled, 0 at the
  // directory's end, or -errno.
  long next(DirEntry& e);
  // Enters subdirectory `name` of the current directory (never through a symlink: ELOOP or
  // ENOTDIR). E2BIG past kMaxLevels.
  long enter(const char* name);
  // Back to the parent of the current directory, returning the name of the one left (valid
  // until the next enter). nullptr at the root: nothing to go back to.
  const char* leave();

  int fd() const { return fds_[levels_ - 1]; }
  unsigned depth() const { return levels_ - 1; }  // 0 at the root
  // The current directory relative to the root: "" at the root, else "a/b" (no slashes around).
  const char* path() const { return path_; }
  unsigned path_len() const { return path_len_; }

 private:
  int fds_[kMaxLevels];
  int64_t resume_[kMaxLevels];  // offset to seek a level back to before reading it; -1: none
  unsigned path_end_[kMaxLevels];
  unsigned levels_;
  bool rewind_;
  int64_t last_off_;  // d_off of the entry last returned: where the directory goes on after it
  char path_[kPathSize + 1];
  unsigned path_len_;
  char left_[256];
  alignas(8) uint8_t buf_[8192];
  unsigned pos_, len_;
};

}  // namespace airlock::agent
