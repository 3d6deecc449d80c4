// Per-sandbox logs (GET /v1/sandboxes/{id}/logs and .../logs/stream): an append-only sequence of
// lifecycle events and process output chunks, each with a cursor (1, 2, 3, ...) that only grows and
// survives daemon restarts, persisted as NDJSON segments under DATA_DIR/logs/<sandbox_id>/:
//
//   00000000000000000001.ndjson   one JSON object per line, named by the first cursor it holds
//   00000000000000004711.ndjson   the active segment (appended with O_APPEND, one write per line)
//
// Each sandbox's log is capped (10 MiB by default): when an append would pass the cap, the oldest
// segments are deleted (never the active one); a reader whose cursor was rotated out gets a `gap`
// entry first. A line cut short by a crash is trimmed when the log is next opened.
//
// Followers do not block a thread: wait() registers a one-shot callback that the next append (or a
// keepalive deadline, served by one timer thread for all waiters) runs.
//
// Thread-safe. Locking: logs_mu_ guards the map; each SandboxLog's mu guards that log's files and
// state; waiters_mu_ guards the waiters. Order: a log's mu, then waiters_mu_; callbacks run with no
// lock held. Readers copy what they need under the log's mu and read the files without it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "daemon/log.h"
#include "daemon/sandbox_store.h"
#include "daemon/timestamp.h"

namespace airlock::daemon {

enum class LogEntryType { kLifecycle, kStdout, kStderr, kGap };
std::string_view log_entry_type_name(LogEntryType type);  // lifecycle, stdout, stderr, gap

enum class OutputStream { kStdout, kStderr };

struct LogEntry {
  int64_t cursor = 0;
  LogEntryType type = LogEntryType::kLifecycle;
  UnixMillis timestamp = 0;  // not for gap entries
  std::optional<int64_t> pid;  // output: the process; lifecycle: the process it is about, if any
  // lifecycle
  std::string event;  // created, started, timeout_changed, process_started, process_exited, oom_kill,
                      // reattached, stopped, terminated (LifecycleLogEntry.event)
  std::string message;
  std::optional<std::string> state;
  std::optional<std::string> stop_reason;
  std::optional<int64_t> exit_code;
  // output
  std::string data;  // the bytes, as written by the process
};

// What SandboxManager (and the process code) records about a sandbox.
struct LifecycleEvent {
  std::string event;
  std::string message;
  std::optional<int64_t> pid;
  std::optional<SandboxState> state;
  std::optional<std::string> stop_reason;
  std::optional<int64_t> exit_code;
};

// `stopped` and `terminated`: nothing follows but, perhaps, `terminated` after `stopped`.
bool is_final_lifecycle_event(std::string_view event);

struct LogFilter {
  bool lifecycle = true;
  bool stdout_output = true;
  bool stderr_output = true;
  // Only output of this process; lifecycle entries about it, and those about the sandbox itself,
  // are kept (LogPid in the contract).
  std::optional<int64_t> pid;
  bool accepts(const LogEntry& entry) const;
};

struct LogReadLimits {
  size_t entries = 100;          // matching entries returned, at least 1
  size_t bytes = 1 << 20;        // output data returned (at least one entry is, however large)
  size_t scan_bytes = 8 << 20;   // log read before returning (bounds work when the filter skips much)
};

struct LogRead {
  std::vector<LogEntry> entries;  // a `gap` entry first when the cursor was rotated out
  int64_t next_cursor = 0;        // resume after this: the last entry examined, matching or not
  bool has_more = false;          // entries after next_cursor exist now
  bool ended = false;             // a final lifecycle entry was among those examined
};

struct SandboxLogOptions {
  uint64_t max_bytes = 10 << 20;  // per sandbox, on disk
  uint64_t segment_bytes = 0;     // 0: max_bytes / 4
  size_t max_chunk = 16 << 10;    // longer output becomes several entries
};

// Why a waiter runs.
enum class LogWake { kAppended, kDeadline, kRemoved };

class SandboxLogs {
 public:
  // `dir`: DATA_DIR/logs (created 0700 when first needed).
  SandboxLogs(std::string dir, const Logger& log, SandboxLogOptions options = {}, WallClock clock = unix_millis_now);
  ~SandboxLogs();
  SandboxLogs(const SandboxLogs&) = delete;
  SandboxLogs& operator=(const SandboxLogs&) = delete;

