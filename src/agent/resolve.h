// How the agent resolves the paths the host names in file and watch requests.
//
// The agent is root of the sandbox and "/" is the sandbox's root, so ordinary resolution
// ("..", absolute symlinks, /proc/1/root's target) stays inside it. What does not are procfs
// "magic links" (/proc/<pid>/fd/*, exe, cwd, root, map_files/*): they jump to whatever object a
// process holds, and init holds host objects (its stdio are host pipes, its exe is the host's
// airlock-init). So every lookup here refuses them (openat2 RESOLVE_NO_MAGICLINKS: ELOOP), and
// operations on a path's last component go through its parent directory's fd with *at calls,
// which do not follow a final symlink (lstat, unlink the link, rename the link).
// Freestanding (see sys.h).
#pragma once

#include <linux/stat.h>

#include "protocol/agent_protocol.h"

namespace airlock::agent {

namespace proto = airlock::protocol::agent;

// A NUL-terminated copy of a path from the host.
struct HostPath {
  char s[proto::kMaxPath + 1];
  unsigned n;
};
void copy_path(proto::Str in, HostPath& out);  // the decoder has checked: <= kMaxPath, no NUL

// openat2(dirfd, path) with magic links refused. Ordinary symlinks are followed, in the last
// component too unless `flags` has O_NOFOLLOW. `resolve`: more RESOLVE_* flags. Returns the fd
// or -errno.
long open_path(int dirfd, const char* path, int flags, unsigned mode = 0, uint64_t resolve = 0);

// Opens the parent directory of `path` (O_PATH) and points `name` at its last component (inside
// `path`, whose trailing slashes are cut). For "/" itself, `name` is "" and the fd is "/".
long open_parent(HostPath& path, const char** name);

// File types and permission bits, as struct stat has them (no libc headers here).
inline constexpr unsigned kTypeMask = 0170000, kTypeFile = 0100000, kTypeDir = 0040000,
                          kTypeSymlink = 0120000;

// statx of (dirfd, name) without following a final symlink; name "" = dirfd itself.
long stat_at(int dirfd, const char* name, struct statx& st);
proto::FileInfo file_info(const struct statx& st);
bool is_mount_root(const struct statx& st);

}  // namespace airlock::agent
