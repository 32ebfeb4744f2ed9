// log_throttle.hpp — rate-limits one repeated log line: at most one line per period, and the
// count of occurrences held back since the last line written.
// Owns: when a repeated event (a failing accept, a refused connection) may be logged.
// Must never: let a flood of one event write more than one line per period. Clock-free:
// `now_ms` is passed in.
#pragma once

#include <cstdint>

namespace muster::bridge {

class LogThrottle {
 public:
  explicit LogThrottle(std::int64_t period_ms = 1000) : period_ms_(period_ms) {}

  // True if this occurrence may be logged now; then `*suppressed` (if given) is how many were
  // held back since the last one logged. False: hold it back (it is counted).
  bool admit(std::int64_t now_ms, std::uint64_t* suppressed = nullptr) {
    if (logged_once_ && now_ms < last_ms_ + period_ms_) {
      ++held_;
      return false;
    }
    if (suppressed) *suppressed = held_;
    held_ = 0;
    last_ms_ = now_ms;
    logged_once_ = true;
    return true;
  }

 private:
  std::int64_t period_ms_;
  std::int64_t last_ms_ = 0;
  bool logged_once_ = false;
  std::uint64_t held_ = 0;
};

}  // namespace muster::bridge
