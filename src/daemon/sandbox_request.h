// Request bodies of the sandbox and command operations, read into plain structs with the contract's
// rules (types, ranges, patterns, unknown fields): 400 `invalid_field` naming the field, or 422 where
// the contract says so. Pure functions: unit-tested without a daemon.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/errors.h"
#include "daemon/sandbox_store.h"

namespace airlock::daemon {

// CreateSandboxRequest after defaults. Only the `host` template exists so far.
ApiResult<SandboxSettings> parse_create_sandbox(const nlohmann::json& body);

// NetworkConfig (create's `network`, PUT /network): `prefix` names the fields in errors ("network.").
ApiResult<net::EgressPolicy> parse_network(const nlohmann::json& body, const std::string& prefix);

// `ports` of CreateSandboxRequest: at most kMaxExposedPorts, each 1..65535 or {port, public}; no repeats.
ApiResult<std::vector<ExposedPort>> parse_ports(const nlohmann::json& body);
// One port: an integer or {port, public} (the body of POST .../ports, with `field` "" there).
ApiResult<ExposedPort> parse_exposed_port(const nlohmann::json& item, const std::string& field);

struct SetTimeoutRequest {
  std::optional<int64_t> timeout;    // seconds from now
  std::optional<int64_t> extend_by;  // seconds added to the current deadline
};
ApiResult<SetTimeoutRequest> parse_set_timeout(const nlohmann::json& body);

struct RunCommandRequest {
  std::vector<std::string> argv;  // `cmd` becomes /bin/sh -c CMD
  StringPairs env;
  std::optional<std::string> cwd;
  uint32_t uid = 0, gid = 0;
  std::string user = "root";  // as given, for display
  std::string stdin_data;  // decoded
  std::chrono::milliseconds timeout{60000};  // 0: none (background processes only)
  bool base64_output = false;
  size_t max_output_bytes = 1 << 20;
  // stream and background:
  bool open_stdin = false;
  // background:
  std::optional<std::pair<uint16_t, uint16_t>> pty;  // cols, rows
  size_t output_buffer_bytes = 1 << 20;
};
// Which operation's body: RunCommandRequest, StreamCommandRequest or StartProcessRequest.
enum class CommandBody { kRun, kStream, kStart };
ApiResult<RunCommandRequest> parse_run_command(const nlohmann::json& body, CommandBody kind = CommandBody::kRun);

// `UID[:GID]` (0-65535) or `root`; other names need the sandbox's /etc/passwd (422 unknown_user).
ApiResult<std::pair<uint32_t, uint32_t>> parse_user(std::string_view user);

}  // namespace airlock::daemon
