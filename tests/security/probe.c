// airlock-probe: a small static program the security suite runs INSIDE a sandbox. Each subcommand
// tries one attack and prints exactly one line:
//   BLOCKED <detail>   exit 0   the attack failed the way it must
//   ESCAPED <detail>   exit 1   the attack (or part of it) worked, or reached the kernel
//   ERROR <detail>     exit 2   the probe itself could not run the attempt
// A few helper subcommands (ids, argv, flood, isolate, evade...) print data instead; see usage().
//
// Method for denied syscalls (bubblewrap's try-syscall.c): call with arguments that would succeed,
// or fail with EBADF/EFAULT/EINVAL, if the call reached the kernel. EPERM or ENOSYS (or SIGSYS)
// means the filter stopped it; any other result means it was not filtered.
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/kcmp.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <mqueue.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef MNT_DETACH
#define MNT_DETACH 2  // <sys/mount.h> clashes with <linux/mount.h>
#endif
#define X32_BIT 0x40000000L
#define BAD_PTR ((void*)1)  // never mapped: a call that reaches the kernel gets EFAULT

// ---------------------------------------------------------------------------------------------
// Verdict bookkeeping: every check adds a note; one escaped note makes the verdict ESCAPED.
// ---------------------------------------------------------------------------------------------

static char blocked_notes[6000], escaped_notes[6000];
static int escaped_count;

static void append(char* buf, size_t size, const char* fmt, va_list ap) {
  size_t len = strlen(buf);
  if (len + 3 >= size) return;
  if (len) strcpy(buf + len, "; "), len += 2;
  vsnprintf(buf + len, size - len, fmt, ap);
}

static void blocked(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  append(blocked_notes, sizeof blocked_notes, fmt, ap);
  va_end(ap);
}

static void escaped(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  append(escaped_notes, sizeof escaped_notes, fmt, ap);
  va_end(ap);
  ++escaped_count;
}

static int finish(void) {
  if (escaped_count)
    printf("ESCAPED %s%s%s%s\n", escaped_notes, blocked_notes[0] ? " (blocked: " : "", blocked_notes,
           blocked_notes[0] ? ")" : "");
  else
    printf("BLOCKED %s\n", blocked_notes[0] ? blocked_notes : "nothing to try");
  fflush(stdout);
  return escaped_count ? 1 : 0;
}

__attribute__((noreturn)) static void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("ERROR ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  exit(2);
}

static const char* ename(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E?";
}

// EPERM or ENOSYS: stopped before the kernel acted. Anything else: the kernel saw the call.
static void expect_denied(const char* what, long rc, int err) {
  if (rc == -1 && (err == EPERM || err == ENOSYS))
    blocked("%s: %s", what, ename(err));
  else if (rc == -1)
    escaped("%s: %s (the call reached the kernel)", what, ename(err));
  else
    escaped("%s: succeeded (returned %ld)", what, rc);
}

// The same for calls that return a new fd on success, which is closed again.
static void expect_denied_fd(const char* what, long rc, int err) {
  expect_denied(what, rc, err);
  if (rc > 2) close((int)rc);
}

// An ordinary call that must fail with one of the given errnos (0-terminated list).
static void expect_failure(const char* what, long rc, int err, const int* allowed) {
  if (rc != -1) {
    escaped("%s: succeeded", what);
    return;
  }
  for (const int* e = allowed; *e; ++e) {
    if (err == *e) {
      blocked("%s: %s", what, ename(err));
      return;
    }
  }
  escaped("%s: unexpected %s", what, ename(err));
}

#define DENIED(what, call)                 \
  do {                                     \
    errno = 0;                             \
    long rc_ = (long)(call);               \
    expect_denied(what, rc_, errno);       \
  } while (0)
#define DENIED_FD(what, call)              \
  do {                                     \
    errno = 0;                             \
    long rc_ = (long)(call);               \
    expect_denied_fd(what, rc_, errno);    \
  } while (0)
#define MUST_FAIL(what, call, ...)                         \
  do {                                                     \
    static const int allowed_[] = {__VA_ARGS__, 0};        \
    errno = 0;                                             \
    long rc_ = (long)(call);                               \
    expect_failure(what, rc_, errno, allowed_);            \
  } while (0)

