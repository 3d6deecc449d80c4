// The client side of `GET /v1/sandboxes/{id}/processes/{pid}/attach` (RFC 6455, subprotocol
// airlock.attach.v1): output frames (channel 1 stdout, 2 stderr) go to the user's stdout and stderr,
// the user's stdin goes out as channel-0 frames, SIGWINCH becomes a `resize` control message and
// SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 become `signal` messages, until the daemon
// reports the process's `exit`.
//
// One thread runs everything (Asio); a second one only copies our stdin into a pipe, because stdin
// is shared with the calling shell and must stay blocking (Asio would make it non-blocking) and
// may be a regular file (which epoll refuses).
#pragma once

#include <optional>
#include <string>

#include "cli/api_client.h"
#include "cli/process_events.h"
#include "common/result.h"

namespace airlock::cli {

struct AttachOptions {
  bool forward_stdin = false;  // send our stdin; at its end, close the process's stdin
  bool tty = false;            // the process is on a PTY: resize on SIGWINCH; stdin's end sends ^D
};

struct AttachOutcome {
  // Set when the daemon refused the upgrade: why, as an API error (the sandbox or the process is
  // gone, or `process_not_running` when the process has exited). Otherwise the printer saw the exit.
  std::optional<ApiReply> refused;
};

// Attaches and relays until the process exits. Output and the exit event go to `printer`.
Result<AttachOutcome> attach_process(const ApiClient& api, const std::string& sandbox_id, int pid,
                                     const AttachOptions& options, ProcessEventPrinter& printer);

}  // namespace airlock::cli
