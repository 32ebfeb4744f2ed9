// fair_queue_test.cpp — the node queue's order: round robin across clients, FIFO within one.
#include <doctest/doctest.h>

#include <vector>

#include "fair_queue.hpp"

using muster::broker::FairQueue;

namespace {
std::vector<std::uint64_t> drain(FairQueue& q) {
  std::vector<std::uint64_t> out;
  while (auto id = q.pop()) out.push_back(*id);
  return out;
}
}  // namespace

TEST_CASE("fair queue: one client is plain FIFO") {
  FairQueue q;
  for (std::uint64_t i = 1; i <= 5; ++i) q.push_back("a", i);
  CHECK(q.size() == 5);
  CHECK(drain(q) == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
  CHECK(q.empty());
  CHECK(q.lanes() == 0);
}

TEST_CASE("fair queue: a client with many waiting does not hold back one with a few") {
  FairQueue q;
  for (std::uint64_t i = 1; i <= 100; ++i) q.push_back("flood", i);
  q.push_back("polite", 1000);
  q.push_back("polite", 1001);
  auto order = drain(q);
  REQUIRE(order.size() == 102);
  // flood's first, polite's first, flood's second, polite's second, then the rest of flood.
  CHECK(std::vector<std::uint64_t>(order.begin(), order.begin() + 5) ==
        std::vector<std::uint64_t>{1, 1000, 2, 1001, 3});
  CHECK(order.back() == 100);
}

TEST_CASE("fair queue: push_front is served next; erase removes from the right lane") {
  FairQueue q;
  q.push_back("a", 1);
  q.push_back("b", 2);
  q.push_back("a", 3);
  q.push_front("b", 9);  // re-queued after a worker death
  CHECK_FALSE(q.erase("a", 2));  // 2 is b's
  CHECK(q.erase("a", 3));
  CHECK(q.size() == 3);
  CHECK(drain(q) == std::vector<std::uint64_t>{9, 1, 2});
  CHECK(q.lanes() == 0);
}