// Runs fn(arg) in a child. Returns the child's wait status; fn's long result comes back via *out.
static int in_child(long (*fn)(void*), void* arg, long* out, int* out_errno) {
  int p[2];
  if (pipe(p) != 0) fail("pipe: %s", ename(errno));
  pid_t pid = fork();
  if (pid < 0) fail("fork: %s", ename(errno));
  if (pid == 0) {
    pid_t self = getpid();
    close(p[0]);
    errno = 0;
    long r = fn(arg);
    if (getpid() != self) _exit(0);  // the child of a clone that should have failed: it leaves
    long msg[2] = {r, errno};
    if (write(p[1], msg, sizeof msg) != sizeof msg) _exit(3);
    _exit(0);
  }
  close(p[1]);
  long msg[2] = {0, 0};
  ssize_t n = read(p[0], msg, sizeof msg);
  close(p[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != sizeof msg && WIFEXITED(status)) fail("child reported nothing");
  *out = msg[0];
  *out_errno = (int)msg[1];
  return status;
}

static int read_text(const char* path, char* buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t got = 0;
  ssize_t n;
  while (got + 1 < size && (n = read(fd, buf + got, size - 1 - got)) > 0) got += (size_t)n;
  close(fd);
  buf[got] = '\0';
  return (int)got;
}

// Value of a "Key:\tvalue" line of /proc/self/status (hex capability sets, NoNewPrivs, ...).
static int status_field(const char* key, char* out, size_t size) {
  char buf[8192];
  if (read_text("/proc/self/status", buf, sizeof buf) < 0) return -1;
  size_t klen = strlen(key);
  for (char* line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      char* v = line + klen + 1;
      while (*v == '\t' || *v == ' ') ++v;
      size_t len = strcspn(v, "\n");
      if (len >= size) len = size - 1;
      memcpy(out, v, len);
      out[len] = '\0';
      return 0;
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Kernel attack surface: each call with arguments that reach the kernel if nothing stops them.
// ---------------------------------------------------------------------------------------------

static int cmd_io_uring(void) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  DENIED_FD("io_uring_setup(1, valid params)", syscall(SYS_io_uring_setup, 1, &params));
  DENIED("io_uring_enter(-1)", syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0));
  DENIED("io_uring_register(-1)", syscall(SYS_io_uring_register, -1, 0, NULL, 0));
  return finish();
}

static int cmd_userfaultfd(void) {
  DENIED_FD("userfaultfd(UFFD_USER_MODE_ONLY)", syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
  return finish();
}

static int cmd_bpf(void) {
  DENIED_FD("bpf(BPF_MAP_CREATE, NULL attr)", syscall(SYS_bpf, BPF_MAP_CREATE, NULL, 64));
  DENIED_FD("bpf(BPF_PROG_LOAD, bad attr)", syscall(SYS_bpf, BPF_PROG_LOAD, BAD_PTR, 64));
  return finish();
}

static int cmd_perf_event_open(void) {
  DENIED_FD("perf_event_open(NULL attr)", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
  struct perf_event_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.exclude_kernel = 1;
  DENIED_FD("perf_event_open(self task clock)", syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
  return finish();
}

static int cmd_keyctl(void) {
  DENIED("keyctl(GET_KEYRING_ID, session)", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
  DENIED("keyctl(JOIN_SESSION_KEYRING)", syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL));
  return finish();
}

static int cmd_add_key(void) {
  DENIED("add_key(user, process keyring)",
         syscall(SYS_add_key, "user", "airlock-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
  DENIED("add_key(bad type pointer)", syscall(SYS_add_key, BAD_PTR, "d", NULL, 0, KEY_SPEC_PROCESS_KEYRING));
  return finish();
}

static int cmd_request_key(void) {
  DENIED("request_key(user, absent key)",
         syscall(SYS_request_key, "user", "airlock-probe-absent", NULL, KEY_SPEC_PROCESS_KEYRING));
  return finish();
}

// /proc/keys and /proc/key-users list keys of every user on the host: they must read empty.
static int cmd_proc_keys(void) {
  const char* paths[] = {"/proc/keys", "/proc/key-users"};
  for (int i = 0; i < 2; ++i) {
    char buf[256];
    int n = read_text(paths[i], buf, sizeof buf);
    if (n < 0)
      blocked("%s: %s", paths[i], ename(errno));
    else if (n == 0)
      blocked("%s: empty", paths[i]);
    else
      escaped("%s: readable (%d bytes)", paths[i], n);
  }
  return finish();
}

static int cmd_mount(void) {
  DENIED("mount(bad pointers)", syscall(SYS_mount, BAD_PTR, BAD_PTR, BAD_PTR, 0, NULL));
  DENIED("mount(/, MS_REMOUNT|MS_BIND)", syscall(SYS_mount, NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
  return finish();
}

// Real mounts of the filesystems escapes are built from (proc, sysfs, cgroup release_agent, tmpfs).
static int cmd_mount_fs(void) {
  mkdir("/tmp/airlock-probe-mnt", 0700);
  static const char* const kinds[][3] = {
      {"proc", "proc", ""},       {"sysfs", "sysfs", ""},         {"tmpfs", "tmpfs", "size=1m"},
      {"cgroup", "cgroup", "rdma"}, {"cgroup", "cgroup", "none,name=probe"}, {"cgroup2", "cgroup2", ""},
      {"devpts", "devpts", "newinstance"}, {"mqueue", "mqueue", ""}, {"overlay", "overlay", "lowerdir=/usr:/etc"}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; ++i) {
    char what[96];
    snprintf(what, sizeof what, "mount -t %s", kinds[i][1]);
    DENIED(what, syscall(SYS_mount, kinds[i][0], "/tmp/airlock-probe-mnt", kinds[i][1], 0, kinds[i][2][0] ? kinds[i][2] : NULL));
  }
  return finish();
}

static int cmd_umount2(void) {
  DENIED("umount2(bad pointer)", syscall(SYS_umount2, BAD_PTR, 0));
  // Unmounting a mask would reveal what it hides.
  const char* masks[] = {"/proc/kcore", "/proc/keys", "/proc/sys", "/sys/firmware", "/dev/shm", "/"};
  for (int i = 0; i < 6; ++i) {
    char what[64];
    snprintf(what, sizeof what, "umount2(%s, MNT_DETACH)", masks[i]);
    DENIED(what, syscall(SYS_umount2, masks[i], MNT_DETACH));
  }
  return finish();
}

static int cmd_fsopen(void) {
  DENIED_FD("fsopen(tmpfs)", syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC));
  DENIED_FD("fsopen(cgroup)", syscall(SYS_fsopen, "cgroup", FSOPEN_CLOEXEC));
  DENIED("fsconfig(-1, CMD_CREATE)", syscall(SYS_fsconfig, -1, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
  return finish();
}

static int cmd_open_tree(void) {
  // Without OPEN_TREE_CLONE this is an unprivileged O_PATH open: it succeeds if not filtered.
  DENIED_FD("open_tree(/, no clone)", syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLOEXEC));
  DENIED_FD("open_tree(/proc, OPEN_TREE_CLONE)",
            syscall(SYS_open_tree, AT_FDCWD, "/proc", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  return finish();
}

static int cmd_move_mount(void) {
  DENIED("move_mount(-1, bad flags)", syscall(SYS_move_mount, -1, "", -1, "", 0x80000000U));
  DENIED("move_mount(/proc/sys -> /tmp)",
         syscall(SYS_move_mount, AT_FDCWD, "/proc/sys", AT_FDCWD, "/tmp", 0));
  return finish();
}

static int cmd_fsmount_fspick(void) {
  DENIED_FD("fsmount(-1)", syscall(SYS_fsmount, -1, FSMOUNT_CLOEXEC, 0));
  DENIED_FD("fspick(/proc)", syscall(SYS_fspick, AT_FDCWD, "/proc", FSPICK_CLOEXEC));
  DENIED_FD("fspick(-1, bad flags)", syscall(SYS_fspick, -1, "", 0x80000000U));
  return finish();
}

static int cmd_mount_setattr(void) {
  DENIED("mount_setattr(-1, NULL attr)",
         syscall(SYS_mount_setattr, -1, "", AT_EMPTY_PATH, NULL, sizeof(struct mount_attr)));
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_clr = MOUNT_ATTR_RDONLY;
  DENIED("mount_setattr(/proc/sys, clear RDONLY)",
         syscall(SYS_mount_setattr, AT_FDCWD, "/proc/sys", 0, &attr, sizeof attr));
  return finish();
}

static int cmd_pivot_root(void) {
  DENIED("pivot_root(bad pointers)", syscall(SYS_pivot_root, BAD_PTR, BAD_PTR));
  DENIED("pivot_root(., .)", syscall(SYS_pivot_root, ".", "."));
  return finish();
}

static int cmd_chroot(void) {
  DENIED("chroot(bad pointer)", syscall(SYS_chroot, BAD_PTR));
  DENIED("chroot(/tmp)", syscall(SYS_chroot, "/tmp"));
  return finish();
}

// setns on every namespace of pid 1 and of ourselves; a bad fd shows whether the call is filtered.
static int cmd_setns(void) {
  DENIED("setns(-1)", syscall(SYS_setns, -1, 0));
  static const char* const kinds[] = {"user", "mnt", "net", "pid", "ipc", "uts", "cgroup", "time"};
  const char* owners[] = {"1", "self"};
  for (int o = 0; o < 2; ++o) {
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k) {
      char path[64];
      snprintf(path, sizeof path, "/proc/%s/ns/%s", owners[o], kinds[k]);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        blocked("open %s: %s", path, ename(errno));
        continue;
      }
      char what[96];
      snprintf(what, sizeof what, "setns(%s)", path);
      DENIED(what, syscall(SYS_setns, fd, 0));
      close(fd);
    }
  }
  return finish();
}

static const struct {
  const char* name;
  int flag;
  const char* constant;
} ns_flags[] = {{"user", CLONE_NEWUSER, "CLONE_NEWUSER"},   {"mnt", CLONE_NEWNS, "CLONE_NEWNS"},
                {"net", CLONE_NEWNET, "CLONE_NEWNET"},      {"pid", CLONE_NEWPID, "CLONE_NEWPID"},
                {"ipc", CLONE_NEWIPC, "CLONE_NEWIPC"},      {"uts", CLONE_NEWUTS, "CLONE_NEWUTS"},
                {"cgroup", CLONE_NEWCGROUP, "CLONE_NEWCGROUP"}, {"time", CLONE_NEWTIME, "CLONE_NEWTIME"}};

static int ns_flag(const char* name) {
  for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0]; ++i)
    if (strcmp(ns_flags[i].name, name) == 0) return ns_flags[i].flag;
  fail("unknown namespace %s", name);
}

static const char* ns_flag_name(long flag) {
  for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0]; ++i)
    if (ns_flags[i].flag == flag) return ns_flags[i].constant;
  return "?";
}

// Alone, and together with CLONE_NEWUSER (which would give the capabilities the others need).
static int cmd_unshare(int argc, char** argv) {
  if (argc < 1) fail("usage: unshare user|mnt|net|pid|ipc|uts|cgroup|time");
  int flag = ns_flag(argv[0]);
  char what[64];
  snprintf(what, sizeof what, "unshare(%s)", ns_flag_name(flag));
  DENIED(what, syscall(SYS_unshare, flag));
  if (flag != CLONE_NEWUSER) {
    snprintf(what, sizeof what, "unshare(CLONE_NEWUSER|%s)", ns_flag_name(flag));
    DENIED(what, syscall(SYS_unshare, flag | CLONE_NEWUSER));
  }
  return finish();
}

static long clone_flags(void* arg) {
  long flags = *(long*)arg;
  return syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
}

static void try_clone(const char* what, long flags) {
  long rc;
  int err;
  int status = in_child(clone_flags, &flags, &rc, &err);
  if (WIFSIGNALED(status))
    blocked("%s: killed by signal %d", what, WTERMSIG(status));
  else
    expect_denied(what, rc, err);
  if (rc > 0) waitpid((pid_t)rc, NULL, 0);
}

static int cmd_clone(int argc, char** argv) {
  if (argc < 1) fail("usage: clone user|mnt|net|pid|ipc|uts|cgroup");
  long flag = ns_flag(argv[0]);
  char what[64];
  snprintf(what, sizeof what, "clone(%s)", ns_flag_name(flag));
  try_clone(what, flag);
  if (flag != CLONE_NEWUSER) {
    snprintf(what, sizeof what, "clone(CLONE_NEWUSER|%s)", ns_flag_name(flag));
    try_clone(what, flag | CLONE_NEWUSER);
  }
  return finish();
}

static long clone3_call(void* arg) {
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = *(uint64_t*)arg;
  args.exit_signal = SIGCHLD;
  return syscall(SYS_clone3, &args, sizeof args);
}

// clone3 passes its flags in memory, out of the filter's sight: it must get ENOSYS (so libc falls
// back to clone), whatever the flags.
static int cmd_clone3(void) {
  uint64_t variants[] = {0, CLONE_NEWUSER, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET};
  const char* names[] = {"clone3(no flags)", "clone3(CLONE_NEWUSER)", "clone3(NEWUSER|NEWNS|NEWNET)"};
  for (int i = 0; i < 3; ++i) {
    long rc;
    int err;
    int status = in_child(clone3_call, &variants[i], &rc, &err);
    if (WIFSIGNALED(status))
      escaped("%s: killed by signal %d instead of ENOSYS", names[i], WTERMSIG(status));
    else if (rc == -1 && err == ENOSYS)
      blocked("%s: ENOSYS", names[i]);
    else if (rc == -1)
      escaped("%s: %s, expected ENOSYS", names[i], ename(err));
    else
      escaped("%s: succeeded", names[i]);
    if (rc > 0) waitpid((pid_t)rc, NULL, 0);
  }
  return finish();
}

static int cmd_kexec(void) {
  DENIED("kexec_load(0 segments)", syscall(SYS_kexec_load, 0, 0, NULL, 0));
  DENIED("kexec_file_load(-1, -1)", syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0));
  return finish();
}

static int cmd_modules(void) {
  DENIED("init_module(NULL)", syscall(SYS_init_module, NULL, 0, ""));
  DENIED("finit_module(-1)", syscall(SYS_finit_module, -1, "", 0));
  DENIED("delete_module(bad pointer)", syscall(SYS_delete_module, BAD_PTR, 0));
  DENIED("delete_module(loop)", syscall(SYS_delete_module, "loop", O_NONBLOCK));
  return finish();
}

static int cmd_reboot(void) {
  // A wrong magic number gets EINVAL from the kernel: nothing reboots even if the call got through.
  DENIED("reboot(bad magic)", syscall(SYS_reboot, 0, 0, 0, NULL));
  DENIED("reboot(CAD_OFF, bad magic2)", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, 0, LINUX_REBOOT_CMD_CAD_OFF, NULL));
  return finish();
}

static int cmd_swap(void) {
  DENIED("swapon(bad pointer)", syscall(SYS_swapon, BAD_PTR, 0));
  DENIED("swapoff(bad pointer)", syscall(SYS_swapoff, BAD_PTR));
  return finish();
}

static int cmd_acct(void) {
  DENIED("acct(bad pointer)", syscall(SYS_acct, BAD_PTR));
  DENIED("acct(NULL)", syscall(SYS_acct, NULL));
  return finish();
}

static int cmd_settimeofday(void) {
  DENIED("settimeofday(bad pointer)", syscall(SYS_settimeofday, BAD_PTR, NULL));
  return finish();
}

static int cmd_clock_settime(void) {
  DENIED("clock_settime(REALTIME, bad pointer)", syscall(SYS_clock_settime, CLOCK_REALTIME, BAD_PTR));
  return finish();
}

static int cmd_adjtimex(void) {
  // modes = 0 only reads the clock state: any process may do that unless the call is filtered.
  struct timex tx;
  memset(&tx, 0, sizeof tx);
  DENIED("adjtimex(read only)", syscall(SYS_adjtimex, &tx));
  memset(&tx, 0, sizeof tx);
  DENIED("clock_adjtime(REALTIME, read only)", syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx));
  return finish();
}

// Shocker (2014): name_to_handle_at + open_by_handle_at open any inode by number, outside the root.
static int cmd_open_by_handle_at(void) {
  struct {
    struct file_handle fh;
    unsigned char bytes[MAX_HANDLE_SZ];
  } h;
  memset(&h, 0, sizeof h);
  h.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  DENIED("name_to_handle_at(/)", syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &h.fh, &mount_id, 0));
  int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  // Brute-force style: ext4/xfs style FILEID_INO32_GEN handles of low inode numbers (2 = fs root).
  for (uint32_t ino = 2; ino <= 12; ino += 5) {
    memset(&h, 0, sizeof h);
    h.fh.handle_bytes = 8;
    h.fh.handle_type = 1;
    memcpy(h.fh.f_handle, &ino, sizeof ino);
    char what[64];
    snprintf(what, sizeof what, "open_by_handle_at(/, ino %u)", ino);
    DENIED_FD(what, syscall(SYS_open_by_handle_at, root, &h.fh, O_RDONLY));
  }
  DENIED_FD("open_by_handle_at(-1, bad handle)", syscall(SYS_open_by_handle_at, -1, BAD_PTR, O_RDONLY));
  close(root);
  return finish();
}

