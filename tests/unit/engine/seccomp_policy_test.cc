// Tests of the sandbox seccomp policy: the parser, invariants of the reviewed policy file, the
// compiled program run through a BPF interpreter, and the generated program installed in a
// forked child, where each attack is tried for real (with a native run of the same call to show
// the probe would have worked without the filter).
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "engine/seccomp/policy.h"
#include "engine/seccomp_program.h"

namespace airlock::seccomp {
namespace {

constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr uint32_t kEperm = SECCOMP_RET_ERRNO | EPERM;
constexpr uint32_t kEnosys = SECCOMP_RET_ERRNO | ENOSYS;
constexpr uint32_t kKillProcess = SECCOMP_RET_KILL_PROCESS;
constexpr uint64_t kNsFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                              CLONE_NEWPID | CLONE_NEWNET;

const std::string kHeader = "default errno ENOSYS\nbad_arch kill_process\n";

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

TEST(SeccompPolicyParser, ParsesActionsSyscallsAndConditions) {
  auto policy = parse_policy(kHeader +
                             "allow read write  # comment\n"
                             "\n"
                             "errno EPERM mount\n"
                             "allow clone if arg0 & 0x7E020000 == 0\n"
                             "errno EPERM ioctl if arg1 & 0xffffffff == TIOCSTI and arg0 < 3\n");
  ASSERT_TRUE(policy.ok()) << policy.error().describe();
  EXPECT_EQ(policy->default_action, (Action{Action::Kind::kErrno, ENOSYS}));
  EXPECT_EQ(policy->bad_arch_action, (Action{Action::Kind::kKillProcess}));
  ASSERT_EQ(policy->rules.size(), 5u);
  EXPECT_EQ(policy->rules[0].syscall, "read");
  EXPECT_EQ(policy->rules[0].number, SYS_read);
  EXPECT_EQ(policy->rules[1].number, SYS_write);
  EXPECT_EQ(policy->rules[2].action, (Action{Action::Kind::kErrno, EPERM}));
  EXPECT_EQ(policy->rules[2].line, 5);
  EXPECT_EQ(policy->rules[3].conditions,
            (std::vector<Condition>{{0, Condition::Op::kMaskedEq, 0x7E020000, 0}}));
  EXPECT_EQ(policy->rules[4].conditions,
            (std::vector<Condition>{{1, Condition::Op::kMaskedEq, 0xffffffff, 0x5412}, {0, Condition::Op::kLt, 0, 3}}));
}

TEST(SeccompPolicyParser, ExpandsSetsDefinesAndComplementsIntoDisjointRules) {
  auto policy = parse_policy(kHeader +
                             "define TYPES {1, 2}\n"
                             "define FAMILY AF_INET|0\n"
                             "allow socket if arg0 == FAMILY and arg1 & 0xf in TYPES\n"
                             "errno EPERM socket if arg0 == FAMILY and arg1 & 0xf not in TYPES\n"
                             "errno EPERM socket if arg0 in {0, 3..5}\n");
  ASSERT_TRUE(policy.ok()) << policy.error().describe();
  auto rules = policy->rules_for("socket");
  // For every type value exactly one rule matches, and it is "allow" exactly for 1 and 2.
  for (uint64_t type = 0; type < 16; ++type) {
    int matches = 0;
    for (const Rule* rule : rules) {
      if (rule->conditions.size() != 2 || !rule->conditions[0].holds(AF_INET) || !rule->conditions[1].holds(type))
        continue;
      ++matches;
      EXPECT_EQ(rule->action.kind == Action::Kind::kAllow, type == 1 || type == 2) << "type " << type;
    }
    EXPECT_EQ(matches, 1) << "type " << type;
  }
  int family_rules = 0;
  for (const Rule* rule : rules) family_rules += rule->conditions.size() == 1;
  EXPECT_EQ(family_rules, 4);  // 0, 3, 4, 5
}

void expect_parse_error(const std::string& body, const std::string& expected) {
  auto policy = parse_policy(kHeader + body);
  ASSERT_FALSE(policy.ok()) << "accepted: " << body;
  EXPECT_NE(policy.error().message.find(expected), std::string::npos)
      << "error for [" << body << "] was: " << policy.error().message;
}

TEST(SeccompPolicyParser, MalformedLinesFailWithTheirLineNumber) {
  expect_parse_error("allow read\nfrobnicate write\n", "line 4: unknown action 'frobnicate'");
  expect_parse_error("allow\n", "line 3: rule names no syscall");
  expect_parse_error("errno EBOGUS read\n", "line 3: unknown errno name 'EBOGUS'");
  expect_parse_error("allow read if arg7 == 1\n", "line 3: expected arg0..arg5");
  expect_parse_error("allow read if arg0 == zz\n", "line 3: unknown constant 'zz'");
  expect_parse_error("allow read if arg0 == 0x\n", "line 3: malformed number");
  expect_parse_error("allow read if arg0 & 0 == 0\n", "line 3: mask 0 matches every value");
  expect_parse_error("allow read if arg0 & 0xf == 0x10\n", "line 3: value 16 has bits outside the mask");
  expect_parse_error("allow read if arg0 == 1 and arg0 == 2\n", "line 3: arg0 compared twice");
  expect_parse_error("allow read if arg0 in {1, 2\n", "line 3: unterminated set");
  expect_parse_error("allow read if arg0 not in {1}\n", "line 3: 'not in' needs a mask");
  expect_parse_error("allow read if arg0 == 1 or arg1 == 2\n", "line 3: expected 'and'");
  expect_parse_error("allow read if arg0 < 0\n", "line 3: condition is never true");
  expect_parse_error("default allow\n", "line 3: default action must deny");
}

TEST(SeccompPolicyParser, UnknownSyscallNamesAreRejected) {
  expect_parse_error("allow read\nallow mountt\n", "line 4: unknown syscall 'mountt'");
  expect_parse_error("allow socketcall\n", "line 3: 'socketcall' is not a native x86_64 syscall");
  expect_parse_error("syscall getpid 40\n", "line 3: libseccomp numbers 'getpid' 39");
  expect_parse_error("syscall brand_new 39\n", "line 3: syscall number 39 is 'getpid'");
  auto numbered = parse_policy(kHeader + "syscall mseal 462\nallow mseal\n");
  ASSERT_TRUE(numbered.ok()) << numbered.error().describe();
  EXPECT_EQ(numbered->rules[0].number, 462);
}

TEST(SeccompPolicyParser, RulesLibseccompWouldSilentlyRewriteAreRejected) {
  // An unconditional rule would replace the conditional deny: TIOCSTI would be allowed.
  expect_parse_error("allow ioctl\nerrno EPERM ioctl if arg1 & 0xffffffff == TIOCSTI\n",
                     "line 4: syscall 'ioctl' already has an unconditional rule at line 3");
  // Overlapping rules with different actions: which wins is up to libseccomp's ordering.
  expect_parse_error("allow ioctl if arg1 >= 0\nerrno EPERM ioctl if arg1 & 0xffffffff == TIOCSTI\n",
                     "line 4: syscall 'ioctl': errno EPERM can match the same call as allow at line 3");
  expect_parse_error("allow read\nallow read\n", "line 4: syscall 'read' already has an unconditional rule");
}

TEST(SeccompPolicyParser, PolicyWithoutDefaultOrBadArchIsRejected) {
  EXPECT_FALSE(parse_policy("bad_arch kill_process\nallow read\n").ok());
  EXPECT_FALSE(parse_policy("default errno ENOSYS\nallow read\n").ok());
}

// ---------------------------------------------------------------------------------------------
// The reviewed policy file and the program compiled from it
// ---------------------------------------------------------------------------------------------

SeccompPolicy load_sandbox_policy() {
  auto path = std::filesystem::path(__FILE__).parent_path() / "../../../src/engine/seccomp_policy.txt";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto policy = parse_policy(text.str());
  EXPECT_TRUE(policy.ok()) << path << ": " << policy.error().describe();
  return policy.ok() ? std::move(policy).value() : SeccompPolicy{};
}

std::span<const sock_filter> generated() {
  Program program = sandbox_program();
  return {program.filter, program.length};
}

uint32_t run(uint32_t nr, std::initializer_list<uint64_t> args = {}, uint32_t arch = AUDIT_ARCH_X86_64) {
  seccomp_data call{};
  call.nr = static_cast<int>(nr);
  call.arch = arch;
  size_t i = 0;
  for (uint64_t a : args) call.args[i++] = a;
  auto ret = evaluate(generated(), call);
  EXPECT_TRUE(ret.ok()) << ret.error().describe();
  return ret.ok() ? *ret : ~0u;
}

// The calls the issue lists as must-deny without conditions.
const std::vector<std::string> kAlwaysDenied = {
    "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "mount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick",
    "open_tree", "move_mount", "mount_setattr", "pivot_root", "chroot", "setns", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "open_by_handle_at",
    "name_to_handle_at", "quotactl", "syslog", "lookup_dcookie", "vhangup", "nfsservctl", "iopl",
    "ioperm", "kcmp", "uselib", "ustat", "sysfs"};

TEST(SeccompSandboxPolicy, MustDenySyscallsAreNeverAllowedUnconditionally) {
  SeccompPolicy policy = load_sandbox_policy();
  EXPECT_EQ(policy.default_action, (Action{Action::Kind::kErrno, ENOSYS}));
  EXPECT_EQ(policy.bad_arch_action, (Action{Action::Kind::kKillProcess}));
  for (const std::string& name : kAlwaysDenied) {
    auto rules = policy.rules_for(name);
    ASSERT_EQ(rules.size(), 1u) << name;
    EXPECT_TRUE(rules[0]->conditions.empty()) << name;
    EXPECT_EQ(rules[0]->action, (Action{Action::Kind::kErrno, EPERM})) << name;
  }
  // Allowed only under conditions: never by an unconditional rule.
  for (const char* name : {"clone", "unshare", "ioctl", "personality", "socket", "socketpair"}) {
    auto rules = policy.rules_for(name);
    ASSERT_FALSE(rules.empty()) << name;
    for (const Rule* rule : rules) EXPECT_FALSE(rule->conditions.empty()) << name << " line " << rule->line;
  }
  auto clone3 = policy.rules_for("clone3");
  ASSERT_EQ(clone3.size(), 1u);
  EXPECT_EQ(clone3[0]->action, (Action{Action::Kind::kErrno, ENOSYS}));
}

TEST(SeccompSandboxPolicy, GeneratedProgramIsTheCompiledPolicyFile) {
  auto program = compile_policy(load_sandbox_policy());
  ASSERT_TRUE(program.ok()) << program.error().describe();
  auto gen = generated();
  std::cout << "[ info     ] sandbox seccomp program: " << gen.size() << " BPF instructions\n";
  ASSERT_EQ(program->size(), gen.size()) << "generated program is stale";
  EXPECT_EQ(std::memcmp(program->data(), gen.data(), gen.size() * sizeof(sock_filter)), 0);
}

TEST(SeccompSandboxPolicy, CompiledProgramKillsEveryX32AndI386Call) {
  for (uint32_t nr = 0; nr < 1024; ++nr) {
    ASSERT_EQ(run(nr | 0x40000000u), kKillProcess) << "x32 nr " << nr;
    ASSERT_EQ(run(nr, {}, AUDIT_ARCH_I386), kKillProcess) << "i386 nr " << nr;
  }
  EXPECT_EQ(run(SYS_getpid, {}, AUDIT_ARCH_X86_64), kAllow);
}

TEST(SeccompSandboxPolicy, CompiledProgramFiltersArgumentsOnAllSixtyFourBits) {
  for (uint64_t high : {0ull, 1ull << 32, 0x123ull << 32, 0xffffffffull << 32}) {
    EXPECT_EQ(run(SYS_ioctl, {0, TIOCSTI | high}), kEperm) << high;
    EXPECT_EQ(run(SYS_ioctl, {0, TIOCLINUX | high}), kEperm) << high;
    EXPECT_EQ(run(SYS_ioctl, {0, TIOCGWINSZ | high}), kAllow) << high;
    EXPECT_EQ(run(SYS_ioctl, {0, (TIOCSTI ^ 1) | high}), kAllow) << high;
  }
  for (uint64_t bit = 1; bit; bit <<= 1) {
    bool ns = bit & kNsFlags;
    EXPECT_EQ(run(SYS_clone, {bit | SIGCHLD}), ns ? kEperm : kAllow) << std::hex << bit;
    bool unshare_ns = bit & (kNsFlags | 0x80);
    EXPECT_EQ(run(SYS_unshare, {bit}), unshare_ns ? kEperm : kAllow) << std::hex << bit;
  }
  EXPECT_EQ(run(SYS_clone3, {0, 0}), kEnosys);
  for (uint64_t persona = 0; persona < (1u << 23); persona += 0x1001) {
    bool safe = persona == 0 || persona == 8 || persona == 0x20000 || persona == 0x20008;
    EXPECT_EQ(run(SYS_personality, {persona}), safe ? kAllow : kEperm) << std::hex << persona;
  }
  EXPECT_EQ(run(SYS_personality, {0xffffffff}), kAllow);
  EXPECT_EQ(run(SYS_personality, {ADDR_NO_RANDOMIZE}), kEperm);
}

TEST(SeccompSandboxPolicy, CompiledProgramAllowsOnlyOrdinarySocketFamiliesAndTypes) {
  for (uint64_t family = 0; family < 64; ++family) {
    for (uint64_t type = 0; type < 16; ++type) {
      bool ok = (family == AF_UNIX && (type == SOCK_STREAM || type == SOCK_DGRAM || type == SOCK_SEQPACKET)) ||
                ((family == AF_INET || family == AF_INET6) && (type == SOCK_STREAM || type == SOCK_DGRAM)) ||
                (family == AF_NETLINK && (type == SOCK_DGRAM || type == SOCK_RAW));
      for (uint64_t flags : {uint64_t{0}, uint64_t{SOCK_CLOEXEC}, uint64_t{SOCK_NONBLOCK | SOCK_CLOEXEC}}) {
        for (int nr : {SYS_socket, SYS_socketpair})
          ASSERT_EQ(run(nr, {family, type | flags, 0}), ok ? kAllow : kEperm) << family << "/" << type;
      }
    }
    EXPECT_EQ(run(SYS_socket, {family | (1ull << 32), SOCK_STREAM, 0}), kEperm) << family;
  }
}

// ---------------------------------------------------------------------------------------------
// The generated program, installed in a child
// ---------------------------------------------------------------------------------------------

using ProbeFn = long (*)();
struct Probe {
  const char* name;
  ProbeFn call;
};

struct Outcome {
  bool killed = false;
  int signal = 0;
  long ret = 0;
  int err = 0;
  bool failed_with(int e) const { return !killed && ret == -1 && err == e; }
  std::string describe() const {
    if (killed) return std::string("killed by ") + strsignal(signal);
    if (ret == -1) return std::string("-1 ") + (strerrorname_np(err) ? strerrorname_np(err) : "?");
    return "returned " + std::to_string(ret);
  }
};

bool install_sandbox_filter() {
  Program program = sandbox_program();
  sock_fprog prog{program.length, const_cast<sock_filter*>(program.filter)};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}

// Waits for pid, killing its process group after the timeout.
int wait_for(pid_t pid, std::chrono::seconds timeout) {
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "child " << pid << " timed out";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return status;
}

// Runs the probe in a fresh child in its own session (no controlling terminal), under the
// sandbox filter or, for comparison, without it.
Outcome run_probe(ProbeFn call, bool filtered) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {true, 0};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    setsid();
    if (filtered && !install_sandbox_filter()) _exit(120);
    errno = 0;
    long result[2] = {call(), 0};
    result[1] = errno;
    (void)!write(fds[1], result, sizeof result);
    _exit(0);
  }
  close(fds[1]);
  long result[2] = {};
  ssize_t n = read(fds[0], result, sizeof result);
  close(fds[0]);
  int status = wait_for(pid, std::chrono::seconds(30));
  Outcome outcome;
  if (WIFSIGNALED(status)) return {true, WTERMSIG(status)};
  EXPECT_EQ(n, static_cast<ssize_t>(sizeof result)) << "probe child exited with status " << WEXITSTATUS(status);
  outcome.ret = result[0];
  outcome.err = static_cast<int>(result[1]);
  return outcome;
}

