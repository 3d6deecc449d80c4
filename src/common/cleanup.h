// Cleanup: a stack of undo actions that run in reverse unless dismissed, so a half-finished
// create leaves nothing behind.
#pragma once

#include <functional>
#include <utility>
#include <vector>

namespace airlock {

class Cleanup {
 public:
  Cleanup() = default;
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
  ~Cleanup() { run(); }

  void add(std::function<void()> undo) { actions_.push_back(std::move(undo)); }
  void dismiss() { actions_.clear(); }
  void run() {
    while (!actions_.empty()) {
      auto action = std::move(actions_.back());
      actions_.pop_back();
      action();
    }
  }

 private:
  std::vector<std::function<void()>> actions_;
};

}  // namespace airlock
