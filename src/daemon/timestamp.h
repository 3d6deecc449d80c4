// Wall-clock time as the contract writes it: RFC 3339 UTC with milliseconds ("2026-11-21T10:00:00.123Z").
// Stored as milliseconds since the Unix epoch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace airlock::daemon {

using UnixMillis = int64_t;
// Injected where tests need to control time.
using WallClock = std::function<UnixMillis()>;

UnixMillis unix_millis_now();
std::string format_timestamp(UnixMillis ms);

}  // namespace airlock::daemon