// The call must fail with `err` under the filter. Without the filter it must not (as root), or the
// probe proves nothing.
void expect_denied(std::initializer_list<Probe> probes, int err = EPERM) {
  for (const Probe& probe : probes) {
    Outcome sandboxed = run_probe(probe.call, true);
    Outcome native = run_probe(probe.call, false);
    EXPECT_TRUE(sandboxed.failed_with(err))
        << probe.name << ": " << sandboxed.describe() << ", want -1 " << strerrorname_np(err)
        << " (without the filter: " << native.describe() << ")";
    if (geteuid() == 0) {
      EXPECT_FALSE(native.failed_with(err)) << probe.name << " fails the same way without the filter; it tests nothing";
    }
  }
}

// The call must not be blocked by the filter: it succeeds, or (`may_fail`) fails for another
// reason than EPERM/ENOSYS (e.g. IPv6 or Landlock disabled in this kernel).
void expect_allowed(std::initializer_list<Probe> probes, bool may_fail = false) {
  for (const Probe& probe : probes) {
    Outcome sandboxed = run_probe(probe.call, true);
    bool blocked = sandboxed.failed_with(EPERM) || sandboxed.failed_with(ENOSYS);
    bool ok = !sandboxed.killed && (sandboxed.ret >= 0 || (may_fail && !blocked));
    EXPECT_TRUE(ok) << probe.name << ": " << sandboxed.describe();
  }
}

