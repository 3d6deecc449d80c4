// Where the daemon is and which key to show it: `--url`/`--api-key` flags, then AIRLOCK_URL and
// AIRLOCK_API_KEY, then the config file ($AIRLOCK_CONFIG or ~/.config/airlock/config.json, keys "url"
// and "api_key"), then the default http://127.0.0.1:7070. Pure: the environment and the file reader
// are injected so that every rule is unit-tested.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace airlock::cli {

inline constexpr const char* kDefaultDaemonUrl = "http://127.0.0.1:7070";

// http://HOST:PORT (HOST a name, an IPv4 literal or a bracketed IPv6 literal) or unix:/path/to.sock.
struct DaemonEndpoint {
  enum class Kind { kTcp, kUnix };
  Kind kind = Kind::kTcp;
  std::string host;       // kTcp: without brackets
  uint16_t port = 7070;   // kTcp
  std::string unix_path;  // kUnix: absolute or relative socket path
  // The Host header value: "host:port" ("[::1]:7070"), or "localhost" for a unix socket.
  std::string host_header() const;
  // For messages: the URL as the user would write it.
  std::string describe() const;
};

// "http://127.0.0.1:7070", "http://localhost:7070/", "http://[::1]:8080", "http://example" (port 80),
// "unix:/run/airlockd.sock", "unix:///run/airlockd.sock". Paths other than "/" and https are refused.
Result<DaemonEndpoint> parse_daemon_url(std::string_view url);

struct ClientConfig {
  DaemonEndpoint endpoint;
  std::string api_key;  // empty: requests go without Authorization (the daemon answers 401)
};

// Flags given on the command line; empty when absent.
struct GlobalOptions {
  std::optional<std::string> url;
  std::optional<std::string> api_key;
};

// Looks up an environment variable (nullptr when unset).
using EnvLookup = std::function<const char*(const char*)>;
// Reads a whole file; an error with errnum ENOENT means "no such file" (then it is simply skipped
// when it is the default path, and an error when $AIRLOCK_CONFIG names it).
using FileReader = std::function<Result<std::string>(const std::string& path)>;

Result<ClientConfig> resolve_client_config(const GlobalOptions& flags, const EnvLookup& env, const FileReader& read);

// Takes `--url X`, `--url=X`, `--api-key X`, `--api-key=X` from the front of args (the words before
// the verb) and removes them; an option missing its value is an error.
Status take_leading_global_options(std::vector<std::string>& args, GlobalOptions& out);

}  // namespace airlock::cli
