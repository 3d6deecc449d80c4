#include "daemon/sandbox_usage.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>

#include "common/fs.h"

namespace airlock::daemon {
namespace {

// The first number of a knob file; nullopt when this hierarchy has no such knob.
std::optional<uint64_t> read_number(const std::string& dir, const char* knob) {
  auto text = read_file(dir + "/" + knob, 64);
  if (!text.ok()) return std::nullopt;
  uint64_t value = 0;
  const char* begin = text->data();
  auto [end, ec] = std::from_chars(begin, begin + text->size(), value);
  if (ec != std::errc()) return std::nullopt;
  return value;
}

}  // namespace

Result<SandboxUsage> SandboxUsageReader::read(const std::string& engine_name) const {
  TRY(auto cgroup, Cgroup::open_existing(roots_, engine_name));
  TRY(auto stats, cgroup.stats());
  SandboxUsage usage;
  usage.cpu_seconds = static_cast<double>(stats.cpu_usage_ns) / 1e9;
  usage.memory_peak_bytes = stats.memory_peak_bytes;
  usage.oom_kills = stats.oom_kills;
  // CgroupStats has no current values yet: memory.current (v2) or memory.usage_in_bytes (v1), and
  // pids.current (both), from whichever of the cgroup's directories has them.
  for (const auto& dir : cgroup.paths()) {
    if (auto v = read_number(dir, "memory.current")) usage.memory_bytes = std::max(usage.memory_bytes, *v);
    if (auto v = read_number(dir, "memory.usage_in_bytes")) usage.memory_bytes = std::max(usage.memory_bytes, *v);
    if (auto v = read_number(dir, "pids.current")) usage.pids = std::max(usage.pids, *v);
  }
  // A kernel without memory.peak (before 5.19) still knows the current value, which is a lower bound.
  usage.memory_peak_bytes = std::max(usage.memory_peak_bytes, usage.memory_bytes);
  return usage;
}

}  // namespace airlock::daemon
