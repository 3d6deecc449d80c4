#include "cli/daemon_verb.h"

#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "common/fs.h"

namespace airlock::cli {

void print_error(const std::string& message) { std::fprintf(stderr, "airlock: %s\n", message.c_str()); }
void print_error(const Error& error) { print_error(error.message); }

int report_failure(const Error& error) {
  if (error.errnum == EPIPE) return 128 + SIGPIPE;
  print_error(error);
  return 125;
}

void add_connection_options(CLI::App& app, GlobalOptions& options) {
  app.add_option_function<std::string>("--url", [&options](const std::string& v) { options.url = v; },
                                       "daemon address: http://HOST:PORT or unix:/path/to.sock");
  app.add_option_function<std::string>("--api-key", [&options](const std::string& v) { options.api_key = v; },
                                       "API key (default: $AIRLOCK_API_KEY or the config file)");
}

std::optional<int> parse_verb(CLI::App& app, const std::vector<std::string>& args) {
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    print_error(std::string(e.what()) + " (see " + app.get_name() + " --help)");
    return 125;
  }
  return std::nullopt;
}

Result<ApiClient> connect_api(const GlobalOptions& options) {
  auto env = [](const char* name) -> const char* { return std::getenv(name); };
  auto reader = [](const std::string& path) -> Result<std::string> { return read_file(path, 1 << 20); };
  TRY(auto config, resolve_client_config(options, env, reader));
  return ApiClient(std::move(config));
}

Status add_key_value(nlohmann::json& object, const std::string& entry, const char* flag, bool copy_host_env) {
  size_t eq = entry.find('=');
  if (entry.empty() || eq == 0) return plain_error(std::string("invalid ") + flag + " \"" + entry + "\" (expected KEY=VALUE)");
  if (eq == std::string::npos) {
    if (!copy_host_env) return plain_error(std::string("invalid ") + flag + " \"" + entry + "\" (expected KEY=VALUE)");
    if (const char* value = std::getenv(entry.c_str())) object[entry] = value;
    return {};
  }
  object[entry.substr(0, eq)] = entry.substr(eq + 1);
  return {};
}

}  // namespace airlock::cli
