// `airlock shell`: an interactive terminal in a running sandbox. The shell runs on a PTY of the
// size of ours (kept in step on SIGWINCH), our terminal is raw meanwhile (Ctrl-C goes to the
// sandbox), and the shell's exit status is ours.
#include "cli/shell_cmd.h"

#include <algorithm>

#include "cli/daemon_verb.h"
#include "cli/exit_codes.h"
#include "cli/interactive_process.h"

namespace airlock::cli {
namespace {

// The user's shell: bash when the sandbox has it, else sh. Decided inside the sandbox so that it
// costs no extra round trip (and works on any template).
const char* const kDefaultShell = "if [ -x /bin/bash ]; then exec /bin/bash; else exec /bin/sh; fi";

}  // namespace

int shell_verb(const std::vector<std::string>& args, const GlobalOptions& globals_in) {
  GlobalOptions globals = globals_in;
  auto dashdash = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> options(args.begin(), dashdash);
  std::vector<std::string> command;
  if (dashdash != args.end()) command.assign(dashdash + 1, args.end());

  CLI::App app{"Open an interactive shell (/bin/bash, else /bin/sh) or COMMAND on a terminal in a sandbox.",
               "airlock shell"};
  app.footer("usage: airlock shell [OPTIONS] ID [-- COMMAND [ARG...]]\n\n"
             "Exit status: the shell's own; 125 airlock's own error.");
  std::string id, workdir, user;
  std::vector<std::string> env;
  app.add_option("ID", id, "sandbox id")->required();
  app.add_option("-e,--env", env, "KEY=VALUE (repeatable); KEY alone copies ours");
  app.add_option("-w,--workdir", workdir, "working directory (default: the sandbox's)");
  app.add_option("-u,--user", user, "user name or UID[:GID] (default root)");
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, options)) return *code;
  if (dashdash != args.end() && command.empty()) {
    print_error("no command after \"--\"");
    return kExitAirlockError;
  }

  nlohmann::json body;
  if (command.empty()) {
    body["cmd"] = kDefaultShell;
  } else {
    body["argv"] = command;
  }
  body["env"] = nlohmann::json::object();
  for (const auto& entry : env) {
    if (auto status = add_key_value(body["env"], entry, "--env", true); !status.ok()) {
      print_error(status.error());
      return kExitAirlockError;
    }
  }
  if (!workdir.empty()) body["cwd"] = workdir;
  if (!user.empty()) body["user"] = user;

  auto api = connect_api(globals);
  if (!api.ok()) {
    print_error(api.error());
    return kExitAirlockError;
  }
  return run_attached_process(*api, id, std::move(body), AttachOptions{/*forward_stdin=*/true, /*tty=*/true});
}

}  // namespace airlock::cli
