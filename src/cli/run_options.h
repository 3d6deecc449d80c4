// `airlock run` arguments -> SandboxSpec. Kept apart from execution so it is unit-tested.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "engine/spec.h"

namespace airlock::cli {

struct RunRequest {
  SandboxSpec spec;
  bool json = false;
  bool help = false;  // --help: print help_text and exit 0
  std::string help_text;
};

// Looks up a host environment variable (for `-e KEY` and TERM); injectable for tests.
using EnvLookup = std::function<const char*(const char*)>;

// args: everything after the word "run".
Result<RunRequest> parse_run_args(const std::vector<std::string>& args, const EnvLookup& host_env);

}  // namespace airlock::cli
