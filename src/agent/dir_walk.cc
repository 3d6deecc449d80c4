#include "agent/dir_walk.h"

#include <asm-generic/errno.h>
#include <linux/fcntl.h>

#include "agent/sys.h"

namespace airlock::agent {
namespace {

struct LinuxDirent64 {
  uint64_t ino;
  int64_t off;
  uint16_t reclen;
  uint8_t type;
  char name[1];
};

constexpr int kSeekSet = 0;

}  // namespace

long next_dirent(const uint8_t* buf, unsigned len, unsigned& pos, DirEntry& e) {
  while (pos < len) {
    // The kernel wrote these records, but a bad reclen would loop or overrun: check anyway.
    if (len - pos < sizeof(LinuxDirent64)) return -EIO;
    auto* d = reinterpret_cast<const LinuxDirent64*>(buf + pos);
    if (d->reclen < sizeof(LinuxDirent64) || d->reclen > len - pos) return -EIO;
    pos += d->reclen;
    const char* name = d->name;
    unsigned max = d->reclen - static_cast<unsigned>(name - reinterpret_cast<const char*>(d));
    unsigned n = 0;
    while (n < max && name[n]) ++n;
    if (n == 0 || n == max) return -EIO;  // empty or unterminated name
    if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.')) continue;
    e = {name, n, d->type, d->off};
    return 1;
  }
  return 0;
}

void DirWalk::start(int root_fd, bool rewind) {
  stop();
  fds_[0] = root_fd;
  resume_[0] = -1;
  path_end_[0] = 0;
  levels_ = 1;
  rewind_ = rewind;
  path_[0] = 0;
  path_len_ = 0;
  pos_ = len_ = 0;
}

void DirWalk::stop() {
  while (levels_ > 0) sys::close(fds_[--levels_]);
  pos_ = len_ = 0;
}

long DirWalk::next(DirEntry& e) {
  for (;;) {
    if (pos_ >= len_) {
      unsigned level = levels_ - 1;
      if (resume_[level] >= 0) {
        long r = sys::lseek(fds_[level], resume_[level], kSeekSet);
        if (r < 0) return r;
        resume_[level] = -1;
      }
      long n;
      do n = sys::getdents64(fds_[level], buf_, sizeof buf_);
      while (n == -EINTR);
      if (n <= 0) return n;
      pos_ = 0;
      len_ = static_cast<unsigned>(n);
    }
    long r = next_dirent(buf_, len_, pos_, e);
    if (r == 0) continue;  // buffer used up: read more
    if (r < 0) return r;
    last_off_ = e.next_off;
    return 1;
  }
}

long DirWalk::enter(const char* name) {
  if (levels_ >= kMaxLevels) return -E2BIG;
  unsigned n = 0;
  while (name[n]) ++n;
  unsigned extra = (path_len_ ? 1 : 0) + n;
  if (n > 255 || path_len_ + extra > kPathSize) return -ENAMETOOLONG;
  long fd;
  // One component, no slash in it: O_NOFOLLOW covers every link (magic ones included).
  do fd = sys::openat(fds_[levels_ - 1], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  while (fd == -EINTR);
  if (fd < 0) return fd;
  resume_[levels_ - 1] = rewind_ ? 0 : last_off_;
  if (path_len_) path_[path_len_++] = '/';
  for (unsigned i = 0; i < n; ++i) path_[path_len_++] = name[i];
  path_[path_len_] = 0;
  fds_[levels_] = static_cast<int>(fd);
  resume_[levels_] = -1;
  path_end_[levels_] = path_len_;
  ++levels_;
  pos_ = len_ = 0;
  return 0;
}

const char* DirWalk::leave() {
  if (levels_ <= 1) return nullptr;
  --levels_;
  sys::close(fds_[levels_]);
  unsigned start = path_end_[levels_ - 1];
  if (start) ++start;  // the '/' before the name
  unsigned n = 0;
  for (unsigned i = start; i < path_len_ && n < sizeof left_ - 1; ++i) left_[n++] = path_[i];
  left_[n] = 0;
  path_len_ = path_end_[levels_ - 1];
  path_[path_len_] = 0;
  pos_ = len_ = 0;  // the buffer held the child's entries; the parent is read again (resume_)
  return left_;
}

}  // namespace airlock::agent
