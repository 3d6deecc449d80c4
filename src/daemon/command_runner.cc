#include "daemon/command_runner.h"

#include <csignal>

namespace airlock::daemon {
namespace {

// After a SIGKILL: waits briefly for the process's Exited, so that it leaves the agent on this
// connection instead of being sent again to the next one.
void await_exit(AgentClient& agent, uint32_t id) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < until) {
    auto event = agent.next_event(std::chrono::milliseconds(100));
    if (!event.ok()) return;
    if (*event && (*event)->id == id && (*event)->kind == AgentEvent::Kind::kExited) return;
  }
}

}  // namespace

Result<CommandOutcome> run_command(AgentClient& agent, const AgentExecRequest& request, std::string_view stdin_data,
                                   size_t max_output_bytes, const std::atomic<bool>* cancelled,
                                   std::chrono::milliseconds deadline_slack) {
  constexpr auto kPollSlice = std::chrono::milliseconds(200);
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::milliseconds(request.timeout_ms) + deadline_slack;
  TRY(auto started, agent.exec(request));
  CommandOutcome outcome;
  outcome.process_id = started.id;
  outcome.pid = started.pid;
  if (started.exec_errno) {
    outcome.exec_errno = started.exec_errno;
    outcome.exit_code = started.exec_errno == ENOENT ? 127 : 126;
    return outcome;
  }
  if (!stdin_data.empty()) TRY_STATUS(agent.send_stdin(started.id, stdin_data));
  TRY_STATUS(agent.close_stdin(started.id));
  OutputTail out(max_output_bytes), err(max_output_bytes);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      (void)agent.signal(started.id, SIGKILL);
      await_exit(agent, started.id);
      return Error{ETIMEDOUT, "command " + request.argv[0] + ": no exit from the agent"};
    }
    if (cancelled && cancelled->load()) {
      (void)agent.signal(started.id, SIGKILL);
      await_exit(agent, started.id);
      return Error{ECANCELED, "command " + request.argv[0] + ": cancelled"};
    }
    TRY(auto event, agent.next_event(std::min(left, std::chrono::duration_cast<std::chrono::milliseconds>(kPollSlice))));
    if (!event || event->id != started.id) continue;  // other processes: none on this connection
    if (event->kind == AgentEvent::Kind::kOutput) {
      (event->stream == 2 ? err : out).append(event->data);
      TRY_STATUS(agent.credit(started.id, static_cast<uint32_t>(event->data.size())));
    } else if (event->kind == AgentEvent::Kind::kExited) {
      outcome.exit_code = event->code;
      outcome.signal = static_cast<int>(event->signal);
      outcome.timed_out = event->timed_out;
      break;
    } else if (event->errnum != EPIPE && event->errnum != ESRCH) {  // those: stdin it no longer wanted
      return Error{static_cast<int>(event->errnum), "command " + request.argv[0] + ": " + event->data};
    }
  }
  outcome.stdout_bytes = out.total();
  outcome.stderr_bytes = err.total();
  outcome.stdout_truncated = out.truncated();
  outcome.stderr_truncated = err.truncated();
  outcome.stdout_tail = out.take();
  outcome.stderr_tail = err.take();
  return outcome;
}

}  // namespace airlock::daemon
