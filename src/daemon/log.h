// The daemon's log: one line per event on stderr ("airlockd: warn: ..."), passed in where needed (no
// global logger). Lines are written with one write(2) each so threads do not interleave them.
// Secrets never reach it: callers log key ids and prefixes only.
#pragma once

#include <string_view>

namespace airlock::daemon {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

class Logger {
 public:
  explicit Logger(LogLevel level = LogLevel::kInfo, int fd = 2) : level_(level), fd_(fd) {}

  bool enabled(LogLevel level) const { return level <= level_; }
  void log(LogLevel level, std::string_view message) const;
  void error(std::string_view m) const { log(LogLevel::kError, m); }
  void warn(std::string_view m) const { log(LogLevel::kWarn, m); }
  void info(std::string_view m) const { log(LogLevel::kInfo, m); }
  void debug(std::string_view m) const { log(LogLevel::kDebug, m); }

 private:
  LogLevel level_;
  int fd_;
};

// "error", "warn", "info", "debug".
bool parse_log_level(std::string_view name, LogLevel* out);

}  // namespace airlock::daemon