  // Appends never fail the caller: a write error (disk full) is logged and the entry dropped.
  void append_lifecycle(const std::string& sandbox_id, const LifecycleEvent& event);
  // A chunk of a process's output, any size. A UTF-8 sequence cut at the end of a chunk is held back
  // (at most 3 bytes) until the process's next chunk or its process_exited entry, so that chunking
  // never corrupts valid text.
  void append_output(const std::string& sandbox_id, int64_t pid, OutputStream stream, std::string_view bytes);

  // Entries after `after` (nullopt: from the oldest kept). ERANGE when `after` is beyond the end.
  Result<LogRead> read(const std::string& sandbox_id, std::optional<int64_t> after, const LogFilter& filter,
                       const LogReadLimits& limits);
  // The newest cursor (0 for an empty log).
  Result<int64_t> last_cursor(const std::string& sandbox_id);

  using Waiter = std::function<void(LogWake why)>;
  // Registers `wake` to run once: from the appending thread when an entry after `after` is written,
  // from the timer thread at `deadline`, or from remove(). nullopt (and `wake` dropped): such an entry
  // exists already, read again. Never runs `wake` from inside this call.
  std::optional<uint64_t> wait(const std::string& sandbox_id, int64_t after,
                               std::chrono::steady_clock::time_point deadline, Waiter wake);
  // true: it was still pending and will never run; false: it has run or is running.
  bool cancel_wait(uint64_t waiter_id);

  // Deletes the sandbox's log (when its record is purged); waiters get kRemoved.
  void remove(const std::string& sandbox_id);

  // DATA_DIR/logs/<sandbox_id> (tests).
  std::string dir_of(const std::string& sandbox_id) const { return dir_ + "/" + sandbox_id; }

 private:
  struct Segment {
    int64_t first = 0;  // cursor of its first entry (its file name)
    std::string path;
    uint64_t size = 0;
    // (cursor, offset of its line), one every kMarkEvery bytes: where a read starts scanning.
    std::vector<std::pair<int64_t, uint64_t>> marks;
  };
  struct SandboxLog {
    std::mutex mu;  // guards everything below
    bool loaded = false;
    std::vector<Segment> segments;  // oldest first; the last one is active
    uint64_t total = 0;             // bytes of every segment
    int64_t next = 1;               // the next entry's cursor
    UniqueFd active;                // the last segment, open for append (closed after a final entry)
    std::map<std::pair<int64_t, int>, std::string> held_utf8;  // (pid, stream): bytes of a cut sequence
  };
  struct PendingWaiter {
    std::string sandbox_id;
    int64_t after = 0;
    std::chrono::steady_clock::time_point deadline;
    Waiter wake;
  };
  struct ReadPlan;

  std::shared_ptr<SandboxLog> log_of(const std::string& sandbox_id);
  Status load(const std::string& sandbox_id, SandboxLog& log);
  // Under log.mu: writes one entry; returns its cursor (0 when it was dropped).
  int64_t append_locked(const std::string& sandbox_id, SandboxLog& log, LogEntry entry);
  void append_output_locked(const std::string& sandbox_id, SandboxLog& log, int64_t pid, OutputStream stream,
                            std::string data);
  void notify(const std::string& sandbox_id, int64_t cursor);
  void timer_loop();

  std::string dir_;
  const Logger& log_;
  SandboxLogOptions options_;
  WallClock clock_;

  std::mutex logs_mu_;  // guards logs_
  std::map<std::string, std::shared_ptr<SandboxLog>> logs_;

  std::mutex waiters_mu_;  // guards waiters_, by_sandbox_, by_deadline_, next_waiter_, stopping_
  std::condition_variable waiters_cv_;
  std::map<uint64_t, PendingWaiter> waiters_;
  std::multimap<std::string, uint64_t> by_sandbox_;
  std::set<std::pair<std::chrono::steady_clock::time_point, uint64_t>> by_deadline_;
  uint64_t next_waiter_ = 1;
  bool stopping_ = false;
  std::thread timer_;
};

// Cursors on the wire: the decimal text of the number ("0" before the first entry). nullopt for
// anything else.
std::optional<int64_t> parse_log_cursor(std::string_view text);

}  // namespace airlock::daemon
