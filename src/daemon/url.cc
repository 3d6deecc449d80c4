#include "daemon/url.h"

namespace airlock::daemon {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<RequestTarget> split_target(std::string_view target) {
  if (target.empty()) return std::nullopt;
  // A fragment never reaches a server; if one does, it is not part of the path or query (cut it
  // first, for the absolute form's query too).
  target = target.substr(0, target.find('#'));
  if (target.empty()) return std::nullopt;
  if (target.front() != '/') {
    // absolute-form: scheme "://" authority path-abempty [ "?" query ]
    size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos || scheme_end == 0) return std::nullopt;
    for (char c : target.substr(0, scheme_end)) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
                c == '-' || c == '.';
      if (!ok) return std::nullopt;
    }
    size_t path_start = target.find_first_of("/?", scheme_end + 3);
    if (path_start == std::string_view::npos) return RequestTarget{"/", ""};
    target = target.substr(path_start);
    if (target.front() == '?') {
      return RequestTarget{"/", std::string(target.substr(1))};
    }
  }
  size_t q = target.find('?');
  if (q == std::string_view::npos) return RequestTarget{std::string(target), ""};
  return RequestTarget{std::string(target.substr(0, q)), std::string(target.substr(q + 1))};
}

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace airlock::daemon
