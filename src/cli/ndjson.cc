#include "cli/ndjson.h"

namespace airlock::cli {

Status NdjsonSplitter::feed(std::string_view bytes) {
  if (start_ > 0 && start_ >= buffer_.size() / 2) {  // compact: returned lines are dead weight
    buffer_.erase(0, start_);
    start_ = 0;
  }
  buffer_.append(bytes);
  size_t pending = buffer_.size() - start_;
  if (pending > max_line_ && buffer_.find('\n', start_) == std::string::npos)
    return plain_error("an event line from the daemon exceeds " + std::to_string(max_line_) + " bytes");
  return {};
}

std::optional<std::string> NdjsonSplitter::next() {
  for (;;) {
    size_t newline = buffer_.find('\n', start_ + scanned_);
    if (newline == std::string::npos) {
      scanned_ = buffer_.size() - start_;
      return std::nullopt;
    }
    size_t end = newline;
    if (end > start_ && buffer_[end - 1] == '\r') --end;
    std::string line = buffer_.substr(start_, end - start_);
    start_ = newline + 1;
    scanned_ = 0;
    if (!line.empty()) return line;
  }
}

}  // namespace airlock::cli
