// airlock: the command-line entry point. One file per verb; this one only dispatches.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/client_config.h"
#include "cli/cp_cmd.h"
#include "cli/exec_cmd.h"
#include "cli/logs_cmd.h"
#include "cli/port_cmd.h"
#include "cli/run.h"
#include "cli/sandbox_cmd.h"
#include "cli/shell_cmd.h"
#include "common/fs.h"

namespace {

constexpr const char* kUsage =
    "usage: airlock [--url URL] [--api-key KEY] <command> [args]\n"
    "\n"
    "commands:\n"
    "  run [OPTIONS] -- COMMAND [ARG...]   run COMMAND in a fresh sandbox, without a daemon\n"
    "  sandbox create|ls|get|rm|timeout    manage the daemon's sandboxes (see airlock sandbox --help)\n"
    "  exec [OPTIONS] ID -- COMMAND...     run COMMAND in a sandbox (-i stdin, -t terminal)\n"
    "  shell ID [-- COMMAND...]            an interactive terminal in a sandbox\n"
    "  cp [-r] SRC DST                     copy files; the sandbox side is ID:PATH\n"
    "  logs [-f] ID                        a sandbox's log (-f follows it)\n"
    "  port ls|expose|rm|token ID ...      exposed ports and their access tokens\n"
    "  port-forward ID [LOCAL:]REMOTE...   forward local TCP ports to ports inside a sandbox\n"
    "  version                             print the version\n"
    "\n"
    "The daemon: --url, else $AIRLOCK_URL, else \"url\" in ~/.config/airlock/config.json (or\n"
    "$AIRLOCK_CONFIG), else http://127.0.0.1:7070; unix:/path/to.sock for a unix socket. The key: --api-key,\n"
    "$AIRLOCK_API_KEY or \"api_key\" in the same file. Both options also work after the command.\n";

}  // namespace

int main(int argc, char** argv) {
  airlock::ensure_std_fds();
  // An inherited SIG_IGN for SIGCHLD would make the kernel reap our sandboxes' init behind our back.
  ::signal(SIGCHLD, SIG_DFL);
  std::vector<std::string> args(argv + 1, argv + argc);
  airlock::cli::GlobalOptions globals;
  if (auto status = airlock::cli::take_leading_global_options(args, globals); !status.ok()) {
    std::fprintf(stderr, "airlock: %s\n", status.error().message.c_str());
    return 125;
  }
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 125;
  }
  std::string verb = args[0];
  args.erase(args.begin());
  if (verb == "run") return airlock::cli::run_verb(args);
  if (verb == "version" || verb == "--version") {
    std::puts("airlock 0.1.0");
    return 0;
  }
  if (verb == "help" || verb == "--help" || verb == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  // The daemon verbs: a closed stdout or socket is an error to report, not a silent death.
  ::signal(SIGPIPE, SIG_IGN);
  if (verb == "sandbox") return airlock::cli::sandbox_verb(args, globals);
  if (verb == "exec") return airlock::cli::exec_verb(args, globals);
  if (verb == "shell") return airlock::cli::shell_verb(args, globals);
  if (verb == "cp") return airlock::cli::cp_verb(args, globals);
  if (verb == "logs") return airlock::cli::logs_verb(args, globals);
  if (verb == "port") return airlock::cli::port_verb(args, globals);
  if (verb == "port-forward") return airlock::cli::port_forward_verb(args, globals);
  std::fprintf(stderr, "airlock: unknown command \"%s\"\n%s", verb.c_str(), kUsage);
  return 125;
}
