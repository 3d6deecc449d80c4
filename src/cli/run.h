#pragma once

#include <string>
#include <vector>

namespace airlock::cli {

// `airlock run [OPTIONS] -- COMMAND [ARG...]`; returns the process exit status.
int run_verb(const std::vector<std::string>& args);

}  // namespace airlock::cli
