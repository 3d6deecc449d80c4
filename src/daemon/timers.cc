#include "daemon/timers.h"

namespace airlock::daemon {

Timers::Timers() : thread_([this] { loop(); }) {}

Timers::~Timers() {
  {
    std::lock_guard guard(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t Timers::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  std::lock_guard guard(mu_);
  uint64_t id = next_id_++;
  auto when = Clock::now() + delay;
  jobs_.emplace(id, std::make_pair(when, std::move(fn)));
  due_.emplace(when, id);
  cv_.notify_all();
  return id;
}

bool Timers::cancel(uint64_t id) {
  std::lock_guard guard(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return false;
  auto range = due_.equal_range(it->second.first);
  for (auto d = range.first; d != range.second; ++d) {
    if (d->second == id) {
      due_.erase(d);
      break;
    }
  }
  jobs_.erase(it);
  return true;
}

void Timers::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (due_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto first = due_.begin();
    if (first->first > Clock::now()) {
      cv_.wait_until(lock, first->first);
      continue;
    }
    uint64_t id = first->second;
    due_.erase(first);
    auto job = jobs_.find(id);
    if (job == jobs_.end()) continue;
    auto fn = std::move(job->second.second);
    jobs_.erase(job);
    lock.unlock();
    fn();
    lock.lock();
  }
}

}  // namespace airlock::daemon
