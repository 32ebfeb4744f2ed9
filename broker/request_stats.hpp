// request_stats.hpp — the request counters GetStatus reports: submitted, completed, failed (by
// code), re-dispatched, and terminal replies per second over the last minute.
// Owns: counting and the one-minute rate, for the whole daemon or for one workspace.
// Must never: read a clock (the caller passes the second since the daemon started).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "events.hpp"

namespace muster::broker {

struct RequestStats {
  std::uint64_t submitted = 0, completed = 0, failed = 0, redispatched = 0;
  std::array<std::uint64_t, 16> failures_by_code{};

  // One terminal reply (code None: a result) in second `second` of the daemon's life.
  void count_terminal(std::int64_t second, ErrorCode code) {
    if (code == ErrorCode::None) {
      ++completed;
    } else {
      ++failed;
      auto i = static_cast<std::size_t>(code);
      if (i < failures_by_code.size()) ++failures_by_code[i];
    }
    if (second != rate_second_) {
      for (auto s = rate_second_ + 1; s <= second && s <= rate_second_ + 60; ++s)
        per_second_[static_cast<std::size_t>(s % 60)] = 0;
      rate_second_ = second;
    }
    ++per_second_[static_cast<std::size_t>(second % 60)];
  }

  // Terminal replies per second over the last minute (or since the start, if shorter).
  double rate_1m(std::int64_t second) const {
    std::uint64_t total = 0;
    for (std::int64_t k = 0; k < 60; ++k) {
      auto sec = second - k;
      if (sec < 0 || sec > rate_second_ || rate_second_ - sec >= 60) continue;
      total += per_second_[static_cast<std::size_t>(sec % 60)];
    }
    auto window = std::min<std::int64_t>(60, second + 1);
    return static_cast<double>(total) / static_cast<double>(window);
  }

 private:
  std::array<std::uint32_t, 60> per_second_{};
  std::int64_t rate_second_ = 0;
};

}  // namespace muster::broker
