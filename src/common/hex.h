// Lowercase hex encoding (opaque cursors, ids); decoding accepts exactly what encoding produces.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace airlock {

std::string hex_encode(std::string_view bytes);
// nullopt for odd lengths or any character outside [0-9a-f].
std::optional<std::string> hex_decode(std::string_view text);

}  // namespace airlock
