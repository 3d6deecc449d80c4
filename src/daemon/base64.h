// Standard base64 (RFC 4648 §4, with padding): command output and stdin with `encoding: base64`.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace airlock::daemon {

std::string base64_encode(std::string_view bytes);
// nullopt for anything but canonical padded base64 (whitespace included).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace airlock::daemon
