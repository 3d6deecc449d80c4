// Private to cgroup*.cc: what differs between cgroup v1 and v2 (knob names and formats), and the
// small file helpers both use. Each function works on one directory of one hierarchy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "engine/cgroup.h"

namespace airlock {

// --- shared helpers (cgroup.cc) --------------------------------------------------------------------
// Writes dir/knob. Knobs are opened without O_CREAT: a missing one is an error, never a new file.
Status write_knob(const std::string& dir, std::string_view knob, std::string_view value);
// Like write_knob, but a knob this kernel does not have (ENOENT) is fine.
Status write_optional_knob(const std::string& dir, std::string_view knob, std::string_view value);
// Reads dir/knob; std::nullopt when it does not exist.
Result<std::optional<std::string>> read_optional_knob(const std::string& dir, std::string_view knob);
// The number after `key` in "key value" lines (memory.events, cpu.stat, memory.oom_control).
std::optional<uint64_t> keyed_value(std::string_view text, std::string_view key);
// The first decimal number in text ("1234\n" -> 1234).
std::optional<uint64_t> parse_u64(std::string_view text);

// A uint64 as decimal text without allocating.
class DecimalText {
 public:
  explicit DecimalText(uint64_t value);
  std::string_view view() const { return {buf_, len_}; }

 private:
  char buf_[24];
  size_t len_;
};

// CFS bandwidth: quota per 100 ms period; the kernel rejects quotas under 1 ms.
inline constexpr uint64_t kCpuPeriodUs = 100000;
inline uint64_t cpu_quota_us(uint64_t millicores) {
  uint64_t quota = millicores * (kCpuPeriodUs / 1000);
  return quota < 1000 ? 1000 : quota;
}

// --- cgroup v1 (cgroup_v1.cc) ----------------------------------------------------------------------
namespace cgroup_v1 {
Status apply_limits(const std::string& dir, unsigned controllers, const CgroupLimits& limits);
Status add_stats(const std::string& dir, unsigned controllers, CgroupStats& stats);
Status set_frozen(const std::string& dir, bool frozen);  // freezer.state
Result<bool> is_frozen(const std::string& dir);
}  // namespace cgroup_v1

// --- cgroup v2 (cgroup_v2.cc) ----------------------------------------------------------------------
namespace cgroup_v2 {
// "+memory +cpu +pids" (those in controllers) into own_dir/cgroup.subtree_control.
Status enable_controllers(const std::string& own_dir, unsigned controllers);
Status apply_limits(const std::string& dir, unsigned controllers, const CgroupLimits& limits);
Status add_stats(const std::string& dir, unsigned controllers, CgroupStats& stats);
// cgroup.kill (Linux 5.14+); ENOENT when the kernel lacks it.
Status kill(const std::string& dir);
Status set_frozen(const std::string& dir, bool frozen);  // cgroup.freeze (Linux 5.2+)
Result<bool> is_frozen(const std::string& dir);          // cgroup.events "frozen 1"
}  // namespace cgroup_v2

}  // namespace airlock
