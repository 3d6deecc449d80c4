// A sandbox's log on the wire: entries as the contract's JSON (LogEntry), and LogStream, the body of
// GET /v1/sandboxes/{id}/logs/stream (NDJSON or SSE).
//
// LogStream is a BodySource (http_message.h): each pull() is answered with what is in the log after
// the stream's cursor, read in bounded batches (so memory per follower is bounded however far behind
// it is). Once caught up, a following stream parks the pull as a SandboxLogs waiter: the next append
// delivers it from the appending thread, or the keepalive deadline does from SandboxLogs' timer
// thread. No thread waits on a follower.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "daemon/http_message.h"
#include "daemon/sandbox_logs.h"

namespace airlock::daemon {

// LifecycleLogEntry, OutputLogEntry or GapLogEntry; `data` as UTF-8 text (invalid bytes become U+FFFD
// when serialised) or base64.
nlohmann::json log_entry_json(const LogEntry& entry, bool base64);

struct LogStreamOptions {
  std::optional<int64_t> after;  // cursor or Last-Event-ID; nullopt: from the oldest kept
  LogFilter filter;
  bool follow = true;  // false: end once caught up
  bool sse = false;    // text/event-stream; else NDJSON
  bool base64 = false;
  std::chrono::milliseconds keepalive = std::chrono::seconds(15);
  size_t batch_bytes = 64 << 10;  // output data per delivery (at least one entry)
};

class LogStream final : public BodySource, public std::enable_shared_from_this<LogStream> {
 public:
  static std::shared_ptr<LogStream> create(SandboxLogs& logs, std::string sandbox_id, LogStreamOptions options);
  void pull(Deliver deliver) override;
  void cancel() override;
  // What the HTTP response declares.
  std::string content_type() const { return options_.sse ? "text/event-stream" : "application/x-ndjson"; }

 private:
  LogStream(SandboxLogs& logs, std::string sandbox_id, LogStreamOptions options)
      : logs_(logs), sandbox_id_(std::move(sandbox_id)), options_(std::move(options)), after_(options_.after) {}
  // Reads what follows and delivers it, or parks `deliver` until an append or the keepalive.
  void produce(Deliver deliver);
  void woken(LogWake why);
  std::string event_text(const nlohmann::json& event, std::optional<int64_t> id) const;

  SandboxLogs& logs_;
  const std::string sandbox_id_;
  const LogStreamOptions options_;

  std::mutex state_mu_;  // guards the fields below
  std::optional<int64_t> after_;   // the last entry sent (or skipped by the filter)
  bool ended_ = false;             // a final lifecycle entry was read
  bool cancelled_ = false;
  Deliver parked_;                 // a pull waiting for an append or the keepalive deadline
  std::optional<uint64_t> waiter_;
};

}  // namespace airlock::daemon
