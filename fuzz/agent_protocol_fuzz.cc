// libFuzzer target for the agent protocol (src/protocol/agent_protocol.h): the bytes a hostile
// sandbox can put on its socket. Build and run: fuzz/README.md.
//
// For any input it checks that decoding never crashes or reads outside the input (ASan), and that
// an accepted frame really is valid:
//   - every string, list and data view lies inside the frame, within its limit, without NUL;
//   - paths, ids and exit statuses obey the rules that keep a hostile peer harmless (checked here
//     by a second, independent implementation);
//   - re-encoding the decoded message gives back exactly the input bytes (the format is canonical,
//     so nothing was skipped or misread);
//   - the stream reader (agent_protocol_host.h) cuts the same bytes, read in input-chosen pieces,
//     into the same frames and never grows past its bound;
//   - the encoder, given any layout-valid message and any buffer size, either refuses it or writes
//     a frame the decoder accepts, and never writes past the buffer.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <string_view>
#include <vector>

#include "protocol/agent_protocol.h"
#include "protocol/agent_protocol_host.h"

namespace {

using namespace airlock::protocol::agent;

void require(bool ok, const char* what) {
  if (ok) return;
  fprintf(stderr, "agent protocol fuzz: invariant broken: %s\n", what);
  abort();
}

// Walks a decoded message with the protocol's own field list, checking each view independently.
class ViewChecker {
 public:
  ViewChecker(const uint8_t* frame, size_t size) : begin_(frame), end_(frame + size) {}

  template <typename T>
  bool num(T) { return true; }
  bool str(Str s, uint32_t max) {
    require(s.size <= max, "string over its limit");
    require(inside(s.data, s.size), "string outside the frame");
    require(memchr(s.data, 0, s.size) == nullptr, "NUL inside a string");
    return true;
  }
  bool list(const StringList& l, uint32_t max_count, uint32_t max_bytes) {
    require(l.count <= max_count, "list count over its limit");
    require(l.items == nullptr && inside(l.wire, l.wire_size), "list outside the frame");
    uint32_t n = 0;
    uint64_t total = 0;
    for (Str s : l) {
      str(s, max_bytes);
      total += s.size;
      ++n;
    }
    require(n == l.count && total <= max_bytes, "list total over its limit");
    return true;
  }
  bool rest(Bytes b) {
    require(b.size <= kMaxPayload && inside(b.data, b.size), "data outside the frame");
    return true;
  }