long raw_clone(unsigned long flags) {
  long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return pid;
}

int open_pty_slave() {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || unlockpt(master) != 0) return -1;
  return ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
}

TEST(SeccompSandboxProgram, IoUringIsDeniedBecauseItsWorkBypassesSeccomp) {
  expect_denied({{"io_uring_setup", [] { return syscall(SYS_io_uring_setup, 1, nullptr); }},
                 {"io_uring_enter", [] { return syscall(SYS_io_uring_enter, -1, 0, 0, 0, nullptr, 0); }},
                 {"io_uring_register", [] { return syscall(SYS_io_uring_register, -1, 0, nullptr, 0); }}});
}

TEST(SeccompSandboxProgram, KernelExploitPrimitivesBpfPerfUserfaultfdAreDenied) {
  expect_denied({{"bpf", [] { return syscall(SYS_bpf, 0, nullptr, 0); }},
                 {"perf_event_open", [] { return syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }},
                 {"userfaultfd", [] { return syscall(SYS_userfaultfd, O_CLOEXEC); }}});
}

TEST(SeccompSandboxProgram, HostKeyringIsDenied) {
  expect_denied({{"add_key", [] { return syscall(SYS_add_key, nullptr, nullptr, nullptr, 0, 0); }},
                 {"request_key", [] { return syscall(SYS_request_key, nullptr, nullptr, nullptr, 0); }},
                 {"keyctl", [] { return syscall(SYS_keyctl, -1, 0, 0, 0, 0); }}});
}

