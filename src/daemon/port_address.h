// The port proxy's view of a request (issue 4, "Exposed ports"), as pure functions: which sandbox
// port a request is for (path-based `/p/{sandbox_id}/{port}/...` or host-based
// `{port}-{sandbox_id}.{domain}`), where its access token is (header, query, cookie), and the request
// head forwarded to the sandbox (prefix and token stripped, the daemon's credentials removed,
// X-Forwarded-* set). Unit-tested with hostile inputs; no I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "daemon/http_message.h"

namespace airlock::daemon {

inline constexpr std::string_view kPortTokenHeader = "X-Airlock-Port-Token";
inline constexpr std::string_view kPortTokenQuery = "airlock_token";
inline constexpr std::string_view kPortTokenCookie = "airlock_port_token";
inline constexpr size_t kMaxHostLength = 300;  // a DNS name (253) and a port, with room to spare

struct PortAddress {
  std::string sandbox_id;  // sb-<16 of [0-9a-z]>
  uint16_t port = 0;
  std::string target;      // the request-target forwarded: path-based ones without their prefix
  bool host_based = false;
  std::string prefix;      // path-based: "/p/sb-.../8080" (the cookie's path)
};

// Why a request addressed to the proxy cannot be served: a path or host that names no sandbox port.
struct PortAddressError {
  std::string message;
};

using PortAddressMatch = std::variant<std::monostate, PortAddress, PortAddressError>;

// "1".."65535" in canonical decimal (no sign, no leading zero); nullopt otherwise.
std::optional<uint16_t> parse_port_number(std::string_view text);
// sb-<16 of [0-9a-z]>
bool is_sandbox_id(std::string_view text);

// monostate: not a proxy path (does not start with "/p/"). The rest after the port must be empty or
// start with '/' or '?'; an empty path becomes "/".
PortAddressMatch match_port_path(std::string_view target);
// monostate: the Host is not under `domain` (or no domain is configured). `host` is the Host header,
// optionally with ":port"; names compare case-insensitively.
PortAddressMatch match_port_host(std::string_view host, std::string_view domain, std::string_view target);

// Where the client put its token. `from_query`: the target had it (it must be stripped before
// forwarding, and a cookie set so the browser's next requests carry it).
struct PortCredential {
  std::string token;
  bool from_query = false;
};
std::optional<PortCredential> find_port_token(const HttpRequest& head, std::string_view target);

// `Connection: upgrade` with an `Upgrade` header (a WebSocket handshake, for instance).
bool is_upgrade(const HttpRequest& head);

// `target` without any airlock_token query parameter.
std::string strip_token_query(std::string_view target);

// The request head sent to the sandbox: request line with `address.target` (token stripped), the
// client's headers minus the proxy's own (port token header and cookie, a daemon API key in
// Authorization, X-Forwarded-*), plus X-Forwarded-For/-Proto/-Host; path-based requests that are not
// an Upgrade get `Connection: close` (each is routed and authorised afresh). nullopt: a header the
// proxy refuses to forward (CR, LF or NUL inside).
std::optional<std::string> forwarded_head(const HttpRequest& head, const PortAddress& address);

// The Set-Cookie value that keeps a token from the query for a browser's next requests.
std::string port_token_cookie(const PortAddress& address, std::string_view token, bool secure);

}  // namespace airlock::daemon
