// WorkerPool: jobs run off the caller's thread, all queued jobs run before stop() returns, and a pool
// that is stopping refuses new jobs (so the API can answer 503 instead of dropping a request).
#include "daemon/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace airlock::daemon {
namespace {

TEST(WorkerPool, RunsEveryJobBeforeStopReturns) {
  std::atomic<int> done{0};
  WorkerPool pool(3);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(pool.submit([&] { done++; }));
  pool.stop();
  EXPECT_EQ(done.load(), 100);
}

TEST(WorkerPool, JobsRunOnOtherThreadsInParallel) {
  WorkerPool pool(2);
  std::atomic<int> inside{0}, peak{0};
  auto caller = std::this_thread::get_id();
  std::atomic<bool> off_caller{true};
  for (int i = 0; i < 2; ++i) {
    pool.submit([&] {
      if (std::this_thread::get_id() == caller) off_caller = false;
      int now = ++inside;
      int seen = peak.load();
      while (now > seen && !peak.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      --inside;
    });
  }
  pool.stop();
  EXPECT_TRUE(off_caller);
  EXPECT_EQ(peak.load(), 2);
}

TEST(WorkerPool, RefusesJobsOnceStopped) {
  WorkerPool pool(1);
  pool.stop();
  EXPECT_FALSE(pool.submit([] {}));
  pool.stop();  // idempotent
}

}  // namespace
}  // namespace airlock::daemon
