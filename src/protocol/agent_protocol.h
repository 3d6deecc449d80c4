// The daemon <-> agent (airlock-init) protocol, defined once for both sides. Wire format, limits
// and the reply for each request: docs/PROTOCOL.md.
//
// Freestanding on purpose: the agent is built with -ffreestanding -nostdlib (see src/agent/sys.h),
// so this header uses no libc or libstdc++ (only <stddef.h>/<stdint.h>), allocates nothing,
// throws nothing and has no virtuals. Decoding never copies: a decoded Message points into the
// frame buffer, which must outlive it.
//
// Every frame from the sandbox is hostile. decode_frame() accepts a frame only if every length,
// count, string and number in it is within the limits below; the host drops the connection on
// any error. encode() runs the same decoder over what it wrote, so neither side can emit a frame
// the other would reject.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace airlock::protocol::agent {

// ---- Frame header (16 bytes, little-endian) -----------------------------------------------------
//   0  u16 magic "AL"   2  u8 version   3  u8 type   4  u32 flags   8  u32 id   12  u32 payload size
inline constexpr uint16_t kMagic = 0x4c41;  // the bytes 'A' 'L'
inline constexpr uint8_t kVersion = 1;
inline constexpr uint32_t kHeaderSize = 16;

// ---- Limits --------------------------------------------------------------------------------------
inline constexpr uint32_t kMaxPayload = 64 * 1024;
inline constexpr uint32_t kMaxFrame = kHeaderSize + kMaxPayload;
inline constexpr uint32_t kMaxChunk = 56 * 1024;  // data per Stdin/Output/FileData/FileWrite frame:
                                                  // fits beside the largest other fields
inline constexpr uint32_t kMaxPath = 4095;        // bytes; with its NUL it fits PATH_MAX (4096)
inline constexpr uint32_t kMaxArgs = 1024;
inline constexpr uint32_t kMaxArgvBytes = 32 * 1024;  // sum of argv string lengths
inline constexpr uint32_t kMaxEnv = 1024;
inline constexpr uint32_t kMaxEnvBytes = 32 * 1024;
inline constexpr uint32_t kMaxMessage = 1024;  // Error text
inline constexpr uint32_t kMaxSignal = 64;
inline constexpr uint32_t kMaxPid = 4194304;  // PID_MAX_LIMIT
inline constexpr uint32_t kMaxErrno = 4095;
inline constexpr uint32_t kMaxListDepth = 32;
inline constexpr uint32_t kMaxMode = 07777;
inline constexpr uint64_t kMaxOffset = 0x7fffffffffffffff;  // off_t is signed
inline constexpr uint32_t kNoId = 0xffffffff;               // uid/gid -1 means "unchanged" to setresuid
inline constexpr uint32_t kInitialWindow = 256 * 1024;  // output bytes per stream before a Credit

// ---- Message types: host -> agent 0x01..0x3f, agent -> host 0x41..0x7f ---------------------------
enum class Type : uint8_t {
  kHello = 0x01,  // Hello -> HelloAck
  kPing = 0x02,   // -> Pong
  kExec = 0x03,   // id = new process id -> Started | ExecFailed | Error
  kStdin = 0x04,  // data for the process's stdin (or pty)
  kCloseStdin = 0x05,
  kSignal = 0x06,
  kResize = 0x07,
  kCredit = 0x08,  // the host can take `bytes` more Output/FileData bytes on stream `id`
  kFileRead = 0x10,    // -> FileData... (last one flagged kFlagEnd) | Error
  kFileWrite = 0x11,   // -> Done{bytes written} | Error
  kFileList = 0x12,    // -> FileEntry... then Done{entries} | Error
  kFileStat = 0x13,    // -> FileInfo | Error
  kFileMkdir = 0x14,   // -> Done | Error
  kFileRemove = 0x15,  // -> Done | Error
  kFileRename = 0x16,  // -> Done | Error
  kWatchStart = 0x17,  // id = new watch id -> Done then WatchEvent... | Error
  kWatchStop = 0x18,   // -> Done | Error