TEST(SeccompSandboxProgram, MountingWithOldAndNewMountApiIsDenied) {
  expect_denied({{"mount", [] { return syscall(SYS_mount, nullptr, nullptr, nullptr, 0, nullptr); }},
                 {"umount2", [] { return syscall(SYS_umount2, "/nonexistent-airlock", 0); }},
                 {"pivot_root", [] { return syscall(SYS_pivot_root, nullptr, nullptr); }},
                 {"chroot", [] { return syscall(SYS_chroot, nullptr); }},
                 {"fsopen", [] { return syscall(SYS_fsopen, nullptr, 0); }},
                 {"fsconfig", [] { return syscall(SYS_fsconfig, -1, 0, nullptr, nullptr, 0); }},
                 {"fsmount", [] { return syscall(SYS_fsmount, -1, 0, 0); }},
                 {"fspick", [] { return syscall(SYS_fspick, -1, nullptr, 0); }},
                 {"open_tree", [] { return syscall(SYS_open_tree, -1, nullptr, 0); }},
                 {"open_tree_attr", [] { return syscall(467, -1, nullptr, 0, nullptr, 0); }},
                 {"move_mount", [] { return syscall(SYS_move_mount, -1, nullptr, -1, nullptr, 0); }},
                 {"mount_setattr", [] { return syscall(SYS_mount_setattr, -1, nullptr, 0, nullptr, 0); }}});
}

