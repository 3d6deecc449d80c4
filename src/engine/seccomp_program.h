// The sandbox's seccomp filter as a ready BPF program: compiled at build time from
// src/engine/seccomp_policy.txt by tools/seccomp_compile, so installing it needs no libseccomp
// and allocates nothing (safe between clone and exec).
#pragma once

#include <linux/filter.h>

namespace airlock::seccomp {

struct Program {
  const sock_filter* filter;
  unsigned short length;
};

// The sandbox filter compiled at build time from src/engine/seccomp_policy.txt.
Program sandbox_program();

}  // namespace airlock::seccomp
