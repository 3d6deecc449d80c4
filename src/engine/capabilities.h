// Capabilities inside the sandbox. Root inside keeps, in its own user namespace only, the
// small set package managers need; nothing that reaches beyond the sandbox
// (sys_admin, net_admin, net_raw, sys_ptrace, sys_module, mknod, dac_read_search, ...).
#pragma once

#include <cstdint>

namespace airlock::caps {

// chown, dac_override, fowner, fsetid, kill, setgid, setuid, setpcap, net_bind_service,
// audit_write, setfcap.
uint64_t default_root_set();
// Highest capability number this kernel knows (from /proc/sys/kernel/cap_last_cap); parent side.
int last_cap();

// Child side (async-signal-safe, return 0 or errno):
// drops every capability outside `keep` from the bounding set, clears ambient and inheritable
// sets, and sets permitted = effective = keep.
int restrict_to(uint64_t keep, int last_cap);

}  // namespace airlock::caps