static int cmd_syslog(void) {
  DENIED("syslog(SIZE_BUFFER)", syscall(SYS_syslog, 10, NULL, 0));
  DENIED("syslog(READ_ALL, bad buffer)", syscall(SYS_syslog, 3, BAD_PTR, 16));
  return finish();
}

// Smaller kernel surfaces the policy denies: LDT, I/O ports, ASLR off, KASLR-leaking kcmp, quotas.
static int cmd_misc_denied(void) {
  char buf[16];
  DENIED("modify_ldt(read)", syscall(SYS_modify_ldt, 0, buf, sizeof buf));
  DENIED("iopl(0)", syscall(SYS_iopl, 0));
  DENIED("ioperm(0x80, 1, 0)", syscall(SYS_ioperm, 0x80, 1, 0));
  DENIED("personality(ADDR_NO_RANDOMIZE)", syscall(SYS_personality, PER_LINUX | ADDR_NO_RANDOMIZE));
  DENIED("personality(READ_IMPLIES_EXEC)", syscall(SYS_personality, PER_LINUX | READ_IMPLIES_EXEC));
  DENIED("kcmp(self, self, KCMP_VM)", syscall(SYS_kcmp, getpid(), getpid(), KCMP_VM, 0, 0));
  DENIED("quotactl(bad pointer)", syscall(SYS_quotactl, 0, BAD_PTR, 0, NULL));
  DENIED("lookup_dcookie", syscall(SYS_lookup_dcookie, 0, NULL, 0));
  DENIED("vhangup", syscall(SYS_vhangup));
  return finish();
}

// ---------------------------------------------------------------------------------------------
// Terminal injection: TIOCSTI on a pty that is our controlling terminal (so the kernel itself
// would allow it), plainly and with a high bit set in the 64-bit command (CVE-2019-10063).
// ---------------------------------------------------------------------------------------------

static long tiocsti_on_ctty(void* arg) {
  unsigned long cmd = *(unsigned long*)arg;
  if (setsid() < 0) return -2;
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return -3;
  int unlock = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) != 0) return -4;
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_CLOEXEC);
  if (slave < 0) return -5;
  if (ioctl(slave, TIOCSCTTY, 0) != 0) return -6;
  char c = '\n';
  errno = 0;
  return syscall(SYS_ioctl, slave, cmd, &c);
}

static void try_tiocsti(const char* what, unsigned long cmd) {
  long rc;
  int err;
  int status = in_child(tiocsti_on_ctty, &cmd, &rc, &err);
  if (WIFSIGNALED(status))
    blocked("%s: killed by signal %d", what, WTERMSIG(status));
  else if (rc < -1)
    fail("%s: could not set up a pty as controlling terminal (step %ld: %s)", what, -rc, ename(err));
  else
    expect_denied(what, rc, err);
}

static int cmd_tiocsti(void) {
  try_tiocsti("ioctl(ctty, TIOCSTI)", TIOCSTI);
  return finish();
}

static int cmd_tiocsti_high_bits(void) {
  try_tiocsti("ioctl(ctty, TIOCSTI | 1<<32)", TIOCSTI | (1UL << 32));
  try_tiocsti("ioctl(ctty, TIOCSTI | 0x123<<32)", TIOCSTI | (0x123UL << 32));
  return finish();
}

static int cmd_tioclinux(void) {
  char sub = 0;
  DENIED("ioctl(0, TIOCLINUX)", syscall(SYS_ioctl, 0, TIOCLINUX, &sub));
  return finish();
}

// ---------------------------------------------------------------------------------------------
// Socket families. The invalid type variants get EINVAL/ESOCKTNOSUPPORT from the kernel, so they
// show whether the filter (not just a missing capability) stops the family.
// ---------------------------------------------------------------------------------------------

static int cmd_socket_packet(void) {
  DENIED_FD("socket(AF_PACKET, SOCK_RAW)", socket(AF_PACKET, SOCK_RAW, htons(3)));
  DENIED_FD("socket(AF_PACKET, SOCK_DGRAM)", socket(AF_PACKET, SOCK_DGRAM, htons(3)));
  DENIED_FD("socket(AF_PACKET, bad type)", syscall(SYS_socket, AF_PACKET, 15, 0));
  DENIED_FD("socketpair(AF_PACKET)", syscall(SYS_socketpair, AF_PACKET, SOCK_RAW, 0, BAD_PTR));
  return finish();
}

static int cmd_socket_raw(void) {
  DENIED_FD("socket(AF_INET, SOCK_RAW, ICMP)", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
  DENIED_FD("socket(AF_INET, SOCK_RAW, RAW)", socket(AF_INET, SOCK_RAW, IPPROTO_RAW));
  DENIED_FD("socket(AF_INET6, SOCK_RAW, ICMPV6)", socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
  DENIED_FD("socket(AF_INET, SOCK_PACKET)", syscall(SYS_socket, AF_INET, SOCK_PACKET, 0));
  DENIED_FD("socket(AF_INET, SOCK_RAW|1<<32)", syscall(SYS_socket, AF_INET, SOCK_RAW | (1L << 32), IPPROTO_ICMP));
  DENIED_FD("socket(AF_INET|1<<32, SOCK_RAW)", syscall(SYS_socket, AF_INET | (1L << 32), SOCK_RAW, IPPROTO_ICMP));
  return finish();
}

static int cmd_socket_vsock(void) {
  DENIED_FD("socket(AF_VSOCK, SOCK_STREAM)", socket(AF_VSOCK, SOCK_STREAM, 0));
  DENIED_FD("socket(AF_VSOCK, SOCK_DGRAM)", socket(AF_VSOCK, SOCK_DGRAM, 0));
  DENIED_FD("socket(AF_VSOCK|1<<32)", syscall(SYS_socket, AF_VSOCK | (1L << 32), SOCK_STREAM, 0));
  return finish();
}

static int cmd_socket_alg(void) {
  DENIED_FD("socket(AF_ALG, SOCK_SEQPACKET)", socket(AF_ALG, SOCK_SEQPACKET, 0));
  DENIED_FD("socket(AF_ALG, bad type)", syscall(SYS_socket, AF_ALG, 15, 0));
  return finish();
}

// Families whose modules the kernel would load on demand (DCCP, SCTP, RDS...), and AF_UNSPEC.
static int cmd_socket_other(void) {
  static const int families[] = {0, 3, 4, 5, 9, 11, 15, 21, 29, 30, 31, 36, 42, 44, 45};
  for (size_t i = 0; i < sizeof families / sizeof families[0]; ++i) {
    char what[48];
    snprintf(what, sizeof what, "socket(family %d)", families[i]);
    DENIED_FD(what, syscall(SYS_socket, families[i], 15, 0));
  }
  DENIED_FD("socket(AF_INET, SOCK_SEQPACKET, SCTP)", syscall(SYS_socket, AF_INET, SOCK_SEQPACKET, 132));
  DENIED_FD("socket(AF_INET, SOCK_DCCP)", syscall(SYS_socket, AF_INET, 6, 33));
  return finish();
}

// ---------------------------------------------------------------------------------------------
// ABI confusion: the same calls through the i386 entry (int 0x80) and the x32 numbers.
// ---------------------------------------------------------------------------------------------

struct compat_call {
  const char* name;
  long i386_nr, x32_nr;  // x32 numbers without the X32 bit; -1 = not tried there
  long args[5];
};

static unsigned char* low_page;  // MAP_32BIT scratch memory: int 0x80 only takes 32-bit pointers

static const struct compat_call* compat_calls(void) {
  uint32_t* sockargs = (uint32_t*)low_page;  // socketcall(SYS_SOCKET, {AF_VSOCK, SOCK_STREAM, 0})
  sockargs[0] = AF_VSOCK, sockargs[1] = SOCK_STREAM, sockargs[2] = 0;
  long low = (long)(uintptr_t)low_page;
  static struct compat_call calls[16];
  struct compat_call table[] = {
      {"getpid", 20, 39, {0}},
      {"unshare", 310, 272, {CLONE_NEWUSER}},
      {"clone", 120, 56, {CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0}},
      {"socketcall", 102, -1, {1 /* SYS_SOCKET */, low}},
      {"socket", 359, 41, {AF_VSOCK, SOCK_STREAM, 0}},
      {"keyctl", 288, 250, {KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0}},
      {"bpf", 357, 321, {BPF_MAP_CREATE, 0, 64}},
      {"io_uring_setup", 425, 425, {1, 0}},
      {"userfaultfd", 374, 323, {O_CLOEXEC | UFFD_USER_MODE_ONLY}},
      {"perf_event_open", 336, 298, {0, 0, -1, -1, 0}},
      {"mount", 21, 165, {1, 1, 1, 0, 0}},
      {"setns", 346, 308, {-1, 0}},
      {"chroot", 61, 161, {1}},
      {"ioctl_tiocsti", 54, 514, {0, TIOCSTI, 1}},
      {"open_by_handle_at", 342, 304, {-1, 1, 0}},
      {NULL, 0, 0, {0}},
  };
  memcpy(calls, table, sizeof table);
  return calls;
}

static long int80(const long* a, long nr) {
  long ret;
  __asm__ volatile("int $0x80"
                   : "=a"(ret)
                   : "a"(nr), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4])
                   : "memory", "r8", "r9", "r10", "r11");
  return ret;
}

