// AgentClient: the host's end of one connection to a service sandbox's agent (airlock-init
// --agent), over the unix socket the engine bound at create. Wire format: docs/PROTOCOL.md.
//
// Everything from the agent is hostile: the codec checks each frame; on top of that this class
// accepts only replies to what it asked (Started/ExecFailed for the Exec it is waiting on,
// Output/Exited for processes it started or adopted, file replies for file requests in flight,
// WatchEvents for watches it started), Output and FileData within the flow-control window it
// granted (FileData also at the offset that comes next), and a bounded amount of queued events,
// listing entries and watch events. Any violation, like any decoding error, drops the
// connection (every later call fails with EPROTO or EPIPE); reconnect with a new client.
//
// Not thread-safe. Blocking calls take a timeout; nothing blocks forever on the agent.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
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

// File messages (docs/PROTOCOL.md). Kinds and option bits are protocol::agent's (kKindFile...,
// kWriteCreate...).
struct AgentFileInfo {
  uint32_t kind = 0;  // 1 file, 2 directory, 3 symlink (never followed), 4 other
  uint32_t mode = 0;  // permission bits, <= 07777
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

struct AgentFileEntry {
  AgentFileInfo info;
  std::string path;  // relative to the listed directory, clean (no "..", no leading '/')
};

struct AgentFileChunk {
  uint64_t offset = 0;  // of data[0] in the file
  std::string data;
  bool end = false;     // the last chunk of the read
};

struct AgentWatchEvent {
  // kEnded: the agent ended the watch (its directory went away); errnum and message say why.
  enum class Kind { kCreated = 1, kModified = 2, kRemoved = 3, kOverflow = 4, kEnded = 5 };
  Kind kind = Kind::kCreated;
  std::string path;  // relative to the watched directory; empty for kOverflow and kEnded
  uint32_t errnum = 0;
  std::string message;
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

  // ---- files: each call waits for its reply (other events are queued meanwhile); `timeout` is
  // how long the agent may stay silent. Paths are absolute, resolved inside the sandbox.
  static constexpr uint32_t kMaxListEntries = 100000;      // the agent's cap (then E2BIG)
  static constexpr size_t kMaxWatchEvents = 4096;          // per watch; then kOverflow
  static constexpr size_t kMaxWatchBytes = 4u << 20;       // idem

  Result<AgentFileInfo> stat(const std::string& path, std::chrono::milliseconds timeout = kIoTimeout);
  // A whole read (limit 0: to the end of the file); EFBIG past max_bytes.
  Result<std::string> read_file(const std::string& path, uint64_t offset = 0, uint64_t limit = 0,
                                size_t max_bytes = 64u << 20, std::chrono::milliseconds timeout = kIoTimeout);
  // A read as a stream: read_next gives the chunks in order (nullopt if none came in time) and
  // grants the agent credit for each one taken; after the chunk with `end`, the id is spent.
  // A read given up before its end keeps one of the agent's stream slots until the connection
  // closes (the protocol has no cancel).
  Result<uint32_t> read_start(const std::string& path, uint64_t offset = 0, uint64_t limit = 0);
  Result<std::optional<AgentFileChunk>> read_next(uint32_t id, std::chrono::milliseconds timeout = kIoTimeout);
  // Writes `data` at `offset` as a sequence of FileWrites (`options` on the first; later ones
  // without truncate); returns the bytes written.
  Result<uint64_t> write_file(const std::string& path, std::string_view data, uint32_t mode = 0644,
                              uint32_t options = protocol::agent::kWriteCreate | protocol::agent::kWriteTruncate,
                              uint64_t offset = 0, std::chrono::milliseconds timeout = kIoTimeout);
  // depth 1: the directory's entries; up to 32 levels (symlinked directories are not entered).
  Result<std::vector<AgentFileEntry>> list(const std::string& path, uint32_t depth = 1,
                                           std::chrono::milliseconds timeout = kIoTimeout);
  Status mkdir(const std::string& path, uint32_t mode = 0755, bool parents = false,
               std::chrono::milliseconds timeout = kIoTimeout);
  // Returns the entries removed (recursive: the whole tree; a symlink is removed, not followed).
  Result<uint64_t> remove(const std::string& path, bool recursive = false,
                          std::chrono::milliseconds timeout = kIoTimeout);
  Status rename(const std::string& from, const std::string& to, bool no_replace = false,
                std::chrono::milliseconds timeout = kIoTimeout);

