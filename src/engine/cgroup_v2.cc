// cgroup v2: one tree; controllers are switched on for children in the parent's cgroup.subtree_control.
#include <cerrno>

#include "common/fs.h"
#include "engine/cgroup_backend.h"

namespace airlock::cgroup_v2 {

Status enable_controllers(const std::string& own_dir, unsigned controllers) {
  std::string request;
  if (controllers & kCgroupMemory) request += "+memory ";
  if (controllers & kCgroupCpu) request += "+cpu ";
  if (controllers & kCgroupPids) request += "+pids ";
  if (request.empty()) return {};
  request.pop_back();
  // Writing an already-enabled set is a cheap no-op in the kernel, so no read first.
  Status st = write_knob(own_dir, "cgroup.subtree_control", request);
  if (!st.ok() && st.error().errnum == EBUSY) {
    // v2's "no internal processes" rule: a non-root cgroup with processes in it cannot hand
    // controllers to children.
    return Error{EBUSY, "enable cgroup controllers in " + own_dir +
                            ": our own cgroup has processes in it, and cgroup v2 then refuses to give "
                            "controllers to child cgroups; run airlock in a delegated cgroup of its own, "
                            "e.g. systemd-run --scope -p Delegate=yes airlock ..."};
  }
  return st;
}

Status apply_limits(const std::string& dir, unsigned controllers, const CgroupLimits& limits) {
  if ((controllers & kCgroupMemory) && limits.memory_bytes) {
    TRY_STATUS(write_knob(dir, "memory.max", DecimalText(limits.memory_bytes).view()));
    // Absent without swap accounting (CONFIG_SWAP off or swapaccount=0): nothing to limit then.
    TRY_STATUS(write_optional_knob(dir, "memory.swap.max", "0"));
  }
  if ((controllers & kCgroupCpu) && limits.cpu_millicores) {
    std::string value(DecimalText(cpu_quota_us(limits.cpu_millicores)).view());
    value += ' ';
    value += DecimalText(kCpuPeriodUs).view();
    TRY_STATUS(write_knob(dir, "cpu.max", value));
  }
  if ((controllers & kCgroupPids) && limits.max_pids) {
    TRY_STATUS(write_knob(dir, "pids.max", DecimalText(limits.max_pids).view()));
  }
  return {};
}

Status add_stats(const std::string& dir, unsigned controllers, CgroupStats& stats) {
  if (controllers & kCgroupMemory) {
    TRY(auto peak, read_optional_knob(dir, "memory.peak"));  // Linux 5.19+
    if (peak) stats.memory_peak_bytes = parse_u64(*peak).value_or(0);
    // memory.events counts descendants too (memory.events.local would not).
    TRY(auto events, read_optional_knob(dir, "memory.events"));
    if (events) stats.oom_kills = keyed_value(*events, "oom_kill").value_or(0);
  }
  // cpu.stat usage_usec is kept for every v2 cgroup, with or without the cpu controller.
  TRY(auto cpu, read_optional_knob(dir, "cpu.stat"));
  if (cpu) stats.cpu_usage_ns = keyed_value(*cpu, "usage_usec").value_or(0) * 1000;
  return {};
}

Status kill(const std::string& dir) { return write_knob(dir, "cgroup.kill", "1"); }

Status set_frozen(const std::string& dir, bool frozen) {
  return write_knob(dir, "cgroup.freeze", frozen ? "1" : "0");
}

Result<bool> is_frozen(const std::string& dir) {
  TRY(auto events, read_file(dir + "/cgroup.events", 256));
  return keyed_value(events, "frozen").value_or(0) == 1;
}

}  // namespace airlock::cgroup_v2
