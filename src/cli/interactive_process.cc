#include "cli/interactive_process.h"

#include <unistd.h>

#include <cstdlib>

#include "cli/daemon_verb.h"
#include "cli/exit_codes.h"
#include "cli/ndjson.h"
#include "cli/query_string.h"
#include "cli/terminal.h"

namespace airlock::cli {
namespace {

// After a refused attach (the process ended before we got there): its buffered output, then its
// exit as recorded.
Status replay_output(const ApiClient& api, const std::string& sandbox_id, int pid, ProcessEventPrinter& printer) {
  std::string process = sandbox_target(sandbox_id, "/processes/" + std::to_string(pid));
  TRY(auto stream, api.open("GET", process + "/output" + QueryString().add("follow", "false").add("encoding", "base64").str()));
  NdjsonSplitter lines;
  char buffer[64 * 1024];
  for (;;) {
    TRY(auto n, stream.read(buffer, sizeof buffer));
    if (n == 0) break;
    TRY_STATUS(lines.feed(std::string_view(buffer, n)));
    while (auto line = lines.next()) {
      auto event = nlohmann::json::parse(*line, nullptr, /*allow_exceptions=*/false);
      if (event.is_discarded()) return plain_error("malformed event from the daemon");
      TRY_STATUS(printer.handle(event));
    }
  }
  if (printer.exited()) return {};
  TRY(auto info, api.get(process));
  if (info.value("state", "") != "exited") return plain_error("process " + std::to_string(pid) + " is still running but cannot be attached");
  info["type"] = "exit";
  return printer.handle(info);
}

}  // namespace

int run_attached_process(const ApiClient& api, const std::string& sandbox_id, nlohmann::json start_body,
                         const AttachOptions& options) {
  if (options.tty) {
    auto size = window_size(STDIN_FILENO);
    if (!size) size = window_size(STDOUT_FILENO);
    if (!size) size = WindowSize{};
    start_body["pty"] = {{"cols", size->cols}, {"rows", size->rows}};
    auto& env = start_body["env"];
    if (!env.is_object()) env = nlohmann::json::object();
    if (!env.contains("TERM")) {
      const char* term = std::getenv("TERM");
      env["TERM"] = term && *term ? term : "xterm-256color";
    }
  } else if (options.forward_stdin) {
    start_body["open_stdin"] = true;
  }
  auto process = api.post(sandbox_target(sandbox_id, "/processes"), start_body);
  if (!process.ok()) {
    print_error(process.error());
    return kExitAirlockError;
  }
  auto pid_field = process->find("pid");
  if (pid_field == process->end() || !pid_field->is_number_integer()) {
    print_error("malformed process from the daemon");
    return kExitAirlockError;
  }
  int pid = pid_field->get<int>();

  ProcessEventPrinter printer(STDOUT_FILENO, STDERR_FILENO);
  Status status;
  {
    // Raw only when our keystrokes go to the remote terminal; restored before any message of ours.
    std::optional<RawTerminal> raw;
    if (options.tty && options.forward_stdin) raw.emplace(STDIN_FILENO);
    auto outcome = attach_process(api, sandbox_id, pid, options, printer);
    if (!outcome.ok()) {
      status = std::move(outcome).error();
    } else if (outcome->refused) {
      std::string code = outcome->refused->error_code();
      if (code == "process_not_running") {
        status = replay_output(api, sandbox_id, pid, printer);
      } else {
        status = outcome->refused->error();
      }
    }
  }
  if (!status.ok()) return report_failure(status.error());
  return printer.finish();
}

}  // namespace airlock::cli