  kHelloAck = 0x41,
  kPong = 0x42,
  kStarted = 0x43,
  kOutput = 0x44,
  kExited = 0x45,
  kExecFailed = 0x46,
  kFileData = 0x50,
  kFileInfo = 0x51,
  kFileEntry = 0x52,
  kDone = 0x53,
  kWatchEvent = 0x54,
  kError = 0x7f,  // id = the request or process it concerns; 0 = the connection itself
};

enum class Direction : uint8_t { kToAgent, kToHost };
constexpr Direction direction_of(Type t) {
  return (static_cast<uint8_t>(t) & 0x40) ? Direction::kToHost : Direction::kToAgent;
}

// Header flags. Only FileData and Signal may carry one: kFlagEnd on FileData (the last chunk of a
// read); kFlagGroup on Signal (signal the process's whole process group, not just the process).
inline constexpr uint32_t kFlagEnd = 1;
inline constexpr uint32_t kFlagGroup = 1;
inline constexpr uint32_t kFlagDir = 1;  // on WatchEvent: the entry is a directory

// Option bits, capability bits and enumerated field values.
inline constexpr uint32_t kExecTty = 1;
inline constexpr uint32_t kWriteCreate = 1, kWriteTruncate = 2;
inline constexpr uint32_t kMkdirParents = 1;
inline constexpr uint32_t kRemoveRecursive = 1;
inline constexpr uint32_t kRenameNoReplace = 1;
inline constexpr uint32_t kWatchRecursive = 1;
inline constexpr uint32_t kCapExec = 1, kCapTty = 2, kCapFiles = 4, kCapWatch = 8;  // others: ignore
inline constexpr uint32_t kStdout = 1, kStderr = 2;
inline constexpr uint32_t kExitNormal = 0, kExitTimeout = 1;  // Exited.reason
inline constexpr uint32_t kKindFile = 1, kKindDir = 2, kKindSymlink = 3, kKindOther = 4;
inline constexpr uint32_t kWatchCreated = 1, kWatchModified = 2, kWatchRemoved = 3,
                          kWatchOverflow = 4;  // events were lost; path is empty

enum class WireError : uint8_t {
  kOk = 0,
  kTruncated,       // fewer bytes than the header, or than the header's payload size
  kTooLarge,        // payload size over kMaxPayload
  kBadMagic,
  kBadVersion,
  kUnknownType,
  kWrongDirection,  // a valid type, but one the receiver never accepts
  kBadFlags,        // a header flag this type does not allow
  kBadId,           // id 0 outside Error
  kFieldTruncated,  // a field or string runs past the end of the payload
  kStringTooLong,   // a string over its limit (path, argument, message)
  kBadString,       // NUL inside, empty, relative where absolute is needed, env without '='...
  kCountTooLarge,   // a list's count or total bytes over its limit
  kBadField,        // a number out of range, an unknown option bit or enum value
  kTrailingBytes,   // bytes after the last field, or after the frame
  kBufferTooSmall,  // encode only
};

constexpr const char* describe(WireError e) {
  constexpr const char* kText[] = {
      "ok", "truncated frame", "frame too large", "bad magic", "unsupported version",
      "unknown message type", "message type not accepted in this direction", "bad flags", "bad id",
      "field runs past the payload", "string too long", "bad string", "count too large",
      "field out of range", "trailing bytes", "buffer too small"};
  static_assert(sizeof(kText) / sizeof(kText[0]) == size_t(WireError::kBufferTooSmall) + 1);
  auto i = static_cast<uint8_t>(e);
  return i < sizeof(kText) / sizeof(kText[0]) ? kText[i] : "unknown error";
}

// ---- Views --------------------------------------------------------------------------------------
struct Str { const char* data; uint32_t size; };       // u32 length + bytes; never has a NUL
struct Bytes { const uint8_t* data; uint32_t size; };  // the rest of the payload, raw

inline uint32_t load_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// u32 count + that many strings. Decoding fills `wire` (the encoded strings inside the frame);
// to encode, set `items` (an array of `count` Str) instead. Iterate with range-for either way.
struct StringList {
  const Str* items;
  const uint8_t* wire;
  uint32_t wire_size;
  uint32_t count;