static const struct compat_call* current_call;

static long do_int80(void* unused) {
  (void)unused;
  long r = int80(current_call->args, current_call->i386_nr);
  if (r < 0 && r > -4096) {
    errno = (int)-r;
    return -1;
  }
  return r;
}

static long do_x32(void* unused) {
  (void)unused;
  const long* a = current_call->args;
  return syscall(current_call->x32_nr | X32_BIT, a[0], a[1], a[2], a[3], a[4]);
}

static int cmd_compat(int argc, char** argv, int x32) {
  if (argc < 1) fail("usage: %s CALL", x32 ? "x32" : "i386");
  low_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (low_page == MAP_FAILED) fail("mmap MAP_32BIT: %s", ename(errno));
  for (const struct compat_call* c = compat_calls(); c->name; ++c) {
    if (strcmp(c->name, argv[0]) != 0) continue;
    if (x32 && c->x32_nr < 0) fail("%s has no x32 variant", c->name);
    current_call = c;
    char what[80];
    snprintf(what, sizeof what, "%s %s (nr %ld)", x32 ? "x32" : "int 0x80", c->name,
             x32 ? (c->x32_nr | X32_BIT) : c->i386_nr);
    long rc;
    int err;
    int status = in_child(x32 ? do_x32 : do_int80, NULL, &rc, &err);
    if (WIFSIGNALED(status))
      blocked("%s: process killed by %s", what, strsignal(WTERMSIG(status)));
    else
      expect_denied(what, rc, err);
    return finish();
  }
  fail("unknown call %s", argv[0]);
}

// ---------------------------------------------------------------------------------------------
// Escapes through leftovers of the runtime: fds, /proc/<pid>/exe, chroot, device nodes, procfs.
// ---------------------------------------------------------------------------------------------

// Only 0-2 may be open, and none of them may be a directory (CVE-2024-21626: a leaked host
// directory fd gives fchdir/openat("..") access to the host tree).
static int cmd_fds(void) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) fail("opendir /proc/self/fd: %s", ename(errno));
  int self = dirfd(dir);
  struct dirent* e;
  while ((e = readdir(dir))) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd == self) continue;
    char link[256] = "", path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    link[n > 0 ? n : 0] = '\0';
    struct stat st;
    int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    if (fd > 2) escaped("fd %d -> %s leaked into the sandbox", fd, link);
    if (fchdir(fd) == 0) escaped("fchdir(fd %d -> %s) succeeded", fd, link);
    int up = openat(fd, "..", O_RDONLY | O_CLOEXEC);
    if (up >= 0) {
      escaped("openat(fd %d -> %s, \"..\") succeeded", fd, link);
      close(up);
    }
    if (!is_dir && fd <= 2) blocked("fd %d -> %s", fd, link);
  }
  closedir(dir);
  return finish();
}

// PID 1 holds the control socket to the host: none of its fds may be opened or duplicated.
static int cmd_init_fds(void) {
  for (int fd = 0; fd < 8; ++fd) {
    char path[64], what[80];
    snprintf(path, sizeof path, "/proc/1/fd/%d", fd);
    snprintf(what, sizeof what, "open %s", path);
    int got = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (got >= 0) {
      escaped("%s: succeeded", what);
      close(got);
    } else if (errno == ENOENT) {
      continue;
    } else {
      blocked("%s: %s", what, ename(errno));
    }
  }
  int pidfd = (int)syscall(SYS_pidfd_open, 1, 0);
  if (pidfd < 0) {
    blocked("pidfd_open(1): %s", ename(errno));
  } else {
    for (int fd = 0; fd < 5; ++fd) {
      char what[48];
      snprintf(what, sizeof what, "pidfd_getfd(init, %d)", fd);
      MUST_FAIL(what, syscall(SYS_pidfd_getfd, pidfd, fd, 0), EPERM, EBADF);
    }
    close(pidfd);
  }
  MUST_FAIL("open /proc/1/mem", open("/proc/1/mem", O_RDONLY | O_CLOEXEC), EACCES, EPERM);
  MUST_FAIL("open /proc/1/environ", open("/proc/1/environ", O_RDONLY | O_CLOEXEC), EACCES, EPERM);
  return finish();
}

// CVE-2019-5736: rewrite the binary of a runtime process through /proc/<pid>/exe.
static int cmd_exe_write(void) {
  const char* paths[] = {"/proc/1/exe", "/proc/self/exe"};
  for (int i = 0; i < 2; ++i) {
    char what[64];
    snprintf(what, sizeof what, "open(%s, O_WRONLY)", paths[i]);
    MUST_FAIL(what, open(paths[i], O_WRONLY | O_CLOEXEC), EACCES, EPERM, ETXTBSY, EROFS);
    snprintf(what, sizeof what, "open(%s, O_RDWR)", paths[i]);
    MUST_FAIL(what, open(paths[i], O_RDWR | O_CLOEXEC), EACCES, EPERM, ETXTBSY, EROFS);
    // The runc exploit opened O_PATH first and reopened for writing once the runtime exited.
    int fd = open(paths[i], O_PATH | O_CLOEXEC);
    if (fd < 0) {
      blocked("open(%s, O_PATH): %s", paths[i], ename(errno));
      continue;
    }
    char via[64];
    snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
    snprintf(what, sizeof what, "reopen %s O_PATH fd for writing", paths[i]);
    MUST_FAIL(what, open(via, O_WRONLY | O_CLOEXEC), EACCES, EPERM, ETXTBSY, EROFS);
    close(fd);
  }
  MUST_FAIL("readlink(/proc/1/exe)", readlink("/proc/1/exe", (char[256]){0}, 255), EACCES, EPERM);
  return finish();
}

static int exists(const char* path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

// chroot into a subdirectory, then climb with chdir("..") (the classic escape) and through an fd
// opened before the chroot. A host-only marker (argv[0], relative to /) must never come in reach.
static int cmd_chroot_escape(int argc, char** argv) {
  if (argc < 1) fail("usage: chroot-escape HOST_MARKER_RELATIVE_PATH");
  const char* marker = argv[0];
  mkdir("/tmp/jail", 0755);
  int outside = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DENIED("chroot(/tmp/jail)", syscall(SYS_chroot, "/tmp/jail"));
  if (fchdir(outside) != 0) fail("fchdir: %s", ename(errno));
  for (int i = 0; i < 64; ++i) (void)!chdir("..");
  DENIED("chroot(.) after climbing", syscall(SYS_chroot, "."));
  if (exists(marker)) escaped("host marker %s reachable after the climb", marker);
  char abs[4096];
  snprintf(abs, sizeof abs, "/../../../../%s", marker);
  if (exists(abs)) escaped("host marker reachable as %s", abs);
  if (!escaped_count) blocked("host marker not reachable");
  close(outside);
  return finish();
}

static int cmd_mknod(void) {
  static const struct {
    const char* path;
    mode_t mode;
  } nodes[] = {{"/tmp/sda", S_IFBLK | 0600}, {"/tmp/mem", S_IFCHR | 0600},
               {"/dev/shm/sda", S_IFBLK | 0600}, {"/root/kmsg", S_IFCHR | 0600}};
  dev_t devs[] = {makedev(8, 0), makedev(1, 1), makedev(8, 0), makedev(1, 11)};
  for (int i = 0; i < 4; ++i) {
    char what[64];
    snprintf(what, sizeof what, "mknod %s (%u:%u)", nodes[i].path, major(devs[i]), minor(devs[i]));
    long rc = mknod(nodes[i].path, nodes[i].mode, devs[i]);
    if (rc == 0) {
      escaped("%s: created", what);
      unlink(nodes[i].path);
    } else if (errno == EPERM) {
      blocked("%s: EPERM", what);
    } else {
      escaped("%s: unexpected %s", what, ename(errno));
    }
  }
  return finish();
}

// /dev holds only the harmless nodes; no fuse, cuse, kvm, mem, kmsg, disks.
static int cmd_dev_nodes(void) {
  static const char* const allowed[] = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts",
                                        "shm", "mqueue", "fd", "stdin", "stdout", "stderr", NULL};
  DIR* dir = opendir("/dev");
  if (!dir) fail("opendir /dev: %s", ename(errno));
  struct dirent* e;
  while ((e = readdir(dir))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    int ok = 0;
    for (const char* const* a = allowed; *a; ++a) ok |= strcmp(*a, e->d_name) == 0;
    if (!ok) escaped("/dev/%s present", e->d_name);
  }
  closedir(dir);
  // A private devpts instance: none of the host's terminals.
  DIR* pts = opendir("/dev/pts");
  while (pts && (e = readdir(pts))) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, "ptmx") == 0) continue;
    escaped("/dev/pts/%s present (a terminal we did not open)", e->d_name);
  }
  if (pts) closedir(pts);
  const char* never[] = {"/dev/fuse", "/dev/cuse", "/dev/kvm", "/dev/mem", "/dev/kmsg", "/dev/vsock",
                         "/dev/net/tun", "/dev/vhost-vsock", "/dev/console", "/dev/sda", "/dev/vda"};
  for (size_t i = 0; i < sizeof never / sizeof never[0]; ++i) {
    if (exists(never[i]))
      escaped("%s exists", never[i]);
    else
      blocked("%s absent", never[i]);
  }
  return finish();
}

