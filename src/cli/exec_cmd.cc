// `airlock exec`: a command in a running sandbox, its output on our stdout and stderr as it comes,
// and its exit status as ours.
//
// Without -i/-t it is one streamed request (POST commands/stream, NDJSON, output base64-encoded
// so that bytes pass exactly); stdin is not read. With -i and/or -t the command is a background
// process (POST /processes) attached over WebSocket, which carries stdin, terminal resizes and
// signals (see interactive_process.h).
#include "cli/exec_cmd.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "cli/api_units.h"
#include "cli/daemon_verb.h"
#include "cli/exit_codes.h"
#include "cli/interactive_process.h"
#include "cli/ndjson.h"
#include "cli/process_events.h"
#include "cli/query_string.h"

namespace airlock::cli {
namespace {

constexpr const char* kUsage = "usage: airlock exec [OPTIONS] ID -- COMMAND [ARG...]";
// commands/stream has no "no timeout": without --timeout, the contract's maximum (30 days); the
// sandbox's own lifetime ends the command first.
constexpr double kNoTimeout = 2592000;

int stream_command(const ApiClient& api, const std::string& sandbox_id, nlohmann::json body) {
  body["encoding"] = "base64";
  if (!body.contains("timeout")) body["timeout"] = kNoTimeout;
  auto stream = api.open("POST", sandbox_target(sandbox_id, "/commands/stream"), &body);
  if (!stream.ok()) {
    print_error(stream.error());
    return kExitAirlockError;
  }
  ProcessEventPrinter printer(STDOUT_FILENO, STDERR_FILENO);
  NdjsonSplitter lines;
  char buffer[64 * 1024];
  auto relay = [&]() -> Status {
    for (;;) {
      TRY(auto n, stream->read(buffer, sizeof buffer));
      if (n == 0) break;
      TRY_STATUS(lines.feed(std::string_view(buffer, n)));
      while (auto line = lines.next()) {
        auto event = nlohmann::json::parse(*line, nullptr, /*allow_exceptions=*/false);
        if (event.is_discarded()) return plain_error("malformed event from the daemon");
        TRY_STATUS(printer.handle(event));
        // Returning (and so disconnecting) after the exit: nothing follows it.
        if (printer.exited()) return {};
      }
    }
    if (!printer.exited()) return plain_error("the daemon ended the stream before the command exited");
    return {};
  };
  // A failed write to our stdout (a closed pipe) ends here too: the disconnect makes the daemon
  // kill the command, as a closed pipe would.
  if (auto status = relay(); !status.ok()) return report_failure(status.error());
  return printer.finish();
}

}  // namespace

int exec_verb(const std::vector<std::string>& args, const GlobalOptions& globals_in) {
  GlobalOptions globals = globals_in;
  auto dashdash = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> options(args.begin(), dashdash);
  std::vector<std::string> command;
  if (dashdash != args.end()) command.assign(dashdash + 1, args.end());

  CLI::App app{"Run COMMAND in a running sandbox; its output streams to ours and its exit status is ours.",
               "airlock exec"};
  app.footer(std::string(kUsage) +
             "\n\nExit status: COMMAND's own; 128+N when signal N ended it; 124 when --timeout killed it;"
             "\n126 not executable; 127 not found; 125 airlock's own error (usage, daemon, API).");
  std::string id, workdir, user, timeout;
  std::vector<std::string> env;
  bool interactive = false, tty = false;
  app.add_option("ID", id, "sandbox id")->required();
  app.add_option("-e,--env", env, "KEY=VALUE (repeatable); KEY alone copies ours");
  app.add_option("-w,--workdir", workdir, "working directory (default: the sandbox's)");
  app.add_option("-u,--user", user, "user name or UID[:GID] (default root)");
  app.add_flag("-i,--interactive", interactive, "forward our stdin to the command");
  app.add_flag("-t,--tty", tty, "run the command on a pseudo-terminal");
  app.add_option("--timeout", timeout, "kill the command after this long (e.g. 30, 2.5, 5m); exit status 124");
  add_connection_options(app, globals);
  bool wants_help = std::any_of(options.begin(), options.end(), [](const std::string& a) { return a == "-h" || a == "--help"; });
  if (dashdash == args.end() && !wants_help) {
    print_error(std::string("missing \"--\" before the command\n") + kUsage);
    return kExitAirlockError;
  }
  if (auto code = parse_verb(app, options)) return *code;
  if (command.empty()) {
    print_error(std::string(dashdash == args.end() ? "missing \"--\" before the command" : "no command after \"--\"") +
                "\n" + kUsage);
    return kExitAirlockError;
  }

  nlohmann::json body = {{"argv", command}};
  if (!env.empty()) body["env"] = nlohmann::json::object();
  for (const auto& entry : env) {
    if (auto status = add_key_value(body["env"], entry, "--env", true); !status.ok()) {
      print_error(status.error());
      return kExitAirlockError;
    }
  }
  if (!workdir.empty()) body["cwd"] = workdir;
  if (!user.empty()) body["user"] = user;
  if (!timeout.empty()) {
    auto seconds = parse_seconds(timeout);
    if (!seconds.ok()) {
      print_error(std::move(seconds).error().with_context("--timeout"));
      return kExitAirlockError;
    }
    body["timeout"] = *seconds;
  }

  auto api = connect_api(globals);
  if (!api.ok()) {
    print_error(api.error());
    return kExitAirlockError;
  }
  if (!interactive && !tty) return stream_command(*api, id, std::move(body));
  return run_attached_process(*api, id, std::move(body), AttachOptions{interactive, tty});
}

}  // namespace airlock::cli