  class Iterator {
   public:
    Iterator(const StringList& list, uint32_t index) : list_(&list), index_(index) {}
    Str operator*() const {
      if (list_->items) return list_->items[index_];
      // Bounds are checked although decode_frame already has: a StringList can be built by hand.
      uint32_t left = list_->wire_size - offset_;
      if (left < 4 || load_u32(list_->wire + offset_) > left - 4) return {nullptr, 0};
      return {reinterpret_cast<const char*>(list_->wire + offset_ + 4), load_u32(list_->wire + offset_)};
    }
    Iterator& operator++() {
      if (!list_->items) {
        Str s = **this;
        offset_ = s.data ? offset_ + 4 + s.size : list_->wire_size;
      }
      ++index_;
      return *this;
    }
    bool operator!=(const Iterator& other) const { return index_ != other.index_; }

   private:
    const StringList* list_;
    uint32_t index_;
    uint32_t offset_ = 0;
  };
  Iterator begin() const { return {*this, 0}; }
  Iterator end() const { return {*this, count}; }
};

// ---- Payloads -----------------------------------------------------------------------------------
// Fields in wire order. Types without a payload (Ping, CloseStdin, WatchStop) have no struct.
struct Hello { uint32_t min_version, max_version; };
struct HelloAck { uint32_t version, capabilities; };
struct Exec {
  uint32_t uid, gid;
  uint32_t timeout_ms;  // 0 = none; on expiry the agent kills the process (Exited.reason = timeout)
  uint32_t options;     // kExecTty
  uint16_t rows, cols;  // both >= 1 with kExecTty, both 0 without
  Str cwd;              // absolute, or empty for the sandbox's workdir
  StringList argv;      // 1..kMaxArgs, argv[0] non-empty
  StringList env;       // "NAME=value", NAME non-empty
};
struct Stdin { Bytes data; };
struct Signal { uint32_t number; };  // 1..64
struct Resize { uint16_t rows, cols; };
struct Credit { uint32_t bytes; };
struct FileRead { Str path; uint64_t offset, limit; };  // limit 0 = to the end
struct FileWrite { Str path; uint32_t mode, options; uint64_t offset; Bytes data; };
struct FileList { Str path; uint32_t depth; };  // depth 1 = direct children
struct FileStat { Str path; };
struct FileMkdir { Str path; uint32_t mode, options; };
struct FileRemove { Str path; uint32_t options; };
struct FileRename { Str from, to; uint32_t options; };
struct WatchStart { Str path; uint32_t options; };

struct Pong { uint32_t processes; };
struct Started { uint32_t pid; };
struct Output { uint32_t stream; Bytes data; };
struct Exited { int32_t code; uint32_t signal, reason; };  // code 0..255 and no signal, or -1 and signal
struct ExecFailed { uint32_t errnum; };
struct FileData { uint64_t offset; Bytes data; };
struct FileInfo { uint32_t kind, mode; uint64_t size; int64_t mtime_ns; uint32_t uid, gid; };  // ids inside the sandbox
struct FileEntry { FileInfo info; Str path; };  // path relative to the listed directory
struct Done { uint64_t value; };
struct WatchEvent { uint32_t kind; Str path; };  // path relative to the watched directory
struct ErrorReply { uint32_t code; Str message; };  // code: an errno

struct Message {
  Type type;
  uint32_t flags;
  uint32_t id;  // the process (Exec and its stream), the request, or the watch it belongs to
  union {  // the member named after `type`; none for Ping, CloseStdin, WatchStop
    Hello hello;
    Exec exec;
    Stdin input;
    Signal signal;
    Resize resize;
    Credit credit;
    FileRead file_read;
    FileWrite file_write;
    FileList file_list;
    FileStat file_stat;
    FileMkdir file_mkdir;
    FileRemove file_remove;
    FileRename file_rename;
    WatchStart watch_start;

    HelloAck hello_ack;
    Pong pong;
    Started started;
    Output output;
    Exited exited;
    ExecFailed exec_failed;
    FileData file_data;
    FileInfo file_info;
    FileEntry file_entry;
    Done done;
    WatchEvent watch_event;
    ErrorReply error;
  };
};

struct FrameHeader { Type type; uint32_t flags, id, payload_size; };

namespace detail {

class Reader {
 public:
  Reader(const uint8_t* p, uint32_t size) : p_(p), left_(size) {}
  WireError error() const { return error_; }
  uint32_t left() const { return left_; }

