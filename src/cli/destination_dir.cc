#include "cli/destination_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <random>

namespace airlock::cli {
namespace {

std::string temp_name_for(std::string_view name) {
  static std::atomic<unsigned> counter{0};
  static const unsigned seed = std::random_device{}();
  // Stays one component and short enough for NAME_MAX whatever the name's length.
  std::string base(name.substr(0, 180));
  return "." + base + ".airlock-" + std::to_string(::getpid()) + "-" + std::to_string(seed % 100000) + "-" +
         std::to_string(counter++);
}

}  // namespace

Status check_entry_name(std::string_view name) {
  if (name.empty()) return plain_error("the daemon sent an empty file name");
  if (name == "." || name == "..") return plain_error("the daemon sent the file name \"" + std::string(name) + "\"");
  if (name.find('/') != std::string_view::npos)
    return plain_error("the daemon sent a file name with a '/': \"" + std::string(name) + "\"");
  if (name.find('\0') != std::string_view::npos) return plain_error("the daemon sent a file name with a NUL byte");
  if (name.size() > 255) return plain_error("the daemon sent a file name longer than 255 bytes");
  return {};
}

PendingFile::PendingFile(PendingFile&& other) noexcept
    : dir_fd_(other.dir_fd_),
      temp_name_(std::move(other.temp_name_)),
      name_(std::move(other.name_)),
      fd_(std::move(other.fd_)),
      done_(other.done_) {
  other.done_ = true;
}

PendingFile::~PendingFile() {
  if (!done_) ::unlinkat(dir_fd_, temp_name_.c_str(), 0);
}

Status PendingFile::commit() {
  if (done_) return plain_error("file already committed");
  if (::close(fd_.release()) != 0) return sys_error("write " + name_);
  if (::renameat(dir_fd_, temp_name_.c_str(), dir_fd_, name_.c_str()) != 0) return sys_error("rename to " + name_);
  done_ = true;
  return {};
}

Result<DestinationDir> DestinationDir::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return sys_error("open " + path);
  return DestinationDir(std::move(fd), path);
}

Result<DestinationDir> DestinationDir::subdir(std::string_view name, unsigned mode) const {
  TRY_STATUS(check_entry_name(name));
  std::string n(name);
  std::string shown = path_ + "/" + n;
  if (::mkdirat(fd_.get(), n.c_str(), (mode & 0777) | 0700) != 0 && errno != EEXIST) return sys_error("mkdir " + shown);
  // O_NOFOLLOW: an existing symlink of that name is an error (ELOOP or ENOTDIR), never a way out.
  UniqueFd sub(::openat(fd_.get(), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub) return sys_error("open " + shown);
  return DestinationDir(std::move(sub), shown);
}

Result<PendingFile> DestinationDir::create_file(std::string_view name, unsigned mode) const {
  TRY_STATUS(check_entry_name(name));
  std::string temp = temp_name_for(name);
  UniqueFd fd(::openat(fd_.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777));
  if (!fd) return sys_error("create " + path_ + "/" + std::string(name));
  return PendingFile(fd_.get(), std::move(temp), std::string(name), std::move(fd));
}

Status DestinationDir::create_symlink(std::string_view name, const std::string& target) const {
  TRY_STATUS(check_entry_name(name));
  if (target.empty() || target.find('\0') != std::string::npos) return plain_error("invalid symlink target");
  std::string temp = temp_name_for(name);
  if (::symlinkat(target.c_str(), fd_.get(), temp.c_str()) != 0) return sys_error("symlink " + path_ + "/" + std::string(name));
  if (::renameat(fd_.get(), temp.c_str(), fd_.get(), std::string(name).c_str()) != 0) {
    Error error = sys_error("rename to " + path_ + "/" + std::string(name));
    ::unlinkat(fd_.get(), temp.c_str(), 0);
    return error;
  }
  return {};
}

}  // namespace airlock::cli