  // Watches: watch_start returns the watch's id once the agent has set it up; its events come
  // from next_watch_event (nullopt if none came in time). kEnded is the last one.
  Result<uint32_t> watch_start(const std::string& path, bool recursive,
                               std::chrono::milliseconds timeout = kIoTimeout);
  Result<std::optional<AgentWatchEvent>> next_watch_event(uint32_t watch, std::chrono::milliseconds timeout);
  Status watch_stop(uint32_t watch, std::chrono::milliseconds timeout = kIoTimeout);

 private:
  explicit AgentClient(UniqueFd fd) : fd_(std::move(fd)), reader_(protocol::agent::Direction::kToHost) {}
  using Clock = std::chrono::steady_clock;

  Status send(const std::vector<uint8_t>& frame);
  Status send_simple(protocol::agent::Message m);
  // Reads what is available (waiting until `deadline` for something) and queues the events.
  Status receive(Clock::time_point deadline);
  Status take(const protocol::agent::Message& m);
  Status take_file_reply(const protocol::agent::Message& m);
  Status take_watch_reply(const protocol::agent::Message& m);
  Error fail(Error e);
  uint32_t allocate_id();
  // Receives until done(), or until `timeout` passes without progress() changing.
  Status wait(const std::function<bool()>& done, const std::function<uint64_t()>& progress,
              std::chrono::milliseconds timeout, const std::string& what);
  // Sends a file request (m.id set here) and waits for its final reply.
  struct FileRequest;
  Result<FileRequest> file_request(protocol::agent::Message m, int kind, std::chrono::milliseconds timeout,
                                   const std::string& what);
  Status send_file_request(protocol::agent::Message& m, int kind);

  struct Tracked {
    uint64_t window = protocol::agent::kInitialWindow;  // Output bytes the agent may still send
  };
  // A file request in flight.
  struct FileRequest {
    enum Kind { kRead, kList, kStat, kDone };
    Kind kind = kDone;
    bool finished = false;  // its last reply came (FileData `end`, Done, FileInfo or Error)
    uint64_t replies = 0;   // frames so far: progress, for timeouts
    std::optional<Error> error;
    uint64_t value = 0;     // Done
    AgentFileInfo info;     // FileInfo
    std::vector<AgentFileEntry> entries;  // FileList
    uint64_t entry_count = 0;
    size_t entry_bytes = 0;
    std::deque<AgentFileChunk> chunks;    // FileRead: bounded by the window
    uint64_t next_offset = 0;
    uint64_t window = protocol::agent::kInitialWindow;
    bool abandoned = false;  // nobody will take the chunks: drop them
  };
  struct WatchState {
    bool started = false;   // its Done came: events may follow
    bool stopping = false;  // WatchStop sent
    bool stopped = false;   // WatchStop's reply came
    std::optional<Error> start_error;
    std::deque<AgentWatchEvent> events;  // at most kMaxWatchEvents and kMaxWatchBytes
    size_t bytes = 0;
    bool lost = false;                   // events dropped here: a kOverflow is due
    std::optional<AgentWatchEvent> end;  // kEnded, once the rest has been taken
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
  std::map<uint32_t, FileRequest> requests_;
  std::map<uint32_t, WatchState> watches_;
  std::deque<AgentEvent> events_;
  size_t queued_bytes_ = 0;
};

}  // namespace airlock