  template <typename T>  // any fixed-width integer, little-endian
  bool num(T& v) {
    const uint8_t* p = take(sizeof(T));
    if (!p) return false;
    uint64_t u = 0;
    for (size_t i = 0; i < sizeof(T); ++i) u |= uint64_t(p[i]) << (8 * i);
    v = T(u);  // two's complement for the signed ones
    return true;
  }
  bool str(Str& s, uint32_t max) {
    uint32_t n;
    if (!num(n)) return false;
    if (n > left_) return fail(WireError::kFieldTruncated);
    if (n > max) return fail(WireError::kStringTooLong);
    const uint8_t* p = take(n);
    for (uint32_t i = 0; i < n; ++i)
      if (p[i] == 0) return fail(WireError::kBadString);
    s = {reinterpret_cast<const char*>(p), n};
    return true;
  }
  // The count is checked before anything else is read: no loop runs on an unchecked count.
  bool list(StringList& l, uint32_t max_count, uint32_t max_bytes) {
    uint32_t count;
    if (!num(count)) return false;
    if (count > max_count) return fail(WireError::kCountTooLarge);
    const uint8_t* start = p_;
    uint32_t total = 0;
    for (uint32_t i = 0; i < count; ++i) {
      Str s;
      if (!str(s, max_bytes)) return false;
      total += s.size;  // each <= max_bytes, so no overflow before the check
      if (total > max_bytes) return fail(WireError::kCountTooLarge);
    }
    l = {nullptr, start, uint32_t(p_ - start), count};
    return true;
  }
  bool rest(Bytes& b) {
    b = {p_, left_};
    p_ += left_;
    left_ = 0;
    return true;
  }

 private:
  const uint8_t* take(uint32_t n) {
    if (n > left_) return fail(WireError::kFieldTruncated), nullptr;
    const uint8_t* p = p_;
    p_ += n;
    left_ -= n;
    return p;
  }
  bool fail(WireError e) {
    if (error_ == WireError::kOk) error_ = e;
    return false;
  }

  const uint8_t* p_;
  uint32_t left_;
  WireError error_ = WireError::kOk;
};

// Same interface as Reader; counts every byte, stores those that fit.
class Writer {
 public:
  Writer(uint8_t* buf, size_t cap) : buf_(buf), cap_(cap) {}
  size_t size() const { return size_; }

  template <typename T>
  bool num(T v) {
    for (size_t i = 0; i < sizeof(T); ++i, ++size_)
      if (size_ < cap_) buf_[size_] = uint8_t(uint64_t(v) >> (8 * i));
    return true;
  }
  bool str(Str s, uint32_t) { return num(s.size) && raw(reinterpret_cast<const uint8_t*>(s.data), s.size); }
  bool list(const StringList& l, uint32_t, uint32_t) {
    num(l.count);
    if (!l.items) return raw(l.wire, l.wire_size);
    for (Str s : l) str(s, 0);
    return true;
  }
  bool rest(Bytes b) { return raw(b.data, b.size); }

 private:
  bool raw(const uint8_t* p, size_t n) {
    if (n <= cap_ && size_ <= cap_ - n)
      for (size_t i = 0; i < n; ++i) buf_[size_ + i] = p[i];
    size_ += n;
    return true;
  }

