#include "daemon/router.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "daemon/url.h"

namespace airlock::daemon {
namespace {

// "/v1/keys/x" -> {"v1", "keys", "x"}; "/" -> {""}. The path must start with '/'.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

[[noreturn]] void bad_route(const Route& route, const char* why) {
  std::fprintf(stderr, "airlockd: bug: route %s %s: %s\n", route.method.c_str(), route.pattern.c_str(), why);
  std::abort();
}

}  // namespace

std::optional<std::vector<Router::Segment>> Router::parse_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') return std::nullopt;
  std::vector<Segment> segments;
  for (auto part : split_path(pattern)) {
    if (part.size() >= 2 && part.front() == '{' && part.back() == '}') {
      segments.push_back({std::string(part.substr(1, part.size() - 2)), true});
    } else if (part.find_first_of("{}") != std::string_view::npos) {
      return std::nullopt;
    } else {
      segments.push_back({std::string(part), false});
    }
  }
  return segments;
}

void Router::add(Route route) {
  auto segments = parse_pattern(route.pattern);
  if (!segments) bad_route(route, "malformed pattern");
  if (!route.handler) bad_route(route, "no handler");
  // A streamed body is read by blocking on it: that must never happen on an I/O thread.
  if (route.body == BodyKind::kStream && !route.blocking) bad_route(route, "a streamed body needs a blocking route");
  for (const auto& e : entries_) {
    if (e.route.method == route.method && e.route.pattern == route.pattern) bad_route(route, "registered twice");
  }
  entries_.push_back(Entry{std::move(route), std::move(*segments)});
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  if (path.empty() || path.front() != '/') return NotFound{};
  auto parts = split_path(path);

  // Every entry whose pattern matches the path, with its decoded parameters.
  struct Candidate {
    const Entry* entry;
    PathParams params;
  };
  std::vector<Candidate> candidates;
  for (const auto& e : entries_) {
    if (e.segments.size() != parts.size()) continue;
    PathParams params;
    bool ok = true;
    for (size_t i = 0; ok && i < parts.size(); ++i) {
      const Segment& seg = e.segments[i];
      if (!seg.is_param) {
        ok = seg.text == parts[i];
      } else if (parts[i].empty()) {
        ok = false;
      } else if (auto decoded = percent_decode(parts[i], false)) {
        params.values.emplace_back(seg.text, std::move(*decoded));
      } else {
        ok = false;
      }
    }
    if (ok) candidates.push_back({&e, std::move(params)});
  }
  if (candidates.empty()) return NotFound{};

  // Literal segments beat parameters, left to right: "/v1/keys/stats" wins over "/v1/keys/{key_id}".
  auto more_specific = [](const Candidate& a, const Candidate& b) {
    const auto& sa = a.entry->segments;
    const auto& sb = b.entry->segments;
    for (size_t i = 0; i < sa.size(); ++i) {
      if (sa[i].is_param != sb[i].is_param) return !sa[i].is_param;
    }
    return false;
  };
  std::stable_sort(candidates.begin(), candidates.end(), more_specific);
  for (auto& c : candidates) {
    if (c.entry->route.method == method) return Found{&c.entry->route, std::move(c.params)};
  }
  MethodNotAllowed wrong;
  for (const auto& c : candidates) wrong.allow.push_back(c.entry->route.method);
  std::sort(wrong.allow.begin(), wrong.allow.end());
  wrong.allow.erase(std::unique(wrong.allow.begin(), wrong.allow.end()), wrong.allow.end());
  return wrong;
}

}  // namespace airlock::daemon
