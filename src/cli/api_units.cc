#include "cli/api_units.h"

#include "common/units.h"

namespace airlock::cli {
namespace {

bool all_digits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

Result<uint64_t> parse_mebibytes(std::string_view text) {
  constexpr uint64_t kMiB = 1u << 20;
  uint64_t mib = 0;
  if (all_digits(text)) {
    TRY(mib, parse_uint(text));
  } else {
    TRY(auto bytes, parse_size(text));
    mib = bytes / kMiB + (bytes % kMiB != 0);
  }
  if (mib == 0) return plain_error("size \"" + std::string(text) + "\" must be positive");
  return mib;
}

Result<uint64_t> parse_whole_seconds(std::string_view text) {
  TRY(auto ms, parse_duration(text));
  if (ms.count() <= 0) return plain_error("duration \"" + std::string(text) + "\" must be positive");
  return static_cast<uint64_t>((ms.count() + 999) / 1000);
}

Result<double> parse_seconds(std::string_view text) {
  TRY(auto ms, parse_duration(text));
  if (ms.count() <= 0) return plain_error("duration \"" + std::string(text) + "\" must be positive");
  return static_cast<double>(ms.count()) / 1000.0;
}

}  // namespace airlock::cli
