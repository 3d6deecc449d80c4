// cgroup v1: one hierarchy per controller (or per co-mounted group), each with its own knob names.
#include "common/fs.h"
#include "engine/cgroup_backend.h"

namespace airlock::cgroup_v1 {

Status apply_limits(const std::string& dir, unsigned controllers, const CgroupLimits& limits) {
  if ((controllers & kCgroupMemory) && limits.memory_bytes) {
    DecimalText bytes(limits.memory_bytes);
    TRY_STATUS(write_knob(dir, "memory.limit_in_bytes", bytes.view()));
    // No swap: memory+swap = memory. Only after limit_in_bytes (the kernel keeps memsw >= memory).
    // Absent when the kernel does no swap accounting (then there is nothing to limit).
    TRY_STATUS(write_optional_knob(dir, "memory.memsw.limit_in_bytes", bytes.view()));
    // Best effort: some kernels refuse it below a parent with use_hierarchy; memsw already holds.
    (void)write_optional_knob(dir, "memory.swappiness", "0");
  }
  if ((controllers & kCgroupCpu) && limits.cpu_millicores) {
    TRY_STATUS(write_knob(dir, "cpu.cfs_period_us", DecimalText(kCpuPeriodUs).view()));
    TRY_STATUS(write_knob(dir, "cpu.cfs_quota_us", DecimalText(cpu_quota_us(limits.cpu_millicores)).view()));
  }
  if ((controllers & kCgroupPids) && limits.max_pids) {
    TRY_STATUS(write_knob(dir, "pids.max", DecimalText(limits.max_pids).view()));
  }
  return {};
}

Status add_stats(const std::string& dir, unsigned controllers, CgroupStats& stats) {
  if (controllers & kCgroupMemory) {
    TRY(auto peak, read_optional_knob(dir, "memory.max_usage_in_bytes"));
    if (peak) stats.memory_peak_bytes = parse_u64(*peak).value_or(0);
    // "oom_kill N" appeared in Linux 4.13; older kernels only say under_oom.
    TRY(auto oom, read_optional_knob(dir, "memory.oom_control"));
    if (oom) stats.oom_kills = keyed_value(*oom, "oom_kill").value_or(0);
  }
  if (controllers & kCgroupCpuacct) {
    TRY(auto usage, read_optional_knob(dir, "cpuacct.usage"));
    if (usage) stats.cpu_usage_ns = parse_u64(*usage).value_or(0);
  }
  return {};
}

Status set_frozen(const std::string& dir, bool frozen) {
  return write_knob(dir, "freezer.state", frozen ? "FROZEN" : "THAWED");
}

// freezer.state reads FREEZING until every task has stopped.
Result<bool> is_frozen(const std::string& dir) {
  TRY(auto state, read_file(dir + "/freezer.state", 64));
  return std::string_view(state).starts_with("FROZEN");
}

}  // namespace airlock::cgroup_v1
