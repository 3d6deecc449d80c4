// Host-side conveniences over the agent protocol (src/protocol/agent_protocol.h): owned buffers,
// Result errors, and a reader that cuts a socket's byte stream into frames with bounded memory.
// The agent never includes this file: it needs libstdc++.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "protocol/agent_protocol.h"

namespace airlock::protocol::agent {

// "agent protocol: bad magic" with EPROTO: the caller drops the connection.
inline Error wire_error(WireError e) {
  return Error{EPROTO, std::string("agent protocol: ") + describe(e)};
}

inline Str to_str(std::string_view s) { return {s.data(), static_cast<uint32_t>(s.size())}; }
inline Bytes to_bytes(std::span<const uint8_t> b) { return {b.data(), static_cast<uint32_t>(b.size())}; }
inline std::string_view to_string_view(Str s) { return {s.data, s.size}; }

// Encodes into a buffer of exactly the frame's size.
inline Result<std::vector<uint8_t>> encode_frame(const Message& m) {
  Encoded sized = encode(m, nullptr, 0);
  if (sized.error != WireError::kBufferTooSmall) return wire_error(sized.error);
  std::vector<uint8_t> frame(sized.size);
  Encoded done = encode(m, frame.data(), frame.size());
  if (done.error != WireError::kOk) return wire_error(done.error);
  return frame;
}

// What the daemon knows about a command to run; owns the strings the Exec frame points to.
struct ExecRequest {
  uint32_t uid = 0, gid = 0;
  uint32_t timeout_ms = 0;
  bool tty = false;
  uint16_t rows = 0, cols = 0;
  std::string cwd;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value"
};

inline Result<std::vector<uint8_t>> encode_exec(uint32_t process_id, const ExecRequest& r) {
  // Strings longer than 4 GiB would be cut by to_str's u32 size; refuse them before that.
  auto too_big = [](const std::vector<std::string>& v) {
    for (const auto& s : v)
      if (s.size() > kMaxPayload) return true;
    return v.size() > kMaxPayload;
  };
  if (r.cwd.size() > kMaxPayload || too_big(r.argv) || too_big(r.env)) return wire_error(WireError::kTooLarge);
  std::vector<Str> argv, env;
  for (const auto& s : r.argv) argv.push_back(to_str(s));
  for (const auto& s : r.env) env.push_back(to_str(s));
  Message m{};
  m.type = Type::kExec;
  m.id = process_id;
  m.exec = Exec{r.uid, r.gid, r.timeout_ms, r.tty ? kExecTty : 0, r.rows, r.cols, to_str(r.cwd),
                StringList{argv.data(), nullptr, 0, static_cast<uint32_t>(argv.size())},
                StringList{env.data(), nullptr, 0, static_cast<uint32_t>(env.size())}};
  return encode_frame(m);
}

// One SOCK_SEQPACKET packet = one frame. The Message points into `packet`.
inline Result<Message> decode_packet(std::span<const uint8_t> packet, Direction accept) {
  Message m;
  WireError e = decode_frame(packet.data(), packet.size(), accept, m);
  if (e != WireError::kOk) return wire_error(e);
  return m;
}

// Cuts a SOCK_STREAM byte stream into frames. The buffer never grows past kMaxFrame + kReadChunk:
// a header announcing more than kMaxPayload is rejected before its payload is read, and once the
// buffer is full writable() offers no space until next() has taken the frames out. Any error is
// final: the caller drops the connection.
//
//   for (;;) {
//     auto space = reader.writable();  n = read(fd, space.data(), space.size());  reader.commit(n);
//     Message m;  while (TRY(bool got, reader.next(m)), got) handle(m);  // m valid until writable()
//   }
class FrameReader {
 public:
  static constexpr size_t kReadChunk = 16 * 1024;

  explicit FrameReader(Direction accept) : accept_(accept) {}

  // Free space after the buffered bytes. Moves buffered bytes (invalidating earlier Messages).
  std::span<uint8_t> writable() {
    if (start_ > 0) {
      std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
      end_ -= start_;
      start_ = 0;
    }
    size_t want = std::min(end_ + kReadChunk, kMaxFrame + kReadChunk);
    if (buf_.size() < want) buf_.resize(want);
    return {buf_.data() + end_, buf_.size() - end_};
  }
  void commit(size_t n) { end_ += std::min(n, buf_.size() - end_); }

  // True and `out` filled when a whole frame is buffered; false when more bytes are needed.
  Result<bool> next(Message& out) {
    if (failed_ != WireError::kOk) return wire_error(failed_);
    const uint8_t* p = buf_.data() + start_;
    size_t have = end_ - start_;
    FrameHeader h;
    WireError e = parse_header(p, have, accept_, h);
    if (e == WireError::kTruncated) return false;
    if (e == WireError::kOk) {
      if (have < kHeaderSize + h.payload_size) return false;
      e = decode_frame(p, kHeaderSize + h.payload_size, accept_, out);
    }
    if (e != WireError::kOk) {
      failed_ = e;
      return wire_error(e);
    }
    start_ += kHeaderSize + h.payload_size;
    return true;
  }

  size_t buffered() const { return end_ - start_; }
  size_t capacity() const { return buf_.size(); }

 private:
  Direction accept_;
  std::vector<uint8_t> buf_;
  size_t start_ = 0, end_ = 0;
  WireError failed_ = WireError::kOk;
};

}  // namespace airlock::protocol::agent
