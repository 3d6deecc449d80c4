#include "network/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>

#include <thread>

namespace airlock::net {

Status run_in_netns(int pidfd, const std::function<Status()>& fn) {
  Status result;
  std::thread worker([&] {
    // The thread is not shared with anything else and ends right after, so its namespace never
    // needs restoring.
    if (::setns(pidfd, CLONE_NEWNET) != 0) {
      result = sys_error("join the sandbox's network namespace");
      return;
    }
    result = fn();
  });
  worker.join();
  return result;
}

Result<UniqueFd> socket_in_netns(int pidfd, int domain, int type) {
  UniqueFd out;
  TRY_STATUS(run_in_netns(pidfd, [&]() -> Status {
    out.reset(::socket(domain, type | SOCK_CLOEXEC, 0));
    if (!out) return sys_error("socket");
    return {};
  }));
  return out;
}

Result<UniqueFd> own_netns() {
  UniqueFd fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!fd) return sys_error("open /proc/thread-self/ns/net");
  return fd;
}

}  // namespace airlock::net