TEST(SeccompSandboxProgram, NamespaceCreationAndSetnsAreDenied) {
  expect_denied({{"unshare(CLONE_NEWUSER)", [] { return syscall(SYS_unshare, CLONE_NEWUSER); }},
                 {"unshare(CLONE_NEWNS)", [] { return syscall(SYS_unshare, CLONE_NEWNS); }},
                 {"unshare(CLONE_NEWNET)", [] { return syscall(SYS_unshare, CLONE_NEWNET); }},
                 {"unshare(CLONE_NEWTIME)", [] { return syscall(SYS_unshare, 0x80); }},
                 {"clone(CLONE_NEWUSER)", [] { return raw_clone(CLONE_NEWUSER); }},
                 {"clone(CLONE_NEWPID)", [] { return raw_clone(CLONE_NEWPID); }},
                 {"clone(CLONE_NEWCGROUP|CLONE_NEWIPC)", [] { return raw_clone(CLONE_NEWCGROUP | CLONE_NEWIPC); }},
                 {"setns", [] { return syscall(SYS_setns, -1, 0); }}});
  // clone3 hides its flags in memory: ENOSYS sends glibc back to clone, which is filtered.
  expect_denied({{"clone3", [] { return syscall(SYS_clone3, nullptr, 0); }}}, ENOSYS);
}

TEST(SeccompSandboxProgram, ModulesKexecRebootSwapAndAcctAreDenied) {
  expect_denied({{"init_module", [] { return syscall(SYS_init_module, nullptr, 0, ""); }},
                 {"finit_module", [] { return syscall(SYS_finit_module, -1, "", 0); }},
                 {"delete_module", [] { return syscall(SYS_delete_module, (const char*)1, 0); }},
                 {"kexec_load", [] { return syscall(SYS_kexec_load, 0, 0, nullptr, 0xdead0000ul); }},
                 {"kexec_file_load", [] { return syscall(SYS_kexec_file_load, -1, -1, 0, nullptr, 0); }},
                 {"reboot(bad magic)", [] { return syscall(SYS_reboot, 0, 0, 0, nullptr); }},
                 {"swapon", [] { return syscall(SYS_swapon, (const char*)1, 0); }},
                 {"swapoff", [] { return syscall(SYS_swapoff, (const char*)1); }},
                 {"acct", [] { return syscall(SYS_acct, (const char*)1); }}});
}

TEST(SeccompSandboxProgram, SettingTheSharedClockIsDenied) {
  expect_denied({{"settimeofday", [] { return syscall(SYS_settimeofday, (void*)1, nullptr); }},
                 {"clock_settime", [] { return syscall(SYS_clock_settime, CLOCK_REALTIME, (void*)1); }},
                 {"clock_adjtime", [] { return syscall(SYS_clock_adjtime, CLOCK_REALTIME, (void*)1); }},
                 {"adjtimex", [] { return syscall(SYS_adjtimex, (void*)1); }}});
}

TEST(SeccompSandboxProgram, ShockerFileHandlesAreDenied) {
  expect_denied({{"open_by_handle_at", [] { return syscall(SYS_open_by_handle_at, -1, nullptr, 0); }},
                 {"name_to_handle_at",
                  [] { return syscall(SYS_name_to_handle_at, AT_FDCWD, "/", nullptr, nullptr, 0); }}});
}