  uint8_t* buf_;
  size_t cap_;
  size_t size_ = 0;
};

template <typename IO, typename F>
bool info_fields(IO& io, F& f) {
  return io.num(f.kind) && io.num(f.mode) && io.num(f.size) && io.num(f.mtime_ns) && io.num(f.uid) && io.num(f.gid);
}

// The payload layout of every type, once, for both reading and writing (M is Message or const
// Message). False for a type without a layout, or when the Reader fails.
template <typename IO, typename M>
bool payload_fields(IO& io, M& m) {
  switch (m.type) {
    case Type::kHello: return io.num(m.hello.min_version) && io.num(m.hello.max_version);
    case Type::kPing:
    case Type::kCloseStdin:
    case Type::kWatchStop: return true;
    case Type::kExec: {
      auto& e = m.exec;
      return io.num(e.uid) && io.num(e.gid) && io.num(e.timeout_ms) && io.num(e.options) &&
             io.num(e.rows) && io.num(e.cols) && io.str(e.cwd, kMaxPath) &&
             io.list(e.argv, kMaxArgs, kMaxArgvBytes) && io.list(e.env, kMaxEnv, kMaxEnvBytes);
    }
    case Type::kStdin: return io.rest(m.input.data);
    case Type::kSignal: return io.num(m.signal.number);
    case Type::kResize: return io.num(m.resize.rows) && io.num(m.resize.cols);
    case Type::kCredit: return io.num(m.credit.bytes);
    case Type::kFileRead:
      return io.str(m.file_read.path, kMaxPath) && io.num(m.file_read.offset) && io.num(m.file_read.limit);
    case Type::kFileWrite: {
      auto& w = m.file_write;
      return io.str(w.path, kMaxPath) && io.num(w.mode) && io.num(w.options) && io.num(w.offset) &&
             io.rest(w.data);
    }
    case Type::kFileList: return io.str(m.file_list.path, kMaxPath) && io.num(m.file_list.depth);
    case Type::kFileStat: return io.str(m.file_stat.path, kMaxPath);
    case Type::kFileMkdir:
      return io.str(m.file_mkdir.path, kMaxPath) && io.num(m.file_mkdir.mode) && io.num(m.file_mkdir.options);
    case Type::kFileRemove: return io.str(m.file_remove.path, kMaxPath) && io.num(m.file_remove.options);
    case Type::kFileRename:
      return io.str(m.file_rename.from, kMaxPath) && io.str(m.file_rename.to, kMaxPath) &&
             io.num(m.file_rename.options);
    case Type::kWatchStart: return io.str(m.watch_start.path, kMaxPath) && io.num(m.watch_start.options);

    case Type::kHelloAck: return io.num(m.hello_ack.version) && io.num(m.hello_ack.capabilities);
    case Type::kPong: return io.num(m.pong.processes);
    case Type::kStarted: return io.num(m.started.pid);
    case Type::kOutput: return io.num(m.output.stream) && io.rest(m.output.data);
    case Type::kExited: return io.num(m.exited.code) && io.num(m.exited.signal) && io.num(m.exited.reason);
    case Type::kExecFailed: return io.num(m.exec_failed.errnum);
    case Type::kFileData: return io.num(m.file_data.offset) && io.rest(m.file_data.data);
    case Type::kFileInfo: return info_fields(io, m.file_info);
    case Type::kFileEntry: return info_fields(io, m.file_entry.info) && io.str(m.file_entry.path, kMaxPath);
    case Type::kDone: return io.num(m.done.value);
    case Type::kWatchEvent: return io.num(m.watch_event.kind) && io.str(m.watch_event.path, kMaxPath);
    case Type::kError: return io.num(m.error.code) && io.str(m.error.message, kMaxMessage);
  }
  return false;
}

inline bool known_type(uint8_t t) {
  Message m{};
  m.type = static_cast<Type>(t);
  Writer sizer(nullptr, 0);
  return payload_fields(sizer, m);  // every known type has a layout, and only those
}

inline bool absolute_path(Str p) { return p.size > 0 && p.data[0] == '/'; }

// Relative and clean: no leading or trailing '/', no empty, "." or ".." component. Paths the
// agent reports may end up as file names on a client's disk (`airlock cp`).
inline bool clean_relative_path(Str p) {
  if (p.size == 0 || p.data[0] == '/' || p.data[p.size - 1] == '/') return false;
  uint32_t start = 0;
  for (uint32_t i = 0; i <= p.size; ++i) {
    if (i < p.size && p.data[i] != '/') continue;
    uint32_t n = i - start;
    if (n == 0 || (n == 1 && p.data[start] == '.') || (n == 2 && p.data[start] == '.' && p.data[start + 1] == '.'))
      return false;
    start = i + 1;
  }
  return true;
}

inline WireError check_exec(const Exec& e) {
  if (e.uid == kNoId || e.gid == kNoId || (e.options & ~kExecTty)) return WireError::kBadField;
  bool tty = e.options & kExecTty;
  if (tty ? (e.rows == 0 || e.cols == 0) : (e.rows != 0 || e.cols != 0)) return WireError::kBadField;
  if (e.cwd.size != 0 && !absolute_path(e.cwd)) return WireError::kBadString;
  if (e.argv.count == 0) return WireError::kBadField;
  if ((*e.argv.begin()).size == 0) return WireError::kBadString;
  for (Str var : e.env) {
    uint32_t eq = 0;
    while (eq < var.size && var.data[eq] != '=') ++eq;
    if (eq == 0 || eq == var.size) return WireError::kBadString;
  }
  return WireError::kOk;
}

// offset + size stays within off_t (so does offset alone).
inline bool within_file(uint64_t offset, uint32_t size) { return offset <= kMaxOffset - size; }

inline WireError check_info(const FileInfo& f) {
  bool ok = f.kind >= kKindFile && f.kind <= kKindOther && f.mode <= kMaxMode && f.size <= kMaxOffset;
  return ok ? WireError::kOk : WireError::kBadField;
}

// Ranges and string rules, after the layout has been read.
inline WireError check_fields(const Message& m) {
  constexpr WireError kOk = WireError::kOk, kField = WireError::kBadField, kString = WireError::kBadString;
  auto path = [](Str p) { return absolute_path(p) ? WireError::kOk : WireError::kBadString; };
  switch (m.type) {
    case Type::kHello: {
      auto& h = m.hello;
      return h.min_version >= 1 && h.min_version <= h.max_version ? kOk : kField;
    }
    case Type::kExec: return check_exec(m.exec);
    case Type::kSignal: return m.signal.number >= 1 && m.signal.number <= kMaxSignal ? kOk : kField;
    case Type::kResize: return m.resize.rows >= 1 && m.resize.cols >= 1 ? kOk : kField;
    case Type::kCredit: return m.credit.bytes >= 1 ? kOk : kField;
    case Type::kFileRead:
      if (m.file_read.offset > kMaxOffset || m.file_read.limit > kMaxOffset) return kField;
      return path(m.file_read.path);
    case Type::kFileWrite: {
      auto& w = m.file_write;
      if (w.mode > kMaxMode || (w.options & ~(kWriteCreate | kWriteTruncate))) return kField;
      if (!within_file(w.offset, w.data.size)) return kField;
      return path(w.path);
    }
    case Type::kFileList:
      if (m.file_list.depth < 1 || m.file_list.depth > kMaxListDepth) return kField;
      return path(m.file_list.path);
    case Type::kFileStat: return path(m.file_stat.path);
    case Type::kFileMkdir:
      if (m.file_mkdir.mode > kMaxMode || (m.file_mkdir.options & ~kMkdirParents)) return kField;
      return path(m.file_mkdir.path);
    case Type::kFileRemove:
      return m.file_remove.options & ~kRemoveRecursive ? kField : path(m.file_remove.path);
    case Type::kFileRename:
      if (m.file_rename.options & ~kRenameNoReplace) return kField;
      return path(m.file_rename.from) != kOk ? kString : path(m.file_rename.to);
    case Type::kWatchStart:
      return m.watch_start.options & ~kWatchRecursive ? kField : path(m.watch_start.path);

    case Type::kHelloAck: return m.hello_ack.version >= 1 ? kOk : kField;
    case Type::kStarted: return m.started.pid >= 1 && m.started.pid <= kMaxPid ? kOk : kField;
    case Type::kOutput: return m.output.stream == kStdout || m.output.stream == kStderr ? kOk : kField;
    case Type::kExited: {
      auto& x = m.exited;
      bool normal = x.code >= 0 && x.code <= 255 && x.signal == 0;
      bool signalled = x.code == -1 && x.signal >= 1 && x.signal <= kMaxSignal;
      return (normal || signalled) && (x.reason == kExitNormal || x.reason == kExitTimeout) ? kOk : kField;
    }
    case Type::kExecFailed:
      return m.exec_failed.errnum >= 1 && m.exec_failed.errnum <= kMaxErrno ? kOk : kField;
    case Type::kFileData: return within_file(m.file_data.offset, m.file_data.data.size) ? kOk : kField;
    case Type::kFileInfo: return check_info(m.file_info);
    case Type::kFileEntry:
      if (check_info(m.file_entry.info) != kOk) return kField;
      return clean_relative_path(m.file_entry.path) ? kOk : kString;
    case Type::kDone: return m.done.value <= kMaxOffset ? kOk : kField;
    case Type::kWatchEvent: {
      auto& w = m.watch_event;
      if (w.kind == kWatchOverflow) return w.path.size == 0 ? kOk : kString;
      if (w.kind < kWatchCreated || w.kind > kWatchRemoved) return kField;
      return clean_relative_path(w.path) ? kOk : kString;
    }
    case Type::kError: return m.error.code >= 1 && m.error.code <= kMaxErrno ? kOk : kField;
    default: return kOk;  // Ping, Stdin, CloseStdin, WatchStop, Pong: nothing to range-check
  }
}

}  // namespace detail

