// `exec -i`, `exec -t` and `shell`: start a background process (POST /processes, with `pty` for a
// terminal and `open_stdin` for -i), then attach to it over WebSocket and relay until it exits. The
// user's terminal is raw while a PTY session runs and restored on every way out.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cli/api_client.h"
#include "cli/attach_session.h"

namespace airlock::cli {

// start_body: the StartProcessRequest (argv, env, cwd, user, timeout); `pty` and `open_stdin` are
// added here from options. Returns the CLI's exit status (the process's own, or 125).
int run_attached_process(const ApiClient& api, const std::string& sandbox_id, nlohmann::json start_body,
                         const AttachOptions& options);

}  // namespace airlock::cli
