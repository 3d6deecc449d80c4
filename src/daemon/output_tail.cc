// OutputTail (declared in command_runner.h): its own object, so that code which only keeps tails
// (process.cc) does not link the AgentClient-based run_command.
#include "daemon/command_runner.h"

namespace airlock::daemon {

void OutputTail::append(std::string_view data) {
  total_ += data.size();
  if (limit_ == 0) return;
  if (data.size() >= limit_) {
    ring_.assign(data.substr(data.size() - limit_));
    start_ = 0;
    kept_ = limit_;
    return;
  }
  if (ring_.size() + data.size() <= limit_ && start_ == 0) {
    ring_.append(data);
    kept_ = ring_.size();
    return;
  }
  if (ring_.size() < limit_) {  // fill up to the limit, then wrap
    size_t room = limit_ - ring_.size();
    ring_.append(data.substr(0, room));
    data.remove_prefix(room);
  }
  for (char c : data) {  // overwrite the oldest bytes
    ring_[start_] = c;
    start_ = (start_ + 1) % limit_;
  }
  kept_ = limit_;
}

std::string OutputTail::take() {
  std::string out = ring_.substr(start_) + ring_.substr(0, start_);
  ring_.clear();
  start_ = 0;
  return out;
}

}  // namespace airlock::daemon
