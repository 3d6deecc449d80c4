// Host uid/gid ranges for sandbox user namespaces: each live sandbox holds a distinct,
// unprivileged range of 65536 ids. Ownership is an flock on a per-range lock file, so it is
// shared correctly by every airlock process on the host and released by the kernel when the
// holder dies (a SIGKILLed `airlock run` cannot leak a range).
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace airlock {

inline constexpr uint32_t kIdRangeBase = 0x40000000;  // 1073741824: far above login and subuid ranges
inline constexpr uint32_t kIdRangeSize = 65536;
inline constexpr uint32_t kIdRangeCount = 16384;      // ranges end at 0x80000000

class IdRange {
 public:
  IdRange() = default;
  IdRange(uint32_t index, std::string lock_path, UniqueFd lock)
      : index_(index), lock_path_(std::move(lock_path)), lock_(std::move(lock)) {}
  IdRange(IdRange&&) noexcept = default;
  IdRange& operator=(IdRange&& other) noexcept {
    if (this != &other) {
      release();
      index_ = other.index_;
      lock_path_ = std::move(other.lock_path_);
      lock_ = std::move(other.lock_);
    }
    return *this;
  }
  ~IdRange() { release(); }

  uint32_t index() const { return index_; }
  uint32_t host_base() const { return kIdRangeBase + index_ * kIdRangeSize; }
  bool held() const { return lock_.valid(); }
  // Unlinks the lock file while still holding the lock, then drops it.
  void release();

 private:
  uint32_t index_ = 0;
  std::string lock_path_;
  UniqueFd lock_;
};

class IdRangeAllocator {
 public:
  // lock_dir: e.g. /run/airlock/ids (created if missing). first/count bound the indexes used.
  explicit IdRangeAllocator(std::string lock_dir, uint32_t first = 0, uint32_t count = kIdRangeCount)
      : lock_dir_(std::move(lock_dir)), first_(first), count_(count) {}

  // Takes the first free range at or after `hint` (wrapping), so concurrent starts spread out.
  Result<IdRange> allocate(uint32_t hint = 0) const;
  // Takes exactly this range if nobody holds it (used to collect leftovers of a killed run).
  Result<IdRange> try_acquire(uint32_t index) const;

 private:
  std::string lock_path(uint32_t index) const;
  std::string lock_dir_;
  uint32_t first_;
  uint32_t count_;
};

}  // namespace airlock
