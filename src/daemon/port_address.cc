#include "daemon/port_address.h"

#include <algorithm>

#include "daemon/url.h"

namespace airlock::daemon {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool has_forbidden_bytes(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// Headers the proxy consumes or sets itself, never passed on as the client sent them.
bool is_proxy_header(std::string_view name) {
  return ascii_iequals(name, kPortTokenHeader) || ascii_iequals(name, "X-Forwarded-For") ||
         ascii_iequals(name, "X-Forwarded-Proto") || ascii_iequals(name, "X-Forwarded-Host") ||
         ascii_iequals(name, "Forwarded");
}

// "Bearer alk_...": the daemon's API key. The proxy never accepts it, and it must not reach the
// sandbox (a program there would learn the owner's key). Other Authorization values belong to the app.
bool is_daemon_authorization(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (value.size() < 7 || !ascii_iequals(value.substr(0, 7), "Bearer ")) return false;
  value.remove_prefix(7);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  return value.substr(0, 4) == "alk_";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The Cookie header without our cookie ("" when nothing else is left).
std::string cookies_without_token(std::string_view cookie) {
  std::string out;
  while (!cookie.empty()) {
    size_t semi = cookie.find(';');
    std::string_view part = trim(cookie.substr(0, semi));
    cookie = semi == std::string_view::npos ? std::string_view() : cookie.substr(semi + 1);
    if (part.empty()) continue;
    std::string_view name = trim(part.substr(0, part.find('=')));
    if (name == kPortTokenCookie) continue;
    if (!out.empty()) out += "; ";
    out += part;
  }
  return out;
}

bool header_has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (ascii_iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

std::optional<uint16_t> parse_port_number(std::string_view text) {
  if (text.empty() || text.size() > 5 || text.front() == '0') return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value < 1 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

bool is_sandbox_id(std::string_view text) {
  if (text.size() != 19 || text.substr(0, 3) != "sb-") return false;
  return std::all_of(text.begin() + 3, text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); });
}

PortAddressMatch match_port_path(std::string_view target) {
  if (target.substr(0, 3) != "/p/") return std::monostate{};
  std::string_view rest = target.substr(3);
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return PortAddressError{"a port URL is /p/{sandbox_id}/{port}/..."};
  std::string_view id = rest.substr(0, slash);
  rest.remove_prefix(slash + 1);
  size_t end = rest.find_first_of("/?");
  std::string_view port_text = rest.substr(0, end);
  if (!is_sandbox_id(id)) return PortAddressError{"not a sandbox id in the port URL"};
  auto port = parse_port_number(port_text);
  if (!port) return PortAddressError{"not a port number (1-65535) in the port URL"};
  PortAddress address;
  address.sandbox_id = std::string(id);
  address.port = *port;
  address.prefix = "/p/" + address.sandbox_id + "/" + std::to_string(*port);
  std::string_view forwarded = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  address.target = forwarded.empty() || forwarded.front() == '?' ? "/" + std::string(forwarded) : std::string(forwarded);
  return address;
}

PortAddressMatch match_port_host(std::string_view host, std::string_view domain, std::string_view target) {
  if (domain.empty() || host.empty() || host.size() > kMaxHostLength) return std::monostate{};
  // Strip ":port" (IPv6 literals never match a domain, so a bracketed host falls through).
  if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    std::string_view p = host.substr(colon + 1);
    if (p.empty() || !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::monostate{};
    }
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // the absolute form "x.example."
  if (host.size() <= domain.size() + 1) return std::monostate{};
  std::string_view suffix = host.substr(host.size() - domain.size());
  if (host[host.size() - domain.size() - 1] != '.' || !ascii_iequals(suffix, domain)) return std::monostate{};
  std::string label;
  for (char c : host.substr(0, host.size() - domain.size() - 1)) label += lower(c);
  // "{port}-{sandbox_id}": one label, the port first.
  size_t dash = label.find('-');
  if (dash == std::string::npos) return PortAddressError{"a port host is {port}-{sandbox_id}." + std::string(domain)};
  auto port = parse_port_number(std::string_view(label).substr(0, dash));
  std::string id = label.substr(dash + 1);
  if (!port) return PortAddressError{"not a port number (1-65535) in the host name"};
  if (!is_sandbox_id(id)) return PortAddressError{"not a sandbox id in the host name"};
  PortAddress address;
  address.sandbox_id = std::move(id);
  address.port = *port;
  address.host_based = true;
  address.target = std::string(target);
  return address;
}

std::optional<PortCredential> find_port_token(const HttpRequest& head, std::string_view target) {
  if (auto h = head.header(kPortTokenHeader); h && !trim(*h).empty()) return PortCredential{std::string(trim(*h)), false};
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      size_t eq = pair.find('=');
      if (pair.substr(0, eq) != kPortTokenQuery || eq == std::string_view::npos) continue;
      auto value = percent_decode(pair.substr(eq + 1), true);
      if (value && !value->empty()) return PortCredential{std::move(*value), true};
    }
  }
  for (const auto& h : head.headers) {
    if (!ascii_iequals(h.name, "Cookie")) continue;
    std::string_view cookie = h.value;
    while (!cookie.empty()) {
      size_t semi = cookie.find(';');
      std::string_view part = trim(cookie.substr(0, semi));
      cookie = semi == std::string_view::npos ? std::string_view() : cookie.substr(semi + 1);
      size_t eq = part.find('=');
      if (eq == std::string_view::npos || trim(part.substr(0, eq)) != kPortTokenCookie) continue;
      std::string_view value = trim(part.substr(eq + 1));
      if (!value.empty()) return PortCredential{std::string(value), false};
    }
  }
  return std::nullopt;
}

bool is_upgrade(const HttpRequest& head) {
  auto c = head.header("Connection");
  return c && header_has_token(*c, "upgrade") && head.header("Upgrade");
}

std::string strip_token_query(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);
  std::string out(target.substr(0, q));
  std::string_view query = target.substr(q + 1);
  std::string kept;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.substr(0, pair.find('=')) == kPortTokenQuery) continue;
    if (!kept.empty()) kept += '&';
    kept += pair;
  }
  if (!kept.empty()) out += "?" + kept;
  return out;
}

