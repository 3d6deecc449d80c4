// What the one-shot mode and the agent mode of airlock-init share: bounded text, error names,
// and the command's side of a fork (PATH search, user switch, capability drop).
// Freestanding like the rest of airlock-init (see sys.h): no libc, no allocation.
#pragma once

#include <asm-generic/errno.h>
#include <linux/capability.h>
#include <linux/prctl.h>

#include "agent/sys.h"

namespace airlock::agent {

// ---- tiny string helpers --------------------------------------------------------------------
inline unsigned long length(const char* s) {
  unsigned long n = 0;
  while (s[n]) ++n;
  return n;
}
inline bool equal(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}
inline bool starts_with(const char* s, const char* prefix) {
  while (*prefix && *s == *prefix) ++s, ++prefix;
  return *prefix == 0;
}
inline bool contains(const char* s, char c) {
  for (; *s; ++s)
    if (*s == c) return true;
  return false;
}

// A fixed buffer that silently truncates: messages and paths are bounded.
struct Text {
  char buf[4200];
  unsigned long n = 0;
  Text& add(const char* s) {
    while (*s && n < sizeof buf - 1) buf[n++] = *s++;
    buf[n] = 0;
    return *this;
  }
  Text& add(const char* s, unsigned long len) {
    for (unsigned long i = 0; i < len && n < sizeof buf - 1; ++i) buf[n++] = s[i];
    buf[n] = 0;
    return *this;
  }
  Text& add_number(long v) {
    char digits[24];
    int i = 0;
    bool negative = v < 0;
    unsigned long u = negative ? static_cast<unsigned long>(-v) : static_cast<unsigned long>(v);
    do {
      digits[i++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u);
    if (negative) add("-");
    while (i) add(&digits[--i], 1);
    return *this;
  }
};

inline const char* error_text(long err) {
  switch (err) {
    case EPERM: return "Operation not permitted";
    case ENOENT: return "No such file or directory";
    case EACCES: return "Permission denied";
    case ENOEXEC: return "Exec format error";
    case EISDIR: return "Is a directory";
    case ENOTDIR: return "Not a directory";
    case ENAMETOOLONG: return "File name too long";
    case ELOOP: return "Too many levels of symbolic links";
    case ENOMEM: return "Cannot allocate memory";
    case E2BIG: return "Argument list too long";
    case ETXTBSY: return "Text file busy";
    case EAGAIN: return "Resource temporarily unavailable";
    case EINVAL: return "Invalid argument";
    case EEXIST: return "File exists";
    case ENOTEMPTY: return "Directory not empty";
    case EBUSY: return "Device or resource busy";
    case EXDEV: return "Invalid cross-device link";
    case ENOSPC: return "No space left on device";
    case EROFS: return "Read-only file system";
    case EMFILE: return "Too many open files";
    case ENFILE: return "Too many open files in system";
    case EIO: return "Input/output error";
    case EFBIG: return "File too large";
    case ENOSYS: return "Function not implemented";
    case EBADF: return "Bad file descriptor";
    case ESRCH: return "No such process";
    case EPIPE: return "Broken pipe";
    case EDQUOT: return "Disk quota exceeded";
    default: return "error";
  }
}

inline void say(const Text& t) {
  Text line;
  line.add("airlock: ").add(t.buf, t.n).add("\n");
  sys::write(2, line.buf, line.n);
}

// ---- the command's side of the fork ---------------------------------------------------------------
inline const char* find_env(char* const* envp, const char* key_eq) {
  for (; *envp; ++envp)
    if (starts_with(*envp, key_eq)) return *envp + length(key_eq);
  return nullptr;
}

// execvp: PATH search as the shell does it; returns the errno that best explains a failure.
inline long exec_command(char* const* argv, char* const* envp) {
  const char* name = argv[0];
  if (contains(name, '/')) return -sys::execve(name, argv, envp);
  const char* path = find_env(envp, "PATH=");
  if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  long result = ENOENT;
  for (const char* p = path;;) {
    const char* end = p;
    while (*end && *end != ':') ++end;
    Text candidate;
    if (end == p)
      candidate.add(".");
    else
      candidate.add(p, static_cast<unsigned long>(end - p));
    candidate.add("/").add(name);
    long err = -sys::execve(candidate.buf, argv, envp);
    if (err == EACCES) result = EACCES;            // keep looking, but remember why
    else if (err != ENOENT && err != ENOTDIR) return err;
    if (!*end) break;
    p = end + 1;
  }
  return result;
}

inline void make_workdir(const char* path) {
  Text buf;
  buf.add(path);
  for (unsigned long i = 1; i <= buf.n; ++i) {
    if (buf.buf[i] == '/' || buf.buf[i] == 0) {
      char saved = buf.buf[i];
      buf.buf[i] = 0;
      sys::mkdir(buf.buf, 0755);
      buf.buf[i] = saved;
    }
  }
}

inline long drop_all_capabilities() {
  for (int cap = 0; cap <= 63; ++cap) {
    long r = sys::prctl(PR_CAPBSET_DROP, cap);
    if (r < 0 && r != -EINVAL) return -r;
  }
  return 0;
}

inline long clear_capabilities() {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  return -sys::capset(&header, data);
}

// Becomes uid/gid. A non-root user, or root with --cap-drop ALL, keeps no capability and cannot
// regain one by exec (empty bounding set; setuid binaries are void under no_new_privs).
// Returns 0 or an errno.
inline long switch_user(unsigned uid, unsigned gid, bool cap_drop_all) {
  long err = 0;
  if (uid != 0 || cap_drop_all) {
    err = drop_all_capabilities();
    if (!err) err = -sys::setgroups(0, nullptr);
    if (!err) err = -sys::setresgid(gid, gid, gid);
    if (!err) err = -sys::setresuid(uid, uid, uid);
    if (!err) err = clear_capabilities();
  } else {
    err = -sys::setgroups(0, nullptr);
    if (!err) err = -sys::setresgid(gid, gid, gid);
  }
  return err;
}

// chdir, creating the directory (as the one-shot mode always has) when it is missing.
inline long enter_workdir(const char* dir) {
  if (sys::chdir(dir) >= 0) return 0;
  make_workdir(dir);
  long r = sys::chdir(dir);
  return r < 0 ? -r : 0;
}

// SIG_DFL for every signal and an empty mask: the command must not inherit init's handlers.
inline void reset_signals() {
  struct KernelSigaction {
    void* handler;
    unsigned long flags;
    void* restorer;
    unsigned long mask;
  } dfl = {nullptr, 0, nullptr, 0};
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig != 9 && sig != 19) sys::sigaction(sig, &dfl, nullptr);  // SIGKILL, SIGSTOP
  }
  unsigned long none = 0;
  sys::sigprocmask(2 /* SIG_SETMASK */, &none, nullptr);
}

}  // namespace airlock::agent
