// Parsing and printing of the human units users type: sizes ("256M"), durations ("500ms"), CPUs ("0.5").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace airlock {

// "512", "64k", "256M", "1G", "1.5G", "2T" (binary multiples; optional trailing "B"/"iB").
Result<uint64_t> parse_size(std::string_view text);
// "500ms", "30s", "5m", "1h", "1m30s", or a bare number of seconds ("2.5").
Result<std::chrono::milliseconds> parse_duration(std::string_view text);
// "0.5", "2", "1.25" -> thousandths of a CPU.
Result<uint64_t> parse_cpus(std::string_view text);
// Non-negative decimal integer that fits in uint64_t.
Result<uint64_t> parse_uint(std::string_view text);

// 268435456 -> "256M"; 1536 -> "1.5K"; 100 -> "100B".
std::string format_size(uint64_t bytes);
// 2000ms -> "2s"; 1500ms -> "1.5s"; 90000ms -> "1m30s"; 250ms -> "250ms".
std::string format_duration(std::chrono::milliseconds d);

}  // namespace airlock
