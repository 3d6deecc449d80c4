#include "agent/files.h"

#include <asm-generic/errno.h>
#include <linux/fcntl.h>

#include "agent/sys.h"

namespace airlock::agent {
namespace {

using proto::Message;
using proto::Type;

constexpr uint32_t kMaxCredit = 1u << 30;
constexpr unsigned kRenameNoReplaceFlag = 1;  // RENAME_NOREPLACE

uint8_t g_chunk[proto::kMaxChunk];     // one FileData's bytes
char g_entry[proto::kMaxPath + 1];     // one FileEntry's path

bool is_dot(const char* name) {
  return (name[0] == '.' && name[1] == 0) || (name[0] == '.' && name[1] == '.' && name[2] == 0);
}

// mkdirat, then the exact mode (init's umask must not change what the host asked for). The
// chmod goes through an O_NOFOLLOW fd: a symlink swapped in meanwhile is not followed.
long make_one_dir(int dir, const char* name, unsigned mode) {
  long r = sys::mkdirat(dir, name, static_cast<int>(mode));
  if (r < 0) return r;
  long fd = sys::openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    sys::fchmod(static_cast<int>(fd), mode);
    sys::close(static_cast<int>(fd));
  }
  return 0;
}

// mkdir -p: every missing component is made (0755, the last one `mode`); existing directories,
// and symlinks to directories, are fine. Returns 0 or -errno.
long make_dirs(HostPath& path, unsigned mode) {
  long dir = open_path(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
  if (dir < 0) return dir;
  char* s = path.s;
  unsigned i = 0;
  long err = 0;
  while (!err) {
    while (s[i] == '/') ++i;
    if (!s[i]) break;
    unsigned end = i;
    while (s[end] && s[end] != '/') ++end;
    unsigned rest = end;
    while (s[rest] == '/') ++rest;
    bool last = s[rest] == 0;
    char saved = s[end];
    s[end] = 0;
    const char* name = s + i;
    if (!(name[0] == '.' && name[1] == 0)) {
      long made = make_one_dir(static_cast<int>(dir), name, last ? mode : 0755);
      if (made < 0 && made != -EEXIST) {
        err = made;
      } else {
        long next = open_path(static_cast<int>(dir), name, O_PATH | O_DIRECTORY);
        if (next < 0) {
          err = next == -ENOTDIR && last ? -EEXIST : next;  // a file where the directory goes
        } else {
          sys::close(static_cast<int>(dir));
          dir = next;
        }
      }
    }
    s[end] = saved;
    i = end;
  }
  sys::close(static_cast<int>(dir));
  return err;
}

long stat_root(struct statx& st) {
  long fd = open_path(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
  if (fd < 0) return fd;
  long r = stat_at(static_cast<int>(fd), "", st);
  sys::close(static_cast<int>(fd));
  return r;
}

void file_stat(Outbox& out, uint32_t id, const proto::FileStat& r) {
  HostPath path;
  copy_path(r.path, path);
  const char* name;
  long dir = open_parent(path, &name);
  if (dir < 0) return reply_error(out, id, -dir, "stat", path.s);
  struct statx st;
  long e = stat_at(static_cast<int>(dir), name, st);  // lstat: a symlink is reported as one
  sys::close(static_cast<int>(dir));
  if (e < 0) return reply_error(out, id, -e, "stat", path.s);
  Message m{};
  m.type = Type::kFileInfo;
  m.id = id;
  m.file_info = file_info(st);
  out.queue(m);
}

void file_write(Outbox& out, uint32_t id, const proto::FileWrite& r) {
  HostPath path;
  copy_path(r.path, path);
  // O_NONBLOCK: opening a fifo must not wait for a reader (it is refused below anyway).
  int flags = O_WRONLY | O_NONBLOCK | O_NOCTTY | ((r.options & proto::kWriteTruncate) ? O_TRUNC : 0);
  long fd = open_path(AT_FDCWD, path.s, flags);
  if (fd == -ENOENT && (r.options & proto::kWriteCreate)) {
    fd = open_path(AT_FDCWD, path.s, flags | O_CREAT | O_EXCL, r.mode);
    if (fd >= 0)
      sys::fchmod(static_cast<int>(fd), r.mode);  // exactly `mode`, whatever init's umask
    else if (fd == -EEXIST)
      fd = open_path(AT_FDCWD, path.s, flags);  // made meanwhile (or a dangling symlink: ENOENT)
  }
  if (fd < 0) return reply_error(out, id, -fd, "write", path.s);
  struct statx st;
  long err = stat_at(static_cast<int>(fd), "", st);
  if (err == 0 && (st.stx_mode & kTypeMask) != kTypeFile) err = -EINVAL;  // a device or fifo
  uint64_t done = 0;
  while (err == 0 && done < r.data.size) {
    long n = sys::pwrite(static_cast<int>(fd), r.data.data + done, r.data.size - done,
                         static_cast<long>(r.offset + done));
    if (n == -EINTR) continue;
    if (n <= 0) err = n < 0 ? n : -EIO;
    else done += static_cast<uint64_t>(n);
  }
  sys::close(static_cast<int>(fd));
  if (err) return reply_error(out, id, -err, "write", path.s);
  reply_done(out, id, done);
}

void file_mkdir(Outbox& out, uint32_t id, const proto::FileMkdir& r) {
  HostPath path;
  copy_path(r.path, path);
  long err;
  if (r.options & proto::kMkdirParents) {
    err = make_dirs(path, r.mode);
  } else {
    const char* name;
    long dir = open_parent(path, &name);
    if (dir < 0) return reply_error(out, id, -dir, "mkdir", path.s);
    err = *name ? make_one_dir(static_cast<int>(dir), name, r.mode) : -EEXIST;  // "/" exists
    sys::close(static_cast<int>(dir));
  }
  if (err) return reply_error(out, id, -err, "mkdir", path.s);
  reply_done(out, id, 0);
}

void file_rename(Outbox& out, uint32_t id, const proto::FileRename& r) {
  HostPath from, to;
  copy_path(r.from, from);
  copy_path(r.to, to);
  const char *from_name, *to_name;
  long from_dir = open_parent(from, &from_name);
  if (from_dir < 0) return reply_error(out, id, -from_dir, "rename", from.s);
  long to_dir = open_parent(to, &to_name);
  if (to_dir < 0) {
    sys::close(static_cast<int>(from_dir));
    return reply_error(out, id, -to_dir, "rename to", to.s);
  }
  long err = -EBUSY;  // renaming "/", or onto it
  if (*from_name && *to_name) {
    unsigned flags = (r.options & proto::kRenameNoReplace) ? kRenameNoReplaceFlag : 0;
    err = sys::renameat2(static_cast<int>(from_dir), from_name, static_cast<int>(to_dir), to_name, flags);
  }
  sys::close(static_cast<int>(from_dir));
  sys::close(static_cast<int>(to_dir));
  if (err < 0) return reply_error(out, id, -err, "rename", from.s);
  reply_done(out, id, 0);
}

}  // namespace

// ---- requests ------------------------------------------------------------------------------------
void FileService::handle(Outbox& out, const Message& m) {
  switch (m.type) {
    case Type::kFileRead: return start_read(out, m.id, m.file_read);
    case Type::kFileWrite: return file_write(out, m.id, m.file_write);
    case Type::kFileList: return start_list(out, m.id, m.file_list);
    case Type::kFileStat: return file_stat(out, m.id, m.file_stat);
    case Type::kFileMkdir: return file_mkdir(out, m.id, m.file_mkdir);
    case Type::kFileRemove: return remove(out, m.id, m.file_remove);
    case Type::kFileRename: return file_rename(out, m.id, m.file_rename);
    default: return reply_error(out, m.id, EINVAL, "not a file request");
  }
}

FileService::Stream* FileService::claim(Outbox& out, uint32_t id, const char* what) {
  Stream* free_slot = nullptr;
  for (Stream& s : streams_) {
    if (s.kind != Kind::kFree && s.id == id) {
      reply_error(out, id, EEXIST, what, "(request id in use)");
      return nullptr;
    }
    if (s.kind == Kind::kFree && !free_slot) free_slot = &s;
  }
  if (!free_slot) reply_error(out, id, EBUSY, what, "(too many reads, lists and removals at once)");
  return free_slot;
}

void FileService::finish(Stream& s) {
  if (s.kind == Kind::kRead) sys::close(s.fd);
  if (s.kind == Kind::kRemove) sys::close(s.parent_fd);
  s.walk.stop();
  s.kind = Kind::kFree;
  s.id = 0;
}

void FileService::fail(Outbox& out, Stream& s, long err, const char* what, const char* detail) {
  Text t;
  t.add(s.path.s);
  if (detail && *detail) t.add("/").add(detail);
  reply_error(out, s.id, err, what, t.buf);
  finish(s);
}

void FileService::start_read(Outbox& out, uint32_t id, const proto::FileRead& r) {
  Stream* s = claim(out, id, "read");
  if (!s) return;
  HostPath& path = s->path;
  copy_path(r.path, path);
  // O_NONBLOCK: opening a fifo must not wait for a writer (it is refused below anyway).
  long fd = open_path(AT_FDCWD, path.s, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return reply_error(out, id, -fd, "read", path.s);
  struct statx st;
  long err = stat_at(static_cast<int>(fd), "", st);
  if (err == 0 && (st.stx_mode & kTypeMask) == kTypeDir) err = -EISDIR;
  else if (err == 0 && (st.stx_mode & kTypeMask) != kTypeFile) err = -EINVAL;  // /dev/zero never ends
  if (err) {
    sys::close(static_cast<int>(fd));
    return reply_error(out, id, -err, "read", path.s);
  }
  s->kind = Kind::kRead;
  s->id = id;
  s->fd = static_cast<int>(fd);
  s->offset = r.offset;
  s->left = r.limit;
  s->unlimited = r.limit == 0;
  s->credit = proto::kInitialWindow;
}

void FileService::start_list(Outbox& out, uint32_t id, const proto::FileList& r) {
  Stream* s = claim(out, id, "list");
  if (!s) return;
  copy_path(r.path, s->path);
  long fd = open_path(AT_FDCWD, s->path.s, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
  if (fd < 0) return reply_error(out, id, -fd, "list", s->path.s);
  s->kind = Kind::kList;
  s->id = id;
  s->max_depth = r.depth;
  s->count = 0;
  s->walk.start(static_cast<int>(fd), /*rewind=*/false);
}

void FileService::remove(Outbox& out, uint32_t id, const proto::FileRemove& r) {
  HostPath path;
  copy_path(r.path, path);
  const char* name;
  long dir = open_parent(path, &name);
  if (dir < 0) return reply_error(out, id, -dir, "remove", path.s);
  int d = static_cast<int>(dir);
  struct statx st, root;
  long err = 0;
  if (!*name) err = -EBUSY;                           // "/" itself
  else if (is_dot(name)) err = -EINVAL;               // as rm refuses "." and ".."
  else err = stat_at(d, name, st);
  // The sandbox's root under another name, or a mount point (a volume: its files are the
  // host's to remove, not ours to empty).
  if (!err && stat_root(root) == 0 && st.stx_ino == root.stx_ino && st.stx_dev_major == root.stx_dev_major &&
      st.stx_dev_minor == root.stx_dev_minor)
    err = -EBUSY;
  if (!err && is_mount_root(st)) err = -EBUSY;
  bool is_dir = !err && (st.stx_mode & kTypeMask) == kTypeDir;
  if (!err && (!is_dir || !(r.options & proto::kRemoveRecursive))) {
    err = sys::unlinkat(d, name, is_dir ? AT_REMOVEDIR : 0);  // a symlink: the link, not its target
    if (!err) {
      sys::close(d);
      return reply_done(out, id, 1);
    }
  }
  if (err) {
    sys::close(d);
    return reply_error(out, id, -err, "remove", path.s);
  }
  // rm -r: a stream, so that a large tree does not hold up everything else.
  Stream* s = claim(out, id, "remove");
  if (!s) return (void)sys::close(d);
  long fd = sys::openat(d, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    sys::close(d);
    return reply_error(out, id, -fd, "remove", path.s);
  }
  s->kind = Kind::kRemove;
  s->id = id;
  s->path = path;
  s->parent_fd = d;
  unsigned n = 0;
  for (; name[n] && n < sizeof s->name - 1; ++n) s->name[n] = name[n];
  s->name[n] = 0;
  s->count = 0;
  s->walk.start(static_cast<int>(fd), /*rewind=*/true);
}

bool FileService::credit(uint32_t id, uint32_t bytes) {
  for (Stream& s : streams_) {
    if (s.kind != Kind::kRead || s.id != id) continue;
    s.credit = bytes >= kMaxCredit - s.credit ? kMaxCredit : s.credit + bytes;
    return true;
  }
  return false;
}

void FileService::reset() {
  for (Stream& s : streams_)
    if (s.kind != Kind::kFree) finish(s);
}

// ---- streams -------------------------------------------------------------------------------------
void FileService::pump(Outbox& out) {
  for (Stream& s : streams_) {
    switch (s.kind) {
      case Kind::kRead: pump_read(out, s); break;
      case Kind::kList: pump_list(out, s); break;
      case Kind::kRemove: pump_remove(out, s); break;
      case Kind::kFree: break;
    }
  }
}

bool FileService::has_work() const {
  for (const Stream& s : streams_)
    if (s.kind == Kind::kList || s.kind == Kind::kRemove || (s.kind == Kind::kRead && s.credit > 0)) return true;
  return false;
}

// One chunk, read whole (or to the end of the file), so that `end` rides on the last data.
void FileService::pump_read(Outbox& out, Stream& s) {
  if (s.credit == 0 || !out.room_for_stream()) return;
  uint64_t want = s.credit < proto::kMaxChunk ? s.credit : proto::kMaxChunk;
  if (!s.unlimited && s.left < want) want = s.left;
  if (proto::kMaxOffset - s.offset < want) want = proto::kMaxOffset - s.offset;
  uint64_t got = 0;
  bool eof = want == 0;
  long err = 0;
  while (got < want) {
    long n = sys::pread(s.fd, g_chunk + got, want - got, static_cast<long>(s.offset + got));
    if (n == -EINTR) continue;
    if (n < 0) err = n;
    if (n <= 0) {
      eof = n == 0;
      break;
    }
    got += static_cast<uint64_t>(n);
  }
  if (err && got == 0) {  // (an error after some bytes: they go first, the error next turn)
    fail(out, s, -err, "read", nullptr);
    return;
  }
  bool end = eof || (!s.unlimited && s.left == got);
  Message m{};
  m.type = Type::kFileData;
  m.flags = end ? proto::kFlagEnd : 0;
  m.id = s.id;
  m.file_data = {s.offset, {g_chunk, static_cast<uint32_t>(got)}};
  if (!out.queue(m)) return;
  s.offset += got;
  s.left -= s.unlimited ? 0 : got;
  s.credit -= static_cast<uint32_t>(got);
  if (end) finish(s);
}

void FileService::pump_list(Outbox& out, Stream& s) {
  for (unsigned budget = kListBatch; budget > 0; --budget) {
    if (!out.room_for_stream()) return;
    DirEntry e;
    long r = s.walk.next(e);
    if (r < 0) {
      fail(out, s, -r, "list", s.walk.path());
      return;
    }
    if (r == 0) {
      if (s.walk.leave()) continue;
      reply_done(out, s.id, s.count);
      finish(s);
      return;
    }
    struct statx st;
    r = stat_at(s.walk.fd(), e.name, st);
    if (r == -ENOENT) continue;  // removed since getdents saw it
    if (r < 0) {
      fail(out, s, -r, "list", s.walk.path());
      return;
    }
    unsigned dir_len = s.walk.path_len();
    unsigned len = dir_len + (dir_len ? 1 : 0) + e.name_len;
    if (len > proto::kMaxPath) {
      fail(out, s, ENAMETOOLONG, "list", s.walk.path());
      return;
    }
    if (s.count >= kMaxListEntries) {
      reply_error(out, s.id, E2BIG, "list", "(more than 100000 entries)");
      finish(s);
      return;
    }
    unsigned n = 0;
    for (unsigned i = 0; i < dir_len; ++i) g_entry[n++] = s.walk.path()[i];
    if (dir_len) g_entry[n++] = '/';
    for (unsigned i = 0; i < e.name_len; ++i) g_entry[n++] = e.name[i];
    Message m{};
    m.type = Type::kFileEntry;
    m.id = s.id;
    m.file_entry = {file_info(st), {g_entry, n}};
    if (!out.queue(m)) return;
    ++s.count;
    if ((st.stx_mode & kTypeMask) == kTypeDir && s.walk.depth() + 1 < s.max_depth) {
      r = s.walk.enter(e.name);  // O_NOFOLLOW: st came from lstat, so this is a real directory
      // Gone, replaced, or unreadable: it was listed, its contents cannot be.
      if (r < 0 && r != -ENOENT && r != -ELOOP && r != -ENOTDIR && r != -EACCES) {
        fail(out, s, -r, "list", g_entry);
        return;
      }
    }
  }
  return;
}

// rm -r, never leaving the tree: subdirectories are entered with O_NOFOLLOW (a symlink is
// unlinked, its target untouched), mount points are refused, depth is DirWalk::kMaxLevels.
void FileService::pump_remove(Outbox& out, Stream& s) {
  for (unsigned budget = kRemoveBatch; budget > 0; --budget) {
    DirEntry e;
    long r = s.walk.next(e);
    if (r < 0) {
      fail(out, s, -r, "remove", s.walk.path());
      return;
    }
    if (r == 0) {  // the current directory is empty now
      const char* left = s.walk.leave();
      if (!left) {
        s.walk.stop();
        r = sys::unlinkat(s.parent_fd, s.name, AT_REMOVEDIR);
        if (r < 0 && r != -ENOENT) {
          fail(out, s, -r, "remove", nullptr);
          return;
        }
        reply_done(out, s.id, s.count + 1);
        finish(s);
        return;
      }
      r = sys::unlinkat(s.walk.fd(), left, AT_REMOVEDIR);
      if (r < 0 && r != -ENOENT) {
        fail(out, s, -r, "remove", left);
        return;
      }
      ++s.count;
      continue;
    }
    bool is_dir = e.type == kDtDir;
    if (e.type == kDtUnknown) {
      struct statx st;
      r = stat_at(s.walk.fd(), e.name, st);
      if (r == -ENOENT) continue;
      is_dir = r == 0 && (st.stx_mode & kTypeMask) == kTypeDir;
    }
    if (is_dir) {
      r = s.walk.enter(e.name);
      if (r == -ENOENT) continue;
      if (r < 0) {
        fail(out, s, -r, "remove", e.name);
        return;
      }
      struct statx st;
      if (stat_at(s.walk.fd(), "", st) == 0 && is_mount_root(st)) {
        fail(out, s, EBUSY, "remove", s.walk.path());
        return;
      }
      continue;
    }
    r = sys::unlinkat(s.walk.fd(), e.name, 0);
    if (r < 0 && r != -ENOENT) {
      fail(out, s, -r, "remove", e.name);
      return;
    }
    if (r == 0) ++s.count;
  }
  return;
}

}  // namespace airlock::agent
