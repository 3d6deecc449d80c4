// `airlock sandbox create|ls|get|rm|timeout`.
#pragma once

#include <string>
#include <vector>

#include "cli/client_config.h"

namespace airlock::cli {

// args: everything after the word "sandbox"; returns the exit status.
int sandbox_verb(const std::vector<std::string>& args, const GlobalOptions& globals);

}  // namespace airlock::cli
