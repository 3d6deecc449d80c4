// airlock-init's whole view of the operating system: raw x86-64 Linux syscalls, no libc.
// Why no libc: glibc's start-up (CPU feature and cache probing through cpuid, which traps in a
// VM) costs ~0.6 ms per exec here, on the path of every sandbox start, and a static glibc init
// weighs ~800 KiB of mostly unused code in every sandbox's memory.
#pragma once

#include <asm/unistd.h>
#include <linux/types.h>

namespace sys {

inline long call(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

// Results are returned as in the kernel: >= 0 success, -errno failure.
inline long read(int fd, void* buf, unsigned long n) { return call(__NR_read, fd, (long)buf, (long)n); }
inline long write(int fd, const void* buf, unsigned long n) { return call(__NR_write, fd, (long)buf, (long)n); }
inline long openat(int dirfd, const char* path, int flags, int mode = 0) {
  return call(__NR_openat, dirfd, (long)path, flags, mode);
}
inline long close(int fd) { return call(__NR_close, fd); }
inline long ioctl(int fd, unsigned long req, long arg) { return call(__NR_ioctl, fd, (long)req, arg); }
inline long prctl(int op, long a = 0, long b = 0, long c = 0, long d = 0) { return call(__NR_prctl, op, a, b, c, d); }
inline long dup2(int from, int to) { return call(__NR_dup2, from, to); }
inline long pipe2(int fds[2], int flags) { return call(__NR_pipe2, (long)fds, flags); }
inline long fork() { return call(__NR_clone, 17 /* SIGCHLD */, 0, 0, 0, 0); }
inline long execve(const char* path, char* const* argv, char* const* envp) {
  return call(__NR_execve, (long)path, (long)argv, (long)envp);
}
inline long wait4(int pid, int* status, int options) { return call(__NR_wait4, pid, (long)status, options, 0); }
inline long kill(int pid, int sig) { return call(__NR_kill, pid, sig); }
inline long setsid() { return call(__NR_setsid); }
inline long chdir(const char* path) { return call(__NR_chdir, (long)path); }
inline long mkdir(const char* path, int mode) { return call(__NR_mkdir, (long)path, mode); }
inline long setgroups(long n, const void* list) { return call(__NR_setgroups, n, (long)list); }
inline long setresgid(unsigned r, unsigned e, unsigned s) { return call(__NR_setresgid, r, e, s); }
inline long setresuid(unsigned r, unsigned e, unsigned s) { return call(__NR_setresuid, r, e, s); }
inline long capset(void* header, void* data) { return call(__NR_capset, (long)header, (long)data); }
inline long close_range(unsigned first, unsigned last) { return call(__NR_close_range, first, last, 0); }
inline long sendmsg(int fd, const void* msg, int flags) { return call(__NR_sendmsg, fd, (long)msg, flags); }
inline long signalfd(int fd, const void* mask, int flags) { return call(__NR_signalfd4, fd, (long)mask, 8, flags); }
inline long sigprocmask(int how, const void* set, void* old) {
  return call(__NR_rt_sigprocmask, how, (long)set, (long)old, 8);
}
inline long sigaction(int sig, const void* act, void* old) {
  return call(__NR_rt_sigaction, sig, (long)act, (long)old, 8);
}
// Files (the agent's file and watch messages). Paths come from the host; see resolve.h for how
// they are resolved.
inline long openat2(int dirfd, const char* path, const void* how, unsigned long size) {
  return call(__NR_openat2, dirfd, (long)path, (long)how, (long)size);
}
inline long statx(int dirfd, const char* path, int flags, unsigned mask, void* buf) {
  return call(__NR_statx, dirfd, (long)path, flags, mask, (long)buf);
}
inline long mkdirat(int dirfd, const char* path, int mode) { return call(__NR_mkdirat, dirfd, (long)path, mode); }
inline long unlinkat(int dirfd, const char* path, int flags) { return call(__NR_unlinkat, dirfd, (long)path, flags); }
inline long renameat2(int from_dir, const char* from, int to_dir, const char* to, unsigned flags) {
  return call(__NR_renameat2, from_dir, (long)from, to_dir, (long)to, flags);
}
inline long getdents64(int fd, void* buf, unsigned long n) { return call(__NR_getdents64, fd, (long)buf, (long)n); }
inline long pread(int fd, void* buf, unsigned long n, long offset) {
  return call(__NR_pread64, fd, (long)buf, (long)n, offset);
}
inline long pwrite(int fd, const void* buf, unsigned long n, long offset) {
  return call(__NR_pwrite64, fd, (long)buf, (long)n, offset);
}
inline long lseek(int fd, long offset, int whence) { return call(__NR_lseek, fd, offset, whence); }
inline long fchmod(int fd, unsigned mode) { return call(__NR_fchmod, fd, mode); }
inline long inotify_init1(int flags) { return call(__NR_inotify_init1, flags); }
inline long inotify_add_watch(int fd, const char* path, unsigned mask) {
  return call(__NR_inotify_add_watch, fd, (long)path, mask);
}
inline long inotify_rm_watch(int fd, int wd) { return call(__NR_inotify_rm_watch, fd, wd); }

[[noreturn]] inline void exit(int code) {
  for (;;) call(__NR_exit_group, code);
}

}  // namespace sys
