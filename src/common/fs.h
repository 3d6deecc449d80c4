// Small file helpers for host-side code (never for sandbox-supplied paths).
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace airlock {

// Writes data to an existing file (cgroup knobs, /proc files) in one write(2).
Status write_file(const std::string& path, std::string_view data);
// Reads at most max_bytes of a file.
Result<std::string> read_file(const std::string& path, size_t max_bytes = 1 << 20);
// mkdir -p with the given mode for created components.
Status make_dirs(const std::string& path, unsigned mode = 0755);

}  // namespace airlock
