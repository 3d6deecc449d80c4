// One process started through the API in a sandbox: what was asked, what happened, and its output.
//
// It is the AgentSink of its id on the sandbox's agent connection, so the hub thread feeds it
// Started/Output/Exited; HTTP handlers read it under its mutex and wait on it (blocking waits or
// one-shot callbacks for streams that must not hold a thread).
//
// Output and flow control (docs/PROTOCOL.md "Credit"): every byte goes into a ring of
// `ring_bytes` (offsets count stdout and stderr together). How credit is granted depends on how
// the process was started:
//   - kBackground: credit on receipt; the process never blocks on the daemon, old output is
//     dropped from the ring (readers then get a `gap`).
//   - kStream: credit as the one consumer (the streaming response) takes bytes, so a slow client
//     blocks the command on its pipe instead of growing memory (backpressure, not buffering).
//   - kRun: credit on receipt; each stream keeps only its last max_output bytes (OutputTail).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/agent_hub.h"
#include "daemon/command_runner.h"
#include "daemon/timestamp.h"

namespace airlock::daemon {

enum class ProcessKind { kRun, kStream, kBackground };
std::string_view kind_name(ProcessKind kind);

struct PtySize {
  uint16_t cols = 0, rows = 0;
};

struct ProcessSpec {
  ProcessKind kind = ProcessKind::kBackground;
  std::vector<std::string> argv;  // as executed
  std::string cwd;
  std::string user;  // as shown: "root", "1000:1000"
  std::optional<PtySize> pty;
  std::optional<int64_t> timeout_ms;
  bool open_stdin = false;
  size_t ring_bytes = 1 << 20;
  size_t max_output = 1 << 20;  // kRun: per stream
};

// Why and how a process ended, in the contract's terms (EndReason).
struct ProcessEnd {
  std::string reason;  // exited, signaled, timeout, sandbox_stopped, failed_to_start
  int exit_code = 0;   // 0..255 (128+N for signals, 124 timeout, 127/126 failed to start)
  int signal = 0;
  std::optional<std::string> error;
  UnixMillis ended_at = 0;
};

struct OutputChunk {
  uint64_t offset = 0;
  int stream = 1;  // 1 stdout, 2 stderr
  std::string data;
};

class Process : public AgentSink, public std::enable_shared_from_this<Process> {
 public:
  Process(uint32_t id, ProcessSpec spec, UnixMillis now, std::shared_ptr<AgentConnection> conn);

  uint32_t id() const { return id_; }
  const ProcessSpec& spec() const { return spec_; }
  UnixMillis started_at() const { return started_at_; }

  // ---- AgentSink (hub thread) ----
  Verdict on_message(const agentproto::Message& m) override;
  void on_disconnect(const Error& why) override;

  // ---- state, thread-safe ----
  uint32_t pid() const;
  bool started() const;  // Started or ExecFailed came (or the connection died first)
  bool exited() const;
  std::optional<ProcessEnd> end() const;
  bool stdin_open() const;
  struct BufferInfo {
    uint64_t start = 0, end = 0;
  };
  BufferInfo buffer() const;

  // Waits for Started/ExecFailed; false on timeout. A kRun process is waited for until it ends
  // (Started does not wake the waiter) or the timeout passes, then checked for Started.
  bool wait_started(std::chrono::milliseconds timeout);
  // Waits for the end; false on timeout.
  bool wait_exit(std::chrono::milliseconds timeout);
  // Calls `fn` once, on some thread, after the next change (output, exit, disconnect), or at once
  // when `since_offset` is behind the output or the process has ended. Returns a token for cancel.
  uint64_t notify(uint64_t since_offset, std::function<void()> fn);
  void cancel_notify(uint64_t token);

  // Output from `offset`: the chunks kept at or after it (the first may start inside a chunk), at
  // most `max_bytes`; `gap` is set when bytes before the oldest kept one were asked for.
  struct Read {
    std::vector<OutputChunk> chunks;
    uint64_t gap_offset = 0, gap_length = 0;
    uint64_t next = 0;  // offset after what was returned
    bool ended = false;  // exited and nothing more to read after `next`
  };
  Read read(uint64_t offset, size_t max_bytes) const;
  // kStream: the consumer has taken everything before `offset`; grants the agent credit for it.
  void consumed(uint64_t offset);
  // kStream: the consumer is gone; from now on the process's output is taken as it comes (like a
  // background process), so that it can reach its end (a killed process must drain its pipes).
  void release();

  // kRun: the collected tails (call after the end).
  CommandOutcome outcome();

  // Control, through the agent. The connection may have been replaced (reconnect): set_connection.
  Status send_stdin(std::string_view data, bool close_after);
  Status close_stdin();
  Status signal(int sig, bool process_group = true);
  Status resize(uint16_t cols, uint16_t rows);
  void set_connection(std::shared_ptr<AgentConnection> conn);
  // The sandbox ended under it: it is over (reason sandbox_stopped) whatever the agent said.
  void mark_sandbox_stopped(UnixMillis now);
  // After a daemon restart: the process as stored (running, or how it ended).
  void restore(uint32_t pid, std::optional<ProcessEnd> end, bool stdin_open);
  // Called once when the process ends (on the thread that saw it end, without its lock).
  void on_end(std::function<void(Process&)> fn);
  // Called with each chunk of output as it arrives (hub thread, under the process's lock: quick).
  void on_output(std::function<void(uint32_t pid, int stream, std::string_view data)> fn);

 private:
  void finish_locked(ProcessEnd end);
  void wake_locked(std::vector<std::function<void()>>& out);
  void grant(uint64_t bytes);  // sends Credit; never blocks

  const uint32_t id_;
  const ProcessSpec spec_;
  const UnixMillis started_at_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<AgentConnection> conn_;
  uint32_t pid_ = 0;
  bool started_ = false;
  bool stdin_open_ = false;
  std::optional<ProcessEnd> end_;
  std::deque<OutputChunk> ring_;
  size_t ring_size_ = 0;
  uint64_t start_offset_ = 0, end_offset_ = 0;
  uint64_t granted_ = 0;  // output offset the agent may send up to
  bool released_ = false;  // kStream without its consumer
  OutputTail out_tail_, err_tail_;
  uint64_t next_token_ = 1;
  std::vector<std::pair<uint64_t, std::function<void()>>> waiters_;
  std::function<void(Process&)> on_end_;
  std::function<void()> pending_end_;
  std::function<void(uint32_t, int, std::string_view)> on_output_;  // on_end_, bound, until wake_locked hands it out
};

}  // namespace airlock::daemon
