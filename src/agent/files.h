// The agent's file messages: FileRead, FileWrite, FileList, FileStat, FileMkdir, FileRemove,
// FileRename (docs/PROTOCOL.md). Paths are resolved as resolve.h describes.
//
// Small requests are answered at once. The three that can be large are streams, advanced a
// bounded step per turn of the event loop so that no request holds up other processes' output:
//   - FileRead: one FileData chunk per turn, within the read's credit (the same window as a
//     process's Output) and only when the Outbox has room for a whole frame;
//   - FileList: entries while the Outbox has room, kListBatch at most per turn;
//   - FileRemove with `recursive` on a directory: kRemoveBatch unlinks per turn.
// kMaxStreams of them run at once; one more is answered Error{EBUSY}. Memory is static.
// Freestanding (see sys.h).
#pragma once

#include "agent/dir_walk.h"
#include "agent/outbox.h"
#include "agent/resolve.h"

namespace airlock::agent {

class FileService {
 public:
  static constexpr unsigned kMaxStreams = 8;
  static constexpr uint32_t kMaxListEntries = 100000;  // then Error{E2BIG}
  static constexpr unsigned kListBatch = 256, kRemoveBatch = 256;

  // Any of the file request types; replies, or starts a stream that pump() carries on.
  void handle(Outbox& out, const proto::Message& m);
  // Credit on a FileRead's id; false if no read has that id.
  bool credit(uint32_t id, uint32_t bytes);
  // Advances every stream one bounded step, as far as the Outbox has room.
  void pump(Outbox& out);
  // Some stream could go on now, given room (the event loop must not sleep then).
  bool has_work() const;
  // The connection is gone: its streams end (a new host cannot have asked for them).
  void reset();

 private:
  enum class Kind : uint8_t { kFree = 0, kRead, kList, kRemove };
  // Zero = free: a FileService is a zero-initialised static (no constructor runs in init).
  struct Stream {
    Kind kind;
    uint32_t id;
    HostPath path;       // as the host named it, for messages
    int fd;              // read: the file
    uint64_t offset;     // read: the next byte
    uint64_t left;       // read: bytes still wanted (unlimited: to the end)
    bool unlimited;
    uint32_t credit;     // read: FileData bytes the host can take now
    uint32_t max_depth;  // list
    uint64_t count;      // list: entries sent; remove: entries removed
    int parent_fd;       // remove: the tree's parent (O_PATH) and name; the tree itself goes last
    char name[256];
    DirWalk walk;        // list, remove
  };

  Stream* claim(Outbox& out, uint32_t id, const char* what);
  void finish(Stream& s);
  void fail(Outbox& out, Stream& s, long err, const char* what, const char* detail);
  void start_read(Outbox& out, uint32_t id, const proto::FileRead& r);
  void start_list(Outbox& out, uint32_t id, const proto::FileList& r);
  void remove(Outbox& out, uint32_t id, const proto::FileRemove& r);
  void pump_read(Outbox& out, Stream& s);
  void pump_list(Outbox& out, Stream& s);
  void pump_remove(Outbox& out, Stream& s);

  Stream streams_[kMaxStreams];
};

}  // namespace airlock::agent
