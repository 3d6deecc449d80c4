// A streamed request body (BodyReader, http_message.h) read from a worker thread as a sequence of
// blocking calls, which is how the upload routes want it: next() waits for the next piece. One read
// is kept ahead, so the socket is read while the caller writes the previous piece to the sandbox;
// at most two pieces (2 x 256 KiB) are held at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "daemon/errors.h"
#include "daemon/http_message.h"

namespace airlock::daemon {

class BlockingBodyReader {
 public:
  explicit BlockingBodyReader(BodyReader& reader, size_t piece = BodyReader::kMaxPiece);
  ~BlockingBodyReader();  // a read still under way is left to answer into the void
  BlockingBodyReader(const BlockingBodyReader&) = delete;
  BlockingBodyReader& operator=(const BlockingBodyReader&) = delete;

  // The next piece of the body, valid until the next call; empty at its end (and from then on).
  // A body that cannot be read (client gone, too large, malformed, server stopping) is an error
  // (400 invalid_parameter naming the cause; the server answers 413/400 itself where it applies).
  ApiResult<std::string_view> next();
  // The rest of the body, if it has at most `limit` bytes (413 payload_too_large beyond).
  ApiResult<std::string> read_all(size_t limit);
  uint64_t bytes_read() const { return bytes_read_; }

  struct State;  // shared with the callback of the read under way

 private:
  void ask();

  BodyReader& reader_;
  size_t piece_size_;
  std::shared_ptr<State> state_;
  std::string current_;  // what the last next() returned
  uint64_t bytes_read_ = 0;
  bool asked_ = false;  // a read is under way
  bool ended_ = false;
};

}  // namespace airlock::daemon
