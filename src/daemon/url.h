// Request targets: splitting path from query and percent-decoding (RFC 3986).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace airlock::daemon {

struct RequestTarget {
  std::string path;   // still percent-encoded: the router decodes parameters itself
  std::string query;  // after '?', without it; empty when absent
};

// Accepts origin-form ("/v1/keys?limit=2") and absolute-form ("http://host/v1/keys"), which RFC 9112
// says servers must accept. Anything else ("*", authority-form, garbage) yields nullopt.
std::optional<RequestTarget> split_target(std::string_view target);

// "%2F" -> "/"; with plus_is_space (query strings), "+" -> " ". nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

}  // namespace airlock::daemon
