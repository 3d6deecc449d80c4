// A blocking command over an agent connection (POST /commands/run): starts it, feeds stdin, collects
// each stream into a bounded tail while granting credit, and waits for its end. The daemon never
// holds more than max_output_bytes per stream, however much the command writes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "engine/agent_client.h"

namespace airlock::daemon {

// The last `limit` bytes of a stream, and how many bytes went through it.
class OutputTail {
 public:
  explicit OutputTail(size_t limit) : limit_(limit) {}
  void append(std::string_view data);
  std::string take();  // the kept bytes, in order
  uint64_t total() const { return total_; }
  bool truncated() const { return total_ > kept_; }

 private:
  size_t limit_;
  std::string ring_;  // a ring once full: `start_` is the oldest byte
  size_t start_ = 0;
  uint64_t total_ = 0;
  uint64_t kept_ = 0;
};

struct CommandOutcome {
  uint32_t process_id = 0;         // the agent protocol's id of the process
  uint32_t pid = 0;                // 0: it did not start
  uint32_t exec_errno = 0;         // why it did not start
  int exit_code = 0;               // 0..255 (-1 with a signal, from the agent)
  int signal = 0;
  bool timed_out = false;
  std::string stdout_tail, stderr_tail;
  uint64_t stdout_bytes = 0, stderr_bytes = 0;
  bool stdout_truncated = false, stderr_truncated = false;
};

// The agent enforces request.timeout_ms; `deadline_slack` more is allowed for its Exited to arrive
// before the call gives up with ETIMEDOUT (the process is then SIGKILLed).
// `cancelled` (may be null) is polled a few times a second: when it turns true the process is
// SIGKILLed and ECANCELED returned (the daemon is shutting down).
Result<CommandOutcome> run_command(AgentClient& agent, const AgentExecRequest& request, std::string_view stdin_data,
                                   size_t max_output_bytes, const std::atomic<bool>* cancelled = nullptr,
                                   std::chrono::milliseconds deadline_slack = std::chrono::seconds(5));

}  // namespace airlock::daemon
