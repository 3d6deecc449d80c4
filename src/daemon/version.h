// The daemon's version, reported by /healthz and /v1/version.
#pragma once

#include <string_view>

namespace airlock::daemon {

inline constexpr std::string_view kDaemonVersion = "0.1.0";
inline constexpr std::string_view kApiVersion = "v1";

}  // namespace airlock::daemon