// Checks the 16-byte header at `buf` (len >= kHeaderSize, else kTruncated): magic, version, payload
// size (<= kMaxPayload), type known and accepted in `accept`, flags, id. A stream reader calls it
// on the first 16 bytes to learn how many more to read; nothing beyond the header is looked at.
inline WireError parse_header(const uint8_t* buf, size_t len, Direction accept, FrameHeader& out) {
  if (len < kHeaderSize) return WireError::kTruncated;
  if ((buf[0] | buf[1] << 8) != kMagic) return WireError::kBadMagic;
  if (buf[2] != kVersion) return WireError::kBadVersion;
  FrameHeader h{static_cast<Type>(buf[3]), load_u32(buf + 4), load_u32(buf + 8),
                load_u32(buf + 12)};
  if (h.payload_size > kMaxPayload) return WireError::kTooLarge;
  if (!detail::known_type(buf[3])) return WireError::kUnknownType;
  if (direction_of(h.type) != accept) return WireError::kWrongDirection;
  uint32_t allowed = h.type == Type::kFileData     ? kFlagEnd
                     : h.type == Type::kSignal     ? kFlagGroup
                     : h.type == Type::kWatchEvent ? kFlagDir
                                                   : 0;
  if (h.flags & ~allowed) return WireError::kBadFlags;
  if (h.id == 0 && h.type != Type::kError) return WireError::kBadId;
  out = h;
  return WireError::kOk;
}