// A device node the operator's volume happens to contain: volumes are nodev.
static int cmd_device_open(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    char what[300];
    snprintf(what, sizeof what, "open %s", argv[i]);
    int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char c;
      ssize_t n = read(fd, &c, 1);
      escaped("%s: opened the device (read returned %zd)", what, n);
      close(fd);
    } else if (errno == EACCES || errno == EPERM) {
      blocked("%s: %s", what, ename(errno));
    } else {
      escaped("%s: unexpected %s", what, ename(errno));
    }
  }
  return finish();
}

// /proc/sys is read-only; a write must fail. If the open succeeds we write back the current
// value, so even a failed sandbox leaves the host as it was.
static int cmd_core_pattern(void) {
  const char* path = "/proc/sys/kernel/core_pattern";
  char current[512];
  if (read_text(path, current, sizeof current) < 0) fail("read %s: %s", path, ename(errno));
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == EROFS || errno == EACCES)
      blocked("open %s for writing: %s", path, ename(errno));
    else
      escaped("open %s for writing: unexpected %s", path, ename(errno));
  } else {
    ssize_t n = write(fd, current, strlen(current));
    if (n >= 0)
      escaped("wrote %s (same value back)", path);
    else
      escaped("opened %s for writing (write: %s)", path, ename(errno));
    close(fd);
  }
  static const char* const others[] = {"/proc/sys/kernel/modprobe", "/proc/sys/fs/binfmt_misc/register",
                                       "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger",
                                       "/proc/sys/kernel/hostname", "/proc/sys/user/max_user_namespaces"};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; ++i) {
    int o = open(others[i], O_WRONLY | O_CLOEXEC);
    if (o >= 0) {
      escaped("open %s for writing succeeded", others[i]);
      close(o);
    } else {
      blocked("%s: %s", others[i], ename(errno));
    }
  }
  return finish();
}

// Kernel-internal files read empty (masked) or not at all; sysfs is read-only.
static int cmd_proc_masks(void) {
  static const char* const masked[] = {"/proc/kcore",     "/proc/kallsyms",    "/proc/timer_list",
                                       "/proc/sched_debug", "/proc/vmallocinfo", "/proc/kpageflags",
                                       "/proc/keys",      "/proc/config.gz"};
  for (size_t i = 0; i < sizeof masked / sizeof masked[0]; ++i) {
    char buf[64];
    int n = read_text(masked[i], buf, sizeof buf);
    if (n > 0)
      escaped("%s readable (%d bytes)", masked[i], n);
    else
      blocked("%s: %s", masked[i], n == 0 ? "empty" : ename(errno));
  }
  static const char* const ro[] = {"/sys/kernel/uevent_helper", "/sys/kernel/mm/transparent_hugepage/enabled",
                                   "/sys/power/state", "/sys/module/loop/parameters/max_part"};
  for (size_t i = 0; i < sizeof ro / sizeof ro[0]; ++i) {
    int fd = open(ro[i], O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      escaped("open %s for writing succeeded", ro[i]);
      close(fd);
    } else {
      blocked("%s: %s", ro[i], ename(errno));
    }
  }
  MUST_FAIL("mkdir /sys/fs/cgroup/escape", mkdir("/sys/fs/cgroup/escape", 0755), EROFS, EACCES, EPERM, ENOENT);
  return finish();
}

// CVE-2022-0492: a new user+cgroup namespace, a cgroup v1 mount, then release_agent.
static int cmd_release_agent(void) {
  DENIED("unshare(NEWUSER|NEWCGROUP|NEWNS)", syscall(SYS_unshare, CLONE_NEWUSER | CLONE_NEWCGROUP | CLONE_NEWNS));
  mkdir("/tmp/cgrp", 0755);
  DENIED("mount cgroup v1 (rdma)", syscall(SYS_mount, "cgroup", "/tmp/cgrp", "cgroup", 0, "rdma"));
  DENIED("mount cgroup v1 (memory)", syscall(SYS_mount, "cgroup", "/tmp/cgrp", "cgroup", 0, "memory"));
  DENIED_FD("fsopen(cgroup)", syscall(SYS_fsopen, "cgroup", FSOPEN_CLOEXEC));
  // No release_agent of the host may be reachable at all.
  static const char* const agents[] = {"/sys/fs/cgroup/release_agent", "/sys/fs/cgroup/memory/release_agent",
                                       "/sys/fs/cgroup/rdma/release_agent", "/tmp/cgrp/release_agent"};
  for (size_t i = 0; i < sizeof agents / sizeof agents[0]; ++i) {
    int fd = open(agents[i], O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      escaped("open %s for writing succeeded", agents[i]);
      close(fd);
    } else {
      blocked("%s: %s", agents[i], ename(errno));
    }
  }
  return finish();
}

// Moving ourselves into another cgroup would leave the sandbox's limits (and its kill switch).
static int cmd_cgroup_move(int argc, char** argv) {
  char before[1024], after[1024];
  read_text("/proc/self/cgroup", before, sizeof before);
  char pid[32];
  snprintf(pid, sizeof pid, "%d\n", getpid());
  for (int i = 0; i < argc; ++i) {
    char path[512];
    snprintf(path, sizeof path, "%s/cgroup.procs", argv[i]);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      blocked("open %s: %s", path, ename(errno));
      continue;
    }
    if (write(fd, pid, strlen(pid)) >= 0)
      escaped("moved ourselves into %s", argv[i]);
    else
      blocked("write %s: %s", path, ename(errno));
    close(fd);
  }
  // Raising the limits of any sandbox's cgroup (ours among them) through such a mount.
  static const char* const knobs[] = {"cgroup.procs", "pids.max", "memory.max", "memory.limit_in_bytes",
                                      "cgroup.kill", "cgroup.freeze"};
  for (int i = 0; i < argc; ++i) {
    DIR* dir = opendir(argv[i]);
    struct dirent* e;
    while (dir && (e = readdir(dir))) {
      if (strncmp(e->d_name, "airlock-", 8) != 0) continue;
      for (size_t k = 0; k < sizeof knobs / sizeof knobs[0]; ++k) {
        char path[768];
        snprintf(path, sizeof path, "%s/%s/%s", argv[i], e->d_name, knobs[k]);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
          escaped("open %s for writing succeeded", path);
          close(fd);
        } else if (errno != ENOENT) {
          blocked("%s: %s", path, ename(errno));
        }
      }
    }
    if (dir) closedir(dir);
  }
  read_text("/proc/self/cgroup", after, sizeof after);
  if (strcmp(before, after) != 0) escaped("/proc/self/cgroup changed");
  return finish();
}

// ptrace and friends against PID 1 (airlock-init, which holds the host's control socket).
static int cmd_ptrace_init(void) {
  MUST_FAIL("ptrace(PTRACE_ATTACH, 1)", ptrace(PTRACE_ATTACH, 1, NULL, NULL), EPERM);
  MUST_FAIL("ptrace(PTRACE_SEIZE, 1)", ptrace(PTRACE_SEIZE, 1, NULL, NULL), EPERM);
  char buf[64];
  struct iovec local = {buf, sizeof buf};
  struct iovec remote = {(void*)0x400000, sizeof buf};
  MUST_FAIL("process_vm_readv(1)", process_vm_readv(1, &local, 1, &remote, 1, 0), EPERM);
  MUST_FAIL("process_vm_writev(1)", process_vm_writev(1, &local, 1, &remote, 1, 0), EPERM);
  DENIED("kcmp(1, self, KCMP_FILE)", syscall(SYS_kcmp, 1, getpid(), KCMP_FILE, 3, 0));
  return finish();
}

// A host process (argv[0] = its host PID) must be invisible: no /proc entry, no signal, no ptrace.
static int cmd_host_pid(int argc, char** argv) {
  if (argc < 1) fail("usage: host-pid PID");
  int pid = atoi(argv[0]);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d", pid);
  if (exists(path)) escaped("%s exists", path);
  MUST_FAIL("kill(host pid, 0)", kill(pid, 0), ESRCH);
  MUST_FAIL("ptrace(ATTACH, host pid)", ptrace(PTRACE_ATTACH, pid, NULL, NULL), ESRCH);
  MUST_FAIL("pidfd_open(host pid)", syscall(SYS_pidfd_open, pid, 0), ESRCH);
  int count = 0;
  DIR* dir = opendir("/proc");
  struct dirent* e;
  while (dir && (e = readdir(dir)))
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9') ++count;
  if (dir) closedir(dir);
  if (count > 16) escaped("%d processes visible in /proc", count);
  else blocked("%d processes visible", count);
  return finish();
}

