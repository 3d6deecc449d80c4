// The syscalls only the agent mode of airlock-init needs (sockets, polling, clocks), in the style
// of sys.h: raw x86-64 Linux syscalls returning -errno on failure.
#pragma once

#include "agent/sys.h"

namespace sys {

struct Timespec {
  long tv_sec;
  long tv_nsec;
};
struct PollFd {
  int fd;
  short events;
  short revents;
};

inline long accept4(int fd, int flags) { return call(__NR_accept4, fd, 0, 0, flags); }
inline long send(int fd, const void* buf, unsigned long n, int flags) {
  return call(__NR_sendto, fd, (long)buf, (long)n, flags, 0, 0);
}
inline long ppoll(PollFd* fds, unsigned long n, const Timespec* timeout) {
  return call(__NR_ppoll, (long)fds, (long)n, (long)timeout, 0, 8);
}
inline long fcntl(int fd, int cmd, long arg = 0) { return call(__NR_fcntl, fd, cmd, arg); }
inline long clock_gettime(int clock, Timespec* ts) { return call(__NR_clock_gettime, clock, (long)ts); }

}  // namespace sys
