// Standard base64 (RFC 4648, with padding), for the `encoding: base64` fields of the API: output
// events carry exact bytes that way.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace airlock::cli {

std::string base64_encode(std::string_view bytes);
// Strict: the standard alphabet, padding to a multiple of 4, no whitespace.
Result<std::string> base64_decode(std::string_view text);

}  // namespace airlock::cli