std::optional<std::string> forwarded_head(const HttpRequest& head, const PortAddress& address) {
  std::string target = strip_token_query(address.target);
  if (has_forbidden_bytes(head.method) || has_forbidden_bytes(target) || target.find(' ') != std::string::npos) {
    return std::nullopt;
  }
  bool upgrade = is_upgrade(head);
  std::string out = head.method + " " + target + (head.version == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  std::string host;
  for (const auto& h : head.headers) {
    if (has_forbidden_bytes(h.name) || has_forbidden_bytes(h.value)) return std::nullopt;
    if (is_proxy_header(h.name)) continue;
    if (ascii_iequals(h.name, "Authorization") && is_daemon_authorization(h.value)) continue;
    if (ascii_iequals(h.name, "Host")) host = h.value;
    if (!upgrade && (ascii_iequals(h.name, "Connection") || ascii_iequals(h.name, "Keep-Alive"))) {
      continue;
    }
    if (ascii_iequals(h.name, "Cookie")) {
      std::string rest = cookies_without_token(h.value);
      if (!rest.empty()) out += "Cookie: " + rest + "\r\n";
      continue;
    }
    out += h.name + ": " + h.value + "\r\n";
  }
  // One request per relay: a further request on the same connection would reach the sandbox
  // unrewritten (its token, cookie or API key included) and unauthorised.
  if (!upgrade) out += "Connection: close\r\n";
  if (!head.peer.empty()) out += "X-Forwarded-For: " + head.peer + "\r\n";
  out += std::string("X-Forwarded-Proto: ") + (head.tls ? "https" : "http") + "\r\n";
  if (!host.empty()) out += "X-Forwarded-Host: " + host + "\r\n";
  if (!address.host_based) out += "X-Forwarded-Prefix: " + address.prefix + "\r\n";
  out += "\r\n";
  return out;
}

std::string port_token_cookie(const PortAddress& address, std::string_view token, bool secure) {
  std::string cookie = std::string(kPortTokenCookie) + "=" + std::string(token) + "; Path=" +
                       (address.host_based ? std::string("/") : address.prefix + "/") + "; HttpOnly; SameSite=Lax";
  if (secure) cookie += "; Secure";
  return cookie;
}

}  // namespace airlock::daemon
