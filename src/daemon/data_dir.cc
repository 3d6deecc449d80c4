#include "daemon/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"

namespace airlock::daemon {

Result<DataDir> DataDir::open(const std::string& path) {
  if (path.empty()) return plain_error("data dir: empty path");
  std::string clean = path;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  size_t slash = clean.rfind('/');
  if (slash != std::string::npos && slash > 0) TRY_STATUS(make_dirs(clean.substr(0, slash), 0755));
  if (::mkdir(clean.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("mkdir " + clean);
  struct stat st;
  if (::stat(clean.c_str(), &st) != 0) return sys_error("stat " + clean);
  if (!S_ISDIR(st.st_mode)) return plain_error("data dir " + clean + " is not a directory");
  return DataDir(clean);
}

Result<DataDir> DataDir::open_exclusive(const std::string& path) {
  TRY(auto dir, open(path));
  std::string lock_path = dir.path_ + "/airlockd.lock";
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return sys_error("open " + lock_path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return plain_error("another airlockd is already using " + dir.path_);
    return sys_error("flock " + lock_path);
  }
  dir.lock_ = std::move(fd);
  return dir;
}

}  // namespace airlock::daemon
