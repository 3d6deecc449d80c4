#include "daemon/sandbox_log_stream.h"

#include "daemon/base64.h"
#include "daemon/errors.h"
#include "daemon/timestamp.h"

namespace airlock::daemon {

nlohmann::json log_entry_json(const LogEntry& e, bool base64) {
  nlohmann::json j = {{"type", log_entry_type_name(e.type)}, {"cursor", std::to_string(e.cursor)}};
  if (e.type == LogEntryType::kGap) return j;
  j["timestamp"] = format_timestamp(e.timestamp);
  if (e.type == LogEntryType::kLifecycle) {
    j["event"] = e.event;
    j["message"] = e.message;
    if (e.pid && *e.pid >= 1) j["pid"] = *e.pid;
    if (e.state) j["state"] = *e.state;
    if (e.stop_reason) j["stop_reason"] = *e.stop_reason;
    if (e.exit_code) j["exit_code"] = *e.exit_code;
    return j;
  }
  j["pid"] = std::max<int64_t>(e.pid.value_or(1), 1);
  j["data"] = base64 ? base64_encode(e.data) : e.data;  // to_json_text replaces invalid UTF-8
  j["encoding"] = base64 ? "base64" : "utf-8";
  return j;
}

std::shared_ptr<LogStream> LogStream::create(SandboxLogs& logs, std::string sandbox_id, LogStreamOptions options) {
  return std::shared_ptr<LogStream>(new LogStream(logs, std::move(sandbox_id), std::move(options)));
}

std::string LogStream::event_text(const nlohmann::json& event, std::optional<int64_t> id) const {
  std::string json = to_json_text(event);
  if (!options_.sse) return json + "\n";
  std::string out;
  if (id) out += "id: " + std::to_string(*id) + "\n";
  out += "event: " + event.value("type", std::string("message")) + "\ndata: " + json + "\n\n";
  return out;
}

void LogStream::pull(Deliver deliver) { produce(std::move(deliver)); }

void LogStream::produce(Deliver deliver) {
  LogReadLimits limits;
  limits.entries = 1000;
  limits.bytes = options_.batch_bytes;
  limits.scan_bytes = options_.batch_bytes * 16;
  for (;;) {
    std::optional<int64_t> after;
    {
      std::lock_guard guard(state_mu_);
      if (cancelled_) return;  // the server ignores deliveries after cancel() anyway
      after = after_;
    }
    auto read = logs_.read(sandbox_id_, after, options_.filter, limits);
    if (!read.ok()) {
      nlohmann::json error = {{"type", "error"},
                              {"error", {{"code", "internal"}, {"message", "the log cannot be read; the daemon's log has the cause"}}}};
      deliver(event_text(error, std::nullopt), true);
      return;
    }
    std::string text;
    for (const auto& entry : read->entries) text += event_text(log_entry_json(entry, options_.base64), entry.cursor);
    bool ended = false;
    {
      std::lock_guard guard(state_mu_);
      after_ = read->next_cursor;
      ended_ = ended_ || read->ended;
      ended = ended_;
    }
    bool caught_up = !read->has_more;
    bool finished = caught_up && (!options_.follow || ended);
    if (!text.empty() || finished) {
      deliver(std::move(text), finished);
      return;
    }
    if (!caught_up) continue;  // the filter skipped a whole batch: read on

    // Caught up and following: park this pull until the log grows or the keepalive is due.
    std::unique_lock guard(state_mu_);
    if (cancelled_) return;
    parked_ = std::move(deliver);  // before registering: the waiter may run at once on another thread
    auto waiter = logs_.wait(sandbox_id_, *after_, std::chrono::steady_clock::now() + options_.keepalive,
                             [self = shared_from_this()](LogWake why) { self->woken(why); });
    if (!waiter) {  // an entry arrived in between: read again
      deliver = std::move(parked_);
      parked_ = nullptr;
      continue;
    }
    waiter_ = *waiter;
    return;
  }
}

void LogStream::woken(LogWake why) {
  Deliver deliver;
  {
    std::lock_guard guard(state_mu_);
    if (cancelled_ || !parked_) return;
    deliver = std::move(parked_);
    parked_ = nullptr;
    waiter_.reset();
  }
  switch (why) {
    case LogWake::kAppended:
      produce(std::move(deliver));
      return;
    case LogWake::kDeadline:
      deliver(event_text({{"type", "keepalive"}}, std::nullopt), false);
      return;
    case LogWake::kRemoved: {
      nlohmann::json error = {
          {"type", "error"},
          {"error", {{"code", "sandbox_not_found"}, {"message", "sandbox " + sandbox_id_ + " was purged"}}}};
      deliver(event_text(error, std::nullopt), true);
      return;
    }
  }
}

void LogStream::cancel() {
  std::optional<uint64_t> waiter;
  {
    std::lock_guard guard(state_mu_);
    cancelled_ = true;
    parked_ = nullptr;
    waiter = waiter_;
    waiter_.reset();
  }
  if (waiter) logs_.cancel_wait(*waiter);
}

}  // namespace airlock::daemon
