#include "cli/client_config.h"

#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/units.h"

namespace airlock::cli {
namespace {

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

Error bad_url(std::string_view url, std::string_view why) {
  return plain_error("invalid daemon url " + quoted(url) + " (" + std::string(why) +
                     "; expected http://HOST:PORT or unix:/path/to.sock)");
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.substr(0, prefix.size()) == prefix;
}

Result<DaemonEndpoint> parse_http_authority(std::string_view url, std::string_view rest) {
  DaemonEndpoint endpoint;
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos && rest.substr(slash) != "/")
    return bad_url(url, "a path after the address is not supported");
  if (authority.find('@') != std::string_view::npos) return bad_url(url, "credentials in the url are not supported");
  std::string_view port_text;
  if (starts_with(authority, "[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return bad_url(url, "unterminated IPv6 literal");
    endpoint.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad_url(url, "junk after the IPv6 literal");
      port_text = after.substr(1);
      if (port_text.empty()) return bad_url(url, "empty port");
    }
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
      if (port_text.empty()) return bad_url(url, "empty port");
    }
    if (authority.find(':') != std::string_view::npos) return bad_url(url, "IPv6 literals need brackets");
    endpoint.host = std::string(authority);
  }
  if (endpoint.host.empty()) return bad_url(url, "no host");
  endpoint.port = 80;
  if (!port_text.empty()) {
    auto port = parse_uint(port_text);
    if (!port.ok() || *port == 0 || *port > 65535) return bad_url(url, "port must be 1-65535");
    endpoint.port = static_cast<uint16_t>(*port);
  }
  return endpoint;
}

}  // namespace

std::string DaemonEndpoint::host_header() const {
  if (kind == Kind::kUnix) return "localhost";
  std::string name = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return name + ":" + std::to_string(port);
}

std::string DaemonEndpoint::describe() const {
  if (kind == Kind::kUnix) return "unix:" + unix_path;
  return "http://" + host_header();
}

Result<DaemonEndpoint> parse_daemon_url(std::string_view url) {
  if (starts_with(url, "unix:")) {
    std::string_view path = url.substr(5);
    if (starts_with(path, "//")) {  // unix:///run/x.sock: an empty authority, then the path
      path.remove_prefix(2);
      if (!starts_with(path, "/")) return bad_url(url, "unix://HOST is not supported; use unix:/path");
    }
    if (path.empty()) return bad_url(url, "no socket path");
    if (path.find('\0') != std::string_view::npos) return bad_url(url, "NUL in the socket path");
    DaemonEndpoint endpoint;
    endpoint.kind = DaemonEndpoint::Kind::kUnix;
    endpoint.unix_path = std::string(path);
    return endpoint;
  }
  if (starts_with(url, "https://")) return bad_url(url, "TLS is not supported by the CLI");
  if (!starts_with(url, "http://")) return bad_url(url, "unknown scheme");
  return parse_http_authority(url, url.substr(7));
}

Result<ClientConfig> resolve_client_config(const GlobalOptions& flags, const EnvLookup& env, const FileReader& read) {
  auto env_value = [&env](const char* name) -> std::optional<std::string> {
    const char* value = env(name);
    if (!value || !*value) return std::nullopt;
    return std::string(value);
  };

  // The file is read only when a flag or variable leaves something to fill in.
  std::optional<std::string> url = flags.url ? flags.url : env_value("AIRLOCK_URL");
  std::optional<std::string> key = flags.api_key ? flags.api_key : env_value("AIRLOCK_API_KEY");
  if (!url || !key) {
    std::optional<std::string> path = env_value("AIRLOCK_CONFIG");
    bool explicit_path = path.has_value();
    if (!path) {
      if (auto xdg = env_value("XDG_CONFIG_HOME")) {
        path = *xdg + "/airlock/config.json";
      } else if (auto home = env_value("HOME")) {
        path = *home + "/.config/airlock/config.json";
      }
    }
    if (path) {
      auto text = read(*path);
      if (!text.ok() && (explicit_path || text.error().errnum != ENOENT))
        return std::move(text).error().with_context("config file");
      if (text.ok()) {
        auto doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
        if (doc.is_discarded() || !doc.is_object())
          return plain_error("config file " + *path + ": not a JSON object");
        for (const auto& [name, value] : doc.items()) {
          if (name != "url" && name != "api_key") continue;  // room for later settings
          if (!value.is_string()) return plain_error("config file " + *path + ": \"" + name + "\" must be a string");
          if (name == "url" && !url) url = value.get<std::string>();
          if (name == "api_key" && !key) key = value.get<std::string>();
        }
      }
    }
  }

  ClientConfig config;
  auto endpoint = parse_daemon_url(url.value_or(kDefaultDaemonUrl));
  if (!endpoint.ok()) return std::move(endpoint).error();
  config.endpoint = std::move(*endpoint);
  config.api_key = key.value_or("");
  for (char c : config.api_key) {
    // The key goes into a header line: control characters would let it forge other headers.
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return plain_error("the api key contains control characters");
  }
  return config;
}

Status take_leading_global_options(std::vector<std::string>& args, GlobalOptions& out) {
  size_t i = 0;
  while (i < args.size()) {
    const std::string& arg = args[i];
    std::optional<std::string>* slot = nullptr;
    std::string name;
    for (auto [flag, target] : {std::pair{"--url", &out.url}, std::pair{"--api-key", &out.api_key}}) {
      std::string f = flag;
      if (arg == f || starts_with(arg, f + "=")) {
        slot = target;
        name = f;
      }
    }
    if (!slot) break;
    if (arg.size() > name.size()) {
      *slot = arg.substr(name.size() + 1);
      i += 1;
    } else {
      if (i + 1 >= args.size()) return plain_error(name + " needs a value");
      *slot = args[i + 1];
      i += 2;
    }
  }
  args.erase(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(i));
  return {};
}

}  // namespace airlock::cli
