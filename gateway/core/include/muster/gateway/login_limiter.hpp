// login_limiter.hpp — per-address rate limit of POST /api/auth/login: at most `attempts` in
// any `window_s` (a fixed window per address, restarted by the first attempt after it ends).
// Owns: the bookkeeping, bounded in memory (at most `max_addresses` tracked; the oldest
// windows are forgotten first).
// Must never: read a clock (time comes in as arguments).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace muster::gateway {

class LoginLimiter {
 public:
  LoginLimiter(std::uint32_t attempts, std::int64_t window_s, std::size_t max_addresses = 100000)
      : attempts_(attempts), window_s_(window_s), max_(max_addresses) {}
  // Counts an attempt from `address` at `now` (seconds): nullopt if allowed, else the seconds
  // to wait (at least 1).
  std::optional<std::int64_t> attempt(const std::string& address, std::int64_t now);

 private:
  struct Window {
    std::int64_t start = 0;
    std::uint32_t count = 0;
  };
  std::uint32_t attempts_;
  std::int64_t window_s_;
  std::size_t max_;
  std::unordered_map<std::string, Window> windows_;
};

}  // namespace muster::gateway
