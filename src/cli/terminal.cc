#include "cli/terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

namespace airlock::cli {

std::optional<WindowSize> window_size(int fd) {
  struct winsize ws = {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0 || ws.ws_row == 0) return std::nullopt;
  // The contract takes 1-1000 in each direction.
  auto clamp = [](int v) { return v < 1 ? 1 : v > 1000 ? 1000 : v; };
  return WindowSize{clamp(ws.ws_col), clamp(ws.ws_row)};
}

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  if (!::isatty(fd) || ::tcgetattr(fd, &saved_) != 0) return;
  struct termios raw = saved_;
  ::cfmakeraw(&raw);
  active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
}

void RawTerminal::restore() {
  if (!active_) return;
  // TCSADRAIN: what we already wrote is shown before the settings change back.
  ::tcsetattr(fd_, TCSADRAIN, &saved_);
  active_ = false;
}

}  // namespace airlock::cli
