#include "daemon/process_stream.h"

#include <signal.h>
#include <string.h>

#include "daemon/base64.h"
#include "daemon/sandbox_json.h"

namespace airlock::daemon {
namespace {

constexpr size_t kBatchBytes = 64 * 1024;  // output bytes per pull
constexpr auto kKeepalive = std::chrono::seconds(15);

nlohmann::json nullable(const std::optional<std::string>& s) { return s ? nlohmann::json(*s) : nlohmann::json(); }

}  // namespace

int signal_number(std::string_view name) {
  static constexpr std::pair<std::string_view, int> kNames[] = {
      {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT}, {"SIGABRT", SIGABRT}, {"SIGKILL", SIGKILL},
      {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
      {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP}, {"SIGTSTP", SIGTSTP}, {"SIGWINCH", SIGWINCH}};
  for (const auto& [n, v] : kNames)
    if (n == name) return v;
  return 0;
}

nlohmann::json exit_event_json(Process& p) {
  auto end = p.end();
  ProcessEnd e = end.value_or(ProcessEnd{});
  double duration = std::max<double>(0, static_cast<double>(e.ended_at - p.started_at()));
  return {{"type", "exit"},
          {"pid", std::max<uint32_t>(p.pid(), 1)},
          {"exit_code", std::clamp(e.exit_code, 0, 255)},
          {"signal", signal_json(e.signal)},
          {"reason", e.reason.empty() ? nlohmann::json() : nlohmann::json(e.reason)},
          {"error", nullable(e.error)},
          {"ended_at", format_timestamp(e.ended_at ? e.ended_at : unix_millis_now())},
          {"duration_ms", duration},
          {"cpu_time_ms", 0.0}};
}

nlohmann::json process_json(Process& p) {
  const ProcessSpec& s = p.spec();
  auto end = p.end();
  auto buffer = p.buffer();
  nlohmann::json j = {{"pid", std::max<uint32_t>(p.pid(), 1)},
                      {"kind", kind_name(s.kind)},
                      {"argv", s.argv},
                      {"cwd", s.cwd},
                      {"user", s.user},
                      {"state", end ? "exited" : "running"},
                      {"stdin_open", p.stdin_open()},
                      {"started_at", format_timestamp(p.started_at())},
                      {"output", {{"start_offset", buffer.start}, {"end_offset", buffer.end}, {"buffer_bytes", s.ring_bytes}}}};
  j["pty"] = s.pty ? nlohmann::json{{"cols", s.pty->cols}, {"rows", s.pty->rows}} : nlohmann::json();
  j["timeout"] = s.timeout_ms ? nlohmann::json(static_cast<double>(*s.timeout_ms) / 1000.0) : nlohmann::json();
  if (end) {
    j["ended_at"] = format_timestamp(end->ended_at);
    j["exit_code"] = std::clamp(end->exit_code, 0, 255);
    j["signal"] = signal_json(end->signal);
    j["reason"] = end->reason;
    j["error"] = nullable(end->error);
  } else {
    j["ended_at"] = nullptr;
    j["exit_code"] = nullptr;
    j["signal"] = nullptr;
    j["reason"] = nullptr;
    j["error"] = nullptr;
  }
  return j;
}

std::string format_event(const nlohmann::json& event, const EventFormat& format, const std::string& id) {
  std::string data = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (!format.sse) return data + "\n";
  std::string out = "event: " + event.value("type", std::string("message")) + "\n";
  if (!id.empty()) out += "id: " + id + "\n";
  return out + "data: " + data + "\n\n";
}

std::string take_complete_utf8(std::string& held, std::string_view bytes) {
  std::string all = std::move(held);
  all.append(bytes);
  held.clear();
  // Look back at most 3 bytes for the start of a sequence that the chunk cut short.
  size_t n = all.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    auto c = static_cast<unsigned char>(all[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for its lead
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (need > back) {
      held = all.substr(n - back);
      all.resize(n - back);
    }
    break;
  }
  return all;
}

ProcessEventSource::ProcessEventSource(std::shared_ptr<Process> process, Options options, Timers& timers)
    : process_(std::move(process)), options_(options), timers_(timers), offset_(options.offset) {
  started_ = !options_.emit_start;
}

ProcessEventSource::~ProcessEventSource() {
  if (notify_token_) process_->cancel_notify(notify_token_);
  if (keepalive_timer_) timers_.cancel(keepalive_timer_);
}

void ProcessEventSource::pull(Deliver deliver) {
  {
    std::lock_guard guard(mu_);
    pending_ = std::move(deliver);
  }
  produce();
}

void ProcessEventSource::cancel() {
  bool kill = false;
  {
    std::lock_guard guard(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    pending_ = nullptr;
    if (notify_token_) process_->cancel_notify(std::exchange(notify_token_, 0));
    if (keepalive_timer_) timers_.cancel(std::exchange(keepalive_timer_, 0));
    kill = options_.kill_on_cancel && !finished_;
  }
  if (kill && !process_->exited()) (void)process_->signal(SIGKILL);
  process_->release();
}

std::string ProcessEventSource::output_events(std::vector<OutputChunk> chunks) {
  std::string out;
  for (auto& c : chunks) {
    int s = c.stream == 2 ? 2 : 1;
    nlohmann::json event = {{"type", s == 2 ? "stderr" : "stdout"}};
    uint64_t first = c.offset;
    std::string data;
    if (options_.format.base64) {
      data = base64_encode(c.data);
    } else {
      if (!held_[s].empty()) first = held_offset_[s];
      data = take_complete_utf8(held_[s], c.data);
      if (!held_[s].empty()) held_offset_[s] = c.offset + c.data.size() - held_[s].size();
      if (data.empty()) continue;
    }
    event["offset"] = first;
    event["data"] = std::move(data);
    event["encoding"] = options_.format.base64 ? "base64" : "utf-8";
    out += format_event(event, options_.format, std::to_string(c.offset + c.data.size()));
  }
  return out;
}

std::string ProcessEventSource::flush_held() {
  std::string out;
  for (int s = 1; s <= 2; ++s) {
    if (held_[s].empty()) continue;
    nlohmann::json event = {{"type", s == 2 ? "stderr" : "stdout"},
                            {"offset", held_offset_[s]},
                            {"data", std::exchange(held_[s], {})},
                            {"encoding", "utf-8"}};
    out += format_event(event, options_.format);
  }
  return out;
}

void ProcessEventSource::produce() {
  Deliver deliver;
  std::string body;
  bool end = false;
  {
    std::lock_guard guard(mu_);
    if (!pending_ || cancelled_) return;
    if (keepalive_timer_) timers_.cancel(std::exchange(keepalive_timer_, 0));
    if (finished_) {
      end = true;
    } else if (!started_) {
      started_ = true;
      body = format_event({{"type", "start"},
                           {"pid", std::max<uint32_t>(process_->pid(), 1)},
                           {"started_at", format_timestamp(process_->started_at())}},
                          options_.format);
    } else {
      auto read = process_->read(offset_, kBatchBytes);
      if (read.gap_length) {
        // A character cut before the gap will never be completed: say it now, so that events
        // stay in offset order (the held bytes come before the gap).
        body += flush_held();
        body += format_event({{"type", "gap"}, {"offset", read.gap_offset}, {"length", read.gap_length}}, options_.format);
      }
      offset_ = read.next;
      body += output_events(std::move(read.chunks));
      process_->consumed(offset_);
      if (read.ended) {
        body += flush_held();
        body += format_event(exit_event_json(*process_), options_.format);
        finished_ = true;
        end = true;
      } else if (body.empty() && !options_.follow) {
        end = true;
        finished_ = true;
      }
    }
    if (body.empty() && !end) {
      // Nothing now: come back when the process has more, or send a keepalive in 15 s.
      auto weak = weak_from_this();
      // A waiter left from an earlier park (a keepalive answered that pull) must not pile up.
      if (notify_token_) process_->cancel_notify(std::exchange(notify_token_, 0));
      keepalive_timer_ = timers_.after(std::chrono::duration_cast<std::chrono::milliseconds>(kKeepalive), [weak] {
        auto self = weak.lock();
        if (!self) return;
        Deliver d;
        {
          std::lock_guard g(self->mu_);
          self->keepalive_timer_ = 0;
          if (!self->pending_ || self->cancelled_) return;
          d = std::exchange(self->pending_, nullptr);
        }
        d(format_event({{"type", "keepalive"}}, self->options_.format), false);
      });
      uint64_t at = offset_;
      mu_.unlock();
      uint64_t token = process_->notify(at, [weak] {
        if (auto self = weak.lock()) self->produce();
      });
      mu_.lock();
      if (token && pending_) notify_token_ = token;
      return;
    }
    deliver = std::exchange(pending_, nullptr);
  }
  deliver(std::move(body), end);
}

}  // namespace airlock::daemon
