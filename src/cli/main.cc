// airlock: the command-line entry point. One file per verb; this one only dispatches.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/run.h"
#include "common/fs.h"

namespace {

constexpr const char* kUsage =
    "usage: airlock <command> [args]\n"
    "\n"
    "commands:\n"
    "  run [OPTIONS] -- COMMAND [ARG...]   run COMMAND in a fresh sandbox (see airlock run --help)\n"
    "  version                             print the version\n";

}  // namespace

int main(int argc, char** argv) {
  airlock::ensure_std_fds();
  // An inherited SIG_IGN for SIGCHLD would make the kernel reap our sandboxes' init behind our back.
  ::signal(SIGCHLD, SIG_DFL);
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 125;
  }
  std::string verb = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (verb == "run") return airlock::cli::run_verb(args);
  if (verb == "version" || verb == "--version") {
    std::puts("airlock 0.1.0");
    return 0;
  }
  if (verb == "help" || verb == "--help" || verb == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "airlock: unknown command \"%s\"\n%s", verb.c_str(), kUsage);
  return 125;
}
