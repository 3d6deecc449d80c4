#include "common/units.h"

#include <cmath>
#include <cstdio>

namespace airlock {
namespace {

// A non-negative decimal number with at most one '.', parsed without locale surprises.
// Returns the number of characters consumed (0 = no number).
size_t parse_decimal(std::string_view text, long double* out) {
  size_t i = 0;
  long double value = 0;
  bool digits = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    value = value * 10 + (text[i] - '0');
    digits = true;
    ++i;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    long double scale = 0.1L;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value += (text[i] - '0') * scale;
      scale /= 10;
      digits = true;
      ++i;
    }
  }
  if (!digits) return 0;
  *out = value;
  return i;
}

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

}  // namespace

Result<uint64_t> parse_uint(std::string_view text) {
  if (text.empty() || text.size() > 20) return plain_error("invalid number " + quoted(text));
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return plain_error("invalid number " + quoted(text));
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return plain_error("number too large " + quoted(text));
    value = value * 10 + digit;
  }
  return value;
}

Result<uint64_t> parse_size(std::string_view text) {
  long double number = 0;
  size_t used = parse_decimal(text, &number);
  if (used == 0) return plain_error("invalid size " + quoted(text) + " (expected e.g. 512M, 1G)");
  std::string_view suffix = text.substr(used);
  // "M", "MB", "MiB": the unit letter may be followed by "B" or "iB" (all binary multiples).
  if (suffix.size() == 3 && (suffix.substr(1) == "iB" || suffix.substr(1) == "ib"))
    suffix.remove_suffix(2);
  else if (suffix.size() == 2 && (suffix.back() == 'B' || suffix.back() == 'b'))
    suffix.remove_suffix(1);
  long double multiplier = 1;
  if (suffix.size() > 1) return plain_error("invalid size " + quoted(text) + " (unknown unit)");
  if (suffix.size() == 1) {
    switch (suffix[0]) {
      case 'b': case 'B': multiplier = 1; break;
      case 'k': case 'K': multiplier = 1ULL << 10; break;
      case 'm': case 'M': multiplier = 1ULL << 20; break;
      case 'g': case 'G': multiplier = 1ULL << 30; break;
      case 't': case 'T': multiplier = 1ULL << 40; break;
      default: return plain_error("invalid size " + quoted(text) + " (unknown unit)");
    }
  }
  long double bytes = std::floor(number * multiplier);
  if (bytes >= 18446744073709551615.0L) return plain_error("size too large " + quoted(text));
  return static_cast<uint64_t>(bytes);
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return plain_error("invalid duration \"\" (expected e.g. 500ms, 30s, 5m)");
  long double total_ms = 0;
  std::string_view rest = text;
  bool bare = true;
  while (!rest.empty()) {
    long double number = 0;
    size_t used = parse_decimal(rest, &number);
    if (used == 0) return plain_error("invalid duration " + quoted(text) + " (expected e.g. 500ms, 30s, 5m)");
    rest.remove_prefix(used);
    size_t unit_len = 0;
    while (unit_len < rest.size() && ((rest[unit_len] >= 'a' && rest[unit_len] <= 'z'))) ++unit_len;
    std::string_view unit = rest.substr(0, unit_len);
    rest.remove_prefix(unit_len);
    long double scale;
    if (unit.empty()) {
      if (!bare || !rest.empty()) return plain_error("invalid duration " + quoted(text) + " (missing unit)");
      scale = 1000;  // a bare number means seconds
    } else if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60'000;
    } else if (unit == "h") {
      scale = 3'600'000;
    } else {
      return plain_error("invalid duration " + quoted(text) + " (unknown unit " + quoted(unit) + ")");
    }
    bare = false;
    total_ms += number * scale;
  }
  if (total_ms > 1e15L) return plain_error("duration too large " + quoted(text));
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(total_ms)));
}

Result<uint64_t> parse_cpus(std::string_view text) {
  long double number = 0;
  size_t used = parse_decimal(text, &number);
  if (used == 0 || used != text.size())
    return plain_error("invalid CPU count " + quoted(text) + " (expected e.g. 0.5, 2)");
  if (number > 1e6L) return plain_error("CPU count too large " + quoted(text));
  return static_cast<uint64_t>(std::llround(number * 1000));
}

std::string format_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "K", "M", "G", "T"};
  int unit = 0;
  long double value = static_cast<long double>(bytes);
  // Promote when one decimal would print as 1024.0 (1048575 bytes is "1.0M", not "1024.0K").
  while (value >= 1023.95L && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0 || value == std::floor(value))
    std::snprintf(buf, sizeof buf, "%.0Lf%s", value, kUnits[unit]);
  else
    std::snprintf(buf, sizeof buf, "%.1Lf%s", value, kUnits[unit]);
  return buf;
}

std::string format_duration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  char buf[64];
  // Seconds with up to three decimals, trailing zeros dropped: exact for whole milliseconds.
  auto seconds = [](int64_t value_ms, char* out, size_t size) {
    if (value_ms % 1000 == 0) {
      std::snprintf(out, size, "%llds", static_cast<long long>(value_ms / 1000));
      return;
    }
    int n = std::snprintf(out, size, "%lld.%03lld", static_cast<long long>(value_ms / 1000),
                          static_cast<long long>(value_ms % 1000));
    while (n > 0 && out[n - 1] == '0') out[--n] = '\0';
    std::snprintf(out + n, size - static_cast<size_t>(n), "s");
  };
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60'000) {
    seconds(ms, buf, sizeof buf);
  } else {
    int64_t minutes = ms / 60'000;
    int64_t rest = ms % 60'000;
    int n = std::snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(minutes));
    if (rest) seconds(rest, buf + n, sizeof buf - static_cast<size_t>(n));
  }
  return buf;
}

}  // namespace airlock
