// Sandboxes and command results as the contract's JSON (Sandbox, CommandResult).
#pragma once

#include <nlohmann/json.hpp>

#include "daemon/sandbox_manager.h"
#include "daemon/sandbox_store.h"

namespace airlock::daemon {

// [obs] `usage`: the live sandbox's cgroup usage (SandboxManager::usage); null: zeros (ended sandboxes).
nlohmann::json sandbox_json(const SandboxRecord& record, UnixMillis now, const SandboxUsage* usage = nullptr);
nlohmann::json command_result_json(const CommandRun& run, bool base64_output);
// "SIGKILL" for 9; null for 0 or a number without a name.
nlohmann::json signal_json(int signal);

}  // namespace airlock::daemon
