// `airlock shell ID [-- COMMAND...]`: an interactive terminal in a sandbox.
#pragma once

#include <string>
#include <vector>

#include "cli/client_config.h"

namespace airlock::cli {

// args: everything after the word "shell"; returns the exit status.
int shell_verb(const std::vector<std::string>& args, const GlobalOptions& globals);

}  // namespace airlock::cli
