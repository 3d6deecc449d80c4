// The `ProcessEvent`s of a command (commands/stream, processes/{pid}/output, and the text frames of
// a WebSocket attach): output chunks go to the user's stdout and stderr as they come, and the
// `exit` event becomes the CLI's exit status (the command's own: 128+N after signal N, 124 after
// its timeout, 126/127 when it could not start).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/result.h"

namespace airlock::cli {

class ProcessEventPrinter {
 public:
  ProcessEventPrinter(int stdout_fd, int stderr_fd) : stdout_fd_(stdout_fd), stderr_fd_(stderr_fd) {}

  // Handles one event. Unknown event types are ignored (the contract may add some); an `error`
  // event or a malformed event is an error. Output that cannot be written (EPIPE) is an error too:
  // the caller then stops reading, which makes the daemon kill the command, as a pipe would.
  Status handle(const nlohmann::json& event);
  // Writes one output chunk ("stdout"/"stderr" channel) as given, already decoded.
  Status write_output(bool to_stderr, std::string_view bytes);

  std::optional<int> pid() const { return pid_; }
  bool exited() const { return exit_code_.has_value(); }
  // The exit status for the CLI; also prints why to stderr when the command did not simply exit.
  int finish() const;

 private:
  int stdout_fd_;
  int stderr_fd_;
  std::optional<int> pid_;
  std::optional<int> exit_code_;
  std::string reason_;
  std::string error_;  // the exit event's `error` (failed_to_start)
  bool stderr_mid_line_ = false;  // our own messages start on a line of their own
};

}  // namespace airlock::cli
