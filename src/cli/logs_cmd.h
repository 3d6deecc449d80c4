// `airlock logs [-f] ID`: a sandbox's log (lifecycle events and process output).
#pragma once

#include <string>
#include <vector>

#include "cli/client_config.h"

namespace airlock::cli {

// args: everything after the word "logs"; returns the exit status.
int logs_verb(const std::vector<std::string>& args, const GlobalOptions& globals);

}  // namespace airlock::cli
