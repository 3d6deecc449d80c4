#include "engine/capabilities.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/fs.h"

namespace airlock::caps {

uint64_t default_root_set() {
  uint64_t set = 0;
  for (int cap : {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID, CAP_SETUID,
                  CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE, CAP_SETFCAP})
    set |= 1ULL << cap;
  return set;
}

int last_cap() {
  auto text = read_file("/proc/sys/kernel/cap_last_cap", 32);
  if (!text.ok()) return CAP_LAST_CAP;
  int value = std::atoi(text->c_str());
  return value > 0 && value < 64 ? value : CAP_LAST_CAP;
}

int restrict_to(uint64_t keep, int last) {
  for (int cap = 0; cap <= last; ++cap) {
    if (keep & (1ULL << cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  data[0].permitted = data[0].effective = static_cast<uint32_t>(keep);
  data[1].permitted = data[1].effective = static_cast<uint32_t>(keep >> 32);
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  return 0;
}

}  // namespace airlock::caps