TEST(SeccompSandboxProgram, HostInformationAndAdministrationAreDenied) {
  expect_denied({{"syslog(SIZE_BUFFER)", [] { return syscall(SYS_syslog, 10, nullptr, 0); }},
                 {"quotactl", [] { return syscall(SYS_quotactl, 0, nullptr, 0, nullptr); }},
                 {"quotactl_fd", [] { return syscall(SYS_quotactl_fd, -1, 0, 0, nullptr); }},
                 {"lookup_dcookie", [] { return syscall(SYS_lookup_dcookie, 0, nullptr, 0); }},
                 {"vhangup", [] { return syscall(SYS_vhangup); }},  // no controlling tty: harmless
                 {"sethostname", [] { return syscall(SYS_sethostname, (const char*)1, 4); }},
                 {"setdomainname", [] { return syscall(SYS_setdomainname, (const char*)1, 4); }},
                 {"_sysctl", [] { return syscall(SYS__sysctl, nullptr); }}});
}

TEST(SeccompSandboxProgram, HardwareAccessLdtAndKcmpAreDenied) {
  expect_denied({{"iopl", [] { return syscall(SYS_iopl, 0); }},
                 {"ioperm", [] { return syscall(SYS_ioperm, 0, 0, 0); }},
                 {"modify_ldt", [] { return syscall(SYS_modify_ldt, 0, nullptr, 0); }},
                 {"kcmp", [] { return syscall(SYS_kcmp, getpid(), getpid(), 0 /*KCMP_FILE*/, 0, 0); }}});
}

TEST(SeccompSandboxProgram, ObsoleteCallsAreDenied) {
  expect_denied({{"uselib", [] { return syscall(SYS_uselib, (const char*)1); }},
                 {"ustat", [] { return syscall(SYS_ustat, 0, (void*)1); }},
                 {"sysfs", [] { return syscall(SYS_sysfs, 1, (const char*)1); }},
                 {"nfsservctl", [] { return syscall(SYS_nfsservctl, 0, nullptr, nullptr); }}});
}

TEST(SeccompSandboxProgram, PersonalityFlagsThatWeakenTheProcessAreDenied) {
  expect_denied({{"personality(ADDR_NO_RANDOMIZE)", [] { return syscall(SYS_personality, ADDR_NO_RANDOMIZE); }},
                 {"personality(READ_IMPLIES_EXEC)", [] { return syscall(SYS_personality, READ_IMPLIES_EXEC); }},
                 {"personality(MMAP_PAGE_ZERO)", [] { return syscall(SYS_personality, MMAP_PAGE_ZERO); }}});
  expect_allowed({{"personality(query)", [] { return syscall(SYS_personality, 0xffffffffUL); }},
                  {"personality(PER_LINUX)", [] { return syscall(SYS_personality, PER_LINUX); }}});
}

TEST(SeccompSandboxProgram, TerminalInjectionTiocstiIsDeniedEvenWithHighCmdBits) {
  expect_denied({{"ioctl(TIOCSTI)",
                  [] { char c = 'x'; return syscall(SYS_ioctl, open_pty_slave(), TIOCSTI, &c); }},
                 {"ioctl(TIOCSTI | 1 << 32) CVE-2019-10063",
                  [] { char c = 'x'; return syscall(SYS_ioctl, open_pty_slave(), TIOCSTI | (1UL << 32), &c); }},
                 {"ioctl(TIOCLINUX)",
                  [] { char c = 0; return syscall(SYS_ioctl, open_pty_slave(), TIOCLINUX, &c); }},
                 {"ioctl(TIOCLINUX | 0x123 << 32)",
                  [] { char c = 0; return syscall(SYS_ioctl, open_pty_slave(), TIOCLINUX | (0x123UL << 32), &c); }}});
  expect_allowed({{"ioctl(TIOCGWINSZ) on a pty",
                   [] { winsize ws{}; return syscall(SYS_ioctl, open_pty_slave(), TIOCGWINSZ, &ws); }},
                  {"ioctl(TCGETS) on a pty",
                   [] { termios t{}; return syscall(SYS_ioctl, open_pty_slave(), TCGETS, &t); }}});
}

TEST(SeccompSandboxProgram, RawPacketVsockAndAlgSocketsAreDenied) {
  expect_denied({{"socket(AF_PACKET, SOCK_RAW)", [] { return syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0); }},
                 {"socket(AF_PACKET, SOCK_DGRAM)", [] { return syscall(SYS_socket, AF_PACKET, SOCK_DGRAM, 0); }},
                 {"socket(AF_VSOCK)", [] { return syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0); }},
                 {"socket(AF_ALG)", [] { return syscall(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0); }},
                 {"socket(AF_INET, SOCK_RAW|SOCK_CLOEXEC)",
                  [] { return syscall(SYS_socket, AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP); }},
                 {"socket(AF_INET6, SOCK_RAW|SOCK_NONBLOCK)",
                  [] { return syscall(SYS_socket, AF_INET6, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMPV6); }},
                 {"socket(AF_INET, SOCK_PACKET)", [] { return syscall(SYS_socket, AF_INET, SOCK_PACKET, 0x300); }},
                 {"socket(AF_PACKET | 1 << 32)",
                  [] { return syscall(SYS_socket, AF_PACKET | (1UL << 32), SOCK_RAW, 0); }},
                 {"socketpair(AF_UNIX, SOCK_RAW)", [] {
                    int sv[2];
                    return syscall(SYS_socketpair, AF_UNIX, SOCK_RAW, 0, sv);
                  }}});
}

