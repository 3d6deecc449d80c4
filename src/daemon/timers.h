// One thread that runs callbacks at given times: keepalives of idle streams and long-poll
// deadlines, without a thread waiting per request. Callbacks run on the timer thread and must be
// quick (they hand work on, like everything called from I/O paths).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace airlock::daemon {

class Timers {
 public:
  Timers();
  ~Timers();
  Timers(const Timers&) = delete;
  Timers& operator=(const Timers&) = delete;

  using Clock = std::chrono::steady_clock;
  // Runs fn once after `delay`; returns an id for cancel().
  uint64_t after(std::chrono::milliseconds delay, std::function<void()> fn);
  // true if it was cancelled before running.
  bool cancel(uint64_t id);

 private:
  void loop();

  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::multimap<Clock::time_point, uint64_t> due_;
  std::map<uint64_t, std::pair<Clock::time_point, std::function<void()>>> jobs_;
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace airlock::daemon