// Another root reached through /proc/<pid>/{root,cwd}: a host-only marker must stay out of reach.
static int cmd_proc_root(int argc, char** argv) {
  if (argc < 1) fail("usage: proc-root HOST_MARKER_RELATIVE_PATH");
  DIR* dir = opendir("/proc");
  if (!dir) fail("opendir /proc: %s", ename(errno));
  struct dirent* e;
  int tried = 0;
  while ((e = readdir(dir))) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    const char* links[] = {"root", "cwd"};
    for (int l = 0; l < 2; ++l) {
      char path[4200];
      snprintf(path, sizeof path, "/proc/%s/%s/%s", e->d_name, links[l], argv[0]);
      ++tried;
      if (exists(path)) escaped("%s exists", path);
      snprintf(path, sizeof path, "/proc/%s/%s/../../../%s", e->d_name, links[l], argv[0]);
      if (exists(path)) escaped("%s exists", path);
    }
  }
  closedir(dir);
  MUST_FAIL("opendir /proc/1/root", open("/proc/1/root/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), EACCES, EPERM);
  if (!escaped_count) blocked("marker unreachable through %d /proc links", tried);
  return finish();
}

static int cmd_absent(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    if (exists(argv[i]))
      escaped("%s exists", argv[i]);
    else
      blocked("%s: %s", argv[i], ename(errno));
  }
  return finish();
}

// Credentials and capability sets, for the setuid tests and posture checks.
static int cmd_ids(void) {
  uid_t r, e, s;
  getresuid(&r, &e, &s);
  char eff[32] = "?", prm[32] = "?", bnd[32] = "?", nnp[8] = "?";
  status_field("CapEff", eff, sizeof eff);
  status_field("CapPrm", prm, sizeof prm);
  status_field("CapBnd", bnd, sizeof bnd);
  status_field("NoNewPrivs", nnp, sizeof nnp);
  printf("IDS ruid=%u euid=%u suid=%u capeff=%s capprm=%s capbnd=%s nnp=%s\n", r, e, s, eff, prm, bnd, nnp);
  fflush(stdout);
  return 0;
}

static int copy_self(const char* dest) {
  int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  int out = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  if (in < 0 || out < 0) return -1;
  char buf[65536];
  ssize_t n;
  while ((n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n) return -1;
  close(in);
  close(out);
  return 0;
}

// Execs `path ids` as uid/gid `uid` (dropping our capabilities the normal way) and parses it.
static void exec_as(const char* label, const char* path, uid_t uid, unsigned long long allowed_caps) {
  int p[2];
  if (pipe(p) != 0) fail("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    if (getuid() != uid &&
        (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0))
      _exit(3);
    execl(path, path, "ids", (char*)NULL);
    _exit(4);
  }
  close(p[1]);
  char line[512] = "";
  ssize_t n = read(p[0], line, sizeof line - 1);
  close(p[0]);
  int status;
  waitpid(pid, &status, 0);
  if (n <= 0) {
    if (WIFEXITED(status) && WEXITSTATUS(status) >= 3)
      fail("%s: could not exec %s as uid %u (exit %d)", label, path, uid, WEXITSTATUS(status));
    blocked("%s: exec gave no output (status %d)", label, status);
    return;
  }
  line[n] = '\0';
  line[strcspn(line, "\n")] = '\0';
  unsigned euid = 0;
  unsigned long long eff = 0, prm = 0;
  char* f;
  if ((f = strstr(line, "euid="))) euid = (unsigned)strtoul(f + 5, NULL, 10);
  if ((f = strstr(line, "capeff="))) eff = strtoull(f + 7, NULL, 16);
  if ((f = strstr(line, "capprm="))) prm = strtoull(f + 7, NULL, 16);
  if (euid != uid || (eff & ~allowed_caps) || (prm & ~allowed_caps))
    escaped("%s: privileges gained: %s", label, line);
  else
    blocked("%s: %s", label, line);
}

// Setuid-root and file-capability binaries made inside the sandbox (where we are root) grant
// nothing: mounts are nosuid and no_new_privs is set. argv[0] = capability mask root may keep.
static int cmd_setuid(int argc, char** argv) {
  unsigned long long root_caps = argc > 0 ? strtoull(argv[0], NULL, 16) : 0;
  const char* dirs[] = {"/tmp", "/dev/shm", "/var/tmp"};
  for (int d = 0; d < 3; ++d) {
    char suid[128], fcap[128];
    snprintf(suid, sizeof suid, "%s/probe-suid", dirs[d]);
    snprintf(fcap, sizeof fcap, "%s/probe-fcap", dirs[d]);
    if (copy_self(suid) != 0 || chown(suid, 0, 0) != 0 || chmod(suid, 04755) != 0)
      fail("prepare setuid copy %s: %s", suid, ename(errno));
    if (copy_self(fcap) != 0) fail("copy %s: %s", fcap, ename(errno));
    // security.capability v2: every capability permitted and effective (cap_sys_admin+ep ...).
    struct vfs_cap_data cap;
    memset(&cap, 0, sizeof cap);
    cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
    cap.data[0].permitted = 0xffffffffU;
    cap.data[1].permitted = 0x000001ffU;
    if (setxattr(fcap, "security.capability", &cap, XATTR_CAPS_SZ_2, 0) != 0)
      fail("setxattr security.capability on %s: %s", fcap, ename(errno));
    char label[160];
    snprintf(label, sizeof label, "setuid-root %s as uid 1000", suid);
    exec_as(label, suid, 1000, 0);
    snprintf(label, sizeof label, "file caps %s as uid 1000", fcap);
    exec_as(label, fcap, 1000, 0);
    snprintf(label, sizeof label, "file caps %s as root", fcap);
    exec_as(label, fcap, 0, root_caps);
  }
  return finish();
}

// Executes argv[0] (a setuid binary the test prepared) and checks it ran with our own ids.
static int cmd_exec_ids(int argc, char** argv) {
  if (argc < 1) fail("usage: exec-ids PATH [ALLOWED_CAPS_HEX]");
  unsigned long long caps = argc > 1 ? strtoull(argv[1], NULL, 16) : 0;
  exec_as(argv[0], argv[0], getuid(), caps);
  return finish();
}

// The hard core limit is 0 and cannot be raised: no core file of a sandbox process is written.
static int cmd_core_limit(void) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_CORE, &lim) != 0) fail("getrlimit: %s", ename(errno));
  if (lim.rlim_max != 0)
    escaped("RLIMIT_CORE hard limit is %llu", (unsigned long long)lim.rlim_max);
  else
    blocked("RLIMIT_CORE hard limit 0");
  struct rlimit raise = {RLIM_INFINITY, RLIM_INFINITY};
  MUST_FAIL("setrlimit(RLIMIT_CORE, unlimited)", setrlimit(RLIMIT_CORE, &raise), EPERM);
  return finish();
}

// Root keeps CAP_AUDIT_WRITE: a forged AUDIT_USER record must still not reach the host's audit log.
static int cmd_audit_write(void) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
  if (s < 0) {
    blocked("socket(NETLINK_AUDIT): %s", ename(errno));
    return finish();
  }
  struct {
    struct nlmsghdr nh;
    char text[64];
  } req;
  memset(&req, 0, sizeof req);
  strcpy(req.text, "airlock-probe forged record");
  req.nh.nlmsg_len = (uint32_t)NLMSG_LENGTH(strlen(req.text) + 1);
  req.nh.nlmsg_type = AUDIT_USER;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(s, &req, req.nh.nlmsg_len, 0, (struct sockaddr*)&kernel, sizeof kernel) < 0) {
    blocked("send AUDIT_USER: %s", ename(errno));
    close(s);
    return finish();
  }
  struct timeval tv = {2, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[512];
  ssize_t n = recv(s, buf, sizeof buf, 0);
  struct nlmsghdr* ack = (struct nlmsghdr*)buf;
  if (n < 0)
    blocked("AUDIT_USER: no answer (%s)", ename(errno));
  else if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && ack->nlmsg_type == NLMSG_ERROR &&
           ((struct nlmsgerr*)NLMSG_DATA(ack))->error != 0)
    blocked("AUDIT_USER: refused with %s", ename(-((struct nlmsgerr*)NLMSG_DATA(ack))->error));
  else
    escaped("AUDIT_USER record accepted by the kernel");
  close(s);
  return finish();
}

// ---------------------------------------------------------------------------------------------
// Network (the default --net none: a private loopback only).
// ---------------------------------------------------------------------------------------------

static int cmd_tcp_connect(int argc, char** argv) {
  if (argc < 1) fail("usage: tcp-connect PORT");
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("socket: %s", ename(errno));
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[0]))};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  MUST_FAIL("connect 127.0.0.1 (host listener)", connect(s, (struct sockaddr*)&addr, sizeof addr), ECONNREFUSED,
            ENETUNREACH, ETIMEDOUT);
  close(s);
  return finish();
}

static int cmd_udp_send(int argc, char** argv) {
  if (argc < 1) fail("usage: udp-send PORT");
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[0]))};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 3; ++i) (void)!sendto(s, "airlock-probe", 13, 0, (struct sockaddr*)&addr, sizeof addr);
  blocked("sent 3 datagrams to 127.0.0.1:%s inside the sandbox; the host must not receive them", argv[0]);
  close(s);
  return finish();
}

static int unix_connect(const char* what, const char* name, int abstract) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len = strlen(name);
  if (len + 2 > sizeof addr.sun_path) fail("name too long");
  memcpy(addr.sun_path + (abstract ? 1 : 0), name, len);
  socklen_t size = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (abstract ? 1 : 0));
  MUST_FAIL(what, connect(s, (struct sockaddr*)&addr, size), ECONNREFUSED, ENOENT, EACCES);
  close(s);
  return 0;
}