 private:
  bool inside(const void* p, size_t n) const {
    auto* q = static_cast<const uint8_t*>(p);
    return (n == 0) || (q >= begin_ && q <= end_ && n <= size_t(end_ - q));
  }
  const uint8_t* begin_;
  const uint8_t* end_;
};

// The rules that keep a hostile peer's paths and ids harmless, written again independently of
// the decoder's own checks.
bool escapes(std::string_view path) {  // for paths the agent reports, relative to a directory
  if (path.empty() || path.front() == '/') return true;
  for (size_t start = 0;;) {
    size_t slash = path.find('/', start);
    std::string_view part = path.substr(start, slash == path.npos ? path.npos : slash - start);
    if (part.empty() || part == "." || part == "..") return true;
    if (slash == path.npos) return false;
    start = slash + 1;
  }
}
bool absolute(Str p) { return p.size > 0 && p.data[0] == '/'; }

void check_semantics(const Message& m) {
  switch (m.type) {
    case Type::kFileEntry: require(!escapes(to_string_view(m.file_entry.path)), "entry path escapes"); break;
    case Type::kWatchEvent:
      require(m.watch_event.kind == kWatchOverflow || !escapes(to_string_view(m.watch_event.path)),
              "event path escapes");
      break;
    case Type::kFileStat: require(absolute(m.file_stat.path), "relative path"); break;
    case Type::kFileRename:
      require(absolute(m.file_rename.from) && absolute(m.file_rename.to), "relative path");
      break;
    case Type::kExec:
      require(m.exec.uid != UINT32_MAX && m.exec.gid != UINT32_MAX, "uid or gid -1");
      require(m.exec.argv.count >= 1, "empty argv");
      for (Str var : m.exec.env) {
        size_t eq = to_string_view(var).find('=');
        require(eq != 0 && eq != std::string_view::npos, "env entry without NAME=");
      }
      break;
    case Type::kExited:
      require(m.exited.code >= -1 && m.exited.code <= 255 && m.exited.signal <= kMaxSignal, "exit status");
      break;
    case Type::kStarted: require(m.started.pid >= 1 && m.started.pid <= kMaxPid, "pid"); break;
    default: break;
  }
}

void check_accepted(const uint8_t* frame, size_t size, const Message& m) {
  require(size >= kHeaderSize && size - kHeaderSize <= kMaxPayload, "accepted frame of a bad size");
  ViewChecker checker(frame, size);
  airlock::protocol::agent::detail::payload_fields(checker, m);
  check_semantics(m);
  std::vector<uint8_t> again(size);
  Encoded e = encode(m, again.data(), again.size());
  require(e.error == WireError::kOk && e.size == size, "accepted frame does not re-encode");
  require(memcmp(again.data(), frame, size) == 0, "re-encoding differs from the accepted frame");
}

void fuzz_stream(const uint8_t* data, size_t size, Direction accept) {
  FrameReader reader(accept);
  size_t fed = 0, consumed = 0, piece = 1;
  while (fed < size) {
    auto space = reader.writable();
    require(!space.empty() && reader.capacity() <= kMaxFrame + FrameReader::kReadChunk, "reader unbounded");
    piece = piece * 31 + data[fed];  // read sizes vary with the input
    size_t n = std::min({space.size(), size - fed, piece % 4096 + 1});
    memcpy(space.data(), data + fed, n);
    reader.commit(n);
    fed += n;
    for (;;) {
      Message m;
      auto got = reader.next(m);
      if (!got.ok()) return;  // the host drops the connection here
      if (!got.value()) break;
      // The frame must be exactly the next bytes of the input.
      Message same;
      size_t frame_size = kHeaderSize + load_u32(data + consumed + 12);
      require(consumed + frame_size <= fed, "stream frame beyond what was read");
      require(decode_frame(data + consumed, frame_size, accept, same) == WireError::kOk,
              "stream reader accepted what the decoder refuses");
      check_accepted(data + consumed, frame_size, same);
      std::vector<uint8_t> again(frame_size);  // m points into the reader's buffer: compare bytes
      Encoded e = encode(m, again.data(), again.size());
      require(e.error == WireError::kOk && memcmp(again.data(), data + consumed, frame_size) == 0,
              "stream reader decoded a different frame");
      consumed += frame_size;
    }
  }
}

// Reads the input as the payload of a type chosen by its first byte, with the layout only (no
// range checks), then encodes that message into a buffer of an input-chosen size.
void fuzz_encoder(const uint8_t* data, size_t size) {
  if (size < 3) return;
  Message m{};
  m.type = static_cast<Type>(data[0]);
  m.id = data[1];
  m.flags = data[2] & 1;
  airlock::protocol::agent::detail::Reader reader(data + 3, uint32_t(std::min<size_t>(size - 3, kMaxPayload)));
  if (!airlock::protocol::agent::detail::payload_fields(reader, m)) return;
  size_t need = encode(m, nullptr, 0).size;
  // Capacities around the exact size, where an off-by-one would write past the buffer.
  for (size_t cap : {need, need - 1, need - 2, need / 2, size * 7 % (need + 1)}) {
    if (cap > need) continue;  // need - k wrapped
    std::vector<uint8_t> buf(cap + 1, 0xa5);  // one guard byte past the capacity
    Encoded e = encode(m, buf.data(), cap);
    require(buf[cap] == 0xa5, "encoder wrote past its buffer");
    if (e.error != WireError::kOk) continue;
    Message back;
    require(decode_frame(buf.data(), e.size, direction_of(m.type), back) == WireError::kOk,
            "encoder produced a frame the decoder refuses");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (Direction d : {Direction::kToAgent, Direction::kToHost}) {
    Message m;
    if (decode_frame(data, size, d, m) == WireError::kOk) check_accepted(data, size, m);
  }
  fuzz_stream(data, size, size % 2 ? Direction::kToHost : Direction::kToAgent);
  fuzz_encoder(data, size);
  return 0;
}
