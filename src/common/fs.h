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
// Opens /dev/null on any of fds 0-2 that is closed, so that no socket, pipe or file a program
// opens later lands on a standard stream (and gets written to by accident or handed on as one).
void ensure_std_fds();
// mkdir -p with the given mode for created components.
Status make_dirs(const std::string& path, unsigned mode = 0755);

}  // namespace airlock