TEST(SeccompSandboxProgram, OrdinarySocketsAreAllowed) {
  expect_allowed({{"socket(AF_INET, SOCK_STREAM)", [] { return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0); }},
                  {"socket(AF_INET, SOCK_DGRAM)", [] { return syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0); }},
                  {"socket(AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK)",
                   [] { return syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0); }},
                  {"socket(AF_UNIX, SOCK_SEQPACKET)", [] { return syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET, 0); }},
                  {"socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE)",
                   [] { return syscall(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0); }},
                  {"socketpair(AF_UNIX, SOCK_STREAM)", [] {
                     int sv[2];
                     return syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
                   }}});
  expect_allowed({{"socket(AF_INET6, SOCK_DGRAM)", [] { return syscall(SYS_socket, AF_INET6, SOCK_DGRAM, 0); }}},
                 /*may_fail=*/true);
}

TEST(SeccompSandboxProgram, AbiConfusionThroughX32AndI386IsKilled) {
  for (Probe probe : std::initializer_list<Probe>{
           {"x32 getpid", [] { return syscall(__X32_SYSCALL_BIT | SYS_getpid); }},
           {"x32 unshare(CLONE_NEWUSER)", [] { return syscall(__X32_SYSCALL_BIT | SYS_unshare, CLONE_NEWUSER); }},
           {"i386 int 0x80 getpid", [] {
              long ret;
              asm volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory", "r8", "r9", "r10", "r11");
              return ret;
            }}}) {
    Outcome sandboxed = run_probe(probe.call, true);
    EXPECT_TRUE(sandboxed.killed && sandboxed.signal == SIGSYS) << probe.name << ": " << sandboxed.describe();
  }
}

TEST(SeccompSandboxProgram, UnknownSyscallsGetEnosysSoLibcFallsBack) {
  expect_denied({{"fanotify_init", [] { return syscall(SYS_fanotify_init, ~0u, 0); }},
                 {"get_mempolicy", [] { return syscall(SYS_get_mempolicy, nullptr, nullptr, 0, nullptr, ~0ul); }}},
                ENOSYS);
}

TEST(SeccompSandboxProgram, EverydaySyscallsAreAllowed) {
  expect_allowed({
      {"getpid", [] { return syscall(SYS_getpid); }},
      {"openat", [] { return syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC); }},
      {"fork + wait (clone without namespace flags)", [] {
         pid_t pid = fork();
         if (pid == 0) _exit(3);
         int status = 0;
         return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 3 ? 0L : -1L;
       }},
      {"pthread_create (clone3 ENOSYS, then clone)", [] {
         pthread_t thread;
         if (pthread_create(&thread, nullptr, [](void*) -> void* { return nullptr; }, nullptr) != 0) return -1L;
         return static_cast<long>(pthread_join(thread, nullptr));
       }},
      {"execve /bin/true", [] {
         pid_t pid = fork();
         if (pid == 0) {
           execl("/bin/true", "true", nullptr);
           _exit(127);
         }
         int status = 0;
         return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0L : -1L;
       }},
      {"unshare(CLONE_FILES)", [] { return syscall(SYS_unshare, CLONE_FILES); }},
      {"memfd_create", [] { return syscall(SYS_memfd_create, "x", MFD_CLOEXEC); }},
      {"pidfd_open + pidfd_send_signal", [] {
         long fd = syscall(SYS_pidfd_open, getpid(), 0);
         return fd < 0 ? fd : syscall(SYS_pidfd_send_signal, fd, 0, nullptr, 0);
       }},
      {"statx", [] { struct statx st; return syscall(SYS_statx, AT_FDCWD, "/", 0, STATX_BASIC_STATS, &st); }},
      {"faccessat2", [] { return syscall(SYS_faccessat2, AT_FDCWD, "/", R_OK, AT_EACCESS); }},
      {"openat2", [] {
         open_how how{};
         how.flags = O_RDONLY | O_CLOEXEC;
         return syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
       }},
      {"close_range", [] { return syscall(SYS_close_range, 1000, ~0u, 0); }},
      {"epoll_create1", [] { return syscall(SYS_epoll_create1, EPOLL_CLOEXEC); }},
      {"getrandom", [] { char buf[8]; return syscall(SYS_getrandom, buf, sizeof buf, 0); }},
      {"process_vm_readv on itself", [] {
         char src[4] = "abc", dst[4] = {};
         iovec local{dst, sizeof dst}, remote{src, sizeof src};
         return syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0);
       }},
      {"ptrace a child (gdb, strace)", [] {
         pid_t pid = fork();
         if (pid == 0) {
           ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
           raise(SIGSTOP);
           _exit(5);
         }
         int status = 0;
         user_regs_struct regs{};
         if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) return -1L;
         long got = ptrace(PTRACE_GETREGS, pid, nullptr, &regs);
         ptrace(PTRACE_CONT, pid, nullptr, nullptr);
         waitpid(pid, &status, 0);
         return got == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 5 ? 0L : -1L;
       }},
  });
  expect_allowed({{"rseq (registered by glibc: EBUSY/EINVAL)", [] { return syscall(SYS_rseq, nullptr, 0, 0, 0); }},
                  {"landlock_create_ruleset(VERSION)",
                   [] { return syscall(SYS_landlock_create_ruleset, nullptr, 0, 1); }}},
                 /*may_fail=*/true);
}

