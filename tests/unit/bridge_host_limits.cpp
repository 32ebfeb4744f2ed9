// bridge_host_limits.cpp — tests for the host mode's defences against connection floods: the
// per-address connection cap and the log throttle for repeated lines (accept failures,
// refusals).
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "muster/bridge/connection_limiter.hpp"
#include "muster/bridge/log_throttle.hpp"

using namespace muster::bridge;

TEST_CASE("bridge connection limiter: refuses the connection over the cap, frees on close") {
  ConnectionLimiter limiter(2);
  auto a = limiter.acquire("10.0.0.1");
  auto b = limiter.acquire("10.0.0.1");
  REQUIRE(a);
  REQUIRE(b);
  ConnectionLimiter::Refusal why;
  CHECK(limiter.acquire("10.0.0.1", &why) == nullptr);
  CHECK(why == ConnectionLimiter::Refusal::PerKey);
  CHECK(limiter.open("10.0.0.1") == 2);
  auto other = limiter.acquire("10.0.0.2");  // caps are per address
  CHECK(other);
  a.reset();
  CHECK(limiter.open("10.0.0.1") == 1);
  auto c = limiter.acquire("10.0.0.1");
  CHECK(c);
  CHECK(limiter.acquire("10.0.0.1") == nullptr);
}

TEST_CASE("bridge connection limiter: the total cap keeps descriptors for the rest of the process") {
  ConnectionLimiter limiter(2, 3);
  ConnectionLimiter::Refusal why;
  auto a = limiter.acquire("10.0.0.1", &why);
  auto b = limiter.acquire("10.0.0.2", &why);
  auto c = limiter.acquire("10.0.0.3", &why);
  CHECK(why == ConnectionLimiter::Refusal::None);
  CHECK(limiter.open_total() == 3);
  CHECK(limiter.acquire("10.0.0.4", &why) == nullptr);
  CHECK(why == ConnectionLimiter::Refusal::Total);
  b.reset();
  auto d = limiter.acquire("10.0.0.1", &why);
  CHECK(d);
  CHECK(limiter.acquire("10.0.0.1", &why) == nullptr);
  CHECK(why == ConnectionLimiter::Refusal::Total);  // the total is checked first
  a.reset();
  CHECK(limiter.open_total() == 2);
}

TEST_CASE("bridge connection limiter: 0 means no cap; a slot outlives its limiter") {
  std::shared_ptr<ConnectionLimiter::Slot> kept;
  {
    ConnectionLimiter limiter(0);
    std::vector<std::shared_ptr<ConnectionLimiter::Slot>> slots;
    for (int i = 0; i < 1000; ++i) slots.push_back(limiter.acquire("127.0.0.1"));
    CHECK(slots.back());
    CHECK(limiter.open("127.0.0.1") == 1000);
    kept = slots.front();
  }
  kept.reset();  // releases into the shared state, no use after free (ASan would say)
}

TEST_CASE("bridge log throttle: one line per period with the count held back") {
  LogThrottle t(1000);
  std::uint64_t held = 99;
  CHECK(t.admit(5000, &held));
  CHECK(held == 0);
  int written = 1;
  for (int i = 1; i < 1000000; ++i)
    if (t.admit(5000 + i / 1000, &held)) ++written;  // a million failures within one second
  CHECK(written == 1);
  CHECK(t.admit(6000, &held));
  CHECK(held == 999999);
  CHECK_FALSE(t.admit(6999));
  CHECK(t.admit(7000, &held));
  CHECK(held == 1);
}
