#include "cli/fd_io.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace airlock::cli {

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = {fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    if (n < 0) return sys_error("write");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace airlock::cli