// Real programs under the filter: shell pipelines, coreutils, python (threads, multiprocessing,
// asyncio, subprocess), gcc and make, node, git, strace and gdb, apt and dpkg queries, pip.
// Tools that are not installed are skipped.
constexpr const char* kWorkloadScript = R"SH(
set -eu
cd "$1"
have() { command -v "$1" >/dev/null 2>&1; }
echo hello | tr a-z A-Z | grep -q HELLO
ls -la / >/dev/null; printf 'b\na\nb\n' | sort | uniq | wc -l | grep -q 2
mkfifo fifo && rm fifo; mkdir -p d/e && touch d/e/f && cp -r d d2 && rm -r d d2
/bin/bash -c 'sleep 0.01 & wait; echo $((1 + 2)) > n; read v < n; test "$v" = 3'
if [ -x /usr/bin/python3 ]; then
  /usr/bin/python3 - <<'PY'
import asyncio, multiprocessing, socket, subprocess, threading
def square(x): return x * x
if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        assert pool.map(square, range(8)) == [x * x for x in range(8)]
    out = []
    threads = [threading.Thread(target=out.append, args=(i,)) for i in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert sorted(out) == [0, 1, 2, 3]
    async def main():
        async def echo(reader, writer):
            writer.write(await reader.read(5)); await writer.drain(); writer.close()
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(b"hello"); await writer.drain()
        assert await reader.read(5) == b"hello"
        writer.close(); server.close(); await server.wait_closed()
        proc = await asyncio.create_subprocess_exec("true")
        assert await proc.wait() == 0
    asyncio.run(main())
    socket.getaddrinfo("localhost", 80)
    assert subprocess.run(["true"]).returncode == 0
PY
  /usr/bin/python3 -m pip --version >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import pip' 2>/dev/null
fi
if have gcc; then
  printf '#include <stdio.h>\nint main(void) { puts("built"); return 0; }\n' > t.c
  gcc -O1 -o t t.c && ./t | grep -q built
fi
if have make; then printf 'all:\n\t@echo made\n' > Makefile && make -s | grep -q made; fi
if have node; then
  node -e 'const fs = require("fs"); fs.writeFileSync("j", "1"); fs.promises.readFile("j").then(b => { if (String(b) !== "1") process.exit(1); require("child_process").execFileSync("true"); new (require("worker_threads").Worker)("1", { eval: true }).on("exit", c => process.exit(c)); })'
fi
if have git; then
  git init -q repo && git -C repo -c user.email=a@b -c user.name=n commit -q --allow-empty -m first
  git -C repo log --oneline | grep -q first
fi
if have strace; then strace -f -o /dev/null /bin/true; fi
if have gdb; then gdb -q -batch -ex run --args /bin/true >/dev/null 2>&1; fi
if have dpkg-query; then dpkg-query -W dpkg >/dev/null; fi
if have apt-cache; then apt-cache policy bash >/dev/null; fi
)SH";

TEST(SeccompSandboxProgram, OrdinaryWorkloadsRun) {
  char dir_template[] = "/tmp/airlock-seccomp-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  std::string dir = dir_template;
  std::string log = dir + ".log";
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dup2(out, 1);
    dup2(out, 2);
    if (!install_sandbox_filter()) _exit(120);
    execl("/bin/sh", "sh", "-c", kWorkloadScript, "sh", dir.c_str(), nullptr);
    _exit(127);
  }
  int status = wait_for(pid, std::chrono::seconds(300));
  std::ifstream in(log);
  std::stringstream output;
  output << in.rdbuf();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "workload script failed (status " << status << "):\n" << output.str();
  std::filesystem::remove_all(dir);
  std::filesystem::remove(log);
}

}  // namespace
}  // namespace airlock::seccomp
