// What a live sandbox uses now, read from its cgroup when asked (GET /v1/sandboxes/{id} and /metrics
// scrapes): the engine's Cgroup::stats() (cpu, memory peak, OOM kills) plus the two current values it
// does not read yet (memory and tasks now). Nothing is sampled in the background.
//
// The sandbox's cgroup is found by its engine name ("airlock-12"), which the engine reuses once the
// sandbox is destroyed: only ask about sandboxes the manager still holds (SandboxManager::usage).
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "engine/cgroup.h"

namespace airlock::daemon {

struct SandboxUsage {
  double cpu_seconds = 0;
  uint64_t memory_bytes = 0;
  uint64_t memory_peak_bytes = 0;
  uint64_t pids = 0;
  uint64_t oom_kills = 0;
};

class SandboxUsageReader {
 public:
  explicit SandboxUsageReader(CgroupRoots roots) : roots_(std::move(roots)) {}
  Result<SandboxUsage> read(const std::string& engine_name) const;

 private:
  CgroupRoots roots_;
};

}  // namespace airlock::daemon
