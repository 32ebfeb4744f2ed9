// login_limiter.cpp — see login_limiter.hpp.
#include "muster/gateway/login_limiter.hpp"

#include <algorithm>

namespace muster::gateway {

std::optional<std::int64_t> LoginLimiter::attempt(const std::string& address, std::int64_t now) {
  if (windows_.size() >= max_ && !windows_.contains(address)) {
    std::erase_if(windows_, [&](const auto& kv) { return now - kv.second.start >= window_s_; });
    if (windows_.size() >= max_) {
      auto oldest = std::min_element(windows_.begin(), windows_.end(),
                                     [](const auto& a, const auto& b) { return a.second.start < b.second.start; });
      windows_.erase(oldest);
    }
  }
  auto& w = windows_[address];
  if (w.count == 0 || now - w.start >= window_s_) w = Window{now, 0};
  if (w.count >= attempts_) return std::max<std::int64_t>(1, w.start + window_s_ - now);
  ++w.count;
  return std::nullopt;
}

}  // namespace muster::gateway
