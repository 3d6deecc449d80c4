// The agent's WatchStart/WatchStop (docs/PROTOCOL.md): inotify on a directory, and with
// `recursive` on every directory below it, including ones created later (up to the caps below).
//
// Events become WatchEvent{created | modified | removed, path relative to the watched
// directory}. Nothing is queued in init beyond one read buffer per watch: events are read from
// the inotify fd only while the Outbox has room, so a slow host leaves them in the kernel's
// queue, and when that overflows (IN_Q_OVERFLOW), or a cap is hit, or an event cannot be sent,
// the host gets WatchEvent{overflow} and should rescan. If the watched directory itself goes
// (removed, moved, unmounted), the watch ends with Error{ENOENT} on its id.
// Freestanding (see sys.h).
#pragma once

#include "agent/outbox.h"
#include "agent/resolve.h"

namespace airlock::agent {

class WatchService {
 public:
  static constexpr unsigned kMaxWatches = 16;
  static constexpr unsigned kMaxDirs = 2048;          // watched directories, all watches together
  static constexpr unsigned kMaxDirsPerWatch = 1024;
  static constexpr unsigned kMaxDepth = 32;           // levels below the watched directory
  static constexpr unsigned kScanBudget = 16384;      // entries looked at when a tree appears
  static constexpr unsigned kEventBatch = 256;        // inotify events per watch per turn

  void start(Outbox& out, uint32_t id, const proto::WatchStart& r);
  void stop(Outbox& out, uint32_t id);
  // The inotify fd of watch slot `i` to poll for input, or -1 (no watch, or events still
  // waiting in its buffer).
  int poll_fd(unsigned i) const;
  void readable(unsigned i);  // poll said so: read the slot's events into its buffer
  // Turns buffered events into WatchEvents while the Outbox has room.
  void pump(Outbox& out);
  // Events are waiting in a buffer (the event loop must not sleep then).
  bool has_work() const;
  // The connection is gone: every watch ends (a new host cannot know them).
  void reset();

 private:
  // Zero = free: a WatchService is a zero-initialised static (no constructor runs in init).
  struct Watch {
    uint32_t id;     // 0: free slot
    int fd;          // the inotify instance (one per watch: an overflow is the watch's own)
    // The watched directory, to open new subdirectories beneath. Not kept open: an open fd
    // would delay the kernel's IN_DELETE_SELF until it is closed.
    HostPath root_path;
    uint64_t root_ino;
    uint32_t root_dev_major, root_dev_minor;
    bool recursive;
    bool overflow;   // events were lost: WatchEvent{overflow} at the next chance
    int root;        // node of the watched directory
    unsigned dirs;   // nodes in use
    alignas(8) uint8_t buf[4096];
    unsigned pos, len;  // events read from the kernel and not handled yet
  };
  struct Node {  // one watched directory
    uint16_t owner;  // watch slot + 1; 0: free
    int wd;
    int parent;      // node index; -1 for the watched directory
    unsigned depth;
    uint8_t name_len;
    char name[256];
  };

  Watch* find(uint32_t id);
  long add_node(Watch& w, int parent, const char* name, unsigned name_len, int dir_fd);
  int find_node(const Watch& w, int wd) const;
  int find_child(const Watch& w, int parent, const char* name, unsigned name_len) const;
  void drop_node(Watch& w, int node);
  void scan(Outbox& out, Watch& w, int node, int dir_fd, bool report, unsigned& budget);
  void add_subtree(Outbox& out, Watch& w, int parent, const char* name, unsigned name_len);
  unsigned node_path(int node, const char* name, unsigned name_len, char* buf) const;
  void emit(Outbox& out, Watch& w, uint32_t kind, int node, const char* name, unsigned name_len, bool dir = false);
  void handle_event(Outbox& out, Watch& w, int wd, uint32_t mask, const char* name, unsigned name_len);
  void send_overflow(Outbox& out, Watch& w);
  void end(Watch& w);

  Watch watches_[kMaxWatches];
  Node nodes_[kMaxDirs];
};

}  // namespace airlock::agent
