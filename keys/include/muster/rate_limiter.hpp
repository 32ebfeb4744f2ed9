// rate_limiter.hpp — slows down a peer that keeps failing (enrollment attempts with bad tokens).
// Exponential backoff per peer address: the first `free_failures` failures cost nothing; each
// further failure blocks the peer for base_delay × 2^(k-1) (k = failures beyond the free ones),
// capped at max_delay. A peer with no failure for `forget_after` starts fresh; a success
// forgets it at once (Enrollment calls record_success only for a real first enrollment, never
// for a no-op re-enrollment of a key already enrolled).
// Owns: the per-peer failure counts and block times, bounded in memory.
// Must never: read a clock (callers pass `now`), block a thread, or grow without bound.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "muster/timestamp.hpp"

namespace muster::keys {

struct RateLimitPolicy {
  std::uint32_t free_failures = 3;
  std::chrono::milliseconds base_delay{1000};
  std::chrono::milliseconds max_delay{std::chrono::minutes(5)};
  std::chrono::seconds forget_after{std::chrono::minutes(15)};
  std::size_t max_peers = 10'000;  // beyond this, the peer whose last failure is oldest is forgotten
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimitPolicy policy = {});

  // How much longer `peer` must wait before its next attempt is looked at, or nullopt if it
  // may try now. `peer` is the peer's IP address as ZeroMQ reports it (ZAP "address" frame or
  // the message property "Peer-Address"), without a port.
  std::optional<std::chrono::milliseconds> blocked_for(std::string_view peer, TimePoint now) const;

  // A failed attempt by `peer` at `now`. Returns the block it now has (nullopt: none yet).
  std::optional<std::chrono::milliseconds> record_failure(std::string_view peer, TimePoint now);

  // A successful attempt: the peer's record is dropped.
  void record_success(std::string_view peer);

  // Drops records older than forget_after. Returns how many were dropped.
  std::size_t prune(TimePoint now);

  std::size_t tracked_peers() const;
  const RateLimitPolicy& policy() const { return policy_; }

 private:
  struct Record {
    std::uint32_t failures = 0;
    TimePoint last_failure{};
    TimePoint blocked_until{};
  };
  std::size_t prune_locked(TimePoint now);

  RateLimitPolicy policy_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Record> peers_;
};

}  // namespace muster::keys
