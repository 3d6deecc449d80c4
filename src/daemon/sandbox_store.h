// Sandboxes in the daemon's database: one row per sandbox with its tenant, state, the settings it was
// created with (as JSON) and what a restarted daemon needs to find it again (engine name, id-range
// index, init pid, agent socket). The store knows nothing of the engine; SandboxManager drives it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "daemon/database.h"
#include "daemon/timestamp.h"
#include "network/egress_policy.h"

namespace airlock::daemon {

using StringPairs = std::vector<std::pair<std::string, std::string>>;

// A port reachable through the daemon's port proxy (issue 4, "Exposed ports").
struct ExposedPort {
  uint16_t port = 0;
  bool is_public = false;  // no access token needed
  UnixMillis created_at = 0;
};
inline constexpr size_t kMaxExposedPorts = 32;

// What a sandbox was created with (CreateSandboxRequest after defaults).
struct SandboxSettings {
  std::string template_name = "host";
  int64_t cpu_millis = 1000;  // thousandths of a CPU
  int64_t memory_mb = 512;
  int64_t disk_mb = 1024;
  int64_t pids = 256;
  int64_t timeout = 300;  // seconds, as last set (create or POST /timeout)
  std::optional<int64_t> idle_timeout;
  std::string workdir = "/root";
  StringPairs env;       // never echoed back
  StringPairs metadata;  // sorted by key
  net::EgressPolicy network;
  std::string ipv4, ipv6;  // the sandbox's addresses while it has an interface (else empty)
  std::vector<ExposedPort> ports;  // sorted by port, unique; changed by the port routes
};

std::string settings_to_json(const SandboxSettings& settings);
// The contract's SandboxNetwork: policy in canonical form, addresses (null without an interface).
nlohmann::json network_to_json(const SandboxSettings& settings);
Result<SandboxSettings> settings_from_json(std::string_view text);

enum class SandboxState { kStarting, kRunning, kStopped, kTerminated };
std::string_view state_name(SandboxState state);
std::optional<SandboxState> parse_state(std::string_view name);
inline bool is_live(SandboxState s) { return s == SandboxState::kStarting || s == SandboxState::kRunning; }

struct SandboxRecord {
  int64_t seq = 0;
  std::string sandbox_id;  // sb-<16 of [0-9a-z]>
  std::string tenant;
  SandboxState state = SandboxState::kStarting;
  std::optional<std::string> stop_reason;  // timeout, idle, oom, error, exited
  std::optional<std::string> stop_message;
  SandboxSettings settings;
  std::string engine_name;
  std::optional<int64_t> id_index;
  std::optional<int64_t> init_pid;
  std::string agent_socket;
  // Agent process ids are reserved in blocks and the reservation stored before use, so that a
  // restarted daemon starts above every id its predecessor may have used (the agent refuses an id
  // still in use, and events of an unknown id break the connection).
  int64_t process_ids_reserved = 0;
  UnixMillis created_at = 0;
  std::optional<UnixMillis> started_at, ended_at, expires_at;
  UnixMillis last_activity_at = 0;
};

struct SandboxListQuery {
  std::string tenant;
  std::vector<SandboxState> states;  // empty: every state but terminated
  StringPairs metadata;              // every pair must match
  int64_t limit = 100;
  std::optional<int64_t> before_seq;
};

struct SandboxPage {
  std::vector<SandboxRecord> sandboxes;  // newest first
  std::optional<int64_t> next_before;
};

class SandboxStore {
 public:
  explicit SandboxStore(Database& db) : db_(db) {}

  Status insert(SandboxRecord& record);  // sets seq
  Status update(const SandboxRecord& record);
  Status set_process_ids_reserved(int64_t seq, int64_t reserved);
  // Background processes (see process.h), by the sandbox's seq and the process's agent id.
  struct StoredProcess {
    int64_t id = 0, pid = 0;
    bool running = false;
    std::string doc;  // JSON
  };
  Status save_process(int64_t seq, const StoredProcess& process);
  // Keeps the `keep_exited` newest exited rows of the sandbox.
  Status prune_processes(int64_t seq, int64_t keep_exited);
  Result<std::vector<StoredProcess>> list_processes(int64_t seq);
  // The tenant's sandbox; nullopt also when it is another tenant's.
  Result<std::optional<SandboxRecord>> get(std::string_view tenant, std::string_view sandbox_id);
  Result<SandboxPage> list(const SandboxListQuery& query);
  // Every sandbox in state starting or running (for recovery after a restart).
  Result<std::vector<SandboxRecord>> list_live();
  // starting/running sandboxes and their memory, for the tenant quota.
  Result<std::pair<int64_t, int64_t>> live_usage(std::string_view tenant);

 private:
  Database& db_;
};

// "sb-" + 16 random characters of [0-9a-z] (getrandom).
std::string new_sandbox_id();
// ^sb-[0-9a-z]{16}$
bool valid_sandbox_id(std::string_view id);

}  // namespace airlock::daemon
