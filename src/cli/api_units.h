// What users type on the command line -> the units of the API: sizes in MiB (`--memory 512m`,
// `--disk 2G`, a bare number is MiB), whole seconds (`--timeout 300`, `5m`, `1h30m`) and fractional
// seconds (`exec --timeout 2.5`, `500ms`).
#pragma once

#include <cstdint>
#include <string_view>

#include "common/result.h"

namespace airlock::cli {

// "512m" -> 512, "1G" -> 1024, "512" -> 512, "1.5M" -> 2 (rounded up); 0 is an error.
Result<uint64_t> parse_mebibytes(std::string_view text);
// "300" -> 300, "5m" -> 300, "1500ms" -> 2 (rounded up); 0 is an error.
Result<uint64_t> parse_whole_seconds(std::string_view text);
// "2.5" -> 2.5, "500ms" -> 0.5; 0 is an error.
Result<double> parse_seconds(std::string_view text);

}  // namespace airlock::cli
