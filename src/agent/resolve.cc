#include "agent/resolve.h"

#include <asm-generic/errno.h>
#include <linux/fcntl.h>
#include <linux/openat2.h>

#include "agent/sys.h"

namespace airlock::agent {

void copy_path(proto::Str in, HostPath& out) {
  unsigned n = in.size <= proto::kMaxPath ? in.size : proto::kMaxPath;
  for (unsigned i = 0; i < n; ++i) out.s[i] = in.data[i];
  out.s[n] = 0;
  out.n = n;
}

long open_path(int dirfd, const char* path, int flags, unsigned mode, uint64_t resolve) {
  struct open_how how = {};
  how.flags = static_cast<__u64>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;  // openat2 refuses a mode without O_CREAT
  how.resolve = RESOLVE_NO_MAGICLINKS | resolve;
  long fd;
  do fd = sys::openat2(dirfd, path, &how, sizeof how);
  while (fd == -EINTR);
  return fd;
}

long open_parent(HostPath& path, const char** name) {
  while (path.n > 1 && path.s[path.n - 1] == '/') path.s[--path.n] = 0;
  unsigned slash = path.n;
  while (slash > 0 && path.s[slash - 1] != '/') --slash;
  // path is absolute, so slash >= 1: path.s[slash - 1] is the '/' before the last component.
  *name = path.s + slash;
  if (slash <= 1) return open_path(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
  path.s[slash - 1] = 0;  // "/a/b" -> parent "/a", name "b"
  long fd = open_path(AT_FDCWD, path.s, O_PATH | O_DIRECTORY);
  path.s[slash - 1] = '/';  // keep the whole path printable for messages
  return fd;
}

long stat_at(int dirfd, const char* name, struct statx& st) {
  int flags = AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT | (*name ? 0 : AT_EMPTY_PATH);
  return sys::statx(dirfd, name, flags, STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_MTIME | STATX_INO | STATX_UID | STATX_GID, &st);
}

proto::FileInfo file_info(const struct statx& st) {
  proto::FileInfo info{};
  switch (st.stx_mode & kTypeMask) {
    case kTypeFile: info.kind = proto::kKindFile; break;
    case kTypeDir: info.kind = proto::kKindDir; break;
    case kTypeSymlink: info.kind = proto::kKindSymlink; break;
    default: info.kind = proto::kKindOther; break;
  }
  info.mode = st.stx_mode & proto::kMaxMode;
  info.uid = st.stx_uid;
  info.gid = st.stx_gid;
  info.size = st.stx_size <= proto::kMaxOffset ? st.stx_size : proto::kMaxOffset;
  // Seconds beyond +-292 years from 1970 would overflow: clamp (a hostile mtime must not wrap).
  constexpr int64_t kLimit = 9'000'000'000;
  int64_t sec = st.stx_mtime.tv_sec;
  if (sec > kLimit) sec = kLimit;
  if (sec < -kLimit) sec = -kLimit;
  info.mtime_ns = sec * 1'000'000'000 + st.stx_mtime.tv_nsec;
  return info;
}

bool is_mount_root(const struct statx& st) {
  return (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (st.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

}  // namespace airlock::agent
