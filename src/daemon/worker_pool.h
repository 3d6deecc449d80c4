// Threads for handler work that may block (the engine, the agent, long commands), so that the HTTP
// server's I/O threads only ever parse and write. Jobs run in submission order on a fixed number of
// threads; stop() lets queued jobs finish and joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace airlock::daemon {

class WorkerPool {
 public:
  explicit WorkerPool(unsigned threads);
  ~WorkerPool() { stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // false once stop() has begun: the job is dropped and the caller must answer another way.
  bool submit(std::function<void()> job);
  // Runs what is queued, then joins. Idempotent.
  void stop();

 private:
  void work();

  std::mutex queue_mu_;  // guards queue_ and stopping_
  std::condition_variable queue_cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace airlock::daemon
