// A process's output as an HTTP event stream (POST .../commands/stream, GET .../processes/{pid}/output):
// NDJSON lines or SSE events of the contract's ProcessEvent (start, stdout/stderr, gap, exit,
// keepalive, error), pulled by the server as the client reads (BodySource), so a slow client never
// makes the daemon buffer more than one batch.
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "daemon/http_message.h"
#include "daemon/process.h"
#include "daemon/timers.h"

namespace airlock::daemon {

struct EventFormat {
  bool sse = false;     // text/event-stream; otherwise application/x-ndjson
  bool base64 = false;  // output bytes as base64; otherwise UTF-8 text (invalid bytes as U+FFFD)
};

// The contract's Process, ExitEvent and signal names.
nlohmann::json process_json(Process& p);
nlohmann::json exit_event_json(Process& p);
// "SIGKILL" -> 9; 0 when not a signal the contract names.
int signal_number(std::string_view name);
// One event in the stream's format ("id" is the SSE id, empty for none).
std::string format_event(const nlohmann::json& event, const EventFormat& format, const std::string& id = {});
// Splits off the tail of `bytes` that is an incomplete UTF-8 sequence (to be completed by the next
// chunk), returning the rest.
std::string take_complete_utf8(std::string& held, std::string_view bytes);

class ProcessEventSource final : public BodySource, public std::enable_shared_from_this<ProcessEventSource> {
 public:
  struct Options {
    uint64_t offset = 0;
    bool follow = true;
    bool emit_start = false;      // commands/stream begins with `start`
    bool kill_on_cancel = false;  // commands/stream: a client that leaves takes the command with it
    EventFormat format;
  };
  ProcessEventSource(std::shared_ptr<Process> process, Options options, Timers& timers);
  ~ProcessEventSource() override;

  void pull(Deliver deliver) override;
  void cancel() override;

 private:
  void produce();  // with a pending deliver: answers it now, or arranges to be called again
  std::string output_events(std::vector<OutputChunk> chunks);
  std::string flush_held();

  std::shared_ptr<Process> process_;
  Options options_;
  Timers& timers_;
  std::mutex mu_;  // guards everything below
  Deliver pending_;
  uint64_t offset_;
  bool started_ = false, finished_ = false, cancelled_ = false;
  uint64_t notify_token_ = 0, keepalive_timer_ = 0;
  std::string held_[3];          // per stream (1, 2): incomplete UTF-8 tail
  uint64_t held_offset_[3] = {0, 0, 0};
};

}  // namespace airlock::daemon