static int cmd_abstract_connect(int argc, char** argv) {
  if (argc < 1) fail("usage: abstract-connect NAME");
  unix_connect("connect @name (host abstract socket)", argv[0], 1);
  return finish();
}

static int cmd_unix_connect(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    char what[300];
    snprintf(what, sizeof what, "connect %s", argv[i]);
    unix_connect(what, argv[i], 0);
  }
  return finish();
}

static int cmd_interfaces(void) {
  struct if_nameindex* list = if_nameindex();
  if (!list) fail("if_nameindex: %s", ename(errno));
  for (struct if_nameindex* i = list; i->if_index; ++i) {
    if (strcmp(i->if_name, "lo") == 0)
      blocked("lo");
    else
      escaped("interface %s present", i->if_name);
  }
  if_freenameindex(list);
  return finish();
}

// ---------------------------------------------------------------------------------------------
// Isolation between sandboxes: leave traces, then look for another sandbox's traces.
// ---------------------------------------------------------------------------------------------

static key_t ipc_key(const char* name) {
  uint32_t h = 2166136261U;
  for (const char* p = name; *p; ++p) h = (h ^ (unsigned char)*p) * 16777619U;
  return (key_t)(h & 0x7fffffff);
}

static void leave_traces(const char* name) {
  char path[256];
  snprintf(path, sizeof path, "/tmp/%s", name);
  if (copy_self(path) != 0) fail("create %s", path);
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  if (copy_self(path) != 0) fail("create %s", path);
  key_t key = ipc_key(name);
  if (shmget(key, 4096, IPC_CREAT | 0666) < 0) fail("shmget: %s", ename(errno));
  if (msgget(key, IPC_CREAT | 0666) < 0) fail("msgget: %s", ename(errno));
  if (semget(key, 1, IPC_CREAT | 0666) < 0) fail("semget: %s", ename(errno));
  snprintf(path, sizeof path, "/%s", name);
  mqd_t q = mq_open(path, O_CREAT | O_RDWR, 0666, NULL);
  if (q == (mqd_t)-1) fail("mq_open: %s", ename(errno));
}

// kind: tmp, shm, sysv, mqueue or proc.
static void look_for_traces(const char* kind, const char* other) {
  char path[512];
  if (strcmp(kind, "tmp") == 0 || strcmp(kind, "shm") == 0) {
    snprintf(path, sizeof path, "%s/%s", kind[0] == 't' ? "/tmp" : "/dev/shm", other);
    if (exists(path)) escaped("%s visible", path);
    else blocked("%s: %s", path, ename(errno));
  } else if (strcmp(kind, "sysv") == 0) {
    key_t key = ipc_key(other);
    MUST_FAIL("shmget(key of other sandbox)", shmget(key, 0, 0), ENOENT);
    MUST_FAIL("msgget(key of other sandbox)", msgget(key, 0), ENOENT);
    MUST_FAIL("semget(key of other sandbox)", semget(key, 0, 0), ENOENT);
  } else if (strcmp(kind, "mqueue") == 0) {
    snprintf(path, sizeof path, "/%s", other);
    mqd_t q = mq_open(path, O_RDONLY);
    if (q != (mqd_t)-1) escaped("POSIX mq %s visible", path), mq_close(q);
    else blocked("mq_open(%s): %s", path, ename(errno));
  } else if (strcmp(kind, "proc") == 0) {
    DIR* dir = opendir("/proc");
    struct dirent* e;
    int seen = 0;
    while (dir && (e = readdir(dir))) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
      char cmd[512];
      snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
      int n = read_text(path, cmd, sizeof cmd);
      for (int i = 0; i < n; ++i)
        if (cmd[i] == '\0') cmd[i] = ' ';
      ++seen;
      if (n > 0 && strstr(cmd, other)) escaped("process %s of %s visible", e->d_name, other);
    }
    if (dir) closedir(dir);
    if (!escaped_count) blocked("none of %d visible processes belongs to %s", seen, other);
  } else {
    fail("unknown trace kind %s", kind);
  }
}

// isolate NAME: leave traces named NAME, print "READY <uid_map>", then answer each stdin line
// "check KIND OTHER" with a verdict line; exit at EOF.
static int cmd_isolate(int argc, char** argv) {
  if (argc < 1) fail("usage: isolate NAME");
  leave_traces(argv[0]);
  char map[256];
  if (read_text("/proc/self/uid_map", map, sizeof map) < 0) fail("uid_map");
  map[strcspn(map, "\n")] = '\0';
  printf("READY %s\n", map);
  fflush(stdout);
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = '\0';
    char kind[16], other[200];
    if (sscanf(line, "check %15s %199s", kind, other) != 2) continue;
    blocked_notes[0] = escaped_notes[0] = '\0';
    escaped_count = 0;
    look_for_traces(kind, other);
    finish();
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Kill evasion and resource bombs.
// ---------------------------------------------------------------------------------------------

static void ignore_signals(void) {
  for (int sig = 1; sig < 32; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCHLD) signal(sig, SIG_IGN);
}

// evade [TOKEN]: print our uid_map, then scatter: setsid + double fork, a separate process group,
// every process ignoring SIGTERM/SIGHUP/SIGINT. Only SIGKILL of the whole sandbox ends this.
static int cmd_evade(int argc, char** argv) {
  (void)argc, (void)argv;  // the token only marks our processes in the host's /proc
  char map[256];
  if (read_text("/proc/self/uid_map", map, sizeof map) < 0) fail("uid_map");
  map[strcspn(map, "\n")] = '\0';
  ignore_signals();
  pid_t child = fork();
  if (child == 0) {
    setsid();
    if (fork() == 0) {
      setsid();
      for (;;) pause();
    }
    _exit(0);
  }
  waitpid(child, NULL, 0);
  if (fork() == 0) {
    setpgid(0, 0);
    for (;;) pause();
  }
  printf("READY %s\n", map);
  fflush(stdout);
  for (;;) pause();
}

// evade-flood [TOKEN]: print our uid_map, then ignore every signal and write to stdout forever, so
// a reader that stops reading leaves us blocked in write(): the deadline must still kill us.
static int cmd_evade_flood(int argc, char** argv) {
  (void)argc, (void)argv;
  char map[256];
  if (read_text("/proc/self/uid_map", map, sizeof map) < 0) fail("uid_map");
  map[strcspn(map, "\n")] = '\0';
  ignore_signals();
  printf("READY %s\n", map);
  fflush(stdout);
  static char block[1 << 16];
  memset(block, 'f', sizeof block);
  for (;;)
    if (write(1, block, sizeof block) < 0) pause();
}

// spin SECONDS PROCESSES: burn CPU in that many processes for that long (wall clock).
static int cmd_spin(int argc, char** argv) {
  if (argc < 2) fail("usage: spin SECONDS PROCESSES");
  double seconds = atof(argv[0]);
  int processes = atoi(argv[1]);
  for (int i = 1; i < processes; ++i)
    if (fork() == 0) break;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  volatile unsigned long spins = 0;
  do {
    for (int i = 0; i < 100000; ++i) ++spins;
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
  while (wait(NULL) > 0) {
  }
  return 0;
}

// cwd: the working directory Airlock gave us must lie inside the sandbox's root (CVE-2024-21626:
// a leaked host directory fd as working directory shows up as "(unreachable)/...").
static int cmd_cwd(void) {
  char buf[4096];
  if (!getcwd(buf, sizeof buf))
    escaped("getcwd: %s (working directory outside the root?)", ename(errno));
  else if (buf[0] != '/')
    escaped("working directory outside the root: %s", buf);
  else
    blocked("working directory %s", buf);
  return finish();
}

// daemonize [TOKEN]: leave a setsid'd, double-forked, signal-ignoring grandchild that keeps our
// stdout and stderr open, print our uid_map, and exit 0 at once.
static int cmd_daemonize(int argc, char** argv) {
  (void)argc, (void)argv;
  char map[256];
  if (read_text("/proc/self/uid_map", map, sizeof map) < 0) fail("uid_map");
  map[strcspn(map, "\n")] = '\0';
  pid_t child = fork();
  if (child == 0) {
    setsid();
    if (fork() == 0) {
      ignore_signals();
      for (;;) pause();
    }
    _exit(0);
  }
  waitpid(child, NULL, 0);
  printf("READY %s\n", map);
  fflush(stdout);
  return 0;
}

// Every process forks until fork fails; the first process reports how far it got.
static int cmd_forkbomb(int argc, char** argv) {
  long limit = argc > 0 ? atol(argv[0]) : 32;
  long made = 0;
  for (;;) {
    pid_t pid = fork();
    if (pid == 0) {
      for (;;)
        if (fork() < 0) usleep(1000);
    }
    if (pid < 0) {
      if (errno == EAGAIN && made <= limit)
        blocked("fork: EAGAIN after %ld forks (limit %ld)", made, limit);
      else
        escaped("fork: %s after %ld forks (limit %ld)", ename(errno), made, limit);
      return finish();
    }
    if (++made > 100000) {
      escaped("fork: %ld processes made without hitting a limit", made);
      return finish();
    }
  }
}

// membomb MIB [anon|sysv]: touch MIB MiB of anonymous memory, or of 1 MiB SysV shm segments
// (which outlive their creator; only the IPC namespace's end frees them).
static int cmd_membomb(int argc, char** argv) {
  long max_mb = argc > 0 ? atol(argv[0]) : 2048;
  int sysv = argc > 1 && strcmp(argv[1], "sysv") == 0;
  for (long mb = 1; mb <= max_mb; ++mb) {
    char* p;
    if (sysv) {
      int id = shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0600);
      p = id < 0 ? NULL : shmat(id, NULL, 0);
      if (p == (char*)-1) p = NULL;
    } else {
      p = malloc(1 << 20);
    }
    if (!p) {
      blocked("%s allocation failed after %ld MiB: %s", sysv ? "SysV shm" : "anonymous", mb, ename(errno));
      return finish();
    }
    memset(p, (int)mb, 1 << 20);
  }
  escaped("allocated and touched %ld MiB without being stopped", max_mb);
  return finish();
}

// fill LIMIT_BYTES FILE...: writes each file until a write fails, keeping them all; the total
// must stop at ENOSPC/EDQUOT/EFBIG within LIMIT_BYTES. Gives up (escaped) at 4x the limit.
static int cmd_fill(int argc, char** argv) {
  if (argc < 2) fail("usage: fill LIMIT_BYTES FILE...");
  long long limit = atoll(argv[0]), total = 0;
  static char block[1 << 20];
  memset(block, 'x', sizeof block);
  for (int i = 1; i < argc && total <= limit * 4; ++i) {
    int fd = open(argv[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fail("open %s: %s", argv[i], ename(errno));
    long long here = 0;
    for (;;) {
      ssize_t n = write(fd, block, sizeof block);
      if (n > 0) {
        here += n;
        if (total + here > limit * 4) break;
        continue;
      }
      int err = n < 0 ? errno : ENOSPC;
      if (err == ENOSPC || err == EDQUOT || err == EFBIG)
        blocked("%s: %s after %lld bytes", argv[i], ename(err), here);
      else
        escaped("%s: unexpected %s after %lld bytes", argv[i], ename(err), here);
      break;
    }
    total += here;
    close(fd);
  }
  for (int i = 1; i < argc; ++i) unlink(argv[i]);
  if (total > limit) escaped("wrote %lld bytes in all, limit %lld", total, limit);
  return finish();
}

// inodes DIR: creates empty files until that fails; must end in ENOSPC (the writable layer's
// inode limit), not run the host out of inodes.
static int cmd_inodes(int argc, char** argv) {
  if (argc < 1) fail("usage: inodes DIR");
  if (mkdir(argv[0], 0700) != 0 && errno != EEXIST) fail("mkdir %s: %s", argv[0], ename(errno));
  long made = 0;
  char path[4200];
  for (;;) {
    snprintf(path, sizeof path, "%s/%ld", argv[0], made);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      close(fd);
      if (++made > 2000000) break;
      continue;
    }
    if (errno == ENOSPC || errno == EDQUOT)
      blocked("create: %s after %ld files", ename(errno), made);
    else
      escaped("create: unexpected %s after %ld files", ename(errno), made);
    return finish();
  }
  escaped("created %ld files without hitting a limit", made);
  return finish();
}

static int cmd_fd_exhaust(void) {
  long opened = 0;
  for (;;) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (++opened > 10000000) break;
      continue;
    }
    if (errno == EMFILE)
      blocked("open: EMFILE after %ld fds", opened);
    else
      escaped("open: %s after %ld fds (expected EMFILE)", ename(errno), opened);
    return finish();
  }
  escaped("opened %ld fds without EMFILE", opened);
  return finish();
}