// Decodes exactly one frame: `len` must be its full size (one SOCK_SEQPACKET packet, or a frame
// cut from a stream after parse_header). `out` is written only on success and points into `buf`.
inline WireError decode_frame(const uint8_t* buf, size_t len, Direction accept, Message& out) {
  FrameHeader h;
  if (WireError e = parse_header(buf, len, accept, h); e != WireError::kOk) return e;
  if (len - kHeaderSize < h.payload_size) return WireError::kTruncated;
  if (len - kHeaderSize > h.payload_size) return WireError::kTrailingBytes;
  Message m{};
  m.type = h.type;
  m.flags = h.flags;
  m.id = h.id;
  detail::Reader reader(buf + kHeaderSize, h.payload_size);
  if (!detail::payload_fields(reader, m)) return reader.error();
  if (reader.left() != 0) return WireError::kTrailingBytes;
  if (WireError e = detail::check_fields(m); e != WireError::kOk) return e;
  out = m;
  return WireError::kOk;
}

struct Encoded {
  WireError error;
  size_t size;  // the frame's size; with kBufferTooSmall, the capacity it needs
};

// Encodes `m` into `buf`. The result is checked by decode_frame, so any error it would report
// (a path too long, a bad option bit...) comes back here instead of reaching the peer.
inline Encoded encode(const Message& m, uint8_t* buf, size_t cap) {
  if (!detail::known_type(static_cast<uint8_t>(m.type))) return {WireError::kUnknownType, 0};
  detail::Writer w(buf, cap);
  w.num(kMagic);
  w.num(kVersion);
  w.num(static_cast<uint8_t>(m.type));
  w.num(m.flags);
  w.num(m.id);
  w.num(uint32_t{0});  // payload size, patched below
  detail::payload_fields(w, m);
  size_t payload = w.size() - kHeaderSize;
  if (payload > kMaxPayload) return {WireError::kTooLarge, w.size()};
  if (w.size() > cap) return {WireError::kBufferTooSmall, w.size()};
  detail::Writer(buf + 12, 4).num(uint32_t(payload));
  Message check;
  WireError e = decode_frame(buf, w.size(), direction_of(m.type), check);
  return {e, e == WireError::kOk ? w.size() : 0};
}

}  // namespace airlock::protocol::agent
