// What every verb that talks to the daemon shares: the `--url`/`--api-key` options on the verb
// (over the global ones given before it), argument parsing with CLI11 (help and usage errors), the
// client, and how a failure is printed: `airlock: <message> (<code>)` on stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/api_client.h"
#include "cli/client_config.h"
#include "common/result.h"

namespace airlock::cli {

// Prints "airlock: <message>" to stderr.
void print_error(const Error& error);
void print_error(const std::string& message);

// Prints the error and returns 125; a write to a closed pipe (`airlock exec ... | head`) instead
// ends quietly with 141 (128+SIGPIPE), the status the shell expects of a pipeline's writer.
int report_failure(const Error& error);

// Adds --url and --api-key to a verb; values given there replace the global ones.
void add_connection_options(CLI::App& app, GlobalOptions& options);

// Parses args (in order) with app. nullopt: go on. Otherwise the exit status to return at once:
// 0 after --help, 125 after a usage error (printed with a hint to --help).
std::optional<int> parse_verb(CLI::App& app, const std::vector<std::string>& args);

// The client for the resolved address and key (flags, environment, config file, default).
Result<ApiClient> connect_api(const GlobalOptions& options);

// "KEY=VALUE" (or "KEY", which copies the host's value; skipped when unset) into an object.
Status add_key_value(nlohmann::json& object, const std::string& entry, const char* flag, bool copy_host_env);

}  // namespace airlock::cli
