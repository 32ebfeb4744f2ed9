// rate_limiter.cpp — exponential backoff per peer, clock passed in.
// Must never: overflow the delay computation (the shift is capped before it is taken).
#include "muster/rate_limiter.hpp"

#include <algorithm>

namespace muster::keys {

using std::chrono::milliseconds;

RateLimiter::RateLimiter(RateLimitPolicy policy) : policy_(policy) {}

std::optional<milliseconds> RateLimiter::blocked_for(std::string_view peer, TimePoint now) const {
  std::lock_guard lock(mu_);
  auto it = peers_.find(std::string(peer));
  if (it == peers_.end() || now >= it->second.blocked_until) return std::nullopt;
  auto left = std::chrono::ceil<milliseconds>(it->second.blocked_until - now);
  return std::max(left, milliseconds(1));
}

std::optional<milliseconds> RateLimiter::record_failure(std::string_view peer, TimePoint now) {
  std::lock_guard lock(mu_);
  std::string key(peer);
  auto it = peers_.find(key);
  if (it == peers_.end()) {
    if (peers_.size() >= policy_.max_peers) prune_locked(now);
    if (peers_.size() >= policy_.max_peers && !peers_.empty()) {
      auto oldest = std::min_element(peers_.begin(), peers_.end(), [](const auto& a, const auto& b) {
        return a.second.last_failure < b.second.last_failure;
      });
      peers_.erase(oldest);
    }
    it = peers_.emplace(std::move(key), Record{}).first;
  }
  Record& r = it->second;
  if (r.failures > 0 && now - r.last_failure >= policy_.forget_after) r = Record{};
  r.failures += 1;
  r.last_failure = now;
  if (r.failures <= policy_.free_failures) return std::nullopt;
  std::uint32_t k = r.failures - policy_.free_failures;  // 1, 2, 3, ...
  milliseconds delay = policy_.max_delay;
  if (k - 1 < 40) {
    auto d = policy_.base_delay * (std::int64_t{1} << (k - 1));
    if (d < policy_.max_delay) delay = d;
  }
  r.blocked_until = std::max(r.blocked_until, now + delay);
  return delay;
}

void RateLimiter::record_success(std::string_view peer) {
  std::lock_guard lock(mu_);
  peers_.erase(std::string(peer));
}

std::size_t RateLimiter::prune_locked(TimePoint now) {
  std::size_t n = 0;
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (now - it->second.last_failure >= policy_.forget_after && now >= it->second.blocked_until) {
      it = peers_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

std::size_t RateLimiter::prune(TimePoint now) {
  std::lock_guard lock(mu_);
  return prune_locked(now);
}

std::size_t RateLimiter::tracked_peers() const {
  std::lock_guard lock(mu_);
  return peers_.size();
}

}  // namespace muster::keys