// argv ...: prints the count, total length and FNV-1a of all arguments (NUL-separated).
static int cmd_argv(int argc, char** argv) {
  unsigned long long h = 1469598103934665603ULL, bytes = 0;
  for (int i = 0; i < argc; ++i) {
    for (const char* p = argv[i];; ++p) {
      h = (h ^ (unsigned char)*p) * 1099511628211ULL;
      ++bytes;
      if (!*p) break;
    }
  }
  printf("ARGV count=%d bytes=%llu fnv=%016llx\n", argc, bytes, h);
  return 0;
}

// flood BYTES: writes a fixed 4 KiB pattern to stdout until BYTES are out.
static int cmd_flood(int argc, char** argv) {
  if (argc < 1) fail("usage: flood BYTES");
  long long left = atoll(argv[0]);
  static char block[1 << 16];
  for (size_t i = 0; i < sizeof block; ++i) block[i] = (char)('a' + (i % 4096) % 26);
  while (left > 0) {
    size_t chunk = left < (long long)sizeof block ? (size_t)left : sizeof block;
    ssize_t n = write(1, block, chunk);
    if (n <= 0) return 2;
    left -= n;
  }
  return 0;
}

// sink: reads stdin 1 KiB at a time with short pauses (a slow consumer) and reports the total.
static int cmd_sink(void) {
  char buf[1024];
  long long total = 0;
  long reads = 0;
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) {
    total += n;
    if (++reads % 64 == 0) usleep(100);
  }
  printf("SINK bytes=%lld\n", total);
  return n < 0 ? 2 : 0;
}

// ---------------------------------------------------------------------------------------------

struct command {
  const char* name;
  int (*plain)(void);
  int (*with_args)(int, char**);
};

static int cmd_i386(int argc, char** argv) { return cmd_compat(argc, argv, 0); }
static int cmd_x32(int argc, char** argv) { return cmd_compat(argc, argv, 1); }

static const struct command commands[] = {
    {"io_uring", cmd_io_uring, NULL},
    {"userfaultfd", cmd_userfaultfd, NULL},
    {"bpf", cmd_bpf, NULL},
    {"perf_event_open", cmd_perf_event_open, NULL},
    {"keyctl", cmd_keyctl, NULL},
    {"add_key", cmd_add_key, NULL},
    {"request_key", cmd_request_key, NULL},
    {"proc-keys", cmd_proc_keys, NULL},
    {"mount", cmd_mount, NULL},
    {"mount-fs", cmd_mount_fs, NULL},
    {"umount2", cmd_umount2, NULL},
    {"fsopen", cmd_fsopen, NULL},
    {"open_tree", cmd_open_tree, NULL},
    {"move_mount", cmd_move_mount, NULL},
    {"fsmount-fspick", cmd_fsmount_fspick, NULL},
    {"mount_setattr", cmd_mount_setattr, NULL},
    {"pivot_root", cmd_pivot_root, NULL},
    {"chroot", cmd_chroot, NULL},
    {"setns", cmd_setns, NULL},
    {"unshare", NULL, cmd_unshare},
    {"clone", NULL, cmd_clone},
    {"clone3", cmd_clone3, NULL},
    {"kexec", cmd_kexec, NULL},
    {"modules", cmd_modules, NULL},
    {"reboot", cmd_reboot, NULL},
    {"swap", cmd_swap, NULL},
    {"acct", cmd_acct, NULL},
    {"settimeofday", cmd_settimeofday, NULL},
    {"clock_settime", cmd_clock_settime, NULL},
    {"adjtimex", cmd_adjtimex, NULL},
    {"open_by_handle_at", cmd_open_by_handle_at, NULL},
    {"syslog", cmd_syslog, NULL},
    {"misc-denied", cmd_misc_denied, NULL},
    {"tiocsti", cmd_tiocsti, NULL},
    {"tiocsti-high-bits", cmd_tiocsti_high_bits, NULL},
    {"tioclinux", cmd_tioclinux, NULL},
    {"socket-packet", cmd_socket_packet, NULL},
    {"socket-raw", cmd_socket_raw, NULL},
    {"socket-vsock", cmd_socket_vsock, NULL},
    {"socket-alg", cmd_socket_alg, NULL},
    {"socket-other", cmd_socket_other, NULL},
    {"i386", NULL, cmd_i386},
    {"x32", NULL, cmd_x32},
    {"fds", cmd_fds, NULL},
    {"init-fds", cmd_init_fds, NULL},
    {"exe-write", cmd_exe_write, NULL},
    {"chroot-escape", NULL, cmd_chroot_escape},
    {"mknod", cmd_mknod, NULL},
    {"dev-nodes", cmd_dev_nodes, NULL},
    {"device-open", NULL, cmd_device_open},
    {"core-pattern", cmd_core_pattern, NULL},
    {"proc-masks", cmd_proc_masks, NULL},
    {"release-agent", cmd_release_agent, NULL},
    {"cgroup-move", NULL, cmd_cgroup_move},
    {"ptrace-init", cmd_ptrace_init, NULL},
    {"host-pid", NULL, cmd_host_pid},
    {"proc-root", NULL, cmd_proc_root},
    {"absent", NULL, cmd_absent},
    {"ids", cmd_ids, NULL},
    {"setuid", NULL, cmd_setuid},
    {"exec-ids", NULL, cmd_exec_ids},
    {"core-limit", cmd_core_limit, NULL},
    {"audit-write", cmd_audit_write, NULL},
    {"tcp-connect", NULL, cmd_tcp_connect},
    {"udp-send", NULL, cmd_udp_send},
    {"abstract-connect", NULL, cmd_abstract_connect},
    {"unix-connect", NULL, cmd_unix_connect},
    {"interfaces", cmd_interfaces, NULL},
    {"isolate", NULL, cmd_isolate},
    {"evade", NULL, cmd_evade},
    {"evade-flood", NULL, cmd_evade_flood},
    {"daemonize", NULL, cmd_daemonize},
    {"spin", NULL, cmd_spin},
    {"cwd", cmd_cwd, NULL},
    {"forkbomb", NULL, cmd_forkbomb},
    {"membomb", NULL, cmd_membomb},
    {"fill", NULL, cmd_fill},
    {"inodes", NULL, cmd_inodes},
    {"fd-exhaust", cmd_fd_exhaust, NULL},
    {"argv", NULL, cmd_argv},
    {"flood", NULL, cmd_flood},
    {"sink", cmd_sink, NULL},
};

static void usage(void) {
  fprintf(stderr, "usage: airlock-probe COMMAND [ARG...]\ncommands:");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i) fprintf(stderr, " %s", commands[i].name);
  fprintf(stderr, "\n");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i) {
    if (strcmp(commands[i].name, argv[1]) != 0) continue;
    return commands[i].plain ? commands[i].plain() : commands[i].with_args(argc - 2, argv + 2);
  }
  usage();
  return 2;
}
