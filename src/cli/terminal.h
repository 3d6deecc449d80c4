// The user's terminal: its window size, and raw mode for a remote PTY (every key goes to the
// sandbox, Ctrl-C included), restored when the guard goes out of scope, on every way out.
#pragma once

#include <termios.h>

#include <optional>

namespace airlock::cli {

struct WindowSize {
  int cols = 80;
  int rows = 24;
};

// The size of the terminal on fd, or nullopt when fd is not a terminal (or reports 0x0).
std::optional<WindowSize> window_size(int fd);

class RawTerminal {
 public:
  // Switches fd to raw mode when it is a terminal; does nothing otherwise.
  explicit RawTerminal(int fd);
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  ~RawTerminal() { restore(); }
  void restore();
  bool active() const { return active_; }

 private:
  int fd_;
  struct termios saved_ = {};
  bool active_ = false;
};

}  // namespace airlock::cli
