// `airlock port ls|expose|rm|token` (exposed ports of a sandbox) and `airlock port-forward ID
// [LOCAL:]REMOTE...` (raw TCP to ports inside a sandbox over the daemon's /ports/{port}/connect
// WebSocket, for protocols the HTTP proxy cannot carry: databases, SSH, anything).
#pragma once

#include <string>
#include <vector>

#include "cli/client_config.h"

namespace airlock::cli {

int port_verb(const std::vector<std::string>& args, const GlobalOptions& globals);
int port_forward_verb(const std::vector<std::string>& args, const GlobalOptions& globals);

}  // namespace airlock::cli
