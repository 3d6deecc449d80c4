// The agent's send buffer: frames wait here until the connection takes them. Everything the
// agent says goes through one Outbox, and every producer (process output, file streams, watches)
// first checks that it has room, so the buffer never grows and a slow host slows producers down
// instead of filling init's memory. Freestanding (see sys.h).
#pragma once

#include <asm-generic/errno.h>

#include "agent/command.h"
#include "protocol/agent_protocol.h"

namespace airlock::agent {

namespace proto = airlock::protocol::agent;

// Room a producer leaves free for any small reply (Error, Done, Exited...): file streams and
// watches stop before eating into it, so a request is always answered.
inline constexpr unsigned kReplyReserve = 2048;

struct Outbox {
  static constexpr unsigned kSize = 4 * proto::kMaxFrame;

  uint8_t* buf;                         // kSize bytes
  unsigned start = 0, len = 0;          // pending bytes: buf[start, start + len)
  uint64_t queued = 0, flushed = 0;     // byte counters over the connection's life

  unsigned free() const { return kSize - len; }
  // Room for a process's Output frame beside the reserve.
  bool room_for_output() const { return free() >= proto::kMaxFrame + kReplyReserve; }
  // What file streams and watches need: they stop a whole frame earlier than process output,
  // so that however many reads have credit, a process's output always finds room.
  bool room_for_stream() const { return free() >= 2 * proto::kMaxFrame + kReplyReserve; }

  // Appends a frame; false if it does not fit or does not encode (callers check room first).
  bool queue(const proto::Message& m) {
    if (start > 0 && start + len + proto::kMaxFrame > kSize) {
      for (unsigned i = 0; i < len; ++i) buf[i] = buf[start + i];
      start = 0;
    }
    unsigned end = start + len;
    proto::Encoded e = proto::encode(m, buf + end, kSize - end);
    if (e.error != proto::WireError::kOk) return false;
    len += static_cast<unsigned>(e.size);
    queued += e.size;
    return true;
  }
  void sent(unsigned n) {
    start += n;
    len -= n;
    flushed += n;
    if (len == 0) start = 0;
  }
  void reset() { start = len = 0, queued = flushed = 0; }
};

// Error{err, "<what> <path>: <text>"}; the message is cut to the protocol's limit.
inline void reply_error(Outbox& out, uint32_t id, long err, const char* what, const char* path = nullptr) {
  if (err < 1 || err > static_cast<long>(proto::kMaxErrno)) err = EIO;
  Text t;
  t.add(what);
  if (path) t.add(" ").add(path);
  t.add(": ").add(error_text(err));
  proto::Message m{};
  m.type = proto::Type::kError;
  m.id = id;
  uint32_t n = t.n < proto::kMaxMessage ? static_cast<uint32_t>(t.n) : proto::kMaxMessage;
  m.error = {static_cast<uint32_t>(err), {t.buf, n}};
  out.queue(m);
}

inline void reply_done(Outbox& out, uint32_t id, uint64_t value) {
  proto::Message m{};
  m.type = proto::Type::kDone;
  m.id = id;
  m.done.value = value;
  out.queue(m);
}

}  // namespace airlock::agent
