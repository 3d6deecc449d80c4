// `airlockd` serving: wires the data dir, database, key store, routes, API pipeline and HTTP server,
// in that order, and runs until SIGTERM/SIGINT.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "daemon/log.h"
#include "daemon/network_service.h"

namespace airlock::daemon {

struct DaemonOptions {
  std::string data_dir = "/var/lib/airlock";
  std::string listen = "127.0.0.1:7070";  // "" or "none": no TCP listener
  std::optional<std::string> unix_path;   // default DATA_DIR/airlockd.sock
  bool unix_enabled = true;
  // PEM files, both or neither: with them the TCP listener speaks HTTPS only (the unix socket stays HTTP).
  std::string tls_cert, tls_key;
  unsigned threads = 2;   // HTTP I/O threads
  unsigned workers = 16;  // threads for engine and agent work (a blocking command holds one)
  LogLevel log_level = LogLevel::kInfo;
  // [obs] Quota of tenants without their own (PUT /v1/tenants/{tenant}/quota); nullopt: unlimited.
  std::optional<int64_t> default_max_sandboxes = 100;
  std::optional<int64_t> default_max_memory_mb = 64 * 1024;
  NetworkServiceOptions network;  // state_dir: set from the engine's run dir
  // Host-based URLs of exposed ports: {port}-{sandbox_id}.DOMAIN ("": path-based /p/... only).
  std::string proxy_domain;
};

// Returns the process exit status.
int run_daemon(const DaemonOptions& options);

}  // namespace airlock::daemon
