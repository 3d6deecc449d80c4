// AgentClient: the host's end of one connection to a service sandbox's agent (airlock-init
// --agent), over the unix socket the engine bound at create. Wire format: docs/PROTOCOL.md.
//
// Everything from the agent is hostile: the codec checks each frame; on top of that this class
// accepts only replies to what it asked (Started/ExecFailed for the Exec it is waiting on,
// Output/Exited for processes it started or adopted), Output within the flow-control window it
// granted, and a bounded amount of queued events. Any violation, like any decoding error, drops
// the connection (every later call fails with EPROTO or EPIPE); reconnect with a new client.
//
// Not thread-safe. Blocking calls take a timeout; nothing blocks forever on the agent.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "protocol/agent_protocol_host.h"

namespace airlock {

using AgentExecRequest = protocol::agent::ExecRequest;

struct AgentEvent {
  enum class Kind { kOutput, kExited, kError };
  Kind kind = Kind::kOutput;
  uint32_t id = 0;      // the process (0: the connection, for kError)
  uint32_t stream = 0;  // kOutput: 1 stdout, 2 stderr
  std::string data;     // kOutput: the bytes; kError: the message
  int32_t code = 0;     // kExited: 0..255, or -1 with a signal
  uint32_t signal = 0;  // kExited
  bool timed_out = false;  // kExited: killed at its timeout_ms
  uint32_t errnum = 0;  // kError
};

struct StartedProcess {
  uint32_t id = 0;       // names the process in every later call
  uint32_t pid = 0;      // inside the sandbox; 0 if it did not start
  uint32_t exec_errno = 0;  // ExecFailed: why it did not start (ENOENT: not found)
};

struct AgentRunResult {
  std::string stdout_data, stderr_data;
  int exit_code = -1;   // 0..255; -1 when killed by a signal; 127/126 when it did not start
  int signal = 0;
  bool timed_out = false;
  uint32_t exec_errno = 0;
};

class AgentClient {
 public:
  static constexpr std::chrono::milliseconds kIoTimeout{10000};  // for one frame to leave
  static constexpr size_t kMaxQueuedBytes = 64u << 20;            // events not yet taken

  // Connects and does the Hello/HelloAck handshake.
  static Result<AgentClient> connect(const std::string& socket_path,
                                     std::chrono::milliseconds timeout = kIoTimeout);

  // Starts a process and waits for Started, ExecFailed or Error (other events are queued).
  Result<StartedProcess> exec(const AgentExecRequest& request, std::chrono::milliseconds timeout = kIoTimeout);
  // The next Output/Exited/Error event, or nullopt when `timeout` passes first.
  Result<std::optional<AgentEvent>> next_event(std::chrono::milliseconds timeout);

  Status send_stdin(uint32_t id, std::string_view data);  // split into chunks as needed
  Status close_stdin(uint32_t id);
  Status signal(uint32_t id, int sig);
  Status resize(uint32_t id, uint16_t rows, uint16_t cols);
  Status credit(uint32_t id, uint32_t bytes);  // the caller has delivered `bytes` of its output
  Result<uint32_t> ping(std::chrono::milliseconds timeout = kIoTimeout);  // running processes

  // After a reconnect: accept events of a process started over an earlier connection (the
  // agent gives every process a fresh window on a new connection), and keep new ids clear of it.
  void adopt(uint32_t id);

  // Runs a command to the end, granting credit as it collects the output (at most max_output
  // bytes per stream). On timeout the process is killed with SIGKILL and ETIMEDOUT returned.
  Result<AgentRunResult> run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                             std::string_view stdin_data, std::chrono::milliseconds timeout,
                             size_t max_output = 64u << 20);

  void close() { fd_.reset(); }
  bool connected() const { return fd_.valid() && !failed_; }

 private:
  explicit AgentClient(UniqueFd fd) : fd_(std::move(fd)), reader_(protocol::agent::Direction::kToHost) {}
  using Clock = std::chrono::steady_clock;

  Status send(const std::vector<uint8_t>& frame);
  Status send_simple(protocol::agent::Message m);
  // Reads what is available (waiting until `deadline` for something) and queues the events.
  Status receive(Clock::time_point deadline);
  Status take(const protocol::agent::Message& m);
  Error fail(Error e);

  struct Tracked {
    uint64_t window = protocol::agent::kInitialWindow;  // Output bytes the agent may still send
  };

  UniqueFd fd_;
  protocol::agent::FrameReader reader_;
  bool failed_ = false;
  bool handshake_done_ = false;
  uint32_t agent_version_ = 0;
  uint32_t next_id_ = 1;
  uint32_t waiting_exec_ = 0;  // id of the Exec awaiting its reply
  std::optional<StartedProcess> exec_reply_;
  std::optional<AgentEvent> exec_error_;
  std::optional<uint32_t> pong_;
  bool waiting_pong_ = false;
  std::map<uint32_t, Tracked> processes_;
  std::deque<AgentEvent> events_;
  size_t queued_bytes_ = 0;
};

}  // namespace airlock
