// Exit statuses of the daemon verbs (exec, shell): the command's own status passes through, so
// airlock's own failures use the values that shells and `docker exec` reserve.
#pragma once

namespace airlock::cli {

inline constexpr int kExitCommandTimeout = 124;  // the command's --timeout killed it (as timeout(1))
inline constexpr int kExitAirlockError = 125;    // bad usage, daemon unreachable, API error
inline constexpr int kExitCannotExecute = 126;   // reported by the daemon for a non-executable command
inline constexpr int kExitNotFound = 127;        // reported by the daemon for a missing command

}  // namespace airlock::cli
