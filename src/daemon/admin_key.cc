#include "daemon/admin_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/unique_fd.h"
#include "daemon/key_secret.h"

namespace airlock::daemon {
namespace {

// Written to a temporary file and renamed into place, so the file is never seen half-written, and
// created 0600 from the start (never briefly readable by others).
Status write_secret_file(const std::string& path, const std::string& secret) {
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return sys_error("create " + tmp);
  Cleanup undo;
  undo.add([&] { ::unlink(tmp.c_str()); });
  std::string data = secret + "\n";
  if (::fchmod(fd.get(), 0600) != 0) return sys_error("chmod " + tmp);  // whatever the umask was
  if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size())) return sys_error("write " + tmp);
  if (::fsync(fd.get()) != 0) return sys_error("fsync " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return sys_error("rename " + tmp + " to " + path);
  undo.dismiss();
  return {};
}

}  // namespace

Result<std::optional<std::string>> bootstrap_admin_key(KeyStore& keys, const std::string& key_file) {
  TRY(int64_t active, keys.count_active_admin_keys());
  if (active > 0) return std::optional<std::string>();
  // File first, then the database: a crash in between leaves a useless file that the next start
  // replaces, never a key whose secret nobody has.
  TRY(auto secret, generate_secret());
  TRY_CTX(write_secret_file(key_file, secret), "write admin key");
  Cleanup undo;
  undo.add([&] { ::unlink(key_file.c_str()); });
  TRY(auto created, keys.create_with_secret({kBootstrapTenant, kBootstrapKeyName, true}, secret));
  undo.dismiss();
  return std::optional<std::string>(created.record.key_id);
}

}  // namespace airlock::daemon
