// airlock-init --agent: PID 1 of a long-lived sandbox. Serves the agent protocol
// (src/protocol/agent_protocol.h, docs/PROTOCOL.md) on the listening unix socket at fd 3, one
// connection at a time, and runs the processes the host asks for.
#pragma once

namespace airlock::agent {

struct AgentOptions {
  unsigned uid = 0, gid = 0;  // init's own --uid/--gid; every Exec names its own user
  const char* workdir = "/";  // cwd of an Exec that names none
  bool cap_drop_all = false;  // no process keeps a capability, whatever its uid
};

// Never returns while the sandbox lives (init leaves only by SIGKILL). signal_fd: a signalfd
// for every signal, all of them blocked.
int run_agent(const AgentOptions& options, int signal_fd);

}  // namespace airlock::agent
