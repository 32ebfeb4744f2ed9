// backoff.hpp — exponential backoff for reconnects and retries: initial, ×factor per failure,
// capped; reset after a success.
// Must never: return less than `initial` or more than `max`.
#pragma once

#include <algorithm>
#include <chrono>

namespace muster::bridge {

class Backoff {
 public:
  using ms = std::chrono::milliseconds;
  Backoff(ms initial, ms max, double factor = 2.0)
      : initial_(std::max(initial, ms(1))), max_(std::max(max, initial_)), factor_(std::max(factor, 1.0)), next_(initial_) {}

  // The delay before the next attempt; each call grows the following one.
  ms next() {
    ms out = next_;
    auto grown = static_cast<double>(next_.count()) * factor_;
    next_ = grown >= static_cast<double>(max_.count()) ? max_ : ms(static_cast<ms::rep>(grown));
    ++failures_;
    return out;
  }
  void reset() {
    next_ = initial_;
    failures_ = 0;
  }
  int failures() const { return failures_; }

 private:
  ms initial_, max_;
  double factor_;
  ms next_;
  int failures_ = 0;
};

}  // namespace muster::bridge
