// DATA_DIR: the daemon's state (airlock.db, admin-key, airlockd.sock). Created 0700 because it holds
// key hashes and the admin key. One daemon per data dir, enforced with a lock file that the kernel
// releases when the daemon dies, however it dies.
#pragma once

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace airlock::daemon {

class DataDir {
 public:
  // Creates the directory if needed (parents 0755, itself 0700).
  static Result<DataDir> open(const std::string& path);
  // Also takes the daemon lock; fails if another airlockd uses this directory.
  static Result<DataDir> open_exclusive(const std::string& path);

  const std::string& path() const { return path_; }
  std::string database_path() const { return path_ + "/airlock.db"; }
  std::string admin_key_path() const { return path_ + "/admin-key"; }
  std::string socket_path() const { return path_ + "/airlockd.sock"; }

 private:
  explicit DataDir(std::string path) : path_(std::move(path)) {}

  std::string path_;
  UniqueFd lock_;  // held for the daemon's lifetime
};

}  // namespace airlock::daemon
