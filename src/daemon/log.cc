#include "daemon/log.h"

#include <unistd.h>

#include <string>

namespace airlock::daemon {

void Logger::log(LogLevel level, std::string_view message) const {
  if (!enabled(level)) return;
  static constexpr std::string_view kNames[] = {"error", "warn", "info", "debug"};
  std::string line = "airlockd: ";
  if (level != LogLevel::kInfo) {
    line += kNames[static_cast<int>(level)];
    line += ": ";
  }
  // Messages may quote client input: keep the log one line per event and free of terminal escapes.
  for (char c : message) {
    auto u = static_cast<unsigned char>(c);
    line.push_back(u < 0x20 || u == 0x7f ? '?' : c);
  }
  line.push_back('\n');
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n <= 0) break;  // nowhere better to report a failing log
    done += static_cast<size_t>(n);
  }
}

bool parse_log_level(std::string_view name, LogLevel* out) {
  if (name == "error") *out = LogLevel::kError;
  else if (name == "warn") *out = LogLevel::kWarn;
  else if (name == "info") *out = LogLevel::kInfo;
  else if (name == "debug") *out = LogLevel::kDebug;
  else return false;
  return true;
}

}  // namespace airlock::daemon
