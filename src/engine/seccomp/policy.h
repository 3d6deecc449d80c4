// SeccompPolicy: the sandbox's syscall allow-list as data (src/engine/seccomp_policy.txt), its parser,
// and its compiler to a classic BPF program through libseccomp. Used at build time by
// tools/seccomp_compile and by tests; the engine itself only links the generated program
// (engine/seccomp_program.h) and needs no libseccomp at runtime.
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace airlock::seccomp {

struct Action {
  enum class Kind { kAllow, kErrno, kKillProcess, kKillThread, kTrap, kLog };
  Kind kind = Kind::kKillProcess;
  int errnum = 0;  // for kErrno

  // The 32-bit value a seccomp filter returns for this action (SECCOMP_RET_*).
  uint32_t seccomp_ret() const;
  std::string describe() const;  // "allow", "errno EPERM", ...
  bool operator==(const Action&) const = default;
};

// One comparison of a 64-bit syscall argument, as libseccomp evaluates it (all 64 bits on x86_64).
struct Condition {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kMaskedEq };
  unsigned arg = 0;  // 0..5
  Op op = Op::kEq;
  uint64_t mask = 0;  // kMaskedEq only: (arg & mask) == value
  uint64_t value = 0;

  bool holds(uint64_t argument) const;
  bool operator==(const Condition&) const = default;
};

// One libseccomp rule: the action applies when every condition holds. A policy line with sets
// ("in {...}", "not in {...}") or several syscall names expands to several rules.
struct Rule {
  std::string syscall;
  int number = -1;  // x86_64 syscall number
  Action action;
  std::vector<Condition> conditions;  // at most one per argument (a libseccomp limit)
  int line = 0;                       // policy line it came from, for error messages
};

struct SeccompPolicy {
  Action default_action;   // syscalls no rule matches
  Action bad_arch_action;  // syscalls made through another ABI (i386 int 0x80, x32)
  std::vector<Rule> rules;

  // Rules for one syscall, in policy order.
  std::vector<const Rule*> rules_for(std::string_view syscall) const;
};

// Parses the policy text (format described at the top of seccomp_policy.txt). Errors name the
// line: "line 12: unknown syscall 'mountt'". Also rejects policies libseccomp would silently
// change: an unconditional rule next to conditional ones for the same syscall, and rules with
// different actions whose conditions can match the same call.
Result<SeccompPolicy> parse_policy(std::string_view text);

// Builds the libseccomp filter (x86_64 only) and exports it as a BPF program. The program is
// checked before it is returned: for every rule, a call satisfying its conditions must get the
// rule's action; other ABIs must get the bad-arch action.
Result<std::vector<sock_filter>> compile_policy(const SeccompPolicy& policy);

// libseccomp's pseudo-code rendering of the same filter, for review and debugging.
Result<std::string> describe_policy(const SeccompPolicy& policy);

// Runs a seccomp BPF program on one syscall the way the kernel does and returns its
// SECCOMP_RET_* value. Lets tests check the compiled program for every syscall number.
Result<uint32_t> evaluate(std::span<const sock_filter> program, const seccomp_data& call);

}  // namespace airlock::seccomp
