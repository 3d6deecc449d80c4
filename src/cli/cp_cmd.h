// `airlock cp [-r] SRC DST`: copy files between this host and a sandbox (`ID:/path`).
#pragma once

#include <string>
#include <vector>

#include "cli/client_config.h"

namespace airlock::cli {

// args: everything after the word "cp"; returns the exit status.
int cp_verb(const std::vector<std::string>& args, const GlobalOptions& globals);

}  // namespace airlock::cli
