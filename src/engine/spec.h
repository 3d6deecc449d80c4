// SandboxSpec: everything the engine needs to build one sandbox, as plain data.
// The CLI, the daemon and the OCI entry point all fill this in; validate() is the one gate.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace airlock {

struct VolumeSpec {
  std::string host_path;  // operator-chosen host path (resolved on the host, it is theirs)
  std::string dest;       // absolute path inside the sandbox, resolved only inside it
  bool read_only = false;
};

enum class NetworkMode { kNone };

struct ResourceLimits {
  uint64_t memory_bytes = 512ULL << 20;
  uint64_t cpu_millicores = 1000;
  uint64_t max_pids = 256;
  uint64_t disk_bytes = 1ULL << 30;
};

struct SandboxSpec {
  std::string image = "host";
  std::vector<std::string> argv;  // the command; argv[0] is looked up in PATH inside
  std::vector<std::string> env;   // KEY=VALUE, final (defaults already merged)
  std::string workdir = "/root";
  std::vector<VolumeSpec> volumes;
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool forward_stdin = false;
  bool tty = false;
  bool drop_all_caps = false;
  ResourceLimits limits;
  std::optional<std::chrono::milliseconds> timeout;
  NetworkMode network = NetworkMode::kNone;
};

// Minimums that keep a sandbox able to start at all (init + the command).
inline constexpr uint64_t kMinMemoryBytes = 4ULL << 20;
inline constexpr uint64_t kMinDiskBytes = 1ULL << 20;
inline constexpr uint64_t kMinPids = 2;
inline constexpr uint64_t kMinCpuMillicores = 10;
inline constexpr uint32_t kSandboxIdCount = 65536;  // uids/gids 0..65535 exist inside

// The default environment: PATH, HOME, LANG (and TERM when a tty is asked for).
std::vector<std::string> default_environment(uint32_t uid, bool tty, const char* host_term);
// Applies KEY=VALUE overrides on top of a base environment (later wins, order kept).
std::vector<std::string> merge_environment(std::vector<std::string> base, const std::vector<std::string>& overrides);

// A path inside the sandbox: absolute, no "..", no NUL, not empty components only.
Status validate_sandbox_path(const std::string& path, std::string_view what);
// Every rule the engine relies on; the error says which field and why. A service sandbox (init
// serves the agent protocol; see IoOptions::service) starts no command: argv may be empty.
Status validate(const SandboxSpec& spec, bool needs_command = true);

}  // namespace airlock
