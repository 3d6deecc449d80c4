#include "agent/watch.h"

#include <asm-generic/errno.h>
#include <linux/fcntl.h>
#include <linux/inotify.h>
#include <linux/openat2.h>

#include "agent/dir_walk.h"
#include "agent/resolve.h"
#include "agent/sys.h"

namespace airlock::agent {
namespace {

using proto::Message;
using proto::Type;

constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO |
                           IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK;
constexpr unsigned kEventFrameMax = proto::kHeaderSize + 8 + proto::kMaxPath;
constexpr unsigned kEventHeader = 16;  // struct inotify_event without its name

char g_path[proto::kMaxPath + 1];  // the relative path of one event

// Events found by a scan may use the room streams leave, but not the frame kept for process output.
bool room_for_event(const Outbox& out) { return out.free() >= proto::kMaxFrame + kReplyReserve + kEventFrameMax; }

bool same_name(const char* a, unsigned a_len, const char* b, unsigned b_len) {
  if (a_len != b_len) return false;
  for (unsigned i = 0; i < a_len; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

}  // namespace

WatchService::Watch* WatchService::find(uint32_t id) {
  for (Watch& w : watches_)
    if (w.id && w.id == id) return &w;
  return nullptr;
}

// ---- the directory tree of a watch -------------------------------------------------------------
// Adds an inotify watch on the directory open at `dir_fd`. The watch goes on through
// /proc/self/fd/N, our own fd's link, so that it lands on the very directory we opened
// (O_NOFOLLOW, beneath the watched one), whatever happens to the path meanwhile.
// Returns the node, or -errno (-ENOSPC at a cap, -EEXIST if already watched).
long WatchService::add_node(Watch& w, int parent, const char* name, unsigned name_len, int dir_fd) {
  if (w.dirs >= kMaxDirsPerWatch || name_len > 255) return -ENOSPC;
  int free_node = -1;
  for (unsigned i = 0; i < kMaxDirs && free_node < 0; ++i)
    if (!nodes_[i].owner) free_node = static_cast<int>(i);
  if (free_node < 0) return -ENOSPC;
  Text link;
  link.add("/proc/self/fd/").add_number(dir_fd);
  long wd = sys::inotify_add_watch(w.fd, link.buf, kMask);
  if (wd < 0) return wd;
  if (find_node(w, static_cast<int>(wd)) >= 0) return -EEXIST;  // the same directory twice (a bind mount)
  Node& n = nodes_[free_node];
  n.owner = static_cast<uint16_t>(&w - watches_ + 1);
  n.wd = static_cast<int>(wd);
  n.parent = parent;
  n.depth = parent >= 0 ? nodes_[parent].depth + 1 : 0;
  n.name_len = static_cast<uint8_t>(name_len);
  for (unsigned i = 0; i < name_len; ++i) n.name[i] = name[i];
  n.name[name_len] = 0;
  ++w.dirs;
  return free_node;
}

int WatchService::find_node(const Watch& w, int wd) const {
  auto owner = static_cast<uint16_t>(&w - watches_ + 1);
  for (unsigned i = 0; i < kMaxDirs; ++i)
    if (nodes_[i].owner == owner && nodes_[i].wd == wd) return static_cast<int>(i);
  return -1;
}

int WatchService::find_child(const Watch& w, int parent, const char* name, unsigned name_len) const {
  auto owner = static_cast<uint16_t>(&w - watches_ + 1);
  for (unsigned i = 0; i < kMaxDirs; ++i) {
    const Node& n = nodes_[i];
    if (n.owner == owner && n.parent == parent && same_name(n.name, n.name_len, name, name_len))
      return static_cast<int>(i);
  }
  return -1;
}

// Stops watching a directory and everything below it (it was removed or moved away).
void WatchService::drop_node(Watch& w, int node) {
  auto owner = static_cast<uint16_t>(&w - watches_ + 1);
  for (unsigned i = 0; i < kMaxDirs; ++i)
    if (nodes_[i].owner == owner && nodes_[i].parent == node) drop_node(w, static_cast<int>(i));
  sys::inotify_rm_watch(w.fd, nodes_[node].wd);  // EINVAL if the kernel dropped it already
  nodes_[node].owner = 0;
  --w.dirs;
}

// Watches the subdirectories of `node` (open at `dir_fd`), recursively. With `report`, every
// entry found is reported as created: it may have appeared before its directory was watched
// (a duplicate "created" is possible, a lost one is not, within the caps).
void WatchService::scan(Outbox& out, Watch& w, int node, int dir_fd, bool report, unsigned& budget) {
  alignas(8) uint8_t buf[2048];
  for (;;) {
    long n = sys::getdents64(dir_fd, buf, sizeof buf);
    if (n == -EINTR) continue;
    if (n <= 0) return;
    unsigned pos = 0;
    DirEntry e;
    while (next_dirent(buf, static_cast<unsigned>(n), pos, e) > 0) {
      if (budget == 0) {
        w.overflow = true;
        return;
      }
      --budget;
      bool is_dir = e.type == kDtDir;
      if (report) emit(out, w, proto::kWatchCreated, node, e.name, e.name_len, is_dir);
      if (e.type == kDtUnknown) {
        struct statx st;
        is_dir = stat_at(dir_fd, e.name, st) == 0 && (st.stx_mode & kTypeMask) == kTypeDir;
      }
      if (!is_dir) continue;
      if (nodes_[node].depth + 1 > kMaxDepth) {
        w.overflow = true;
        continue;
      }
      long sub = sys::openat(dir_fd, e.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
      if (sub < 0) continue;  // gone again, or a symlink swapped in
      long child = add_node(w, node, e.name, e.name_len, static_cast<int>(sub));
      if (child >= 0) scan(out, w, static_cast<int>(child), static_cast<int>(sub), report, budget);
      else if (child != -EEXIST) w.overflow = true;
      sys::close(static_cast<int>(sub));
    }
  }
}

// A directory appeared under `parent`: watch it and what it already holds.
void WatchService::add_subtree(Outbox& out, Watch& w, int parent, const char* name, unsigned name_len) {
  if (nodes_[parent].depth + 1 > kMaxDepth) {
    w.overflow = true;
    return;
  }
  unsigned len = node_path(parent, name, name_len, g_path);
  if (!len) {
    w.overflow = true;
    return;
  }
  // The watched directory again (the same one, or the event is lost), then the new one beneath
  // it through no symlink: the path is made of directories we watch, and a link swapped in for
  // one of them leads nowhere.
  long root = open_path(AT_FDCWD, w.root_path.s, O_PATH | O_DIRECTORY);
  struct statx st;
  if (root < 0 || stat_at(static_cast<int>(root), "", st) < 0 || st.stx_ino != w.root_ino ||
      st.stx_dev_major != w.root_dev_major || st.stx_dev_minor != w.root_dev_minor) {
    if (root >= 0) sys::close(static_cast<int>(root));
    w.overflow = true;
    return;
  }
  long fd = open_path(static_cast<int>(root), g_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK, 0,
                      RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
  sys::close(static_cast<int>(root));
  if (fd < 0) return;  // gone already: its removal is (or will be) reported
  long node = add_node(w, parent, name, name_len, static_cast<int>(fd));
  if (node >= 0) {
    unsigned budget = kScanBudget;
    scan(out, w, static_cast<int>(node), static_cast<int>(fd), /*report=*/true, budget);
  } else if (node != -EEXIST) {
    w.overflow = true;
  }
  sys::close(static_cast<int>(fd));
}

// "dir/sub/name" for an entry `name` of `node` (just the node's path when name_len is 0), into
// buf (kMaxPath + 1). 0 if it would be longer than kMaxPath.
unsigned WatchService::node_path(int node, const char* name, unsigned name_len, char* buf) const {
  int chain[kMaxDepth + 2];
  unsigned links = 0;
  for (int i = node; i >= 0 && nodes_[i].parent >= 0 && links < kMaxDepth + 1; i = nodes_[i].parent)
    chain[links++] = i;  // the watched directory itself adds nothing
  unsigned len = 0;
  auto append = [&](const char* s, unsigned n) {
    if (len + (len ? 1 : 0) + n > proto::kMaxPath) return false;
    if (len) buf[len++] = '/';
    for (unsigned i = 0; i < n; ++i) buf[len++] = s[i];
    return true;
  };
  while (links > 0) {
    const Node& n = nodes_[chain[--links]];
    if (!append(n.name, n.name_len)) return 0;
  }
  if (name_len && !append(name, name_len)) return 0;
  buf[len] = 0;
  return len;
}

void WatchService::emit(Outbox& out, Watch& w, uint32_t kind, int node, const char* name, unsigned name_len, bool dir) {
  unsigned len = room_for_event(out) ? node_path(node, name, name_len, g_path) : 0;
  if (!len) {  // no room (the host is slow) or no valid path: lost, and the host must know
    w.overflow = true;
    return;
  }
  Message m{};
  m.type = Type::kWatchEvent;
  m.flags = dir ? proto::kFlagDir : 0;
  m.id = w.id;
  m.watch_event = {kind, {g_path, len}};
  if (!out.queue(m)) w.overflow = true;
}

void WatchService::handle_event(Outbox& out, Watch& w, int wd, uint32_t mask, const char* name, unsigned name_len) {
  if (mask & IN_Q_OVERFLOW) {
    w.overflow = true;
    return;
  }
  int node = find_node(w, wd);
  if (node < 0) return;  // a directory dropped already
  if (mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
    if (node == w.root) {  // the watched directory is gone (or elsewhere): the watch ends
      reply_error(out, w.id, ENOENT, "watch", "(the watched directory was removed or moved)");
      return end(w);
    }
    // A subdirectory: its parent reports it (IN_DELETE / IN_MOVED_FROM); forget it once the
    // kernel has.
    if (mask & IN_IGNORED) drop_node(w, node);
    return;
  }
  if (name_len == 0) return;  // about the directory itself (its attributes): not an entry
  bool dir = mask & IN_ISDIR;
  if (mask & (IN_CREATE | IN_MOVED_TO)) {
    emit(out, w, proto::kWatchCreated, node, name, name_len, dir);
    if (dir && w.recursive) add_subtree(out, w, node, name, name_len);
  } else if (mask & (IN_DELETE | IN_MOVED_FROM)) {
    if (dir) {
      int child = find_child(w, node, name, name_len);
      if (child >= 0) drop_node(w, child);
    }
    emit(out, w, proto::kWatchRemoved, node, name, name_len, dir);
  } else if (mask & (IN_MODIFY | IN_ATTRIB)) {
    emit(out, w, proto::kWatchModified, node, name, name_len, dir);
  }
}

// ---- requests ------------------------------------------------------------------------------------
void WatchService::start(Outbox& out, uint32_t id, const proto::WatchStart& r) {
  if (find(id)) return reply_error(out, id, EEXIST, "watch", "(watch id in use)");
  Watch* w = nullptr;
  for (Watch& slot : watches_)
    if (!slot.id && !w) w = &slot;
  if (!w) return reply_error(out, id, EBUSY, "watch", "(too many watches)");
  *w = Watch{};
  HostPath& path = w->root_path;
  copy_path(r.path, path);
  long dir = open_path(AT_FDCWD, path.s, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
  if (dir < 0) return reply_error(out, id, -dir, "watch", path.s);
  int d = static_cast<int>(dir);
  struct statx st;
  long err = stat_at(d, "", st);
  long fd = err < 0 ? err : sys::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    sys::close(d);
    return reply_error(out, id, -fd, "watch", path.s);
  }
  w->id = id;
  w->fd = static_cast<int>(fd);
  w->root_ino = st.stx_ino;
  w->root_dev_major = st.stx_dev_major;
  w->root_dev_minor = st.stx_dev_minor;
  w->recursive = r.options & proto::kWatchRecursive;
  long root = add_node(*w, -1, "", 0, d);
  if (root >= 0 && w->recursive) {
    unsigned budget = kScanBudget;
    scan(out, *w, static_cast<int>(root), d, /*report=*/false, budget);
  }
  sys::close(d);
  if (root < 0) {
    end(*w);  // frees the slot; the reply is this Error, not ENOENT
    return reply_error(out, id, -root, "watch", path.s);
  }
  w->root = static_cast<int>(root);
  reply_done(out, id, w->dirs);  // the number of directories watched
}

void WatchService::stop(Outbox& out, uint32_t id) {
  Watch* w = find(id);
  if (!w) return reply_error(out, id, ENOENT, "watch stop", "(no such watch)");
  end(*w);
  reply_done(out, id, 0);
}

// Frees the watch (its events still buffered are dropped). Callers send what the host hears.
void WatchService::end(Watch& w) {
  auto owner = static_cast<uint16_t>(&w - watches_ + 1);
  for (Node& n : nodes_)
    if (n.owner == owner) n.owner = 0;
  sys::close(w.fd);  // drops every inotify watch of the instance
  w = Watch{};
}

void WatchService::reset() {
  for (Watch& w : watches_)
    if (w.id) end(w);
}

// ---- the event loop's side -------------------------------------------------------------------------
int WatchService::poll_fd(unsigned i) const {
  const Watch& w = watches_[i];
  return w.id && w.pos >= w.len ? w.fd : -1;
}

void WatchService::readable(unsigned i) {
  Watch& w = watches_[i];
  if (!w.id || w.pos < w.len) return;
  long n = sys::read(w.fd, w.buf, sizeof w.buf);
  w.pos = 0;
  w.len = n > 0 ? static_cast<unsigned>(n) : 0;
}

void WatchService::send_overflow(Outbox& out, Watch& w) {
  Message m{};
  m.type = Type::kWatchEvent;
  m.id = w.id;
  m.watch_event = {proto::kWatchOverflow, {"", 0}};
  if (out.queue(m)) w.overflow = false;
}

bool WatchService::has_work() const {
  for (const Watch& w : watches_)
    if (w.id && (w.pos < w.len || w.overflow)) return true;
  return false;
}

void WatchService::pump(Outbox& out) {
  for (Watch& w : watches_) {
    for (unsigned budget = kEventBatch; w.id && budget > 0 && out.room_for_stream(); --budget) {
      if (w.overflow) send_overflow(out, w);  // what was lost comes before what follows
      if (w.pos >= w.len) break;
      auto* ev = reinterpret_cast<const inotify_event*>(w.buf + w.pos);
      if (w.len - w.pos < kEventHeader || ev->len > w.len - w.pos - kEventHeader) {
        w.pos = w.len;  // a malformed record: cannot happen; drop the rest, and say so
        w.overflow = true;
        continue;
      }
      w.pos += kEventHeader + ev->len;
      unsigned name_len = 0;
      while (name_len < ev->len && ev->name[name_len]) ++name_len;
      handle_event(out, w, ev->wd, ev->mask, ev->name, name_len);
    }
  }
}

}  // namespace airlock::agent
