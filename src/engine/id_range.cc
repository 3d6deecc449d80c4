#include "engine/id_range.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"

namespace airlock {

void IdRange::release() {
  if (!lock_.valid()) return;
  // Unlink first, while we still hold the lock: a racing allocator that opened the old inode
  // notices the inode is gone (see try_acquire) and does not treat it as its own.
  ::unlink(lock_path_.c_str());
  lock_.reset();
}

std::string IdRangeAllocator::lock_path(uint32_t index) const {
  return lock_dir_ + "/" + std::to_string(index) + ".lock";
}

Result<IdRange> IdRangeAllocator::try_acquire(uint32_t index) const {
  std::string path = lock_path(index);
  for (int attempt = 0; attempt < 4; ++attempt) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd && errno == ENOENT) {
      TRY_STATUS(make_dirs(lock_dir_, 0700));
      continue;
    }
    if (!fd) return sys_error("open " + path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return Error{EBUSY, "id range " + std::to_string(index) + " is in use"};
      return sys_error("lock " + path);
    }
    // The file we locked must still be the one at `path`; otherwise its previous owner
    // unlinked it between our open and our lock, and someone else may hold the new one.
    struct stat locked, current;
    if (::fstat(fd.get(), &locked) == 0 && ::stat(path.c_str(), &current) == 0 &&
        locked.st_ino == current.st_ino && locked.st_dev == current.st_dev) {
      return IdRange(index, path, std::move(fd));
    }
  }
  return Error{EBUSY, "id range " + std::to_string(index) + " is contended"};
}

Result<IdRange> IdRangeAllocator::allocate(uint32_t hint) const {
  if (count_ == 0) return plain_error("no id ranges configured");
  for (uint32_t i = 0; i < count_; ++i) {
    uint32_t index = first_ + static_cast<uint32_t>((static_cast<uint64_t>(hint % count_) + i) % count_);
    auto range = try_acquire(index);
    if (range.ok()) return range;
    if (range.error().errnum != EBUSY) return std::move(range).error().with_context("allocate id range");
  }
  return Error{EAGAIN, "allocate id range: all " + std::to_string(count_) + " ranges are in use"};
}

}  // namespace airlock
