// Splits a byte stream into NDJSON lines as it arrives: chunk boundaries fall anywhere (inside a
// line, inside a UTF-8 sequence), so bytes are held until their newline. A line longer than the
// limit is an error rather than unbounded memory (the daemon's events are small; output chunks are
// at most 64 KiB of data, a bit more once base64-encoded).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace airlock::cli {

class NdjsonSplitter {
 public:
  static constexpr size_t kDefaultMaxLine = 16u << 20;
  explicit NdjsonSplitter(size_t max_line = kDefaultMaxLine) : max_line_(max_line) {}

  // Appends bytes; an error once the unterminated line exceeds the limit.
  Status feed(std::string_view bytes);
  // The next complete line without its "\n" (and without a "\r" before it); empty lines are
  // skipped. nullopt when no complete line is buffered.
  std::optional<std::string> next();
  // Bytes of an unterminated last line (what is left at the end of the stream).
  std::string_view rest() const { return std::string_view(buffer_).substr(start_); }

 private:
  std::string buffer_;
  size_t start_ = 0;  // first byte not yet returned
  size_t scanned_ = 0;  // bytes from start_ already known to hold no newline
  size_t max_line_;
};

}  // namespace airlock::cli
