// `airlock exec [OPTIONS] ID -- COMMAND [ARG...]`: run a command in a sandbox, streaming its output.
#pragma once

#include <string>
#include <vector>

#include "cli/client_config.h"

namespace airlock::cli {

// args: everything after the word "exec"; returns the exit status.
int exec_verb(const std::vector<std::string>& args, const GlobalOptions& globals);

}  // namespace airlock::cli
